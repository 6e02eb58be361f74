/**
 * Big-endian TPM wire marshalling (TPM 2.0 Part 1 §18: all integers are big-endian; TPM2B = u16 size
 * + bytes). The reader never trusts a size: every read is bounds-checked and throws ParseError.
 */
import { ParseError, UsageError } from '../../errors.js';

export class TpmReader {
  private pos: number;
  constructor(
    readonly buf: Uint8Array,
    start = 0,
    private readonly end = buf.length,
    readonly what = 'TPM data',
  ) {
    if (end > buf.length) throw new ParseError(`${what}: size exceeds the buffer`, start);
    this.pos = start;
  }

  get offset(): number {
    return this.pos;
  }
  get remaining(): number {
    return this.end - this.pos;
  }

  private need(n: number, field: string): void {
    if (n < 0 || this.pos + n > this.end) {
      throw new ParseError(`${this.what}: truncated ${field} (needs ${n} bytes, ${this.end - this.pos} left)`, this.pos);
    }
  }

  u8(field = 'u8'): number {
    this.need(1, field);
    return this.buf[this.pos++]!;
  }
  u16(field = 'u16'): number {
    this.need(2, field);
    const v = (this.buf[this.pos]! << 8) | this.buf[this.pos + 1]!;
    this.pos += 2;
    return v;
  }
  u32(field = 'u32'): number {
    this.need(4, field);
    const b = this.buf;
    const p = this.pos;
    this.pos += 4;
    return ((b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!) >>> 0;
  }
  u64(field = 'u64'): bigint {
    const hi = this.u32(field);
    const lo = this.u32(field);
    return (BigInt(hi) << 32n) | BigInt(lo);
  }
  bytes(n: number, field = 'bytes'): Buffer {
    this.need(n, field);
    const out = Buffer.from(this.buf.subarray(this.pos, this.pos + n));
    this.pos += n;
    return out;
  }
  /** TPM2B_*: u16 size then that many bytes; `max` enforces the structure's maximum size. */
  tpm2b(field = 'TPM2B', max = 0xffff): Buffer {
    const size = this.u16(`${field}.size`);
    if (size > max) throw new ParseError(`${this.what}: ${field} size ${size} exceeds its maximum ${max}`, this.pos - 2);
    return this.bytes(size, field);
  }
  /** A sized sub-structure (TPM2B wrapping a structure): returns a reader limited to it. */
  sized(field: string): TpmReader {
    const size = this.u16(`${field}.size`);
    this.need(size, field);
    const sub = new TpmReader(this.buf, this.pos, this.pos + size, `${this.what}: ${field}`);
    this.pos += size;
    return sub;
  }
  /** The caller parsed everything it expected: leftover bytes mean a malformed or misunderstood structure. */
  expectEnd(field: string): void {
    if (this.pos !== this.end) throw new ParseError(`${this.what}: ${this.end - this.pos} unexpected trailing bytes after ${field}`, this.pos);
  }
}

export class TpmWriter {
  private chunks: Buffer[] = [];
  private length = 0;

  private push(b: Buffer): this {
    this.chunks.push(b);
    this.length += b.length;
    return this;
  }
  u8(v: number): this {
    const b = Buffer.alloc(1);
    b.writeUInt8(v);
    return this.push(b);
  }
  u16(v: number): this {
    const b = Buffer.alloc(2);
    b.writeUInt16BE(v);
    return this.push(b);
  }
  u32(v: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(v >>> 0);
    return this.push(b);
  }
  u64(v: bigint): this {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(v);
    return this.push(b);
  }
  bytes(v: Uint8Array): this {
    return this.push(Buffer.from(v));
  }
  tpm2b(v: Uint8Array): this {
    if (v.length > 0xffff) throw new UsageError(`TPM2B of ${v.length} bytes exceeds 65535`);
    return this.u16(v.length).bytes(v);
  }
  /** A sized sub-structure: u16 size of what `build` writes, then it. */
  sized(build: (w: TpmWriter) => void): this {
    const inner = new TpmWriter();
    build(inner);
    return this.tpm2b(inner.finish());
  }
  get size(): number {
    return this.length;
  }
  finish(): Buffer {
    return Buffer.concat(this.chunks, this.length);
  }
}
