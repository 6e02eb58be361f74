/**
 * NVIDIA's serialized GPU evidence (the format NRAS and the SDKs exchange; test/vectors/nvidia/
 * attestation-sdk/evidence-json): a JSON array of {arch, certificate: base64(PEM chain text),
 * evidence: base64(raw report), nonce?: hex}. Hostile-input safe: size limits before JSON.parse,
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

/** NVIDIA's serialized evidence JSON (text or bytes) -> records. */
export function parseGpuEvidenceJson(input: string | Uint8Array): SerializedGpuEvidence[] {
  const length = typeof input === 'string' ? input.length : input.byteLength;
  if (length > MAX_EVIDENCE_JSON_LENGTH) throw new ParseError(`GPU evidence JSON: ${length} bytes exceeds ${MAX_EVIDENCE_JSON_LENGTH}`);
  const text = typeof input === 'string' ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength).toString('utf8');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ParseError(`GPU evidence JSON: not valid JSON: ${(err as Error).message}`, undefined, { cause: err });
  }
  // Accept the bare array, or {"evidence_list": [...]} / {"evidences": [...]} wrappers some tools emit.
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const o = value as Record<string, unknown>;
    value = Array.isArray(o.evidence_list) ? o.evidence_list : Array.isArray(o.evidences) ? o.evidences : value;
  }
  if (!Array.isArray(value)) throw new ParseError('GPU evidence JSON: expected an array of {arch, certificate, evidence, nonce}');
  if (value.length === 0) throw new ParseError('GPU evidence JSON: the array is empty');
  if (value.length > MAX_EVIDENCE_ENTRIES) throw new ParseError(`GPU evidence JSON: ${value.length} entries exceeds ${MAX_EVIDENCE_ENTRIES}`);
  return value.map((entry: unknown, index): SerializedGpuEvidence => {
    const where = `GPU evidence JSON entry ${index}`;
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) throw new ParseError(`${where}: expected an object`);
    const e = entry as Record<string, unknown>;
    if (typeof e.arch !== 'string' || !/^[A-Za-z0-9_]{1,32}$/.test(e.arch)) throw new ParseError(`${where}: "arch" must be a short name such as "HOPPER"`);
    const report = strictBase64(e.evidence, `${where} "evidence"`, MAX_GPU_REPORT_LENGTH);
    const pem = strictBase64(e.certificate, `${where} "certificate"`, MAX_GPU_CHAIN_PEM_LENGTH);
    const out: SerializedGpuEvidence = { index, arch: e.arch, report, certChainPem: pem.toString('latin1') };
    if (e.nonce !== undefined && e.nonce !== null) {
      const nonce = nonceFromHex(e.nonce, { minBytes: GPU_NONCE_BYTES, maxBytes: GPU_NONCE_BYTES, prefix: 'lower' });
      if (!nonce) throw new ParseError(`${where}: "nonce" must be 64 hex digits`);
      out.nonce = nonce;
    }
    return out;
  });
}
