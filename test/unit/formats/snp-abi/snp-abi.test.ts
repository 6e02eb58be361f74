/**
 * SEV-SNP ABI parsers against the real public vectors in test/vectors/snp (values quoted from its
 * README) plus synthetic edge cases for every rejection path.
 */
import { describe, expect, it } from 'vitest';
import { X509Certificate, verify } from 'node:crypto';
import { ParseError } from '../../../../agent/errors.js';
import {
  SNP_REPORT_SIZE,
  SNP_SIGNED_END,
  decodeTcb,
  encodeTcb,
  parseAmdCertExtensions,
  parseCertTable,
  parseSnpReport,
  productFromCpuid,
  productFromName,
  serializeCertTable,
  serializeSnpReport,
  signatureFromP1363,
  signatureP1363,
  tcbLayoutFor,
  type SnpReport,
} from '../../../../agent/formats/snp-abi/index.js';
import { vector } from '../../../helpers/paths.js';

const snp = (name: string) => vector(`snp/${name}`);
const pemCerts = (name: string): Buffer[] =>
  (
    snp(name)
      .toString('utf8')
      .match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []
  ).map((p) => Buffer.from(new X509Certificate(p).raw));
/** Azure HCL report: the SNP report sits at 0x20 (Azure SnpVmReport.h). */
const fromHcl = (hcl: Uint8Array) => Buffer.from(hcl.subarray(0x20, 0x20 + SNP_REPORT_SIZE));
const genoaEvidence = JSON.parse(snp('trustee_az-snp-vtpm_evidence-genoa.json').toString('utf8')) as { report: number[]; vcek: string };
const v1Evidence = JSON.parse(snp('trustee_az-snp-vtpm_evidence-v1.json').toString('utf8')) as { hcl_report: string; vcek: string };

/** Real reports with the VCEK/VLEK that signs them. */
const REAL: Array<{ name: string; report: Buffer; signer: Buffer }> = [
  { name: 'gosevguest', report: snp('gosevguest_attestation.bin'), signer: snp('gosevguest_vcek.der') },
  { name: 'virtee milan', report: Buffer.from(snp('virtee_report_milan.hex').toString('utf8'), 'hex'), signer: snp('virtee_vcek_milan.der') },
  { name: 'trustee', report: snp('trustee_snp_test-report.bin'), signer: snp('trustee_snp_test-vcek.der') },
  { name: 'trustee vlek', report: snp('trustee_snp_test-vlek-report.bin'), signer: snp('trustee_snp_test-vlek.der') },
  { name: 'azure milan v2 (trustee hcl)', report: fromHcl(snp('trustee_az-snp-vtpm_hcl-report.bin')), signer: pemCerts('trustee_az-snp-vtpm_vcek.pem')[0]! },
  { name: 'azure genoa v3', report: fromHcl(Uint8Array.from(genoaEvidence.report)), signer: Buffer.from(new X509Certificate(genoaEvidence.vcek).raw) },
  { name: 'azure milan v3', report: fromHcl(Buffer.from(v1Evidence.hcl_report, 'base64url')), signer: Buffer.from(v1Evidence.vcek, 'base64url') },
  { name: 'turin v5 (ms tee-av)', report: snp('msteeav_turin_attestation_report.bin'), signer: pemCerts('msteeav_turin_vcek.pem')[0]! },
];
const real = (name: string): SnpReport => parseSnpReport(REAL.find((r) => r.name === name)!.report);

function expectParseError(fn: () => unknown, message?: RegExp): void {
  let thrown: unknown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  expect(thrown).toBeInstanceOf(ParseError);
  if (message) expect((thrown as Error).message).toMatch(message);
}

const tcb = (t: { bootloader: number; tee: number; snp: number; microcode: number; fmc?: number }) => [t.bootloader, t.tee, t.snp, t.microcode, t.fmc];

describe('parseSnpReport on real reports (values from test/vectors/snp/README.md)', () => {
  it('go-sev-guest Milan v2: DEBUG policy, TCB 2/0/5/68, FW 1.49.3, REPORT_DATA 0102030405', () => {
    const r = real('gosevguest');
    expect(r.version).toBe(2);
    expect(r.vmpl).toBe(0);
    expect(r.policy.raw).toBe(0x0b0000n);
    expect(r.policy.debug).toBe(true);
    expect(r.policy.smt).toBe(true);
    expect(r.policy.reservedBit17).toBe(true);
    expect(r.policy.migrateMa).toBe(false);
    expect(tcb(r.reportedTcb)).toEqual([2, 0, 5, 68, undefined]);
    expect(tcb(r.currentTcb)).toEqual([2, 0, 5, 68, undefined]);
    expect(r.currentVersion).toEqual({ major: 1, minor: 49, build: 3 });
    expect(r.reportData.subarray(0, 6).toString('hex')).toBe('010203040500');
    expect(r.reportData.subarray(5).every((b) => b === 0)).toBe(true);
    expect(r.idKeyDigest.every((b) => b === 0)).toBe(true); // no ID block
    expect(r.cpuid).toBeUndefined();
    expect(r.tcbLayout).toBe('legacy');
    expect(r.tcbLayoutSource).toBe('default');
    expect(r.signerInfo.signingKeyName).toBe('vcek');
    expect(r.signatureAlgo).toBe(1);
    expect(r.nonZeroReserved).toEqual([]);
  });

  it('virtee Milan v2: policy 0x30000, TCB 3/0/8/115, FW 1.52.4', () => {
    const r = real('virtee milan');
    expect(r.version).toBe(2);
    expect(r.policy.raw).toBe(0x30000n);
    expect(r.policy.debug).toBe(false);
    expect(tcb(r.reportedTcb)).toEqual([3, 0, 8, 115, undefined]);
    expect(r.currentVersion).toEqual({ major: 1, minor: 52, build: 4 });
    expect(r.committedVersion).toEqual({ major: 1, minor: 52, build: 4 });
    expect(r.nonZeroReserved).toEqual([]);
  });

  it('trustee Milan v2: guest_svn 4, policy 0x3001f, CURRENT ucode 206 but REPORTED ucode 115', () => {
    const r = real('trustee');
    expect(r.version).toBe(2);
    expect(r.guestSvn).toBe(4);
    expect(r.policy.raw).toBe(0x3001fn);
    expect(r.policy.abiMinor).toBe(0x1f);
    expect(r.policy.abiMajor).toBe(0);
    expect(r.currentTcb.microcode).toBe(206);
    expect(r.reportedTcb.microcode).toBe(115);
    expect(tcb(r.reportedTcb)).toEqual([3, 0, 8, 115, undefined]);
    expect(r.currentVersion).toEqual({ major: 1, minor: 52, build: 4 });
    expect(r.familyId[0]).toBe(1);
    expect(r.imageId[0]).toBe(2);
  });

  it('trustee AWS VLEK v3: signing key VLEK, CPUID 19h/01h/1 (Milan), VMPL1, PLATFORM_INFO 0x27, CHIP_ID zero, TCB 4/0/24/217, FW 1.55.29', () => {
    const r = real('trustee vlek');
    expect(r.version).toBe(3);
    expect(r.signerInfo.raw).toBe(4);
    expect(r.signerInfo.signingKey).toBe(1);
    expect(r.signerInfo.signingKeyName).toBe('vlek');
    expect(r.signerInfo.maskChipKey).toBe(false);
    expect(r.signerInfo.authorKeyEn).toBe(false);
    expect(r.cpuid).toEqual({ family: 0x19, model: 0x01, stepping: 1 });
    expect(r.product).toBe('Milan');
    expect(r.tcbLayoutSource).toBe('cpuid');
    expect(r.vmpl).toBe(1);
    expect(r.platformInfo.raw).toBe(0x27n);
    expect(r.platformInfo.smtEnabled && r.platformInfo.tsmeEnabled && r.platformInfo.eccEnabled && r.platformInfo.aliasCheckComplete).toBe(true);
    expect(r.platformInfo.raplDisabled).toBe(false);
    expect(r.chipId.every((b) => b === 0)).toBe(true);
    expect(tcb(r.reportedTcb)).toEqual([4, 0, 24, 217, undefined]);
    expect(r.currentVersion).toEqual({ major: 1, minor: 55, build: 29 });
    expect(r.nonZeroReserved).toEqual([]);
  });

  it('Azure Genoa v3 (inside an HCL report): CPUID 19h/11h/1, TCB 10/0/23/84, FW 1.55.40, PLATFORM_INFO 0x24, VMPL0', () => {
    const r = real('azure genoa v3');
    expect(r.version).toBe(3);
    expect(r.cpuid).toEqual({ family: 0x19, model: 0x11, stepping: 1 });
    expect(r.product).toBe('Genoa');
    expect(tcb(r.reportedTcb)).toEqual([10, 0, 23, 84, undefined]);
    expect(r.currentVersion).toEqual({ major: 1, minor: 55, build: 40 });
    expect(r.platformInfo.raw).toBe(0x24n);
    expect(r.platformInfo.smtEnabled).toBe(false);
    expect(r.vmpl).toBe(0);
  });

  it('Turin v5 (microsoft/TEE-Attestation-Verification): PLATFORM_INFO 0x65 with bit 6 set parses clean', () => {
    const r = real('turin v5 (ms tee-av)');
    expect(r.version).toBe(5);
    expect(r.cpuid).toEqual({ family: 0x1a, model: 0x02, stepping: 1 });
    expect(r.product).toBe('Turin');
    expect(r.tcbLayout).toBe('turin');
    expect(r.currentVersion).toEqual({ major: 1, minor: 55, build: 65 });
    expect(r.platformInfo).toEqual({
      raw: 0x65n,
      smtEnabled: true,
      tsmeEnabled: false,
      eccEnabled: true,
      raplDisabled: false,
      ciphertextHidingEnabled: false,
      aliasCheckComplete: true,
      tioEnabled: false,
      undefinedBits: 0x40n,
    });
    expect(r.launchMitVector).toBeDefined();
    expect(r.nonZeroReserved).toEqual([]);
  });

  it('Azure Milan v3 (evidence-v1): CPUID 19h/01h/1, REPORTED_TCB 4/0/24/219', () => {
    const r = real('azure milan v3');
    expect(r.version).toBe(3);
    expect(r.cpuid).toEqual({ family: 0x19, model: 0x01, stepping: 1 });
    expect(tcb(r.reportedTcb)).toEqual([4, 0, 24, 219, undefined]);
    expect(r.vmpl).toBe(0);
  });

  it('Azure HCL Milan v2 (az-cvm-vtpm): VMPL0, policy 0x3001f', () => {
    const r = parseSnpReport(fromHcl(snp('azure_hcl-report-snp.bin')));
    expect(r.version).toBe(2);
    expect(r.vmpl).toBe(0);
    expect(r.policy.raw).toBe(0x3001fn);
  });

  it.each(REAL.map((r) => [r.name, r] as const))('%s: serialize(parse(x)) == x and the signature verifies via signatureP1363', (_n, v) => {
    const r = parseSnpReport(v.report);
    expect(serializeSnpReport(r).equals(v.report)).toBe(true);
    expect(r.raw.equals(v.report)).toBe(true);
    const key = new X509Certificate(v.signer).publicKey;
    const ok = verify('sha384', v.report.subarray(0, SNP_SIGNED_END), { key, dsaEncoding: 'ieee-p1363' }, signatureP1363(r));
    expect(ok).toBe(true);
    // and a flipped measurement bit breaks it (the check can fail)
    const tampered = Buffer.from(v.report);
    tampered[0x90]! ^= 1;
    expect(verify('sha384', tampered.subarray(0, SNP_SIGNED_END), { key, dsaEncoding: 'ieee-p1363' }, signatureP1363(r))).toBe(false);
    expect(signatureFromP1363(signatureP1363(r))).toEqual(r.signature);
  });

  it('does not alias the caller buffer', () => {
    const bytes = Buffer.from(REAL[0]!.report);
    const r = parseSnpReport(bytes);
    bytes.fill(0xee);
    expect(r.raw[0]).toBe(2);
    expect(r.reportData[0]).toBe(1);
  });
});

describe('parseSnpReport rejects malformed input', () => {
  const base = REAL[0]!.report;
  it.each([0, 1, 1183, 1185, 4000])('length %d → ParseError', (n) => {
    const b = Buffer.alloc(n);
    base.copy(b, 0, 0, Math.min(n, base.length));
    expectParseError(() => parseSnpReport(b), /1184 bytes/);
  });
  it.each([0, 1, 6, 0xffffffff])('version %d → ParseError', (v) => {
    const b = Buffer.from(base);
    b.writeUInt32LE(v, 0);
    expectParseError(() => parseSnpReport(b), /unsupported version/);
  });
  it('non-bytes → ParseError', () => {
    expectParseError(() => parseSnpReport('x'.repeat(1184) as unknown as Uint8Array));
  });
});

describe('reserved / MBZ detection', () => {
  const base = REAL[0]!.report; // v2, algo 1, clean
  const withByte = (off: number, v: number, src = base) => {
    const b = Buffer.from(src);
    b[off] = v;
    return parseSnpReport(b);
  };
  it.each([
    [0x04c, 'reserved@0x04c'],
    [0x188, 'reserved@0x188'],
    [0x19f, 'reserved@0x188'],
    [0x1eb, 'reserved@0x1eb'],
    [0x1ef, 'reserved@0x1ef'],
    [0x1f8, 'reserved@0x1f8'],
    [0x208, 'reserved@0x208'],
    [0x29f, 'reserved@0x208'],
    [0x330, 'reserved@0x330'],
    [0x49f, 'reserved@0x330'],
    [0x2a0 + 48, 'signature.r[48..72)'],
    [0x2e8 + 71, 'signature.s[48..72)'],
    [0x048, 'signerInfo[31:5]'], // value 0x20 below
    [0x00b, 'policy[63:26]'], // value 0x20 → bit 29
  ])('non-zero byte at 0x%s is reported as %s', (off, name) => {
    const value = off === 0x048 ? 0x20 : off === 0x00b ? 0x20 : 0x01;
    const r = withByte(off, value);
    expect(r.nonZeroReserved).toContain(name);
    expect(serializeSnpReport(r).equals(r.raw)).toBe(true);
  });
  it.each([
    [0x40n, 'bit 6 (Turin firmware sets it)'],
    [0x67n, 'the value seen in the wild'],
    [0x100n, 'bit 8'],
    [0x8000_0000_0000_0000n, 'bit 63'],
  ])('PLATFORM_INFO 0x%s (%s): undefined bits are informational, not must-be-zero (SNP ABI rev 1.58)', (raw) => {
    const b = Buffer.from(base);
    b.writeBigUInt64LE(raw, 0x40);
    const r = parseSnpReport(b);
    expect(r.nonZeroReserved).toEqual([]);
    expect(r.platformInfo.undefinedBits).toBe(raw & ~0xbfn);
    expect(serializeSnpReport(r).equals(r.raw)).toBe(true);
  });
  it('PLATFORM_INFO defined bits decode individually (rev 1.58: 0..5 and 7 TIO_EN)', () => {
    const names = [
      'smtEnabled',
      'tsmeEnabled',
      'eccEnabled',
      'raplDisabled',
      'ciphertextHidingEnabled',
      'aliasCheckComplete',
      undefined,
      'tioEnabled',
    ] as const;
    names.forEach((name, bit) => {
      const b = Buffer.from(base);
      b.writeBigUInt64LE(1n << BigInt(bit), 0x40);
      const p = parseSnpReport(b).platformInfo;
      for (const n of names) if (n) expect(p[n]).toBe(n === name);
      expect(p.undefinedBits).toBe(name ? 0n : 1n << BigInt(bit));
    });
  });
  it('v3 uses 0x188..0x18A for CPUID: they are not reserved, 0x18B is', () => {
    const v3 = REAL.find((r) => r.name === 'trustee vlek')!.report;
    expect(withByte(0x18a, 7, v3).nonZeroReserved).toEqual([]);
    expect(withByte(0x18b, 7, v3).nonZeroReserved).toEqual(['reserved@0x18b']);
  });
  it('0x330.. and the signature high bytes are MBZ only for SIGNATURE_ALGO 1', () => {
    const b = Buffer.from(base);
    b.writeUInt32LE(2, 0x34);
    b[0x400] = 9;
    b[0x2a0 + 60] = 9;
    const r = parseSnpReport(b);
    expect(r.signatureAlgo).toBe(2);
    expect(r.nonZeroReserved).toEqual([]);
  });
  it('signing key names: 7 = none, 2..6 reserved', () => {
    expect(withByte(0x048, 7 << 2).signerInfo.signingKeyName).toBe('none');
    expect(withByte(0x048, 3 << 2).signerInfo.signingKeyName).toBe('reserved');
    expect(withByte(0x048, 3).signerInfo).toMatchObject({ authorKeyEn: true, maskChipKey: true, signingKeyName: 'vcek' });
  });
  it('policy bits decode individually', () => {
    const b = Buffer.from(base);
    b.writeBigUInt64LE((1n << 17n) | (1n << 18n) | (1n << 20n) | (1n << 21n) | (1n << 22n) | (1n << 23n) | (1n << 24n) | (1n << 25n) | 0x0102n, 8);
    const p = parseSnpReport(b).policy;
    expect(p).toMatchObject({
      abiMinor: 2,
      abiMajor: 1,
      smt: false,
      debug: false,
      migrateMa: true,
      singleSocket: true,
      cxlAllow: true,
      memAes256Xts: true,
      raplDis: true,
      ciphertextHiding: true,
      pageSwapDisable: true,
      mbzBits: 0n,
    });
  });
});

describe('versions and TCB layouts', () => {
  const v3 = parseSnpReport(REAL.find((r) => r.name === 'trustee vlek')!.report);

  it('v5 exposes LAUNCH/CURRENT_MIT_VECTOR, v3 does not; both round-trip', () => {
    const b = serializeSnpReport({ ...v3, version: 5, launchMitVector: 0x0bn, currentMitVector: 0x0bn, reserved: { 'reserved@0x18b': Buffer.alloc(21) } });
    const r5 = parseSnpReport(b);
    expect(r5.version).toBe(5);
    expect(r5.launchMitVector).toBe(0x0bn);
    expect(r5.currentMitVector).toBe(0x0bn);
    expect(r5.reserved['reserved@0x1f8']).toBeUndefined();
    expect(v3.launchMitVector).toBeUndefined();
    expect(serializeSnpReport(r5).equals(b)).toBe(true);
  });

  it('v4 is parsed like v3; 0x1F8 is not judged (content under AMD embargo)', () => {
    const b = Buffer.from(v3.raw);
    b.writeUInt32LE(4, 0);
    b[0x1f8] = 0x0b;
    const r = parseSnpReport(b);
    expect(r.version).toBe(4);
    expect(r.cpuid).toEqual(v3.cpuid);
    expect(r.nonZeroReserved).toEqual([]);
    expect(r.launchMitVector).toBeUndefined();
  });

  it('Turin CPUID (family 0x1A) selects the FMC-first layout for all four TCBs', () => {
    const raw = 0x5200000004010101n; // tinfoilsh/go-sev-guest kds_test: fmc 1, bl 1, tee 1, snp 4, ucode 82
    const b = serializeSnpReport({
      ...v3,
      cpuid: { family: 0x1a, model: 0x02, stepping: 0 },
      currentTcb: raw,
      reportedTcb: raw,
      committedTcb: raw,
      launchTcb: raw,
    });
    const r = parseSnpReport(b);
    expect(r.product).toBe('Turin');
    expect(r.tcbLayout).toBe('turin');
    for (const t of [r.currentTcb, r.reportedTcb, r.committedTcb, r.launchTcb]) expect(tcb(t)).toEqual([1, 1, 4, 82, 1]);
  });

  it('unknown CPUID: no product, layout by family', () => {
    const r = parseSnpReport(serializeSnpReport({ ...v3, cpuid: { family: 0x1a, model: 0x50, stepping: 0 } }));
    expect(r.product).toBeUndefined();
    expect(r.tcbLayout).toBe('turin');
    const r2 = parseSnpReport(serializeSnpReport({ ...v3, cpuid: { family: 0x17, model: 0x31, stepping: 0 } }));
    expect(r2.product).toBeUndefined();
    expect(r2.tcbLayout).toBe('legacy');
  });

  it('v2: CHIP_ID with only the first 8 bytes set is Turin-like (heuristic), masked CHIP_ID stays legacy', () => {
    const v2 = parseSnpReport(REAL[0]!.report);
    const chip = Buffer.alloc(64);
    chip.set([1, 2, 3, 4, 5, 6, 7, 8]);
    const r = parseSnpReport(serializeSnpReport({ ...v2, chipId: chip }));
    expect(r.tcbLayout).toBe('turin');
    expect(r.tcbLayoutSource).toBe('chip-id-heuristic');
    expect(r.reportedTcb.raw).toBe(v2.reportedTcb.raw); // raw kept so the verifier can re-decode
    expect(decodeTcb(r.reportedTcb.raw, 'legacy')).toEqual(v2.reportedTcb);
    const masked = parseSnpReport(serializeSnpReport({ ...v2, chipId: Buffer.alloc(64) }));
    expect(masked.tcbLayout).toBe('legacy');
  });

  it('decodeTcb / encodeTcb are inverse for both layouts and reject non-u64', () => {
    expect(tcb(decodeTcb(0x4405000000000002n, 'legacy'))).toEqual([2, 0, 5, 68, undefined]);
    expect(encodeTcb({ bootloader: 2, tee: 0, snp: 5, microcode: 68 }, 'legacy')).toBe(0x4405000000000002n);
    expect(encodeTcb({ fmc: 1, bootloader: 1, tee: 1, snp: 4, microcode: 82 }, 'turin')).toBe(0x5200000004010101n);
    expect(decodeTcb(0x0000_1122_3344_0000n, 'legacy').reservedBits).toBe(0x0000_1122_3344_0000n);
    expect(decodeTcb(0x00ff_0000_0000_0000n, 'turin').reservedBits).toBe(0x00ff_0000_0000_0000n);
    expectParseError(() => decodeTcb(-1n, 'legacy'));
    expectParseError(() => decodeTcb(1n << 64n, 'turin'));
    expect(() => encodeTcb({ bootloader: 256, tee: 0, snp: 0, microcode: 0 }, 'legacy')).toThrow(/not a byte/);
    expect(() => encodeTcb({ fmc: 1, bootloader: 0, tee: 0, snp: 0, microcode: 0 }, 'legacy')).toThrow(/fmc/);
  });

  it('productFromCpuid / productFromName / tcbLayoutFor', () => {
    expect(productFromCpuid(0x19, 0x01, 1)).toBe('Milan');
    expect(productFromCpuid(0x19, 0x11, 1)).toBe('Genoa');
    expect(productFromCpuid(0x19, 0xa0, 1)).toBe('Genoa'); // Siena/Bergamo use Genoa KDS
    expect(productFromCpuid(0x1a, 0x11, 0)).toBe('Turin');
    expect(productFromCpuid(0x1a, 0x50, 0)).toBeUndefined(); // Venice: not supported yet
    expect(productFromCpuid(0x17, 0x31, 0)).toBeUndefined();
    expect(productFromName('Milan-B0')).toBe('Milan');
    expect(productFromName('Genoa')).toBe('Genoa');
    expect(productFromName('Rome')).toBeUndefined();
    expect(tcbLayoutFor('Turin')).toBe('turin');
    expect(tcbLayoutFor('Genoa')).toBe('legacy');
    expect(tcbLayoutFor('Milan')).toBe('legacy');
  });

  it('serializeSnpReport rejects bad fields with a typed error', () => {
    const bad = [
      { ...v3, version: 6 },
      { ...v3, reportData: Buffer.alloc(63) },
      { ...v3, vmpl: -1 },
      { ...v3, currentTcb: 1n << 64n },
      { ...v3, reserved: { 'reserved@0x188': Buffer.alloc(24) } }, // v2-only range in a v3 report
      { ...v3, signature: { r: Buffer.alloc(48), s: Buffer.alloc(72) } },
    ];
    for (const f of bad) expect(() => serializeSnpReport(f)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
  });

  it('serializeSnpReport defaults: algo 1, REPORT_ID_MA ff…ff, zeros elsewhere', () => {
    const b = serializeSnpReport({
      version: 3,
      policy: 0x30000n,
      currentTcb: 0n,
      reportedTcb: 0n,
      committedTcb: 0n,
      launchTcb: 0n,
      currentVersion: { major: 1, minor: 55, build: 1 },
      committedVersion: { major: 1, minor: 55, build: 1 },
    });
    const r = parseSnpReport(b);
    expect(r.signatureAlgo).toBe(1);
    expect(r.reportIdMa.equals(Buffer.alloc(32, 0xff))).toBe(true);
    expect(r.nonZeroReserved).toEqual([]);
    expect(r.cpuid).toEqual({ family: 0, model: 0, stepping: 0 });
  });
});

describe('parseCertTable (GHCB extended-report GUID table)', () => {
  const [milanAsk, milanArk] = pemCerts('ask_ark_milan.pem') as [Buffer, Buffer];
  const tables = [
    'synthetic_certtable_gcp_milan_rfc4122.bin',
    'synthetic_certtable_gcp_milan_rfc4122_pagepadded.bin',
    'synthetic_certtable_gcp_milan_mixedendian_guid.bin',
  ];

  it.each(tables)('%s → VCEK, ASK, ARK with the exact certificate bytes', (name) => {
    const entries = parseCertTable(snp(name));
    expect(entries.map((e) => e.kind)).toEqual(['vcek', 'ask', 'ark']);
    expect(entries.map((e) => e.guid)).toEqual([
      '63da758d-e664-4564-adc5-f4b93be8accd',
      '4ab7b379-bbac-4fe4-a02f-05aef327c782',
      'c0b406a4-a803-4952-9743-3fb6014cd0ae',
    ]);
    expect(entries.every((e) => e.guidOrder === (name.includes('mixed') ? 'mixed-endian' : 'rfc4122'))).toBe(true);
    expect(entries[1]!.data.equals(milanAsk)).toBe(true);
    expect(entries[2]!.data.equals(milanArk)).toBe(true);
    const vcek = new X509Certificate(entries[0]!.data);
    expect(vcek.subject).toContain('CN=SEV-VCEK');
    expect(vcek.verify(new X509Certificate(milanAsk).publicKey)).toBe(true);
    const ext = parseAmdCertExtensions(entries[0]!.data);
    expect(ext.product).toBe('Milan');
    expect(ext.hwId?.length).toBe(64);
  });

  it('serializeCertTable reproduces the three vectors byte for byte', () => {
    const entries = parseCertTable(snp(tables[0]!)).map((e) => ({ kind: e.kind as 'vcek' | 'ask' | 'ark', data: e.data }));
    expect(serializeCertTable(entries).equals(snp(tables[0]!))).toBe(true);
    expect(serializeCertTable(entries, { padTo: 4096 }).equals(snp(tables[1]!))).toBe(true);
    expect(serializeCertTable(entries, { guidOrder: 'mixed-endian' }).equals(snp(tables[2]!))).toBe(true);
  });

  it('empty and all-zero buffers mean "no certificates"', () => {
    expect(parseCertTable(new Uint8Array(0))).toEqual([]);
    expect(parseCertTable(new Uint8Array(16384))).toEqual([]);
  });

  it('a VLEK-only table labels the ASK-GUID entry as the ASVK; unknown GUIDs are kept', () => {
    const vlek = snp('trustee_snp_test-vlek.der');
    const asvk = pemCerts('ask_ark_milan_vlek.pem')[0]!;
    const t = parseCertTable(
      serializeCertTable([
        { kind: 'vlek', data: vlek },
        { kind: 'asvk', data: asvk },
        { guid: '01234567-89ab-cdef-0123-456789abcdef', data: Buffer.from('x') },
      ]),
    );
    expect(t.map((e) => e.kind)).toEqual(['vlek', 'asvk', 'unknown']);
    expect(t[2]!.guid).toBe('01234567-89ab-cdef-0123-456789abcdef');
    expect(t[0]!.data.equals(vlek)).toBe(true);
  });

  describe('rejects malformed tables', () => {
    const good = () => Buffer.from(snp(tables[0]!));
    it('no terminator', () => {
      const b = Buffer.alloc(48, 0x11);
      expectParseError(() => parseCertTable(b), /terminator/);
      expectParseError(() => parseCertTable(good().subarray(0, 0x50)), /terminator/);
    });
    it('offset inside the header', () => {
      const b = good();
      b.writeUInt32LE(0x10, 16);
      expectParseError(() => parseCertTable(b), /inside/);
    });
    it('entry past the end', () => {
      const b = good();
      b.writeUInt32LE(0xffffffff, 20);
      expectParseError(() => parseCertTable(b), /past/);
      expectParseError(() => parseCertTable(good().subarray(0, good().length - 1)), /past/);
    });
    it('overlapping entries', () => {
      const b = good();
      b.writeUInt32LE(b.readUInt32LE(16 + 24) - 1, 16 + 24 * 2); // ARK starts inside ASK... shift ARK offset back
      b.writeUInt32LE(b.readUInt32LE(16 + 24) + 10, 16 + 24 * 2);
      expectParseError(() => parseCertTable(b), /overlap/);
    });
    it('duplicate GUIDs (also across byte orders)', () => {
      const b = good();
      b.copy(b, 24, 0, 16); // second entry gets the VCEK GUID
      expectParseError(() => parseCertTable(b), /duplicate/);
      const c = good();
      snp(tables[2]!).copy(c, 24, 0, 16); // VCEK GUID in mixed-endian order
      expectParseError(() => parseCertTable(c), /duplicate/);
    });
    it('null GUID with a non-zero offset/length (not a clean terminator)', () => {
      const b = good();
      b.fill(0, 0x30, 0x40); // ARK entry's GUID → null, offset/length kept
      expectParseError(() => parseCertTable(b), /null GUID/);
    });
    it('zero-length entry', () => {
      const b = good();
      b.writeUInt32LE(0, 20);
      expectParseError(() => parseCertTable(b), /zero length/);
    });
  });
});

describe('parseAmdCertExtensions (VCEK/VLEK OIDs 1.3.6.1.4.1.3704.1.*)', () => {
  it('Turin VCEK: structVersion 1, productName Turin, fmcSPL 0, ucode 9, 8-byte hwID, no spl4', () => {
    const e = parseAmdCertExtensions(snp('virtee_vcek_turin.der'));
    expect(e.structVersion).toBe(1);
    expect(e.productName).toBe('Turin');
    expect(e.product).toBe('Turin');
    expect(e.fmcSpl).toBe(0);
    expect([e.blSpl, e.teeSpl, e.snpSpl, e.ucodeSpl]).toEqual([0, 0, 0, 9]);
    expect(e.hwId?.toString('hex')).toBe('1e550a8ee5cf9f4d');
    expect(e.spl4).toBeUndefined();
    expect(e.cspId).toBeUndefined();
  });

  it.each([
    ['gosevguest_vcek.der', 'Milan-B0', [2, 0, 5, 68]],
    ['virtee_vcek_milan.der', 'Milan-B0', [3, 0, 8, 115]],
    ['trustee_snp_test-vcek.der', 'Milan-B0', [3, 0, 8, 115]],
  ] as const)('%s: %s, TCB %j, 64-byte hwID equal to the CHIP_ID of its report', (file, productName, spls) => {
    const e = parseAmdCertExtensions(snp(file));
    expect(e.productName).toBe(productName);
    expect(e.structVersion).toBe(0);
    expect([e.blSpl, e.teeSpl, e.snpSpl, e.ucodeSpl]).toEqual(spls);
    expect([e.spl4, e.spl5, e.spl6, e.spl7]).toEqual([0, 0, 0, 0]);
    expect(e.fmcSpl).toBeUndefined();
    expect(e.hwId?.length).toBe(64);
    const report = REAL.find((r) => r.signer.equals(snp(file)))!;
    expect(e.hwId!.equals(parseSnpReport(report.report).chipId)).toBe(true);
  });

  it('VLEK: productName Milan, TCB 4/0/24/217 (ucode ≥128), CSP_ID, no hwID', () => {
    const e = parseAmdCertExtensions(snp('trustee_snp_test-vlek.der'));
    expect(e.productName).toBe('Milan');
    expect([e.blSpl, e.teeSpl, e.snpSpl, e.ucodeSpl]).toEqual([4, 0, 24, 217]);
    expect(e.cspId).toBe('CN=cc-us-east-2.amazonaws.com');
    expect(e.hwId).toBeUndefined();
  });

  it('Genoa and Azure VCEKs: productName Genoa (no stepping) / TCB equal to their reports', () => {
    for (const name of ['azure genoa v3', 'azure milan v3', 'azure milan v2 (trustee hcl)']) {
      const v = REAL.find((r) => r.name === name)!;
      const e = parseAmdCertExtensions(v.signer);
      const r = parseSnpReport(v.report);
      expect([e.blSpl, e.teeSpl, e.snpSpl, e.ucodeSpl]).toEqual(tcb(r.reportedTcb).slice(0, 4));
      if (name.includes('genoa')) expect(e.productName).toBe('Genoa');
      expect(e.hwId!.equals(r.chipId)).toBe(true);
    }
    expect(parseAmdCertExtensions(pemCerts('azure_certs.pem')[0]!).productName).toBe('Milan-B0');
  });

  it('synthetic hwID encodings: raw 64 bytes (legacy) and DER OCTET STRING (new) decode to the same 00..3f', () => {
    const expected = Buffer.from(Array.from({ length: 64 }, (_, i) => i));
    const legacy = parseAmdCertExtensions(snp('trustee_snp_test-vcek-invalid-legacy.der'));
    const wrapped = parseAmdCertExtensions(snp('trustee_snp_test-vcek-invalid-new.der'));
    expect(legacy.hwId!.equals(expected)).toBe(true);
    expect(wrapped.hwId!.equals(expected)).toBe(true);
    expect([legacy.snpSpl, legacy.ucodeSpl]).toEqual([10, 169]);
    expect(wrapped.ucodeSpl).toBe(30);
  });

  it('a certificate without AMD extensions (the ASK) or garbage → ParseError', () => {
    expectParseError(() => parseAmdCertExtensions(pemCerts('ask_ark_milan.pem')[0]!), /productName/);
    expectParseError(() => parseAmdCertExtensions(Buffer.from('not a certificate')));
    expectParseError(() => parseAmdCertExtensions(new Uint8Array(0)));
  });

  it('rejects out-of-range SPLs (negative, > 255)', () => {
    const der = Buffer.from(snp('trustee_snp_test-vlek.der'));
    const marker = Buffer.from('060a2b060104019c7801030804', 'hex'); // OID 1.3.6.1.4.1.3704.1.3.8, then OCTET STRING tag
    const at = der.indexOf(marker);
    expect(at).toBeGreaterThan(0);
    // layout: OID | 04 len | 02 02 00 d9 (ucode 217)
    const intAt = at + marker.length + 1;
    expect(der.subarray(intAt, intAt + 4).toString('hex')).toBe('020200d9');
    der[intAt + 2] = 0x80; // INTEGER 0x80d9: negative
    expectParseError(() => parseAmdCertExtensions(der), /ucodeSPL/);
    der[intAt + 2] = 0x01; // 0x01d9 = 473 > 255
    expectParseError(() => parseAmdCertExtensions(der), /out of range/);
  });
});
