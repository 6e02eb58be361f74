/**
 * Azure SNP-vTPM evidence containers (pure decoding, hostile-input safe):
 * - our bundle: {kind:"azure-snp-vtpm", version:1, hclReport: base64, quote:{message, signature, pcrs}: hex,
 *   certs?: [PEM]} where quote.signature is a marshalled TPMT_SIGNATURE and user-data = binding
 *   zero-padded to 64 bytes, quote extraData = SHA-256(user-data) (docs/architecture.md "One attestation cycle");
 * - the Confidential Containers az-snp-vtpm attester JSON v1/v2 ({version, tpm_quote:{signature,
 *   message, pcrs}: hex, hcl_report: base64url, vcek: base64url DER}; guest-components attestation-agent/attester/src/az_snp_vtpm/mod.rs), where
 *   extraData = the nonce and (v2) user-data = nonce zero-padded;
 * - trustee's Genoa sample ({quote:{message,pcrs,signature}: int arrays, report: int array, vcek: PEM}).
 * Plus Azure IMDS THIM certification JSON ({vcekCert, certificateChain}: PEM).
 */
import { createHash } from 'node:crypto';
import { ParseError } from '../../errors.js';
import { pemBlocks } from '../../util/pem.js';
import { isJsonObject, ownField } from '../../util/json-fields.js';

/** The signature as shipped: a TPMT_SIGNATURE, or the bare RSA signature bytes (CoCo attester, az-cvm-vtpm). */
export type QuoteSignature = { format: 'tpmt'; bytes: Buffer } | { format: 'raw'; bytes: Buffer };

export interface TpmQuoteEvidence {
  /** TPMS_ATTEST bytes, exactly as signed. */
  message: Buffer;
  signature: QuoteSignature;
  /** Values of the selected PCRs in ascending index order (SHA-256 bank). */
  pcrs: Buffer[];
}

export const BUNDLE_KIND = 'azure-snp-vtpm';
export const BUNDLE_VERSION = 1;
/** Size of the HCL user-data field (NV 0x01400002, az-cvm-vtpm src/vtpm/mod.rs INDEX_REPORT_DATA). */
export const USER_DATA_SIZE = 64;

export type AzureEvidenceFormat = 'cvm-agent' | 'coco-v1' | 'coco-v2' | 'trustee-genoa';

export interface AzureEvidence {
  format: AzureEvidenceFormat;
  hclReport: Buffer;
  quote: TpmQuoteEvidence;
  /** DER certificates shipped with the evidence (VCEK first when known). */
  certificates: Buffer[];
}

/**
 * What the vTPM collector returns and the evidence bundle carries (`cpu.report`, `cpu.quote`): bytes,
 * decoded once, by the verifier (`azureEvidenceOfBytes`).
 */
export interface AzureVtpmEvidence {
  /** The HCL report as read from NV 0x01400001. */
  hclReport: Buffer;
  /** TPMS_ATTEST as signed, the TPMT_SIGNATURE as marshalled, the PCR values in ascending index order. */
  quote: { message: Buffer; signature: Buffer; pcrs: Buffer[] };
}

/** Our JSON container (`cvm-agent azure evidence`) as produced by agent/evidence/azure-vtpm.ts. */
export interface AzureBundle {
  kind: typeof BUNDLE_KIND;
  version: typeof BUNDLE_VERSION;
  hclReport: string;
  quote: { message: string; signature: string; pcrs: string[] };
  certs?: string[];
}

const MAX_BLOB = 64 * 1024;
const MAX_PCRS = 64;

function hexField(v: unknown, what: string): Buffer {
  if (typeof v !== 'string' || v.length > 2 * MAX_BLOB || v.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(v))
    throw new ParseError(`${what}: expected a hex string`);
  return Buffer.from(v, 'hex');
}
function base64Field(v: unknown, what: string, alphabet: 'base64' | 'base64url'): Buffer {
  const re = alphabet === 'base64' ? /^[A-Za-z0-9+/]*={0,2}$/ : /^[A-Za-z0-9_-]*={0,2}$/;
  if (typeof v !== 'string' || v.length > 2 * MAX_BLOB || !re.test(v)) throw new ParseError(`${what}: expected ${alphabet} text`);
  return Buffer.from(v, alphabet);
}
function intArrayField(v: unknown, what: string): Buffer {
  if (!Array.isArray(v) || v.length > MAX_BLOB) throw new ParseError(`${what}: expected an array of byte values`);
  const out = Buffer.alloc(v.length);
  v.forEach((x, i) => {
    if (typeof x !== 'number' || !Number.isInteger(x) || x < 0 || x > 255) throw new ParseError(`${what}[${i}]: not a byte value`);
    out[i] = x;
  });
  return out;
}
function listField(v: unknown, what: string): unknown[] {
  if (!Array.isArray(v) || v.length > MAX_PCRS) throw new ParseError(`${what}: expected an array of at most ${MAX_PCRS} entries`);
  return v;
}
function pemOrDerList(v: unknown, what: string): Buffer[] {
  const list = Array.isArray(v) ? v : [v];
  if (list.length > 16) throw new ParseError(`${what}: too many certificates`);
  const out: Buffer[] = [];
  for (const item of list) {
    if (typeof item !== 'string') throw new ParseError(`${what}: expected PEM text`);
    const certs = pemBlocks(item);
    if (certs.length === 0) throw new ParseError(`${what}: no PEM CERTIFICATE block`);
    out.push(...certs);
  }
  return out;
}

/** Decode any supported Azure evidence JSON (text or parsed value). */
export function parseAzureEvidence(input: string | unknown): AzureEvidence {
  let doc: unknown = input;
  if (typeof input === 'string') {
    if (input.length > 4 * MAX_BLOB * 4) throw new ParseError('Azure evidence: JSON text too large');
    try {
      doc = JSON.parse(input);
    } catch (err) {
      throw new ParseError(`Azure evidence: not valid JSON (${(err as Error).message})`);
    }
  }
  if (!isJsonObject(doc)) throw new ParseError('Azure evidence: JSON is not an object');

  if (ownField(doc, 'kind') !== undefined) {
    if (ownField(doc, 'kind') !== BUNDLE_KIND) throw new ParseError(`Azure evidence: kind ${JSON.stringify(ownField(doc, 'kind'))} is not "${BUNDLE_KIND}"`);
    if (ownField(doc, 'version') !== BUNDLE_VERSION)
      throw new ParseError(`Azure evidence: bundle version ${JSON.stringify(ownField(doc, 'version'))} is not supported (1)`);
    const q = ownField(doc, 'quote');
    if (!isJsonObject(q)) throw new ParseError('Azure evidence: "quote" is not an object');
    const certs = ownField(doc, 'certs');
    return {
      format: 'cvm-agent',
      hclReport: base64Field(ownField(doc, 'hclReport'), 'hclReport', 'base64'),
      quote: {
        message: hexField(ownField(q, 'message'), 'quote.message'),
        signature: { format: 'tpmt', bytes: hexField(ownField(q, 'signature'), 'quote.signature') },
        pcrs: listField(ownField(q, 'pcrs'), 'quote.pcrs').map((p, i) => hexField(p, `quote.pcrs[${i}]`)),
      },
      certificates: certs === undefined ? [] : pemOrDerList(certs, 'certs'),
    };
  }

  const tq = ownField(doc, 'tpm_quote');
  if (isJsonObject(tq)) {
    const version = ownField(doc, 'version');
    if (version !== 1 && version !== 2)
      throw new ParseError(`Azure evidence: az-snp-vtpm evidence version ${JSON.stringify(version)} is not supported (1 or 2)`);
    const vcek = ownField(doc, 'vcek');
    return {
      format: version === 1 ? 'coco-v1' : 'coco-v2',
      hclReport: base64Field(ownField(doc, 'hcl_report'), 'hcl_report', 'base64url'),
      quote: {
        message: hexField(ownField(tq, 'message'), 'tpm_quote.message'),
        signature: { format: 'raw', bytes: hexField(ownField(tq, 'signature'), 'tpm_quote.signature') },
        pcrs: listField(ownField(tq, 'pcrs'), 'tpm_quote.pcrs').map((p, i) => hexField(p, `tpm_quote.pcrs[${i}]`)),
      },
      certificates: vcek === undefined ? [] : [base64Field(vcek, 'vcek', 'base64url')],
    };
  }

  const gq = ownField(doc, 'quote');
  if (isJsonObject(gq) && Array.isArray(ownField(doc, 'report'))) {
    const vcek = ownField(doc, 'vcek');
    return {
      format: 'trustee-genoa',
      hclReport: intArrayField(ownField(doc, 'report'), 'report'),
      quote: {
        message: intArrayField(ownField(gq, 'message'), 'quote.message'),
        signature: { format: 'raw', bytes: intArrayField(ownField(gq, 'signature'), 'quote.signature') },
        pcrs: listField(ownField(gq, 'pcrs'), 'quote.pcrs').map((p, i) => intArrayField(p, `quote.pcrs[${i}]`)),
      },
      certificates: vcek === undefined ? [] : pemOrDerList(vcek, 'vcek'),
    };
  }
  throw new ParseError('Azure evidence: not a cvm-agent azure-snp-vtpm bundle nor az-snp-vtpm attester evidence (no "kind", "tpm_quote" or "quote"+"report")');
}

/** Collected bytes -> our JSON container, for `cvm-agent azure evidence` (the cycle's bundle carries the bytes). */
export function encodeBundle(e: AzureVtpmEvidence, certsPem?: string[]): AzureBundle {
  const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
  const bundle: AzureBundle = {
    kind: BUNDLE_KIND,
    version: BUNDLE_VERSION,
    hclReport: e.hclReport.toString('base64'),
    quote: { message: hex(e.quote.message), signature: hex(e.quote.signature), pcrs: e.quote.pcrs.map(hex) },
  };
  if (certsPem && certsPem.length > 0) bundle.certs = certsPem;
  return bundle;
}

/**
 * Collected (or bundle) bytes -> AzureEvidence in our format, with the bounds and messages the JSON
 * container's decoding applies (its base64/hex text limits expressed in bytes), so evidence
 * the container would refuse is refused here the same way.
 */
export function azureEvidenceOfBytes(e: AzureVtpmEvidence): AzureEvidence {
  const bounded = (b: Buffer, what: string, maxBytes: number, expected: string): Buffer => {
    if (b.length > maxBytes) throw new ParseError(`${what}: expected ${expected}`);
    return b;
  };
  // base64 text of n bytes is 4*ceil(n/3) long and hex text 2n long; both were capped at 2 * MAX_BLOB characters.
  const hex = (b: Buffer, what: string) => bounded(b, what, MAX_BLOB, 'a hex string');
  const hclReport = bounded(e.hclReport, 'hclReport', ((2 * MAX_BLOB) / 4) * 3, 'base64 text');
  const message = hex(e.quote.message, 'quote.message');
  const signature = hex(e.quote.signature, 'quote.signature');
  if (e.quote.pcrs.length > MAX_PCRS) throw new ParseError(`quote.pcrs: expected an array of at most ${MAX_PCRS} entries`);
  const pcrs = e.quote.pcrs.map((p, i) => hex(p, `quote.pcrs[${i}]`));
  return { format: 'cvm-agent', hclReport, quote: { message, signature: { format: 'tpmt', bytes: signature }, pcrs }, certificates: [] };
}

/** Binding as written to the HCL user data: zero-padded to 64 bytes. */
export function userDataFor(binding: Uint8Array): Buffer {
  if (binding.length === 0 || binding.length > USER_DATA_SIZE) throw new ParseError(`binding must be 1..${USER_DATA_SIZE} bytes, got ${binding.length}`);
  return Buffer.concat([Buffer.from(binding), Buffer.alloc(USER_DATA_SIZE - binding.length)]);
}

/** Our quote qualifying data: SHA-256 of the 64-byte user data (docs/architecture.md "One attestation cycle"). */
export function qualifyingDataFor(binding: Uint8Array): Buffer {
  return createHash('sha256').update(userDataFor(binding)).digest();
}

export interface BindingExpectations {
  quoteNonce?: Buffer;
  quoteNonceLabel?: string;
  /** Expected HCL user-data prefix; the rest of the 64 bytes must be zero. */
  userData?: Buffer;
}

/** What the verifier expects in the quote and the HCL user data for a nonce, by evidence format. */
export function expectationsFor(format: AzureEvidenceFormat, nonce: Uint8Array | undefined): BindingExpectations {
  if (nonce === undefined) return {};
  if (format === 'cvm-agent') {
    return { quoteNonce: qualifyingDataFor(nonce), quoteNonceLabel: 'SHA-256 of the zero-padded nonce', userData: Buffer.from(nonce) };
  }
  if (nonce.length > USER_DATA_SIZE) throw new ParseError(`nonce must be at most ${USER_DATA_SIZE} bytes, got ${nonce.length}`);
  return { quoteNonce: Buffer.from(nonce), quoteNonceLabel: 'the nonce', ...(format === 'coco-v2' ? { userData: Buffer.from(nonce) } : {}) };
}

/** Azure IMDS THIM certification (GET /metadata/THIM/amd/certification): {vcekCert, certificateChain} as PEM. */
export function parseImdsCertification(text: string): { vcek: Buffer; chain: Buffer[] } {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new ParseError(`IMDS certification: not valid JSON (${(err as Error).message})`);
  }
  if (!isJsonObject(doc)) throw new ParseError('IMDS certification: JSON is not an object');
  const vcekPem = ownField(doc, 'vcekCert');
  const chainPem = ownField(doc, 'certificateChain');
  if (typeof vcekPem !== 'string') throw new ParseError('IMDS certification: "vcekCert" missing or not PEM text');
  const vcek = pemBlocks(vcekPem);
  if (vcek.length !== 1) throw new ParseError(`IMDS certification: "vcekCert" holds ${vcek.length} certificates, expected 1`);
  const chain = typeof chainPem === 'string' ? pemBlocks(chainPem) : [];
  if (chainPem !== undefined && typeof chainPem !== 'string') throw new ParseError('IMDS certification: "certificateChain" is not PEM text');
  return { vcek: vcek[0]!, chain };
}

/** Collateral file contents: IMDS certification JSON or PEM/DER certificates (DER list). */
export function isImdsCertificationJson(bytes: Uint8Array): boolean {
  const head = Buffer.from(bytes.subarray(0, 256)).toString('latin1').trimStart();
  return head.startsWith('{');
}
