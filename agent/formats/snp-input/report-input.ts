/**
 * `verify snp --report FILE`: which of the report formats other tools write this file is, and the
 * 1184-byte ATTESTATION_REPORT (plus any certificates) inside it. Pure: bytes in, {format, report,
 * certificates, notes} out, ParseError for anything that is none of them.
 *
 * Binary forms: the bare report; the report followed by more bytes (go-sev-guest reads the first
 * 1184 of >= 1184 bytes, abi.ReportToProto; Constellation passes a 1204-byte slice; /dev/sev-guest
 * buffers are page-padded): a GHCB certificate table after it (go-sev-guest `attest -extended
 * -outform bin`) is read for its certificates, any other tail is ignored and named, since the
 * signature covers the report alone; and the whole Azure HCL report (NV index 0x01400001), whose
 * SNP report sits at 0x20 (formats/azure/hcl.ts). Text forms: hex (any case, whitespace, 0x) or
 * base64 of any binary form, the Confidential Containers SNP evidence JSON, and go-sev-guest's textproto.
 */
import { ParseError } from '../../errors.js';
import { isAllZero } from '../../util/bytes.js';
import { HCL_HW_REPORT_OFFSET, HCL_SIGNATURE, parseHclReport } from '../azure/hcl.js';
import { parseCertTable, SNP_REPORT_SIZE } from '../snp-abi/index.js';
import { decodeCocoSnpEvidence, isCocoSnpEvidence } from './coco-snp-json.js';
import { decodeSevGuestTextproto, looksLikeTextproto } from './sev-guest-textproto.js';

export type SnpReportFormat = 'raw' | 'raw+trailing' | 'raw+cert-table' | 'azure-hcl' | 'coco-snp-json' | 'go-sev-guest-textproto';

export type SnpInputEncoding = 'binary' | 'hex' | 'base64' | 'json' | 'text';

export interface SnpReportInput {
  /** Stable id of the container. */
  format: SnpReportFormat;
  /** How the file carried it. */
  encoding: SnpInputEncoding;
  /** Human name, e.g. "hex text: raw report + 20 trailing bytes". */
  name: string;
  /** The 1184 report bytes. */
  report: Buffer;
  /** DER certificates the input carried (cert table, cert_chain, certificate_chain). */
  certificates: Buffer[];
  /** What was ignored or assumed, one sentence each. */
  notes: string[];
}

/** The formats `verify snp --help` lists, one line each. */
export const SNP_REPORT_FORMATS: readonly string[] = [
  'raw report: the 1184-byte ATTESTATION_REPORT (snpguest report.bin, /dev/sev-guest, configfs-tsm outblob)',
  'raw report + trailing bytes: the first 1184 bytes are the report (go-sev-guest accepts >= 1184); a GHCB',
  '  certificate table after it (go-sev-guest attest -extended -outform bin) supplies certificates, any',
  '  other tail (padding, Constellation slices) is ignored and named in the output',
  'Azure HCL report (NV index 0x01400001, "HCLA"): the SNP report at offset 0x20',
  'hex text (any case, whitespace, optional 0x) or base64 text of any of the above',
  'Confidential Containers SNP evidence JSON {attestation_report, cert_chain} (guest-components attester;',
  '  the report as the sev crate fields, base64/hex or a byte array; VCEK/VLEK/ASK/ARK taken from cert_chain)',
  'go-sev-guest textproto (attest -outform textproto): sevsnp.Report, or sevsnp.Attestation with its certificate_chain',
];

const MIN_TEXT_PREFIX = 64;

function fromBinary(bytes: Buffer): Omit<SnpReportInput, 'encoding'> {
  if (bytes.length >= 4 && bytes.readUInt32LE(0) === HCL_SIGNATURE) {
    // Parsed as a whole so a TDX or malformed HCL report is refused with the HCL parser's reason.
    let hcl: ReturnType<typeof parseHclReport>;
    try {
      hcl = parseHclReport(bytes);
    } catch (err) {
      if (err instanceof ParseError) throw new ParseError(`${err.message}: no ${SNP_REPORT_SIZE}-byte SEV-SNP report to verify`, undefined, { cause: err });
      throw err;
    }
    return {
      format: 'azure-hcl',
      name: `Azure HCL report (SNP report at 0x${HCL_HW_REPORT_OFFSET.toString(16)})`,
      report: Buffer.from(hcl.snpReport),
      certificates: [],
      notes: ['the HCL runtime claims are not checked by verify snp (use verify azure for the whole evidence)'],
    };
  }
  if (bytes.length < SNP_REPORT_SIZE)
    throw new ParseError(`report input is ${bytes.length} bytes: expected a raw ${SNP_REPORT_SIZE}-byte report (or longer, or a listed format)`);
  const report = Buffer.from(bytes.subarray(0, SNP_REPORT_SIZE));
  if (bytes.length === SNP_REPORT_SIZE) return { format: 'raw', name: 'raw report', report, certificates: [], notes: [] };
  const tail = bytes.subarray(SNP_REPORT_SIZE);
  const n = tail.length;
  if (!isAllZero(tail)) {
    let entries: ReturnType<typeof parseCertTable> | undefined;
    try {
      entries = parseCertTable(tail);
    } catch {
      entries = undefined; // not a cert table: an opaque tail
    }
    const certs = entries?.filter((e) => ['vcek', 'vlek', 'ask', 'asvk', 'ark'].includes(e.kind)) ?? [];
    if (certs.length > 0) {
      return {
        format: 'raw+cert-table',
        name: `raw report + GHCB certificate table (${certs.map((e) => e.kind.toUpperCase()).join(', ')})`,
        report,
        certificates: certs.map((e) => e.data),
        notes: [],
      };
    }
  }
  return {
    format: 'raw+trailing',
    name: `raw report + ${n} trailing ${isAllZero(tail) ? 'zero ' : ''}bytes`,
    report,
    certificates: [],
    notes: [`${n} bytes after the report were ignored: the report signature does not cover them`],
  };
}

/** Strict base64 (standard or URL alphabet, whitespace allowed), or undefined. */
function base64Of(text: string): Buffer | undefined {
  const s = text.replace(/\s+/g, '');
  if (s.length === 0 || s.length % 4 === 1 || !/^[A-Za-z0-9+/_-]+={0,2}$/.test(s)) return undefined;
  return Buffer.from(s.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
}

/** Decode a `--report` file into the report it holds, naming its format. */
export function decodeSnpReportInput(bytes: Uint8Array): SnpReportInput {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length === 0) throw new ParseError('report input is empty');
  // Text forms only when every byte is printable ASCII: a genuine report has zero bytes (reserved fields).
  const head = buf.subarray(0, Math.min(buf.length, MIN_TEXT_PREFIX)).toString('latin1');
  const printable = /^[\t\n\r\x20-\x7e]*$/.test(buf.toString('latin1'));
  if (!printable) return { ...fromBinary(buf), encoding: 'binary' };
  const text = buf.toString('latin1');
  const trimmed = head.trimStart();
  if (trimmed.startsWith('{')) {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw new ParseError(`report input: looks like JSON but is not: ${(err as Error).message}`, undefined, { cause: err });
    }
    if (!isCocoSnpEvidence(value)) throw new ParseError('report input: JSON without "attestation_report" (expected Confidential Containers SNP evidence)');
    const coco = decodeCocoSnpEvidence(value);
    const notes = coco.skippedCertKinds.length > 0 ? [`cert_chain entries not used: ${coco.skippedCertKinds.join(', ')}`] : [];
    if (coco.reportForm === 'fields') notes.push('report rebuilt from the sev crate fields (reserved bytes zero); the signature check confirms it');
    return {
      format: 'coco-snp-json',
      encoding: 'json',
      name: `Confidential Containers SNP evidence JSON (report as ${coco.reportForm}, ${coco.certificates.length} certificate(s))`,
      report: coco.report,
      certificates: coco.certificates,
      notes,
    };
  }
  const compact = text
    .trim()
    .replace(/^0[xX]/, '')
    .replace(/\s+/g, '');
  if (compact.length > 0 && /^[0-9a-fA-F]+$/.test(compact)) {
    if (compact.length % 2 !== 0) throw new ParseError('report hex: odd number of hex digits');
    const inner = fromBinary(Buffer.from(compact, 'hex'));
    return { ...inner, encoding: 'hex', name: `hex text: ${inner.name}` };
  }
  if (looksLikeTextproto(text)) {
    const tp = decodeSevGuestTextproto(text);
    return {
      format: 'go-sev-guest-textproto',
      encoding: 'text',
      name: `go-sev-guest textproto (sevsnp.${tp.message}${tp.message === 'Attestation' ? `, ${tp.certificates.length} certificate(s)` : ''})`,
      report: tp.report,
      certificates: tp.certificates,
      notes: ['report rebuilt from the proto fields; the signature check confirms it'],
    };
  }
  const b64 = base64Of(text);
  if (b64 !== undefined) {
    const inner = fromBinary(b64);
    return { ...inner, encoding: 'base64', name: `base64 text: ${inner.name}` };
  }
  throw new ParseError(`report input is ${buf.length} bytes of text that is neither hex, base64, CoCo SNP JSON nor go-sev-guest textproto`);
}
