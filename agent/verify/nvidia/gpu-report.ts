/**
 * A complete NVML GPU attestation report: the 37-byte GET_MEASUREMENTS request followed by the
 * MEASUREMENTS response whose last 96 bytes are the signature (nvtrust verifier/attestation/spdm_msrt_resp_msg.py; DSP0274 1.1 MEASUREMENTS).
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
import { parseOpaqueData, type OpaqueData } from './opaque.js';
import { MAX_GPU_REPORT_LENGTH } from '../../formats/gpu-evidence-record.js';

/** NVML_CC_GPU_ATTESTATION_REPORT_SIZE (0x2000, nvml.h): no genuine report is larger. */
export const MAX_REPORT_LENGTH = MAX_GPU_REPORT_LENGTH;

export interface GpuReport {
  bytes: Uint8Array;
  request: SpdmMeasurementsRequest;
  response: SpdmMeasurementsResponse;
  opaque: OpaqueData;
  /** Bytes [0, len-96): request ‖ response-without-signature, hashed with SHA-384 (DSP0274 1.1: no signing context). */
  signedBytes: Uint8Array;
  /** Raw r ‖ s, 48 bytes each. */
  signature: Uint8Array;
  /** SPDM index (1-based) → measurement value. */
  measurements: Map<number, Uint8Array>;
}

export function parseGpuReport(bytes: Uint8Array): GpuReport {
  if (bytes.length > MAX_REPORT_LENGTH) throw new ParseError(`GPU report: ${bytes.length} bytes exceeds the NVML maximum of ${MAX_REPORT_LENGTH}`, 0);
  if (bytes.length < SPDM_REQUEST_LENGTH) throw new ParseError(`GPU report: ${bytes.length} bytes is shorter than the SPDM request`, 0);
  const request = parseSpdmRequest(bytes.subarray(0, SPDM_REQUEST_LENGTH));
  let response: SpdmMeasurementsResponse;
  try {
    response = parseSpdmResponse(bytes.subarray(SPDM_REQUEST_LENGTH));
  } catch (err) {
    // Report offsets are more useful than response offsets when reading a hex dump.
    if (err instanceof ParseError && err.offset !== undefined) {
      throw new ParseError(err.message.replace(/ \(at offset \d+\)$/, ''), err.offset + SPDM_REQUEST_LENGTH);
    }
    throw err;
  }
  const opaque = parseOpaqueData(response.opaqueData, SPDM_REQUEST_LENGTH + response.opaqueOffset);
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

/**
 * Reports come as raw bytes or as one line of hex (the NVIDIA sample files, NVML dumps).
 * Hex is recognised only when every byte is a hex digit or whitespace.
 */
export function reportBytesFromFile(content: Uint8Array): Buffer {
  const text = Buffer.from(content.buffer, content.byteOffset, content.byteLength);
  if (text.length > 0 && /^[\s0-9a-fA-F]+$/.test(text.toString('latin1'))) {
    const hex = text.toString('latin1').replace(/\s+/g, '');
    if (hex.length % 2 !== 0) throw new ParseError('GPU report: odd number of hex digits');
    return Buffer.from(hex, 'hex');
  }
  return Buffer.from(text);
}
