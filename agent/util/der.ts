/**
 * Minimal strict DER reader (ITU-T X.690): enough to walk X.509 certificates, CRLs and OCSP
 * responses. It never trusts a length: every read is bounds-checked and throws ParseError.
 * Definite lengths only (DER forbids indefinite ones).
 */
import { ParseError } from '../errors.js';

export interface DerNode {
  /** Full identifier octet (class | constructed | number), single-byte tags only. */
  tag: number;
  constructed: boolean;
  /** Offset of the identifier octet in `input`. */
  start: number;
  /** Offset of the first value byte. */
  valueStart: number;
  /** Offset just past the value. */
  end: number;
  input: Uint8Array;
}

export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  ENUMERATED: 0x0a,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

/** Read one TLV at `offset`, bounded by `limit` (default: end of input). */
export function readNode(input: Uint8Array, offset = 0, limit = input.length): DerNode {
  if (offset >= limit) throw new ParseError('DER: unexpected end of data', offset);
  const tag = input[offset]!;
  if ((tag & 0x1f) === 0x1f) throw new ParseError('DER: multi-byte tags are not supported', offset);
  if (offset + 1 >= limit) throw new ParseError('DER: missing length', offset);
  let len = input[offset + 1]!;
  let p = offset + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0) throw new ParseError('DER: indefinite length is not DER', offset);
    if (n > 4) throw new ParseError('DER: length too large', offset);
    if (p + n > limit) throw new ParseError('DER: truncated length', offset);
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + input[p + i]!;
    p += n;
  }
  if (p + len > limit) throw new ParseError(`DER: value of ${len} bytes overruns its container`, offset);
  return { tag, constructed: (tag & 0x20) !== 0, start: offset, valueStart: p, end: p + len, input };
}

export function valueOf(node: DerNode): Uint8Array {
  return node.input.subarray(node.valueStart, node.end);
}

/** The encoded TLV itself (identifier + length + value). */
export function encodedOf(node: DerNode): Uint8Array {
  return node.input.subarray(node.start, node.end);
}

/** Parse a complete DER object; trailing bytes are an error. */
export function parseDer(input: Uint8Array): DerNode {
  const node = readNode(input, 0, input.length);
  if (node.end !== input.length) throw new ParseError('DER: trailing bytes after the object', node.end);
  return node;
}

export function children(node: DerNode): DerNode[] {
  if (!node.constructed) throw new ParseError(`DER: tag 0x${node.tag.toString(16)} is not constructed`, node.start);
  const out: DerNode[] = [];
  let p = node.valueStart;
  while (p < node.end) {
    const child = readNode(node.input, p, node.end);
    out.push(child);
    p = child.end;
  }
  return out;
}

export function expectTag(node: DerNode, tag: number, what: string): DerNode {
  if (node.tag !== tag) {
    throw new ParseError(`DER: ${what}: expected tag 0x${tag.toString(16)}, got 0x${node.tag.toString(16)}`, node.start);
  }
  return node;
}

/** children() with an exact-or-minimum count check, so indexing is safe. */
export function childrenAtLeast(node: DerNode, count: number, what: string): DerNode[] {
  const c = children(node);
  if (c.length < count) throw new ParseError(`DER: ${what}: expected at least ${count} elements, got ${c.length}`, node.start);
  return c;
}

export function decodeOid(node: DerNode): string {
  expectTag(node, TAG.OID, 'OBJECT IDENTIFIER');
  const v = valueOf(node);
  if (v.length === 0) throw new ParseError('DER: empty OID', node.start);
  const parts: number[] = [];
  let acc = 0;
  for (let i = 0; i < v.length; i++) {
    const b = v[i]!;
    if (acc > 0x1ffffff) throw new ParseError('DER: OID arc too large', node.start);
    acc = acc * 128 + (b & 0x7f);
    if ((b & 0x80) === 0) {
      if (parts.length === 0) {
        const first = acc < 80 ? Math.floor(acc / 40) : 2;
        parts.push(first, acc - first * 40);
      } else parts.push(acc);
      acc = 0;
    } else if (i === v.length - 1) {
      throw new ParseError('DER: truncated OID', node.start);
    }
  }
  return parts.join('.');
}

/** INTEGER as bigint (two's complement). */
export function decodeInteger(node: DerNode): bigint {
  expectTag(node, TAG.INTEGER, 'INTEGER');
  const v = valueOf(node);
  if (v.length === 0) throw new ParseError('DER: empty INTEGER', node.start);
  let n = 0n;
  for (const b of v) n = (n << 8n) | BigInt(b);
  if (v[0]! & 0x80) n -= 1n << BigInt(v.length * 8);
  return n;
}

/** UTCTime / GeneralizedTime to Date (Zulu forms only, as X.509 and OCSP require). */
export function decodeTime(node: DerNode): Date {
  const s = Buffer.from(valueOf(node)).toString('latin1');
  let m: RegExpMatchArray | null;
  if (node.tag === TAG.UTC_TIME && (m = s.match(/^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/))) {
    const yy = Number(m[1]);
    return new Date(Date.UTC(yy >= 50 ? 1900 + yy : 2000 + yy, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])));
  }
  if (node.tag === TAG.GENERALIZED_TIME && (m = s.match(/^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:\.\d+)?Z$/))) {
    return new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])));
  }
  throw new ParseError(`DER: unsupported time "${s}"`, node.start);
}

export function decodeString(node: DerNode): string {
  return Buffer.from(valueOf(node)).toString(node.tag === TAG.UTF8_STRING ? 'utf8' : 'latin1');
}

/** BIT STRING contents without the unused-bits octet (must be 0 for keys and signatures). */
export function decodeBitString(node: DerNode): Uint8Array {
  expectTag(node, TAG.BIT_STRING, 'BIT STRING');
  const v = valueOf(node);
  if (v.length === 0) throw new ParseError('DER: empty BIT STRING', node.start);
  if (v[0] !== 0) throw new ParseError('DER: BIT STRING with unused bits', node.start);
  return v.subarray(1);
}
