/**
 * A complete NVSwitch (LS10) attestation report as NSCQ returns it: the 37-byte SPDM 1.1 GET_MEASUREMENTS
 * request followed by the MEASUREMENTS response ending in the 96-byte ECDSA P-384 signature; the same
 * framing as a GPU report (verify/nvidia/spdm.ts; NVIDIA/nvtrust .../nv_switch_verifier/attestation/
 * spdm_msrt_req_msg.py and spdm_msrt_resp_msg.py), with the switch's opaque fields (verify/nvidia/switch-opaque.ts).
 * Pure: every malformed input raises ParseError with a report offset.
 */
import { parseSpdmReport, type SpdmReport } from './spdm.js';
import { parseSwitchOpaqueData, type SwitchOpaqueData } from './switch-opaque.js';
import { MAX_GPU_REPORT_LENGTH } from '../../formats/gpu-evidence-record.js';

/** The report with its switch opaque fields decoded (the layout is spdm.ts SpdmReport). */
export type SwitchReport = SpdmReport<SwitchOpaqueData>;

/** NSCQ's report buffer is 8 KiB (atoma-network/nvrust topology/src/topology.rs reads [u8; 8192]), like NVML's. */
export const MAX_SWITCH_REPORT_LENGTH = MAX_GPU_REPORT_LENGTH;

export function parseSwitchReport(bytes: Uint8Array): SwitchReport {
  return parseSpdmReport(bytes, 'switch report', { maxLength: MAX_SWITCH_REPORT_LENGTH, tooLong: `${MAX_SWITCH_REPORT_LENGTH}` }, parseSwitchOpaqueData);
}
