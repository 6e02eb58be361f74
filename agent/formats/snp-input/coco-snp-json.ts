/**
 * The Confidential Containers SNP attester's evidence JSON (guest-components attestation-agent/
 * attester/src/snp/mod.rs, read by trustee deps/verifier/src/snp/mod.rs): {attestation_report, cert_chain}.
 * `attestation_report` is the virtee/sev crate's serde form of AttestationReport (every field by name,
 * byte arrays as JSON integer arrays, TCBs as {fmc, bootloader, tee, snp, microcode}, signature {r, s}
 * as the 72-byte little-endian fields); base64/hex text or an integer array of the 1184 bytes is also
 * accepted. `cert_chain` is null or the sev crate's CertTableEntry list [{cert_type: "VCEK"|"ASK"|…, data}].
 * The report is rebuilt byte for byte from the named fields (reserved bytes zero, as a genuine report
 * has them), so the signature check decides whether the JSON was faithful. Pure; ParseError otherwise.
 */
import { CvmError, ParseError } from '../../errors.js';
import { isJsonObject, type JsonObject } from '../../util/json-fields.js';
import { encodeTcb, serializeSnpReport, SNP_REPORT_SIZE } from '../snp-abi/index.js';

/** Certificate kinds the sev crate names (CertType) that carry an AMD certificate we use. */
const CERT_KINDS: ReadonlySet<string> = new Set(['VCEK', 'VLEK', 'ASK', 'ASVK', 'ARK']);
const MAX_CERT_ENTRIES = 16;
const MAX_CERT_BYTES = 16 * 1024;

export interface CocoSnpEvidence {
  /** The 1184 report bytes. */
  report: Buffer;
  /** How attestation_report was written: the sev crate's named fields, or the bytes as text/array. */
  reportForm: 'fields' | 'base64' | 'hex' | 'byte array';
  /** DER certificates from cert_chain (VCEK/VLEK/ASK/ASVK/ARK entries), in their order. */
  certificates: Buffer[];
  /** cert_chain entries that were skipped (CRL, Empty, OTHER(uuid)), by kind. */
  skippedCertKinds: string[];
}

const fail = (where: string, problem: string): never => {
  throw new ParseError(`CoCo SNP evidence: ${where}: ${problem}`);
};

/** True when a JSON value looks like this format (an object with attestation_report). */
export function isCocoSnpEvidence(value: unknown): value is JsonObject {
  return isJsonObject(value) && Object.hasOwn(value, 'attestation_report');
}

function byteArray(v: unknown, where: string, length?: number, max = SNP_REPORT_SIZE): Buffer {
  if (!Array.isArray(v)) return fail(where, 'expected an array of byte values');
  if (length !== undefined && v.length !== length) fail(where, `expected ${length} bytes, got ${v.length}`);
  if (v.length > max) fail(where, `more than ${max} bytes`);
  for (const x of v) if (!Number.isInteger(x) || (x as number) < 0 || (x as number) > 255) fail(where, 'holds a value that is not a byte');
  return Buffer.from(v as number[]);
}

function uint(v: unknown, where: string, max: number): number {
  if (!Number.isSafeInteger(v) || (v as number) < 0 || (v as number) > max) return fail(where, `expected an integer 0..${max}`);
  return v as number;
}

/** u64 fields: JSON numbers lose precision above 2^53, so refuse those rather than guess. */
function u64(v: unknown, where: string): bigint {
  if (!Number.isSafeInteger(v) || (v as number) < 0) return fail(where, 'expected a non-negative integer below 2^53');
  return BigInt(v as number);
}

function tcb(v: unknown, where: string): bigint {
  if (!isJsonObject(v)) return fail(where, 'expected {fmc, bootloader, tee, snp, microcode}');
  const part = (k: string) => uint(v[k], `${where}.${k}`, 255);
  // The sev crate writes fmc only for Turin, whose TCB_VERSION layout differs (SNP ABI 1.58 Table 3).
  const turin = v.fmc !== null && v.fmc !== undefined;
  const parts = { bootloader: part('bootloader'), tee: part('tee'), snp: part('snp'), microcode: part('microcode'), ...(turin ? { fmc: part('fmc') } : {}) };
  return encodeTcb(parts, turin ? 'turin' : 'legacy');
}

function version(v: unknown, where: string): { major: number; minor: number; build: number } {
  if (!isJsonObject(v)) return fail(where, 'expected {major, minor, build}');
  return { major: uint(v.major, `${where}.major`, 255), minor: uint(v.minor, `${where}.minor`, 255), build: uint(v.build, `${where}.build`, 255) };
}

const optByte = (v: unknown, where: string): number | undefined => (v === null || v === undefined ? undefined : uint(v, where, 255));

/** The sev crate's AttestationReport fields -> the 1184 ABI bytes (SNP ABI #56861 Table 23). */
function reportFromFields(r: JsonObject): Buffer {
  const w = (k: string) => `attestation_report.${k}`;
  const ver = uint(r.version, w('version'), 0xffffffff);
  const fam = optByte(r.cpuid_fam_id, w('cpuid_fam_id'));
  const mod = optByte(r.cpuid_mod_id, w('cpuid_mod_id'));
  const step = optByte(r.cpuid_step, w('cpuid_step'));
  if (!isJsonObject(r.signature)) fail(w('signature'), 'expected {r, s}');
  const sig = r.signature as JsonObject;
  const mit = (k: string) => (r[k] === null || r[k] === undefined ? undefined : u64(r[k], w(k)));
  const launchMitVector = mit('launch_mit_vector');
  const currentMitVector = mit('current_mit_vector');
  try {
    return serializeSnpReport({
      version: ver,
      guestSvn: uint(r.guest_svn, w('guest_svn'), 0xffffffff),
      policy: u64(r.policy, w('policy')),
      familyId: byteArray(r.family_id, w('family_id'), 16),
      imageId: byteArray(r.image_id, w('image_id'), 16),
      vmpl: uint(r.vmpl, w('vmpl'), 0xffffffff),
      signatureAlgo: uint(r.sig_algo, w('sig_algo'), 0xffffffff),
      currentTcb: tcb(r.current_tcb, w('current_tcb')),
      platformInfo: u64(r.plat_info, w('plat_info')),
      signerInfo: uint(r.key_info, w('key_info'), 0xffffffff),
      reportData: byteArray(r.report_data, w('report_data'), 64),
      measurement: byteArray(r.measurement, w('measurement'), 48),
      hostData: byteArray(r.host_data, w('host_data'), 32),
      idKeyDigest: byteArray(r.id_key_digest, w('id_key_digest'), 48),
      authorKeyDigest: byteArray(r.author_key_digest, w('author_key_digest'), 48),
      reportId: byteArray(r.report_id, w('report_id'), 32),
      reportIdMa: byteArray(r.report_id_ma, w('report_id_ma'), 32),
      reportedTcb: tcb(r.reported_tcb, w('reported_tcb')),
      ...(fam !== undefined && mod !== undefined && step !== undefined ? { cpuid: { family: fam, model: mod, stepping: step } } : {}),
      chipId: byteArray(r.chip_id, w('chip_id'), 64),
      committedTcb: tcb(r.committed_tcb, w('committed_tcb')),
      currentVersion: version(r.current, w('current')),
      committedVersion: version(r.committed, w('committed')),
      launchTcb: tcb(r.launch_tcb, w('launch_tcb')),
      ...(launchMitVector !== undefined ? { launchMitVector } : {}),
      ...(currentMitVector !== undefined ? { currentMitVector } : {}),
      signature: { r: byteArray(sig.r, w('signature.r'), 72), s: byteArray(sig.s, w('signature.s'), 72) },
    });
  } catch (err) {
    if (err instanceof ParseError) throw err;
    // serializeSnpReport/encodeTcb refuse values that do not fit the ABI (e.g. an unknown version).
    if (err instanceof CvmError) return fail('attestation_report', err.message);
    throw err;
  }
}

/** attestation_report as base64 or hex text of the 1184 bytes. */
function reportFromText(s: string): { bytes: Buffer; form: 'base64' | 'hex' } {
  const t = s.replace(/\s+/g, '');
  if (t.length === SNP_REPORT_SIZE * 2 && /^[0-9a-fA-F]+$/.test(t)) return { bytes: Buffer.from(t, 'hex'), form: 'hex' };
  if (t.length % 4 === 0 && /^[A-Za-z0-9+/]*={0,2}$/.test(t)) {
    const bytes = Buffer.from(t, 'base64');
    if (bytes.length === SNP_REPORT_SIZE) return { bytes, form: 'base64' };
  }
  return fail('attestation_report', `text is neither base64 nor hex of ${SNP_REPORT_SIZE} bytes`);
}

function certChain(v: unknown): { certificates: Buffer[]; skipped: string[] } {
  if (v === null || v === undefined) return { certificates: [], skipped: [] };
  if (!Array.isArray(v)) return fail('cert_chain', 'expected null or an array of {cert_type, data}');
  if (v.length > MAX_CERT_ENTRIES) fail('cert_chain', `more than ${MAX_CERT_ENTRIES} entries`);
  const certificates: Buffer[] = [];
  const skipped: string[] = [];
  v.forEach((e: unknown, i) => {
    const where = `cert_chain[${i}]`;
    if (!isJsonObject(e)) return fail(where, 'expected {cert_type, data}');
    // CertType serialises as its variant name, or {"OTHER": "<uuid>"} for a GUID the crate does not know.
    const kind =
      typeof e.cert_type === 'string' ? e.cert_type.toUpperCase() : isJsonObject(e.cert_type) ? 'OTHER' : fail(`${where}.cert_type`, 'expected a name');
    if (!CERT_KINDS.has(kind)) {
      skipped.push(kind);
      return;
    }
    const data = typeof e.data === 'string' ? Buffer.from(e.data.replace(/\s+/g, ''), 'base64') : byteArray(e.data, `${where}.data`, undefined, MAX_CERT_BYTES);
    if (data.length === 0) fail(`${where}.data`, 'empty');
    certificates.push(data);
  });
  return { certificates, skipped };
}

/** A parsed JSON value of this format -> report bytes and certificates. */
export function decodeCocoSnpEvidence(value: unknown): CocoSnpEvidence {
  if (!isCocoSnpEvidence(value)) return fail('top level', 'expected an object with "attestation_report"');
  const ar = value.attestation_report;
  let report: Buffer;
  let reportForm: CocoSnpEvidence['reportForm'];
  if (typeof ar === 'string') ({ bytes: report, form: reportForm } = reportFromText(ar));
  else if (Array.isArray(ar)) [report, reportForm] = [byteArray(ar, 'attestation_report', SNP_REPORT_SIZE), 'byte array'];
  else if (isJsonObject(ar)) [report, reportForm] = [reportFromFields(ar), 'fields'];
  else return fail('attestation_report', 'expected the sev crate fields, base64/hex text or a byte array');
  const { certificates, skipped } = certChain(value.cert_chain);
  return { report, reportForm, certificates, skippedCertKinds: skipped };
}
