/**
 * NVIDIA opaque data in the SPDM MEASUREMENTS response: a list of `[type u16 LE][len u16 LE][value]`
 * TLVs (type ids from nvtrust spdm_msrt_resp_msg.py OPAQUE_DATA_TYPES and
 * attestation-sdk gpu_opaque_data_parser.hpp). Pure and strict: unknown or duplicate ids are ParseErrors,
 * like the C++ SDK (is_valid_gpu_opaque_data_type accepts 1..36 only).
 */
import { ParseError } from '../../errors.js';
import { bytesToHex } from '../../util/bytes.js';

/** OPAQUE_DATA_TYPES: id → name (the golden parse prints them as OPAQUE_FIELD_ID_<name>). */
export const OPAQUE_FIELD_NAMES: Readonly<Record<number, string>> = {
  1: 'CERT_ISSUER_NAME',
  2: 'CERT_AUTHORITY_KEY_IDENTIFIER',
  3: 'DRIVER_VERSION',
  4: 'GPU_INFO',
  5: 'SKU',
  6: 'VBIOS_VERSION',
  7: 'MANUFACTURER_ID',
  8: 'TAMPER_DETECTION',
  9: 'SMC',
  10: 'VPR',
  11: 'NVDEC0_STATUS',
  12: 'MSRSCNT',
  13: 'CPRINFO',
  14: 'BOARD_ID',
  15: 'CHIP_SKU',
  16: 'CHIP_SKU_MOD',
  17: 'PROJECT',
  18: 'PROJECT_SKU',
  19: 'PROJECT_SKU_MOD',
  20: 'FWID',
  21: 'PROTECTED_PCIE_STATUS',
  22: 'SWITCH_PDI',
  23: 'FLOORSWEPT_PORTS',
  24: 'POSITION_ID',
  25: 'LOCK_SWITCH_STATUS',
  26: 'RESERVED_26',
  27: 'RESERVED_27',
  28: 'RESERVED_28',
  29: 'RESERVED_29',
  30: 'RESERVED_30',
  31: 'RESERVED_31',
  32: 'GPU_LINK_CONN',
  33: 'SYS_ENABLE_STATUS',
  34: 'OPAQUE_DATA_VERSION',
  35: 'CHIP_INFO',
  36: 'FEATURE_FLAG',
};

export const OPAQUE = {
  DRIVER_VERSION: 3,
  GPU_INFO: 4,
  VBIOS_VERSION: 6,
  NVDEC0_STATUS: 11,
  MSRSCNT: 12,
  CPRINFO: 13,
  BOARD_ID: 14,
  CHIP_SKU: 15,
  CHIP_SKU_MOD: 16,
  PROJECT: 17,
  PROJECT_SKU: 18,
  PROJECT_SKU_MOD: 19,
  FWID: 20,
  PROTECTED_PCIE_STATUS: 21,
  SWITCH_PDI: 22,
  OPAQUE_DATA_VERSION: 34,
  CHIP_INFO: 35,
  FEATURE_FLAG: 36,
} as const;

/** NVDEC0 / protected-PCIe status bytes (OPAQUE_DATA_TYPES ids 11, 21). */
export const STATUS_ENABLED = 0xaa;
export const STATUS_DISABLED = 0x55;

export interface OpaqueField {
  type: number;
  name: string;
  /** Offset of the TLV header within the opaque data. */
  offset: number;
  value: Uint8Array;
}

/** The decoded fields a verifier needs; absent fields are undefined. */
export interface OpaqueData {
  fields: OpaqueField[];
  driverVersion?: string;
  /** Formatted as nvtrust utils/__init__.py format_vbios_version, e.g. "96.00.9F.00.01". */
  vbiosVersion?: string;
  gpuInfo?: Uint8Array;
  nvdec0Status?: number;
  /** Per-index measurement counters (64 × u32 LE on Hopper). */
  msrsCnt?: number[];
  cprInfo?: Uint8Array;
  boardId?: number;
  chipSku?: string;
  chipSkuMod?: string;
  project?: string;
  projectSku?: string;
  projectSkuMod?: Uint8Array;
  fwid?: Uint8Array;
  protectedPcieStatus?: number;
  /** 8-byte NVSwitch PDIs (PPCIe HGX), hex. */
  switchPdis?: string[];
  opaqueDataVersion?: number;
  chipInfo?: string;
  /** Raw feature flag; 2 = PPCIe. 0/1 meaning is disputed between NVIDIA codebases (nvtrust parse_feature_flag vs attestation-sdk evidence.h). */
  featureFlag?: number;
}

/** Upper bound of the valid type ids (C++ is_valid_gpu_opaque_data_type: 1..36). */
const MAX_OPAQUE_TYPE = 36;

/**
 * nvtrust format_vbios_version / attestation-sdk evidence.cpp get_vbios_version: reverse the 8 bytes, hex-encode to h, t = h[8:16] + h[6:8], dot-separate the pairs, upper-case.
 * 009f009601000000 → "96.00.9F.00.01".
 */
export function formatVbiosVersion(raw: Uint8Array): string {
  if (raw.length !== 8) throw new ParseError(`opaque VBIOS_VERSION: expected 8 bytes, got ${raw.length}`);
  // Reversed, h[8:16] is bytes 3, 2, 1, 0 and h[6:8] is byte 4; bytes 5..7 are dropped.
  return [raw[3]!, raw[2]!, raw[1]!, raw[0]!, raw[4]!].map(upperHexByte).join('.');
}

const upperHexByte = (b: number) => b.toString(16).padStart(2, '0').toUpperCase();

/** NUL-terminated / NUL-padded ASCII; printable characters only (these end up in RIM ids and file names). */
export function ascii(v: Uint8Array, what: string, offset: number): string {
  const nul = v.indexOf(0);
  const body = nul < 0 ? v : v.subarray(0, nul);
  for (const c of body) {
    if (c < 0x20 || c > 0x7e) throw new ParseError(`opaque ${what}: non-printable byte 0x${c.toString(16)}`, offset);
  }
  return Buffer.from(body).toString('latin1');
}

export function leUint(v: Uint8Array, what: string, offset: number, maxBytes = 8): number {
  if (v.length === 0 || v.length > maxBytes) throw new ParseError(`opaque ${what}: bad length ${v.length}`, offset);
  let n = 0;
  for (let i = v.length - 1; i >= 0; i--) n = n * 256 + v[i]!;
  if (!Number.isSafeInteger(n)) throw new ParseError(`opaque ${what}: value too large`, offset);
  return n;
}

export function exactLen(v: Uint8Array, len: number, what: string, offset: number): Uint8Array {
  if (v.length !== len) throw new ParseError(`opaque ${what}: expected ${len} bytes, got ${v.length}`, offset);
  return v;
}

/** Which type ids a device's opaque data may hold and their names (GPU: 1..36; NVSwitch: 1..27, verify/nvidia/switch-opaque.ts). */
export interface OpaqueSchema {
  names: Readonly<Record<number, string>>;
  maxType: number;
}

export const GPU_OPAQUE_SCHEMA: OpaqueSchema = { names: OPAQUE_FIELD_NAMES, maxType: MAX_OPAQUE_TYPE };

/** Split the TLV list; the TLVs must cover the opaque data exactly. */
export function parseOpaqueFields(data: Uint8Array, schema: OpaqueSchema = GPU_OPAQUE_SCHEMA): OpaqueField[] {
  const { names, maxType } = schema;
  const fields: OpaqueField[] = [];
  const seen = new Set<number>();
  let p = 0;
  while (p < data.length) {
    if (p + 4 > data.length) throw new ParseError('opaque: truncated TLV header', p);
    const type = data[p]! | (data[p + 1]! << 8);
    const len = data[p + 2]! | (data[p + 3]! << 8);
    if (type === 0 || type > maxType) throw new ParseError(`opaque: unknown field type ${type}`, p);
    if (seen.has(type)) throw new ParseError(`opaque: duplicate field ${names[type]}`, p);
    if (p + 4 + len > data.length) throw new ParseError(`opaque: field ${names[type]} (${len} bytes) overruns the opaque data`, p);
    seen.add(type);
    fields.push({ type, name: names[type]!, offset: p, value: data.subarray(p + 4, p + 4 + len) });
    p += 4 + len;
  }
  return fields;
}

/** Parse and decode every field the verifier uses; `baseOffset` only shifts error offsets. */
export function parseOpaqueData(data: Uint8Array, baseOffset = 0): OpaqueData {
  let fields: OpaqueField[];
  try {
    fields = parseOpaqueFields(data);
  } catch (err) {
    if (err instanceof ParseError && err.offset !== undefined && baseOffset !== 0) {
      throw new ParseError(err.message.replace(/ \(at offset \d+\)$/, ''), err.offset + baseOffset);
    }
    throw err;
  }
  const out: OpaqueData = { fields };
  for (const f of fields) {
    const at = baseOffset + f.offset;
    const v = f.value;
    switch (f.type) {
      case OPAQUE.DRIVER_VERSION:
        out.driverVersion = ascii(v, f.name, at);
        break;
      case OPAQUE.GPU_INFO:
        out.gpuInfo = v;
        break;
      case OPAQUE.VBIOS_VERSION:
        out.vbiosVersion = formatVbiosVersion(exactLen(v, 8, f.name, at));
        break;
      case OPAQUE.NVDEC0_STATUS:
        out.nvdec0Status = exactLen(v, 1, f.name, at)[0]!;
        break;
      case OPAQUE.MSRSCNT: {
        if (v.length % 4 !== 0) throw new ParseError(`opaque MSRSCNT: length ${v.length} is not a multiple of 4`, at);
        const counts: number[] = [];
        for (let i = 0; i < v.length; i += 4) counts.push((v[i]! | (v[i + 1]! << 8) | (v[i + 2]! << 16)) + v[i + 3]! * 0x1000000);
        out.msrsCnt = counts;
        break;
      }
      case OPAQUE.CPRINFO:
        out.cprInfo = v;
        break;
      case OPAQUE.BOARD_ID:
        out.boardId = leUint(exactLen(v, 4, f.name, at), f.name, at);
        break;
      case OPAQUE.CHIP_SKU:
        out.chipSku = ascii(v, f.name, at);
        break;
      case OPAQUE.CHIP_SKU_MOD:
        out.chipSkuMod = ascii(v, f.name, at);
        break;
      case OPAQUE.PROJECT:
        out.project = ascii(v, f.name, at);
        break;
      case OPAQUE.PROJECT_SKU:
        out.projectSku = ascii(v, f.name, at);
        break;
      case OPAQUE.PROJECT_SKU_MOD:
        out.projectSkuMod = v;
        break;
      case OPAQUE.FWID:
        out.fwid = v;
        break;
      case OPAQUE.PROTECTED_PCIE_STATUS:
        out.protectedPcieStatus = exactLen(v, 1, f.name, at)[0]!;
        break;
      case OPAQUE.SWITCH_PDI: {
        if (v.length % 8 !== 0) throw new ParseError(`opaque SWITCH_PDI: length ${v.length} is not a multiple of 8`, at);
        const pdis: string[] = [];
        for (let i = 0; i < v.length; i += 8) pdis.push(bytesToHex(v.subarray(i, i + 8)));
        out.switchPdis = pdis;
        break;
      }
      case OPAQUE.OPAQUE_DATA_VERSION:
        out.opaqueDataVersion = leUint(v, f.name, at);
        break;
      case OPAQUE.CHIP_INFO:
        out.chipInfo = ascii(v, f.name, at);
        break;
      case OPAQUE.FEATURE_FLAG:
        out.featureFlag = leUint(v, f.name, at);
        break;
      default:
        break; // kept raw in `fields`
    }
  }
  return out;
}
