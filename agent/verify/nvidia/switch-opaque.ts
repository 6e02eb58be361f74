/**
 * NVSwitch (LS10) opaque data in the SPDM MEASUREMENTS response: the same `[type u16 LE][len u16 LE][value]`
 * TLV list as a GPU's (verify/nvidia/opaque.ts), with the switch's own ids 22..27. Layout from the public
 * sources: NVIDIA/nvtrust guest_tools/attestation_sdk/src/nv_attestation_sdk/verifiers/nv_switch_verifier/
 * attestation/spdm_msrt_resp_msg.py (OpaqueData.OPAQUE_DATA_TYPES, parse_pdis, parse_floorswept_ports),
 * NVIDIA/attestation-sdk nv-attestation-sdk-cpp/include/nv_attestation/switch/spdm/switch_opaque_data_parser.hpp
 * (SwitchOpaqueDataType: valid ids 1..27; 8 GPU PDIs of 8 bytes, then 1-byte port entries), and
 * atoma-network/nvrust topology/src/device_pdis.rs (DEVICE_PDI must be exactly 8 bytes).
 * Pure and strict: every malformed field is a ParseError with an offset.
 */
import { ParseError } from '../../errors.js';
import { bytesToHex } from '../../util/bytes.js';
import { ascii, exactLen, leUint, OPAQUE_FIELD_NAMES, parseOpaqueFields, type OpaqueField, type OpaqueSchema } from './opaque.js';

/** SwitchOpaqueDataType id -> name (attestation-sdk switch_opaque_data_parser.hpp; nvtrust switch OPAQUE_DATA_TYPES). */
export const SWITCH_OPAQUE_FIELD_NAMES: Readonly<Record<number, string>> = {
  // Ids 1..21 mean what they mean for a GPU.
  ...Object.fromEntries(Object.entries(OPAQUE_FIELD_NAMES).filter(([id]) => Number(id) <= 21)),
  22: 'DEVICE_PDI',
  23: 'DISABLED_PORTS',
  24: 'SWITCH_POSITION_ID',
  25: 'SWITCH_LOCK_STATUS',
  26: 'SWITCH_GPU_PDIS',
  27: 'SWITCH_PORTS',
};

export const SWITCH_OPAQUE = {
  VBIOS_VERSION: 6,
  MSRSCNT: 12,
  FWID: 20,
  PROTECTED_PCIE_STATUS: 21,
  DEVICE_PDI: 22,
  DISABLED_PORTS: 23,
  SWITCH_POSITION_ID: 24,
  SWITCH_LOCK_STATUS: 25,
  SWITCH_GPU_PDIS: 26,
  SWITCH_PORTS: 27,
} as const;

export const SWITCH_OPAQUE_SCHEMA: OpaqueSchema = { names: SWITCH_OPAQUE_FIELD_NAMES, maxType: 27 };

/** A PDI (platform data identifier) is 8 bytes; a switch lists 8 GPU PDIs (SwitchOpaqueFieldSizes). */
export const PDI_BYTES = 8;
export const SWITCH_GPU_PDI_COUNT = 8;
/** The port entry that names no GPU (the public sample's unconnected ports). */
export const PORT_NOT_CONNECTED = 0xff;

export interface SwitchOpaqueData {
  fields: OpaqueField[];
  /** ASCII as the switch reports it, e.g. "96.10.55.00.01" (not the GPU's 8-byte encoding). */
  vbiosVersion?: string;
  /** The switch's own PDI, hex of the 8 bytes in report order (nvtrust ppcie-verifier compares it so). */
  devicePdi?: string;
  /** The GPU PDIs the switch reports, hex of each 8 bytes in report order (duplicates and zeros kept). */
  gpuPdis?: string[];
  /** Per port, the entry after the 8 PDIs (0xff: no GPU), as the field carries them. */
  gpuPorts?: number[];
  /** Floorswept (disabled) ports: one flag per port, 4 ports per bit, most significant bit first (parse_floorswept_ports). */
  disabledPorts?: number[];
  positionId?: number;
  lockStatus?: number;
  msrsCnt?: number[];
  fwid?: Uint8Array;
  protectedPcieStatus?: number;
}

/** Decode every field a switch verifier uses; `baseOffset` only shifts error offsets. */
export function parseSwitchOpaqueData(data: Uint8Array, baseOffset = 0): SwitchOpaqueData {
  let fields: OpaqueField[];
  try {
    fields = parseOpaqueFields(data, SWITCH_OPAQUE_SCHEMA);
  } catch (err) {
    if (err instanceof ParseError && err.offset !== undefined && baseOffset !== 0) {
      throw new ParseError(err.message.replace(/ \(at offset \d+\)$/, ''), err.offset + baseOffset);
    }
    throw err;
  }
  const out: SwitchOpaqueData = { fields };
  for (const f of fields) {
    const at = baseOffset + f.offset;
    const v = f.value;
    switch (f.type) {
      case SWITCH_OPAQUE.VBIOS_VERSION:
        out.vbiosVersion = ascii(v, f.name, at);
        if (!/^[0-9A-Fa-f]{2}(\.[0-9A-Fa-f]{2}){4}$/.test(out.vbiosVersion))
          throw new ParseError(`opaque VBIOS_VERSION: "${out.vbiosVersion}" is not five dot-separated hex pairs`, at);
        break;
      case SWITCH_OPAQUE.DEVICE_PDI:
        out.devicePdi = bytesToHex(exactLen(v, PDI_BYTES, f.name, at));
        break;
      case SWITCH_OPAQUE.SWITCH_GPU_PDIS: {
        if (v.length < SWITCH_GPU_PDI_COUNT * PDI_BYTES)
          throw new ParseError(`opaque SWITCH_GPU_PDIS: ${v.length} bytes is shorter than ${SWITCH_GPU_PDI_COUNT} PDIs of ${PDI_BYTES} bytes`, at);
        const pdis: string[] = [];
        for (let i = 0; i < SWITCH_GPU_PDI_COUNT; i++) pdis.push(bytesToHex(v.subarray(i * PDI_BYTES, (i + 1) * PDI_BYTES)));
        out.gpuPdis = pdis;
        out.gpuPorts = [...v.subarray(SWITCH_GPU_PDI_COUNT * PDI_BYTES)];
        break;
      }
      case SWITCH_OPAQUE.DISABLED_PORTS: {
        const flags: number[] = [];
        for (const byte of v) for (let bit = 7; bit >= 0; bit--) flags.push(...Array<number>(4).fill((byte >> bit) & 1));
        out.disabledPorts = flags;
        break;
      }
      case SWITCH_OPAQUE.SWITCH_POSITION_ID:
        out.positionId = leUint(v, f.name, at, 4);
        break;
      case SWITCH_OPAQUE.SWITCH_LOCK_STATUS:
        out.lockStatus = leUint(v, f.name, at, 4);
        break;
      case SWITCH_OPAQUE.MSRSCNT: {
        if (v.length % 4 !== 0) throw new ParseError(`opaque MSRSCNT: length ${v.length} is not a multiple of 4`, at);
        const counts: number[] = [];
        for (let i = 0; i < v.length; i += 4) counts.push((v[i]! | (v[i + 1]! << 8) | (v[i + 2]! << 16)) + v[i + 3]! * 0x1000000);
        out.msrsCnt = counts;
        break;
      }
      case SWITCH_OPAQUE.FWID:
        out.fwid = v;
        break;
      case SWITCH_OPAQUE.PROTECTED_PCIE_STATUS:
        out.protectedPcieStatus = exactLen(v, 1, f.name, at)[0]!;
        break;
      default:
        break; // kept raw in `fields`
    }
  }
  return out;
}
