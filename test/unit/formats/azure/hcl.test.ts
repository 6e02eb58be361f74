/**
 * HCL report ("HCLA") parser on real Azure reports and crafted variants; runtime-claims parsing of
 * hostile JSON (Azure SnpVmReport.h; az-cvm-vtpm src/hcl/mod.rs).
 */
import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { vector } from '../../../helpers/paths.js';
import { ParseError } from '../../../../agent/errors.js';
import { buildHclReport, parseHclReport, TDX_MESSAGE } from '../../../../agent/formats/azure/hcl.js';
import { findKey, parseRuntimeClaims } from '../../../../agent/formats/azure/runtime-claims.js';

const hclFromJson = (f: string, field: 'hcl_report' | 'report') => {
  const doc = JSON.parse(vector(`snp/${f}`).toString());
  return field === 'report' ? Buffer.from(doc.report as number[]) : Buffer.from(doc.hcl_report as string, 'base64url');
};

describe('parseHclReport on real reports', () => {
  const reports: [string, Buffer, number, string[]][] = [
    ['az-cvm-vtpm hcl-report-snp.bin', vector('snp/azure_hcl-report-snp.bin'), 1, ['HCLAkPub']],
    ['trustee hcl-report.bin', vector('snp/trustee_az-snp-vtpm_hcl-report.bin'), 1, ['HCLAkPub', 'HCLEkPub']],
    ['evidence v1', hclFromJson('trustee_az-snp-vtpm_evidence-v1.json', 'hcl_report'), 1, ['HCLAkPub', 'HCLEkPub']],
    ['evidence Genoa', hclFromJson('trustee_az-snp-vtpm_evidence-genoa.json', 'report'), 2, ['HCLAkPub', 'HCLEkPub']],
  ];
  for (const [label, bytes, version, kids] of reports) {
    it(`${label}: header v${version}, SNP report, claims hash into REPORT_DATA`, () => {
      const h = parseHclReport(bytes);
      expect(h.version).toBe(version);
      expect(h.igvm.reportType).toBe(2);
      expect(h.hashAlg).toBe('sha256');
      expect(h.snpReport).toHaveLength(1184);
      expect(h.reportSize).toBe(0x4d4 + h.igvm.variableDataSize);
      expect(h.runtimeClaims.keys.map((k) => k.kid)).toEqual(kids);
      expect(findKey(h.runtimeClaims, 'HCLAkPub')?.key?.asymmetricKeyType).toBe('rsa');
      const digest = createHash('sha256').update(h.runtimeClaimsBytes).digest();
      expect(h.snpReport.subarray(0x50, 0x70)).toEqual(digest);
    });
  }
  it('az-cvm-vtpm sample: documented sizes (report_size 1819, var 583)', () => {
    const h = parseHclReport(vector('snp/azure_hcl-report-snp.bin'));
    expect([h.reportSize, h.igvm.dataSize, h.igvm.variableDataSize, h.requestType]).toEqual([1819, 603, 583, 2]);
  });
  it('evidence v2: user-data decodes to the 48-byte nonce + 16 zero bytes', () => {
    const h = parseHclReport(hclFromJson('trustee_az-snp-vtpm_evidence-v2.json', 'hcl_report'));
    expect(h.runtimeClaims.userData?.subarray(0, 4).toString('hex')).toBe('982f5c6e');
    expect(h.runtimeClaims.userData?.subarray(48)).toEqual(Buffer.alloc(16));
  });
  it('rejects the TDX HCL report with a clear typed error', () => {
    expect(() => parseHclReport(vector('snp/azuretools_snp_hcl_report_ACTUALLY_TDX.bin'))).toThrow(ParseError);
    expect(() => parseHclReport(vector('snp/azuretools_snp_hcl_report_ACTUALLY_TDX.bin'))).toThrow(TDX_MESSAGE);
  });
});

describe('parseHclReport on crafted reports', () => {
  const base = vector('snp/trustee_az-snp-vtpm_hcl-report.bin');
  const mutate = (f: (b: Buffer) => void) => {
    const b = Buffer.from(base);
    f(b);
    return b;
  };
  const cases: [string, Buffer, RegExp][] = [
    ['too short', base.subarray(0, 0x4d3), /shorter than the fixed part/],
    ['bad signature', mutate((b) => b.write('HCLB', 0)), /not "HCLA"/],
    ['header version 3', mutate((b) => b.writeUInt32LE(3, 4)), /header version 3/],
    ['report type 3', mutate((b) => b.writeUInt32LE(3, 0x4c8)), /report_type 3 is not SEV-SNP/],
    ['hash type 9', mutate((b) => b.writeUInt32LE(9, 0x4cc)), /report_data_hash_type 9/],
    ['variable size overrun', mutate((b) => b.writeUInt32LE(0xffffffff, 0x4d0)), /overruns/],
    ['data_size inconsistent', mutate((b) => b.writeUInt32LE(b.readUInt32LE(0x4c0) + 1, 0x4c0)), /data_size/],
    ['report_size inconsistent', mutate((b) => b.writeUInt32LE(1, 8)), /report_size/],
    ['claims not JSON', mutate((b) => b.write('X', 0x4d4)), /not valid JSON/],
  ];
  for (const [label, bytes, re] of cases) {
    it(`${label} -> ParseError`, () => {
      expect(() => parseHclReport(bytes)).toThrow(ParseError);
      expect(() => parseHclReport(bytes)).toThrow(re);
    });
  }
  it('builds and re-parses a report (as the simulator does), hash types 1-3', () => {
    const claims = Buffer.from(JSON.stringify({ keys: [], 'user-data': 'AB'.repeat(64) }));
    for (const [t, alg] of [
      [1, 'sha256'],
      [2, 'sha384'],
      [3, 'sha512'],
    ] as const) {
      const h = parseHclReport(buildHclReport(Buffer.alloc(1184), claims, { size: 2048, hashType: t }));
      expect(h.hashAlg).toBe(alg);
      expect(h.runtimeClaims.userData).toEqual(Buffer.alloc(64, 0xab));
      expect(h.runtimeClaimsBytes).toEqual(claims);
    }
  });
});

describe('parseRuntimeClaims (hostile JSON)', () => {
  const p = (s: string) => parseRuntimeClaims(Buffer.from(s));
  it('rejects non-objects, invalid UTF-8 and wrong field types', () => {
    for (const bad of [
      '[]',
      'null',
      '"x"',
      '{"keys":{}}',
      '{"keys":[1]}',
      '{"keys":[{"kid":1,"kty":"RSA"}]}',
      '{"vm-configuration":[]}',
      '{"user-data":5}',
      '{"user-data":"xyz"}',
      `{"user-data":"${'00'.repeat(65)}"}`,
      '{"keys":[' + '{"kid":"a","kty":"RSA"},'.repeat(16) + '{"kid":"a","kty":"RSA"}]}',
    ]) {
      expect(() => p(bad), bad).toThrow(ParseError);
    }
    expect(() => parseRuntimeClaims(Buffer.from([0x7b, 0xff, 0x7d]))).toThrow(/UTF-8/);
    expect(() => parseRuntimeClaims(Buffer.alloc(70_000, 0x20))).toThrow(/exceeds/);
  });
  it('does not let "__proto__" pollute and reads only own properties', () => {
    const c = p('{"__proto__":{"user-data":"00"},"keys":[]}');
    expect(c.userData).toBeUndefined();
    expect(({} as Record<string, unknown>)['user-data']).toBeUndefined();
  });
  it('deeply nested JSON is a ParseError or parsed, never a crash', () => {
    const deep = `{"x":${'['.repeat(100_000)}${']'.repeat(100_000)}}`;
    try {
      expect(p(deep).keys).toEqual([]);
    } catch (err) {
      expect(err).toBeInstanceOf(ParseError);
    }
  });
  it('keeps unusable keys with a reason instead of failing, and ignores private members', () => {
    const c = p(
      JSON.stringify({
        keys: [
          { kid: 'HCLAkPub', kty: 'RSA', n: 'AQAB' },
          { kid: 'oct', kty: 'oct', k: 'AAAA' },
          { kid: 'ec', kty: 'EC', crv: 'P-256', x: 'AAAA', y: 'AAAA' },
        ],
      }),
    );
    expect(c.keys[0]!.key).toBeUndefined();
    expect(c.keys[0]!.problem).toMatch(/without n or e/);
    expect(c.keys[1]!.problem).toMatch(/unsupported JWK kty/);
    expect(c.keys[2]!.problem).toMatch(/invalid JWK/);
  });
});
