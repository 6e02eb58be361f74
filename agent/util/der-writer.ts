/**
 * Minimal DER encoder (ITU-T X.690 §10): the inverse of util/der.ts, enough to build X.509
 * certificates and CRLs for simulated evidence and tests. Every function returns the complete TLV.
 */
import { CvmError } from '../errors.js';

function invalid(message: string): never {
  throw new CvmError('ERR_INVALID_ARGUMENT', `DER writer: ${message}`);
}

/** Definite, minimal length octets (X.690 §10.1). */
function encodeLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** One TLV with a single-byte identifier. */
export function tlv(tag: number, content: Uint8Array): Buffer {
  if (!Number.isInteger(tag) || tag < 0 || tag > 0xff || (tag & 0x1f) === 0x1f) invalid(`unsupported tag ${tag}`);
  return Buffer.concat([Buffer.from([tag]), encodeLength(content.length), content]);
}

export const sequence = (...items: Uint8Array[]): Buffer => tlv(0x30, Buffer.concat(items));

/** SET OF: DER orders the elements by their encodings (X.690 §11.6). */
export const set = (...items: Uint8Array[]): Buffer => tlv(0x31, Buffer.concat([...items].map((i) => Buffer.from(i)).sort(Buffer.compare)));

export const boolean = (v: boolean): Buffer => tlv(0x01, Buffer.from([v ? 0xff : 0x00]));
export const nullValue = (): Buffer => Buffer.from([0x05, 0x00]);

/**
 * INTEGER, minimal two's complement. A number/bigint may be negative; bytes are read as an unsigned
 * big-endian magnitude (a serial number or RSA modulus), so a leading 0x00 is added when needed.
 */
export function integer(v: bigint | number | Uint8Array): Buffer {
  if (v instanceof Uint8Array) {
    let i = 0;
    while (i < v.length - 1 && v[i] === 0) i++;
    const mag = Buffer.from(v.subarray(i));
    if (mag.length === 0) return tlv(0x02, Buffer.from([0]));
    return tlv(0x02, mag[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), mag]) : mag);
  }
  if (typeof v === 'number' && !Number.isSafeInteger(v)) invalid(`integer ${v} is not a safe integer`);
  let n = BigInt(v);
  const out: number[] = [];
  // Emit bytes until the remaining value is pure sign extension of the last emitted byte.
  for (;;) {
    const byte = Number(n & 0xffn);
    out.unshift(byte);
    n >>= 8n;
    if ((n === 0n && (byte & 0x80) === 0) || (n === -1n && (byte & 0x80) !== 0)) break;
  }
  return tlv(0x02, Buffer.from(out));
}

/** OBJECT IDENTIFIER from dotted text (X.690 §8.19). */
export function oid(dotted: string): Buffer {
  if (!/^[0-2](\.\d+)+$/.test(dotted)) invalid(`bad OID "${dotted}"`);
  const arcs = dotted.split('.').map((a) => BigInt(a));
  const [a0, a1] = [arcs[0]!, arcs[1]!];
  if (a0 < 2n && a1 > 39n) invalid(`bad OID "${dotted}": second arc > 39`);
  const bytes: number[] = [];
  for (const arc of [a0 * 40n + a1, ...arcs.slice(2)]) {
    const chunk: number[] = [Number(arc & 0x7fn)];
    for (let v = arc >> 7n; v > 0n; v >>= 7n) chunk.unshift(Number(v & 0x7fn) | 0x80);
    bytes.push(...chunk);
  }
  return tlv(0x06, Buffer.from(bytes));
}

export const octetString = (bytes: Uint8Array): Buffer => tlv(0x04, bytes);

/** BIT STRING with `unusedBits` (0..7) unused trailing bits in the last octet. */
export function bitString(bytes: Uint8Array, unusedBits = 0): Buffer {
  if (!Number.isInteger(unusedBits) || unusedBits < 0 || unusedBits > 7 || (bytes.length === 0 && unusedBits !== 0)) {
    invalid(`bad unused-bit count ${unusedBits}`);
  }
  return tlv(0x03, Buffer.concat([Buffer.from([unusedBits]), bytes]));
}

/** Named-bit BIT STRING (e.g. KeyUsage): bit 0 is the MSB of the first octet; trailing zero bits dropped (X.690 §11.2.2). */
export function namedBits(bits: readonly number[]): Buffer {
  if (bits.length === 0) return bitString(new Uint8Array(0));
  const max = Math.max(...bits);
  const bytes = Buffer.alloc(Math.floor(max / 8) + 1);
  for (const b of bits) {
    if (!Number.isInteger(b) || b < 0) invalid(`bad bit number ${b}`);
    bytes[b >> 3]! |= 0x80 >> (b & 7);
  }
  return bitString(bytes, 7 - (max & 7));
}

export const utf8String = (s: string): Buffer => tlv(0x0c, Buffer.from(s, 'utf8'));

export function printableString(s: string): Buffer {
  if (!/^[A-Za-z0-9 '()+,\-./:=?]*$/.test(s)) invalid(`"${s}" is not a PrintableString`);
  return tlv(0x13, Buffer.from(s, 'latin1'));
}

export function ia5String(s: string): Buffer {
  if (!/^[\x00-\x7f]*$/.test(s)) invalid(`"${s}" is not an IA5String`);
  return tlv(0x16, Buffer.from(s, 'latin1'));
}

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

function checkDate(d: Date): void {
  if (!(d instanceof Date) || Number.isNaN(d.getTime())) invalid('invalid Date');
}

/** UTCTime YYMMDDHHMMSSZ (seconds precision, Zulu), years 1950..2049 (RFC 5280 §4.1.2.5.1). */
export function utcTime(d: Date): Buffer {
  checkDate(d);
  const y = d.getUTCFullYear();
  if (y < 1950 || y > 2049) invalid(`UTCTime cannot encode year ${y}`);
  const s = `${pad(y % 100)}${pad(d.getUTCMonth() + 1)}${pad(d.getUTCDate())}${pad(d.getUTCHours())}${pad(d.getUTCMinutes())}${pad(d.getUTCSeconds())}Z`;
  return tlv(0x17, Buffer.from(s, 'latin1'));
}

/** GeneralizedTime YYYYMMDDHHMMSSZ, no fractional seconds (RFC 5280 §4.1.2.5.2). */
export function generalizedTime(d: Date): Buffer {
  checkDate(d);
  const y = d.getUTCFullYear();
  if (y < 0 || y > 9999) invalid(`GeneralizedTime cannot encode year ${y}`);
  const s = `${pad(y, 4)}${pad(d.getUTCMonth() + 1)}${pad(d.getUTCDate())}${pad(d.getUTCHours())}${pad(d.getUTCMinutes())}${pad(d.getUTCSeconds())}Z`;
  return tlv(0x18, Buffer.from(s, 'latin1'));
}

/** X.509 Time: UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 §4.1.2.5). */
export const x509Time = (d: Date): Buffer => (d.getUTCFullYear() >= 1950 && d.getUTCFullYear() <= 2049 ? utcTime(d) : generalizedTime(d));

/** [n] EXPLICIT: a constructed context tag wrapping complete TLVs. */
export function explicit(n: number, ...inner: Uint8Array[]): Buffer {
  if (!Number.isInteger(n) || n < 0 || n > 30) invalid(`bad context tag number ${n}`);
  return tlv(0xa0 | n, Buffer.concat(inner));
}

/** [n] IMPLICIT: context tag replacing the identifier; `constructed` for SEQUENCE-like contents. */
export function implicit(n: number, content: Uint8Array, constructed = false): Buffer {
  if (!Number.isInteger(n) || n < 0 || n > 30) invalid(`bad context tag number ${n}`);
  return tlv((constructed ? 0xa0 : 0x80) | n, content);
}
