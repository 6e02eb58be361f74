/**
 * A complete NVML GPU attestation report: the 37-byte GET_MEASUREMENTS request followed by the
 * MEASUREMENTS response whose last 96 bytes are the signature (nvtrust verifier/attestation/spdm_msrt_resp_msg.py; DSP0274 1.1 MEASUREMENTS).
 */
import { ParseError } from '../../errors.js';
import { parseSpdmReport, type SpdmReport } from './spdm.js';
import { parseOpaqueData, type OpaqueData } from './opaque.js';
import { MAX_GPU_REPORT_LENGTH } from '../../formats/gpu-evidence-record.js';

/** NVML_CC_GPU_ATTESTATION_REPORT_SIZE (0x2000, nvml.h): no genuine report is larger. */
export const MAX_REPORT_LENGTH = MAX_GPU_REPORT_LENGTH;

/** The report with its GPU opaque fields decoded (the layout is spdm.ts SpdmReport). */
export type GpuReport = SpdmReport<OpaqueData>;

export function parseGpuReport(bytes: Uint8Array): GpuReport {
  return parseSpdmReport(bytes, 'GPU report', { maxLength: MAX_REPORT_LENGTH, tooLong: `the NVML maximum of ${MAX_REPORT_LENGTH}` }, parseOpaqueData);
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
