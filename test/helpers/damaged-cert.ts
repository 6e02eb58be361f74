/**
 * Damaged copies of real certificates whose DER still parses: the subject public key is what is
 * broken (EC point off the curve, a truncated key BIT STRING with every enclosing length fixed up,
 * an unknown key algorithm OID). Tests feed them to the verifiers, which must fail a named check.
 */
import { parseCertificate } from '../../agent/formats/x509/certificate.js';

interface Node {
  tag: number;
  start: number;
  /** Children of a constructed node; undefined for a primitive one. */
  children?: Node[];
  content: Buffer;
}

function readNode(b: Buffer, start: number): [Node, number] {
  const tag = b[start]!;
  let len = b[start + 1]!;
  let off = start + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + b[off + i]!;
    off += n;
  }
  const content = b.subarray(off, off + len);
  const node: Node = { tag, start, content };
  if (tag & 0x20) {
    node.children = [];
    for (let p = off; p < off + len; ) {
      const [child, next] = readNode(b, p);
      node.children.push(child);
      p = next;
    }
  }
  return [node, off + len];
}

function lengthBytes(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const out: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) out.unshift(v % 256);
  return Buffer.from([0x80 | out.length, ...out]);
}

/** Re-encode the tree, replacing the content of the node that starts at `at`. */
function encode(node: Node, at: number, replacement: Buffer): Buffer {
  const content = node.start === at ? replacement : node.children ? Buffer.concat(node.children.map((c) => encode(c, at, replacement))) : node.content;
  return Buffer.concat([Buffer.from([node.tag]), lengthBytes(content.length), content]);
}

/** Offset of the SubjectPublicKeyInfo inside the certificate DER. */
export function spkiOffset(der: Buffer): number {
  const spki = Buffer.from(parseCertificate(der).spki);
  const at = der.indexOf(spki);
  if (at < 0) throw new Error('SPKI not found');
  return at;
}

/** The EC point's x coordinate changed by one bit: almost surely not on the curve. */
export function pointOffCurve(der: Buffer): Buffer {
  const out = Buffer.from(der);
  const at = out.indexOf(Buffer.from([0x00, 0x04]), spkiOffset(der)); // BIT STRING: no unused bits, uncompressed point
  out[at + 2 + 5]! ^= 0x01;
  return out;
}

/** The key BIT STRING shortened by `drop` bytes, every enclosing length re-encoded: the DER still parses. */
export function truncatedSpki(der: Buffer, drop: number): Buffer {
  const [root] = readNode(der, 0);
  const spki = root.children![0]!.children!.find((n) => n.start === spkiOffset(der))!;
  const bits = spki.children![1]!;
  return encode(root, bits.start, bits.content.subarray(0, bits.content.length - drop));
}

/** The key algorithm OID's last arc changed (id-ecPublicKey 1.2.840.10045.2.1 → ….2.9, rsaEncryption → ….1.99). */
export function unknownKeyAlgorithm(der: Buffer): Buffer {
  const out = Buffer.from(der);
  const from = spkiOffset(der);
  for (const [oid, last] of [
    ['2a8648ce3d0201', 0x09],
    ['2a864886f70d010101', 0x63],
  ] as const) {
    const at = out.indexOf(Buffer.from(oid, 'hex'), from);
    if (at >= 0) {
      out[at + oid.length / 2 - 1] = last;
      return out;
    }
  }
  throw new Error('no known key algorithm OID in the SPKI');
}
