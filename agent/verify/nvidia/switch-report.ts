/**
 * A complete NVSwitch (LS10) attestation report as NSCQ returns it: the 37-byte SPDM 1.1 GET_MEASUREMENTS
 * request followed by the MEASUREMENTS response ending in the 96-byte ECDSA P-384 signature; the same
 * framing as a GPU report (verify/nvidia/spdm.ts; NVIDIA/nvtrust .../nv_switch_verifier/attestation/
 * spdm_msrt_req_msg.py and spdm_msrt_resp_msg.py), with the switch's opaque fields (verify/nvidia/switch-opaque.ts).
 * Pure: every malformed input raises ParseError with a report offset.
 */
import { ParseError } from '../../errors.js';
import {
  parseSpdmRequest,
  parseSpdmResponse,
  SPDM_REQUEST_LENGTH,
  SPDM_SIGNATURE_LENGTH,
  type SpdmMeasurementsRequest,
  type SpdmMeasurementsResponse,
} from './spdm.js';
import { parseSwitchOpaqueData, type SwitchOpaqueData } from './switch-opaque.js';
import { MAX_GPU_REPORT_LENGTH } from '../../formats/gpu-evidence-record.js';

export interface SwitchReport {
  bytes: Uint8Array;
  request: SpdmMeasurementsRequest;
  response: SpdmMeasurementsResponse;
  opaque: SwitchOpaqueData;
  /** Request ‖ response without the signature (DSP0274 1.1: hashed with SHA-384, no signing context). */
  signedBytes: Uint8Array;
  signature: Uint8Array;
  /** SPDM index (1-based) → measurement value. */
  measurements: Map<number, Uint8Array>;
}

/** NSCQ's report buffer is 8 KiB (atoma-network/nvrust topology/src/topology.rs reads [u8; 8192]), like NVML's. */
export const MAX_SWITCH_REPORT_LENGTH = MAX_GPU_REPORT_LENGTH;

export function parseSwitchReport(bytes: Uint8Array): SwitchReport {
  if (bytes.length > MAX_SWITCH_REPORT_LENGTH) throw new ParseError(`switch report: ${bytes.length} bytes exceeds ${MAX_SWITCH_REPORT_LENGTH}`, 0);
  if (bytes.length < SPDM_REQUEST_LENGTH) throw new ParseError(`switch report: ${bytes.length} bytes is shorter than the SPDM request`, 0);
  const request = parseSpdmRequest(bytes.subarray(0, SPDM_REQUEST_LENGTH));
  let response: SpdmMeasurementsResponse;
  try {
    response = parseSpdmResponse(bytes.subarray(SPDM_REQUEST_LENGTH));
  } catch (err) {
    if (err instanceof ParseError && err.offset !== undefined) {
      throw new ParseError(err.message.replace(/ \(at offset \d+\)$/, ''), err.offset + SPDM_REQUEST_LENGTH);
    }
    throw err;
  }
  const opaque = parseSwitchOpaqueData(response.opaqueData, SPDM_REQUEST_LENGTH + response.opaqueOffset);
  const measurements = new Map<number, Uint8Array>();
  for (const b of response.blocks) measurements.set(b.index, b.value);
  return {
    bytes,
    request,
    response,
    opaque,
    signedBytes: bytes.subarray(0, bytes.length - SPDM_SIGNATURE_LENGTH),
    signature: response.signature,
    measurements,
  };
}
