/** decodeSnpReportInput: every report format other tools write is detected, named and unwrapped exactly. */
import { describe, expect, it } from 'vitest';
import { vector } from '../../../helpers/paths.js';
import { ParseError } from '../../../../agent/errors.js';
import { decodeSnpReportInput } from '../../../../agent/formats/snp-input/report-input.js';
import { decodeCocoSnpEvidence } from '../../../../agent/formats/snp-input/coco-snp-json.js';
import { decodeSevGuestTextproto, parseTextproto } from '../../../../agent/formats/snp-input/sev-guest-textproto.js';
import { pemBlocks } from '../../../../agent/util/pem.js';

const raw = vector('snp/trustee_snp_test-report.bin');
const gosev = vector('snp/gosevguest_attestation.bin');

describe('decodeSnpReportInput: binary forms', () => {
  it('raw 1184 bytes', () => {
    expect(decodeSnpReportInput(raw)).toMatchObject({ format: 'raw', encoding: 'binary', name: 'raw report', certificates: [], notes: [] });
  });

  it('raw + 20 zero bytes (Constellation slice): the first 1184 bytes, tail named and noted', () => {
    const r = decodeSnpReportInput(vector('snp/synthetic_constellation_report-1204.bin'));
    expect(r).toMatchObject({ format: 'raw+trailing', name: 'raw report + 20 trailing zero bytes' });
    expect(r.report.equals(raw)).toBe(true);
    expect(r.notes[0]).toMatch(/20 bytes after the report were ignored/);
  });

  it('raw + non-zero tail that is no cert table: ignored, named', () => {
    const r = decodeSnpReportInput(Buffer.concat([raw, Buffer.from('trailing junk')]));
    expect(r).toMatchObject({ format: 'raw+trailing', name: 'raw report + 13 trailing bytes' });
  });

  it('raw + GHCB cert table (go-sev-guest attest -extended -outform bin): certificates taken', () => {
    const r = decodeSnpReportInput(vector('snp/synthetic_gosevguest_attest-extended.bin'));
    expect(r).toMatchObject({ format: 'raw+cert-table', name: 'raw report + GHCB certificate table (VCEK, ASK, ARK)' });
    expect(r.report.equals(gosev)).toBe(true);
    expect(r.certificates[0]!.equals(vector('snp/gosevguest_vcek.der'))).toBe(true);
    expect(r.certificates.slice(1)).toEqual(pemBlocks(vector('snp/ask_ark_milan.pem').toString('latin1')));
  });

  it('whole Azure HCL report: the SNP report at 0x20', () => {
    const hcl = vector('snp/trustee_az-snp-vtpm_hcl-report.bin');
    const r = decodeSnpReportInput(hcl);
    expect(r).toMatchObject({ format: 'azure-hcl', encoding: 'binary', name: 'Azure HCL report (SNP report at 0x20)' });
    expect(r.report.equals(hcl.subarray(0x20, 0x20 + 1184))).toBe(true);
  });

  it('a TDX HCL report is refused with the HCL reason', () => {
    expect(() => decodeSnpReportInput(vector('snp/azuretools_snp_hcl_report_ACTUALLY_TDX.bin'))).toThrow(/TDX, not SEV-SNP.*1184/);
  });

  it('shorter than a report, or empty: ParseError', () => {
    expect(() => decodeSnpReportInput(raw.subarray(0, 1183))).toThrow(/expected a raw 1184-byte report/);
    expect(() => decodeSnpReportInput(Buffer.alloc(0))).toThrow(ParseError);
  });
});

describe('decodeSnpReportInput: text forms', () => {
  it('hex: lower, upper, mixed case, whitespace, 0x prefix; of raw and of raw + tail', () => {
    const hex = raw.toString('hex');
    for (const t of [
      hex,
      hex.toUpperCase(),
      `0x${hex.slice(0, 100).toUpperCase()}${hex.slice(100)}`,
      hex.replace(/(.{64})/g, '$1\n'),
      ` ${hex.replace(/(..)/g, '$1 ')}\n`,
    ]) {
      const r = decodeSnpReportInput(Buffer.from(t));
      expect(r).toMatchObject({ format: 'raw', encoding: 'hex', name: 'hex text: raw report' });
      expect(r.report.equals(raw)).toBe(true);
    }
    expect(decodeSnpReportInput(Buffer.from(vector('snp/synthetic_constellation_report-1204.bin').toString('hex'))).name).toBe(
      'hex text: raw report + 20 trailing zero bytes',
    );
    expect(decodeSnpReportInput(vector('snp/virtee_report_milan.hex')).format).toBe('raw');
  });

  it('base64 (standard, wrapped, URL-safe) of raw, HCL and extended forms', () => {
    const b64 = raw.toString('base64');
    for (const t of [b64, b64.replace(/(.{76})/g, '$1\n'), raw.toString('base64url')]) {
      const r = decodeSnpReportInput(Buffer.from(t));
      expect(r).toMatchObject({ format: 'raw', encoding: 'base64', name: 'base64 text: raw report' });
      expect(r.report.equals(raw)).toBe(true);
    }
    expect(decodeSnpReportInput(Buffer.from(vector('snp/trustee_az-snp-vtpm_hcl-report.bin').toString('base64'))).format).toBe('azure-hcl');
    expect(decodeSnpReportInput(Buffer.from(vector('snp/synthetic_gosevguest_attest-extended.bin').toString('base64'))).certificates.length).toBe(3);
  });

  it('odd hex, text that is nothing known, JSON without attestation_report: ParseError', () => {
    expect(() => decodeSnpReportInput(Buffer.from('abc'))).toThrow(/odd number/);
    expect(() => decodeSnpReportInput(Buffer.from('hello world!'))).toThrow(/neither hex, base64/);
    expect(() => decodeSnpReportInput(Buffer.from('{"report": 1}'))).toThrow(/without "attestation_report"/);
    expect(() => decodeSnpReportInput(Buffer.from('{"attestation_report": '))).toThrow(/not valid JSON|is not/);
  });
});

describe('Confidential Containers SNP evidence JSON (trustee e2e sample)', () => {
  const json = vector('snp/trustee_e2e_coco-snp-evidence.json');
  const value = JSON.parse(json.toString('utf8')) as { attestation_report: Record<string, unknown>; cert_chain: { cert_type: string; data: number[] }[] };

  it('rebuilds the report from the sev crate fields; cert_chain VCEK taken', () => {
    const r = decodeSnpReportInput(json);
    expect(r).toMatchObject({
      format: 'coco-snp-json',
      encoding: 'json',
      name: 'Confidential Containers SNP evidence JSON (report as fields, 1 certificate(s))',
    });
    expect(r.report.readUInt32LE(0)).toBe(3);
    expect(r.report.subarray(0x50, 0x90)).toEqual(Buffer.from(value.attestation_report.report_data as number[]));
    expect(r.report.subarray(0x2a0, 0x2a0 + 72)).toEqual(Buffer.from((value.attestation_report.signature as { r: number[] }).r));
    expect(r.certificates[0]).toEqual(Buffer.from(value.cert_chain[0]!.data));
  });

  it('attestation_report as base64, hex or a byte array gives the same bytes', () => {
    const bytes = decodeCocoSnpEvidence(value).report;
    for (const [form, ar] of [
      ['base64', bytes.toString('base64')],
      ['hex', bytes.toString('hex')],
      ['byte array', [...bytes]],
    ] as const) {
      const r = decodeCocoSnpEvidence({ attestation_report: ar, cert_chain: null });
      expect(r.reportForm).toBe(form);
      expect(r.report.equals(bytes)).toBe(true);
      expect(r.certificates).toEqual([]);
    }
  });

  it('Turin TCB (fmc set) uses the Turin layout; CRL and OTHER entries are skipped and named', () => {
    const tcb = { fmc: 1, bootloader: 2, tee: 3, snp: 4, microcode: 5 };
    const r = decodeCocoSnpEvidence({
      ...value,
      attestation_report: { ...value.attestation_report, reported_tcb: tcb },
      cert_chain: [
        { cert_type: 'CRL', data: [1] },
        { cert_type: { OTHER: '00000000-0000-0000-0000-000000000000' }, data: [1] },
      ],
    });
    expect(r.report.readBigUInt64LE(0x180)).toBe(0x0500000004030201n);
    expect(r.skippedCertKinds).toEqual(['CRL', 'OTHER']);
  });

  it.each([
    ['report_data too short', { report_data: [1, 2] }, /report_data: expected 64 bytes/],
    ['a byte out of range', { family_id: Array.from({ length: 16 }, () => 256) }, /not a byte/],
    ['policy beyond 2^53', { policy: 2 ** 60 }, /below 2\^53/],
    ['unknown version', { version: 99 }, /unsupported version/],
    ['TCB not an object', { current_tcb: 5 }, /expected \{fmc/],
    ['signature missing', { signature: null }, /signature/],
  ])('%s → ParseError', (_n, patch, msg) => {
    expect(() => decodeCocoSnpEvidence({ ...value, attestation_report: { ...value.attestation_report, ...patch } })).toThrow(msg);
  });

  it('bad attestation_report text and cert_chain shapes → ParseError', () => {
    expect(() => decodeCocoSnpEvidence({ attestation_report: 'abcd' })).toThrow(/neither base64 nor hex/);
    expect(() => decodeCocoSnpEvidence({ attestation_report: 5 })).toThrow(ParseError);
    expect(() => decodeCocoSnpEvidence({ ...value, cert_chain: {} })).toThrow(/cert_chain/);
    expect(() => decodeCocoSnpEvidence({ ...value, cert_chain: [{ cert_type: 'VCEK', data: [] }] })).toThrow(/empty/);
  });
});

describe('go-sev-guest textproto', () => {
  const text = vector('snp/synthetic_gosevguest_attestation.textproto').toString('latin1');

  it('Attestation: report rebuilt byte for byte, certificate_chain taken', () => {
    const r = decodeSnpReportInput(Buffer.from(text, 'latin1'));
    expect(r).toMatchObject({ format: 'go-sev-guest-textproto', encoding: 'text', name: 'go-sev-guest textproto (sevsnp.Attestation, 3 certificate(s))' });
    expect(r.report.equals(gosev)).toBe(true);
    expect(r.certificates[0]!.equals(vector('snp/gosevguest_vcek.der'))).toBe(true);
  });

  it('a bare Report (attest -outform textproto without -extended) and the <> / comment / separator syntax', () => {
    const inner = /report: \{\n([\s\S]*?)\n\}/.exec(text)![1]!;
    const r = decodeSevGuestTextproto(`# sevsnp.Report\n${inner.replace(/\n/g, ';\n')}`);
    expect(r).toMatchObject({ message: 'Report', certificates: [] });
    expect(r.report.equals(gosev)).toBe(true);
    expect(decodeSevGuestTextproto(`report < ${inner} >`).report.equals(gosev)).toBe(true);
  });

  it('escapes: octal, hex, simple, adjacent strings concatenate', () => {
    const m = parseTextproto(String.raw`a: "\001\x02\n\\" 'q\'' b { c: 0x10 }`);
    expect(m.fields.get('a')![0]).toEqual(Buffer.from([1, 2, 10, 92, 0x71, 0x27]));
    expect((m.fields.get('b')![0] as { fields: Map<string, unknown[]> }).fields.get('c')).toEqual(['0x10']);
  });

  it.each([
    ['unterminated string', 'version: "abc', /unterminated/],
    ['missing brace', 'report { version: 2', /missing "}"/],
    ['nested too deeply', 'a {'.repeat(20), /too deeply/],
    ['neither form', 'foo: 1', /neither a Report/],
    ['bytes of the wrong size', 'version: 2 report_data: "ab"', /report_data: expected 64 bytes/],
    ['repeated field', 'version: 2 version: 3', /repeated/],
    ['number out of range', 'version: 99999999999', /out of range/],
    ['bad escape', 'version: 2 report_data: "\\q"', /unknown escape/],
  ])('%s → ParseError', (_n, input, msg) => {
    expect(() => decodeSevGuestTextproto(input)).toThrow(msg);
  });
});
