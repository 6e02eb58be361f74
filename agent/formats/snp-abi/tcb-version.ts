/**
 * TCB_VERSION (8 bytes, little-endian u64) encode/decode for both byte layouts, and CPUID →
 * product identification. SNP ABI #56860 TCB_VERSION; Turin layout from virtee/sev
 * src/firmware/host/types/snp.rs from_legacy_bytes/from_turin_bytes and tinfoilsh/go-sev-guest
 * kds/kds.go ToTCBParts; CPUID from virtee/sev src/lib.rs identify_cpu.
 */
import { CvmError, ParseError } from '../../errors.js';
import type { SnpProduct, TcbLayout, TcbVersion } from './abi-types.js';

const U64_MAX = (1n << 64n) - 1n;
const byteAt = (raw: bigint, i: number): number => Number((raw >> BigInt(8 * i)) & 0xffn);

/** Byte positions per layout (virtee/sev from_legacy_bytes / from_turin_bytes). */
const LAYOUT = {
  legacy: { bootloader: 0, tee: 1, snp: 6, microcode: 7, fmc: undefined, reserved: [2, 3, 4, 5] },
  turin: { bootloader: 1, tee: 2, snp: 3, microcode: 7, fmc: 0, reserved: [4, 5, 6] },
} as const;

export function decodeTcb(raw: bigint, layout: TcbLayout): TcbVersion {
  if (typeof raw !== 'bigint' || raw < 0n || raw > U64_MAX) throw new ParseError('TCB_VERSION must be an unsigned 64-bit value');
  const pos = LAYOUT[layout];
  if (pos === undefined) throw new ParseError(`unknown TCB layout "${String(layout)}"`);
  let reservedBits = 0n;
  for (const i of pos.reserved) reservedBits |= raw & (0xffn << BigInt(8 * i));
  const tcb: TcbVersion = {
    raw,
    bootloader: byteAt(raw, pos.bootloader),
    tee: byteAt(raw, pos.tee),
    snp: byteAt(raw, pos.snp),
    microcode: byteAt(raw, pos.microcode),
    layout,
    reservedBits,
  };
  if (pos.fmc !== undefined) tcb.fmc = byteAt(raw, pos.fmc);
  return tcb;
}

export interface TcbParts {
  bootloader: number;
  tee: number;
  snp: number;
  microcode: number;
  /** Turin only; must be absent or 0 for the legacy layout. */
  fmc?: number;
}

/** Inverse of decodeTcb for the named SPLs (reserved bytes zero). */
export function encodeTcb(parts: TcbParts, layout: TcbLayout): bigint {
  const pos = LAYOUT[layout];
  if (pos === undefined) throw new CvmError('ERR_INVALID_ARGUMENT', `unknown TCB layout "${String(layout)}"`);
  const put = (name: string, value: number | undefined, at: number | undefined): bigint => {
    if (value === undefined) return 0n;
    if (!Number.isInteger(value) || value < 0 || value > 255) {
      throw new CvmError('ERR_INVALID_ARGUMENT', `TCB ${name} SPL ${value} is not a byte`);
    }
    if (at === undefined) {
      if (value !== 0) throw new CvmError('ERR_INVALID_ARGUMENT', `TCB ${name} SPL does not exist in the ${layout} layout`);
      return 0n;
    }
    return BigInt(value) << BigInt(8 * at);
  };
  return (
    put('bootloader', parts.bootloader, pos.bootloader) |
    put('tee', parts.tee, pos.tee) |
    put('snp', parts.snp, pos.snp) |
    put('microcode', parts.microcode, pos.microcode) |
    put('fmc', parts.fmc, pos.fmc)
  );
}

/** Turin introduced the FMC-first layout; Milan and Genoa use the legacy one. */
export function tcbLayoutFor(product: SnpProduct): TcbLayout {
  return product === 'Turin' ? 'turin' : 'legacy';
}

/**
 * Generation from the report's combined CPUID family/model (v3+), per virtee/sev identify_cpu
 * (src/lib.rs). Siena/Bergamo (Genoa family) map to Genoa, as the KDS does. Stepping is not needed.
 */
export function productFromCpuid(family: number, model: number, _stepping?: number): SnpProduct | undefined {
  if (family === 0x19) {
    if (model >= 0x00 && model <= 0x0f) return 'Milan';
    if ((model >= 0x10 && model <= 0x1f) || (model >= 0xa0 && model <= 0xaf)) return 'Genoa';
  }
  if (family === 0x1a && model >= 0x00 && model <= 0x11) return 'Turin';
  return undefined;
}

/** Layout for a CPUID family: Zen 5 (family 0x1A: Turin, Venice) and later use the FMC-first layout. */
export function tcbLayoutForFamily(family: number): TcbLayout {
  return family >= 0x1a ? 'turin' : 'legacy';
}

/** KDS product name ("Milan-B0", "Genoa", "Turin") → generation, stepping ignored. */
export function productFromName(productName: string): SnpProduct | undefined {
  const base = productName.split('-')[0];
  return base === 'Milan' || base === 'Genoa' || base === 'Turin' ? base : undefined;
}

export function formatTcb(t: TcbVersion): string {
  const base = `bl=${t.bootloader} tee=${t.tee} snp=${t.snp} ucode=${t.microcode}`;
  return `${t.layout === 'turin' ? `fmc=${t.fmc ?? 0} ` : ''}${base} (0x${t.raw.toString(16).padStart(16, '0')})`;
}

/** Re-decode a raw TCB with the layout of the product established by the verifier (CPUID or the VCEK productName). */
export function tcbFor(raw: bigint, product: SnpProduct): TcbVersion {
  return decodeTcb(raw, tcbLayoutFor(product));
}
