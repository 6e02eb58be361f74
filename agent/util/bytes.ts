import { ParseError } from '../errors.js';

/** Strict hex decoding: whitespace allowed between bytes, optional 0x prefix, nothing else. */
export function hexToBytes(text: string, what = 'hex'): Buffer {
  let s = text.trim();
  if (s.startsWith('0x') || s.startsWith('0X')) s = s.slice(2);
  s = s.replace(/\s+/g, '');
  if (s.length % 2 !== 0) throw new ParseError(`${what}: odd number of hex digits`);
  if (!/^[0-9a-fA-F]*$/.test(s)) throw new ParseError(`${what}: not hexadecimal`);
  return Buffer.from(s, 'hex');
}

export function bytesToHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

export function isAllZero(bytes: Uint8Array): boolean {
  for (const b of bytes) if (b !== 0) return false;
  return true;
}

/** Little-endian unsigned integer of up to 8 bytes as bigint (reports are little-endian). */
export function readUintLE(bytes: Uint8Array, offset: number, length: number): bigint {
  let v = 0n;
  for (let i = length - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[offset + i]!);
  return v;
}

export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Constant-time comparison for secrets and digests of equal length. */
export { timingSafeEqual } from 'node:crypto';

/** Byte-for-byte equality (not constant-time: for public data such as names and certificates). */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}
