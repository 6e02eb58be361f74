/**
 * `verify gpu` inputs at the edge: which format a --report or --evidence file is, named for the
 * output. Pure: bytes in, {format, name, ...} out, ParseError otherwise.
 */
import { ParseError } from '../errors.js';
import { MAX_GPU_REPORT_LENGTH } from './gpu-evidence-record.js';
import { decodeGpuEvidenceJson, GPU_EVIDENCE_FORMAT_NAMES, type GpuEvidenceJsonFormat, type SerializedGpuEvidence } from './nvidia-evidence-json.js';

/** The formats `verify gpu --help` lists, one line each. */
export const GPU_INPUT_FORMATS: readonly string[] = [
  '--report: the raw NVML attestation report, or its hex (any case, whitespace) or base64 text',
  '--evidence: NVIDIA serialized evidence JSON [{arch, certificate, evidence, nonce}] (attestation-sdk, nvtrust)',
  '--evidence: the same list wrapped as {nonce, arch, evidence_list|evidences: [{certificate, evidence}]} (NRAS request)',
  '--evidence: Confidential Containers NVIDIA attester evidence {device_evidence_list: [{arch, uuid, evidence, certificate}]}',
  '  (evidence base64, or hex as older attesters wrote it)',
];

export interface GpuReportInput {
  encoding: 'binary' | 'hex' | 'base64';
  name: string;
  report: Buffer;
}

/**
 * A --report file: hex when every byte is a hex digit or whitespace (the NVIDIA sample files, NVML
 * dumps), else base64 when it is strict base64 text, else the raw bytes.
 */
export function decodeGpuReportFile(bytes: Uint8Array): GpuReportInput {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const text = buf.toString('latin1');
  if (buf.length > 0 && /^[\s0-9a-fA-F]+$/.test(text)) {
    const hex = text.replace(/\s+/g, '');
    if (hex.length % 2 !== 0) throw new ParseError('GPU report: odd number of hex digits');
    return { encoding: 'hex', name: 'GPU report, hex text', report: Buffer.from(hex, 'hex') };
  }
  const compact = text.replace(/\s+/g, '');
  if (compact.length > 0 && compact.length % 4 === 0 && compact.length <= Math.ceil(MAX_GPU_REPORT_LENGTH / 3) * 4 && /^[A-Za-z0-9+/]+={0,2}$/.test(compact)) {
    return { encoding: 'base64', name: 'GPU report, base64 text', report: Buffer.from(compact, 'base64') };
  }
  return { encoding: 'binary', name: 'GPU report, raw bytes', report: Buffer.from(buf) };
}

export interface GpuEvidenceInput {
  format: GpuEvidenceJsonFormat;
  name: string;
  gpus: SerializedGpuEvidence[];
}

/** An --evidence file in any of the JSON shapes, named. */
export function decodeGpuEvidenceFile(bytes: Uint8Array): GpuEvidenceInput {
  const { format, gpus } = decodeGpuEvidenceJson(bytes);
  return { format, name: `${GPU_EVIDENCE_FORMAT_NAMES[format]}, ${gpus.length} device(s)`, gpus };
}
