/**
 * NVIDIA's serialized GPU evidence (the format NRAS and the SDKs exchange; test/vectors/nvidia/
 * attestation-sdk/evidence-json): a JSON array of {arch, certificate: base64(PEM chain text),
 * evidence: base64(raw report), nonce?: hex}, bare or wrapped (GpuEvidenceJsonFormat). Hostile-input safe: size limits before JSON.parse,
 * strict types and strict base64/hex, and every problem is a ParseError naming the entry and field.
 * Both directions between that JSON and the GPU evidence record (formats/gpu-evidence-record.ts).
 */
import { ParseError } from '../errors.js';
import { GPU_NONCE_BYTES, nonceFromHex } from '../util/nonce-hex.js';
import { MAX_GPU_CHAIN_PEM_LENGTH, MAX_GPU_REPORT_LENGTH, type GpuEvidenceRecord } from './gpu-evidence-record.js';

/** 64 GPUs × (8 KiB report + 64 KiB chain), base64-inflated, is far below this. */
export const MAX_EVIDENCE_JSON_LENGTH = 8 * 1024 * 1024;
export const MAX_EVIDENCE_ENTRIES = 64;

/** One entry of NVIDIA's serialized evidence. */
export interface NvidiaEvidenceEntry {
  arch: string;
  /** base64 of the PEM chain text. */
  certificate: string;
  /** base64 of the raw report bytes. */
  evidence: string;
  /** hex of the 32-byte nonce. */
  nonce: string;
}

/** A record as NVIDIA's JSON decodes it: index (its position), arch and report always present. */
export interface SerializedGpuEvidence extends GpuEvidenceRecord {
  index: number;
  arch: string;
}

/** Record (with the nonce it was requested with) -> NVIDIA's entry; the architecture upper-cased as NVIDIA writes it. */
export function nvidiaEvidenceEntryOf(g: GpuEvidenceRecord & { arch: string }, nonce: Uint8Array): NvidiaEvidenceEntry {
  return {
    arch: g.arch.toUpperCase(),
    certificate: Buffer.from(g.certChainPem, 'latin1').toString('base64'),
    evidence: Buffer.from(g.report).toString('base64'),
    nonce: Buffer.from(nonce).toString('hex'),
  };
}

function strictBase64(value: unknown, what: string, maxBytes: number): Buffer {
  if (typeof value !== 'string') throw new ParseError(`${what}: expected a base64 string, got ${value === null ? 'null' : typeof value}`);
  if (value.length > Math.ceil(maxBytes / 3) * 4 + 4) throw new ParseError(`${what}: longer than ${maxBytes} bytes`);
  const s = value.replace(/\s+/g, '');
  if (s.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(s)) throw new ParseError(`${what}: not valid base64`);
  return Buffer.from(s, 'base64');
}

/**
 * The shapes NVIDIA's serialized GPU evidence comes in:
 * - `nvidia-list`: the bare array [{arch, certificate, evidence, nonce?}] (attestation-sdk / nvtrust
 *   `get_evidence` output, test/vectors/nvidia/attestation-sdk/evidence-json);
 * - `nvidia-wrapped`: {nonce?, arch?, evidence_list | evidences: [{certificate, evidence, arch?}]}, the
 *   NRAS request body the SDKs build, where arch and nonce may sit once at the top;
 * - `coco-nvidia`: {device_evidence_list: [{arch, uuid?, evidence, certificate}]}, the Confidential
 *   Containers nvidia attester (guest-components attestation-agent/attester/src/nvidia, read by trustee
 *   deps/verifier/src/nvidia), where arch is "Hopper"/"HOPPER"/… and evidence is base64 or, from
 *   older attesters, hex.
 */
export type GpuEvidenceJsonFormat = 'nvidia-list' | 'nvidia-wrapped' | 'coco-nvidia';

export const GPU_EVIDENCE_FORMAT_NAMES: Readonly<Record<GpuEvidenceJsonFormat, string>> = {
  'nvidia-list': 'NVIDIA serialized evidence JSON ([{arch, certificate, evidence, nonce}])',
  'nvidia-wrapped': 'NVIDIA evidence list with a nonce/arch wrapper ({nonce, arch, evidence_list}, NRAS request)',
  'coco-nvidia': 'Confidential Containers NVIDIA attester evidence ({device_evidence_list})',
};

export interface DecodedGpuEvidenceJson {
  format: GpuEvidenceJsonFormat;
  gpus: SerializedGpuEvidence[];
}

/** evidence: base64, or hex as older CoCo attesters wrote it (trustee tries hex first, as here). */
function reportBytes(value: unknown, where: string): Buffer {
  if (typeof value === 'string') {
    const t = value.trim();
    if (t.length > 0 && t.length % 2 === 0 && t.length <= MAX_GPU_REPORT_LENGTH * 2 && /^[0-9a-fA-F]+$/.test(t)) return Buffer.from(t, 'hex');
  }
  return strictBase64(value, where, MAX_GPU_REPORT_LENGTH);
}

function nonceOf(value: unknown, where: string): Buffer | undefined {
  if (value === undefined || value === null) return undefined;
  const nonce = nonceFromHex(value, { minBytes: GPU_NONCE_BYTES, maxBytes: GPU_NONCE_BYTES, prefix: 'lower' });
  if (!nonce) throw new ParseError(`${where}: "nonce" must be 64 hex digits`);
  return nonce;
}

/** NVIDIA's serialized evidence JSON (text or bytes) in any of its shapes -> format and records. */
export function decodeGpuEvidenceJson(input: string | Uint8Array): DecodedGpuEvidenceJson {
  const length = typeof input === 'string' ? input.length : input.byteLength;
  if (length > MAX_EVIDENCE_JSON_LENGTH) throw new ParseError(`GPU evidence JSON: ${length} bytes exceeds ${MAX_EVIDENCE_JSON_LENGTH}`);
  const text = typeof input === 'string' ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength).toString('utf8');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ParseError(`GPU evidence JSON: not valid JSON: ${(err as Error).message}`, undefined, { cause: err });
  }
  let format: GpuEvidenceJsonFormat = 'nvidia-list';
  let outer: { arch?: unknown; nonce?: unknown } = {};
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const o = value as Record<string, unknown>;
    if (Array.isArray(o.device_evidence_list)) [format, value] = ['coco-nvidia', o.device_evidence_list];
    else if (Array.isArray(o.evidence_list) || Array.isArray(o.evidences)) {
      [format, value] = ['nvidia-wrapped', Array.isArray(o.evidence_list) ? o.evidence_list : o.evidences];
      outer = { arch: o.arch, nonce: o.nonce };
    }
  }
  if (!Array.isArray(value))
    throw new ParseError(
      'GPU evidence JSON: expected an array of {arch, certificate, evidence, nonce}, {evidence_list: [...]} or {device_evidence_list: [...]}',
    );
  if (value.length === 0) throw new ParseError('GPU evidence JSON: the array is empty');
  if (value.length > MAX_EVIDENCE_ENTRIES) throw new ParseError(`GPU evidence JSON: ${value.length} entries exceeds ${MAX_EVIDENCE_ENTRIES}`);
  const outerNonce = nonceOf(outer.nonce, 'GPU evidence JSON');
  const gpus = value.map((entry: unknown, index): SerializedGpuEvidence => {
    const where = `GPU evidence JSON entry ${index}`;
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) throw new ParseError(`${where}: expected an object`);
    const e = entry as Record<string, unknown>;
    const arch = e.arch ?? outer.arch;
    if (typeof arch !== 'string' || !/^[A-Za-z0-9_]{1,32}$/.test(arch)) throw new ParseError(`${where}: "arch" must be a short name such as "HOPPER"`);
    const report = reportBytes(e.evidence, `${where} "evidence"`);
    const pem = strictBase64(e.certificate, `${where} "certificate"`, MAX_GPU_CHAIN_PEM_LENGTH);
    const out: SerializedGpuEvidence = { index, arch, report, certChainPem: pem.toString('latin1') };
    const nonce = nonceOf(e.nonce, where) ?? outerNonce;
    if (nonce) out.nonce = nonce;
    return out;
  });
  return { format, gpus };
}

/** NVIDIA's serialized evidence JSON (text or bytes) -> records (any shape decodeGpuEvidenceJson reads). */
export function parseGpuEvidenceJson(input: string | Uint8Array): SerializedGpuEvidence[] {
  return decodeGpuEvidenceJson(input).gpus;
}
