/**
 * The simulated SEV-SNP device: its reports parse, are signed by its VCEK exactly as firmware
 * would sign (ECDSA P-384 over [0, 0x2A0), r/s little-endian), its VCEK chains to its test roots
 * with AMD's RSA-PSS parameters, and its state persists privately and is reused.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { X509Certificate, constants, randomBytes, verify } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, CvmError } from '../../../agent/errors.js';
import { children, decodeBitString, decodeTime, encodedOf, parseDer } from '../../../agent/util/der.js';
import { SIM_CPUID, SIM_DEFAULT_MEASUREMENT, SIM_TCB, SimulatedSnpDevice, type SimExtReport } from '../../../agent/simulation/snp-sim.js';
import { SNP_SIGNED_END, parseAmdCertExtensions, parseCertTable, parseSnpReport, signatureP1363 } from '../../../agent/formats/snp-abi/index.js';
import { vector } from '../../helpers/paths.js';

const root = mkdtempSync(join(tmpdir(), 'snp-sim-test-'));
const dir = join(root, 'state');
let sim: SimulatedSnpDevice;
let ext: SimExtReport;

beforeAll(async () => {
  sim = await SimulatedSnpDevice.open(dir);
  ext = await sim.getExtReport(Buffer.alloc(64));
}, 60_000);
afterAll(() => rmSync(root, { recursive: true, force: true }));

const reportSignatureOk = (report: Buffer, vcekDer: Buffer) =>
  verify(
    'sha384',
    report.subarray(0, SNP_SIGNED_END),
    { key: new X509Certificate(vcekDer).publicKey, dsaEncoding: 'ieee-p1363' },
    signatureP1363(parseSnpReport(report)),
  );

describe('SimulatedSnpDevice reports', () => {
  it('a v3 Genoa report with the caller REPORT_DATA, VCEK signer, default policy 0x30000, REPORTED_TCB = VCEK SPLs', async () => {
    const rd = randomBytes(64);
    const { report, vcek } = await sim.getReport(rd);
    expect(report.length).toBe(1184);
    const r = parseSnpReport(report);
    expect(r.version).toBe(3);
    expect(r.cpuid).toEqual(SIM_CPUID);
    expect(r.product).toBe('Genoa');
    expect(r.reportData.equals(rd)).toBe(true);
    expect(r.vmpl).toBe(0);
    expect(r.signatureAlgo).toBe(1);
    expect(r.signerInfo.signingKeyName).toBe('vcek');
    expect(r.policy.raw).toBe(0x30000n);
    expect(r.policy.debug).toBe(false);
    expect(r.policy.smt).toBe(true);
    expect(r.measurement.equals(SIM_DEFAULT_MEASUREMENT)).toBe(true);
    expect(r.nonZeroReserved).toEqual([]);
    const ext = parseAmdCertExtensions(vcek);
    expect(ext).toMatchObject({ structVersion: 0, productName: 'Genoa', product: 'Genoa', spl4: 0, spl5: 0, spl6: 0, spl7: 0 });
    expect([ext.blSpl, ext.teeSpl, ext.snpSpl, ext.ucodeSpl]).toEqual([SIM_TCB.bootloader, SIM_TCB.tee, SIM_TCB.snp, SIM_TCB.microcode]);
    for (const t of [r.reportedTcb, r.currentTcb, r.committedTcb, r.launchTcb]) {
      expect([t.bootloader, t.tee, t.snp, t.microcode]).toEqual([ext.blSpl, ext.teeSpl, ext.snpSpl, ext.ucodeSpl]);
    }
    expect(ext.hwId?.length).toBe(64);
    expect(ext.hwId!.equals(r.chipId)).toBe(true);
    expect(r.chipId.equals(sim.chipId)).toBe(true);
  });

  it('the report signature verifies with node:crypto against the sim VCEK, and fails when a signed byte changes', async () => {
    const { report, vcek } = await sim.getReport(Buffer.alloc(64, 7));
    expect(reportSignatureOk(report, vcek)).toBe(true);
    const tampered = Buffer.from(report);
    tampered[0x50]! ^= 0x80; // REPORT_DATA
    expect(reportSignatureOk(tampered, vcek)).toBe(false);
    const r = parseSnpReport(report);
    expect(r.signature.r.subarray(48).every((b) => b === 0)).toBe(true); // P-384 scalars zero-extended to 72 bytes
    expect(r.signature.s.subarray(48).every((b) => b === 0)).toBe(true);
  });

  it('options: VMPL (number or object), policy, measurement, hostData, versions 2 and 5', async () => {
    const measurement = Buffer.alloc(48, 0xab);
    const hostData = Buffer.alloc(32, 0xcd);
    const a = parseSnpReport((await sim.getReport(Buffer.alloc(64), 2)).report);
    expect(a.vmpl).toBe(2);
    const b = await sim.getReport(Buffer.alloc(64), { vmpl: 3, policy: 0x0b0000n, measurement, hostData, version: 5 });
    const rb = parseSnpReport(b.report);
    expect(rb).toMatchObject({ vmpl: 3, version: 5, launchMitVector: 0n, currentMitVector: 0n });
    expect(rb.policy.debug).toBe(true);
    expect(rb.measurement.equals(measurement)).toBe(true);
    expect(rb.hostData.equals(hostData)).toBe(true);
    expect(reportSignatureOk(b.report, b.vcek)).toBe(true);
    const v2 = parseSnpReport((await sim.getReport(Buffer.alloc(64), { version: 2 })).report);
    expect(v2.version).toBe(2);
    expect(v2.cpuid).toBeUndefined();
    expect(v2.nonZeroReserved).toEqual([]);
  });

  it('rejects bad inputs with typed errors', async () => {
    const cases: Array<Promise<unknown>> = [
      sim.getReport(Buffer.alloc(63)),
      sim.getReport(Buffer.alloc(64), 4),
      sim.getReport(Buffer.alloc(64), { version: 6 }),
      sim.getReport(Buffer.alloc(64), { measurement: Buffer.alloc(32) }),
      sim.getReport(Buffer.alloc(64), { policy: -1n }),
      sim.getReport('x' as unknown as Uint8Array),
    ];
    for (const c of cases) await expect(c).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(sim.getReport(Buffer.alloc(63))).rejects.toBeInstanceOf(CvmError);
  });

  it('getExtReport adds a GHCB cert table that parses to the VCEK, ASK and ARK', async () => {
    const r = await sim.getExtReport(Buffer.alloc(64, 1));
    const table = parseCertTable(r.certTable);
    expect(table.map((e) => e.kind)).toEqual(['vcek', 'ask', 'ark']);
    expect(table[0]!.data.equals(r.vcek)).toBe(true);
    expect(table[1]!.data.equals(r.ask)).toBe(true);
    expect(table[2]!.data.equals(r.ark)).toBe(true);
    expect(reportSignatureOk(r.report, table[0]!.data)).toBe(true);
  });
});

describe('SimulatedSnpDevice certificates', () => {
  it('VCEK ← ASK ← ARK (self-signed) verify, with RSA-PSS; wrong issuers do not', () => {
    const { ark, ask } = sim.roots();
    const vcek = new X509Certificate(ext.vcek);
    const askC = new X509Certificate(ask);
    const arkC = new X509Certificate(ark);
    expect(vcek.verify(askC.publicKey)).toBe(true);
    expect(askC.verify(arkC.publicKey)).toBe(true);
    expect(arkC.verify(arkC.publicKey)).toBe(true);
    expect(vcek.verify(arkC.publicKey)).toBe(false);
    expect(askC.verify(askC.publicKey)).toBe(false);
    expect(arkC.ca && askC.ca).toBe(true);
    expect(vcek.ca).toBe(false);
    expect(vcek.publicKey.asymmetricKeyDetails?.namedCurve).toBe('secp384r1');
  });

  it("every certificate is signed with AMD's RSASSA-PSS AlgorithmIdentifier (SHA-384, MGF1-SHA-384, salt 48)", () => {
    const amdAlg = Buffer.from(encodedOf(children(parseDer(vector('snp/virtee_vcek_turin.der')))[1]!));
    const { ark, ask } = sim.roots();
    for (const der of [ark, ask, ext.vcek]) {
      expect(Buffer.from(encodedOf(children(parseDer(der))[1]!)).equals(amdAlg)).toBe(true);
    }
  });

  it('subjects say SIMULATED and keep AMD CNs (ARK-Genoa, SEV-Genoa, SEV-VCEK); roots() says simulated', () => {
    const roots = sim.roots();
    expect(roots.product).toBe('Genoa');
    expect(roots.simulated).toBe(true);
    const subjects = [roots.ark, roots.ask, ext.vcek].map((d) => new X509Certificate(d).subject);
    for (const s of subjects) expect(s).toMatch(/SIMULATED/);
    expect(subjects.map((s) => s.split('\n').pop())).toEqual(['CN=ARK-Genoa', 'CN=SEV-Genoa', 'CN=SEV-VCEK']);
  });
});

describe('SimulatedSnpDevice CRL', () => {
  it('crl(at) is an empty v2 CRL signed by the test ARK (RSA-PSS) whose issuer is the ARK subject', () => {
    const at = new Date(Date.UTC(2030, 0, 1));
    const [tbs, , sig] = children(parseDer(sim.crl(at)));
    const ark = new X509Certificate(sim.roots().ark);
    const ok = verify('sha384', encodedOf(tbs!), { key: ark.publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 48 }, decodeBitString(sig!));
    expect(ok).toBe(true);
    const f = children(tbs!);
    const arkSubject = children(children(parseDer(sim.roots().ark))[0]!)[5]!;
    expect(Buffer.from(encodedOf(f[2]!)).equals(Buffer.from(encodedOf(arkSubject)))).toBe(true);
    expect(decodeTime(f[3]!).getTime()).toBe(at.getTime() - 3600_000);
    expect(decodeTime(f[4]!).getTime()).toBe(at.getTime() - 3600_000 + 7 * 24 * 3600_000);
    expect(f.length).toBe(5); // no revokedCertificates
  });
});

describe('SimulatedSnpDevice persistence', () => {
  it('state dir is 0700, the state file (keys) 0600, no temp files left', () => {
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    const files = readdirSync(dir);
    expect(files).toEqual(['snp-sim-state.json']);
    expect(statSync(join(dir, files[0]!)).mode & 0o777).toBe(0o600);
  });

  it('reopening the same dir reuses the same roots, chip and VCEK', async () => {
    const again = await SimulatedSnpDevice.open(dir);
    expect(again.roots()).toEqual(sim.roots());
    expect(again.chipId.equals(sim.chipId)).toBe(true);
    const first = await sim.getExtReport(Buffer.alloc(64));
    const second = await again.getExtReport(Buffer.alloc(64));
    expect(second.vcek.equals(first.vcek)).toBe(true);
    expect(reportSignatureOk(second.report, first.vcek)).toBe(true);
    // Same inputs, same report body (the signature differs: ECDSA is randomised).
    expect(second.report.subarray(0, SNP_SIGNED_END).equals(first.report.subarray(0, SNP_SIGNED_END))).toBe(true);
  });

  it('a different dir gives different roots and chip', async () => {
    const other = await SimulatedSnpDevice.open(join(root, 'other'));
    expect(other.roots().ark.equals(sim.roots().ark)).toBe(false);
    expect(other.chipId.equals(sim.chipId)).toBe(false);
  }, 60_000);

  it('two concurrent first opens of one dir agree on a single set of roots', async () => {
    const d = join(root, 'race');
    const [a, b] = await Promise.all([SimulatedSnpDevice.open(d), SimulatedSnpDevice.open(d)]);
    expect(a.roots()).toEqual(b.roots());
    expect(readdirSync(d)).toEqual(['snp-sim-state.json']);
  }, 60_000);

  it('tightens a pre-existing world-readable dir to 0700', async () => {
    const d = join(root, 'loose');
    mkdirSync(d, { mode: 0o755 });
    chmodSync(d, 0o755);
    writeFileSync(join(d, 'snp-sim-state.json'), readFileSync(join(dir, 'snp-sim-state.json'), 'utf8'), { mode: 0o600 });
    const s = await SimulatedSnpDevice.open(d);
    expect(statSync(d).mode & 0o777).toBe(0o700);
    expect(s.roots()).toEqual(sim.roots());
  });

  it('a state path that is a file, or an unreadable state, is a ConfigError', async () => {
    const f = join(root, 'a-file');
    writeFileSync(f, 'x');
    await expect(SimulatedSnpDevice.open(f)).rejects.toBeInstanceOf(ConfigError);
    await expect(SimulatedSnpDevice.open(join(f, 'below'))).rejects.toBeInstanceOf(ConfigError);
  });

  it('a corrupt or inconsistent state file is a ConfigError (never silently replaced)', async () => {
    const d = join(root, 'corrupt');
    mkdirSync(d, { mode: 0o700 });
    writeFileSync(join(d, 'snp-sim-state.json'), '{not json', { mode: 0o600 });
    await expect(SimulatedSnpDevice.open(d)).rejects.toBeInstanceOf(ConfigError);
    const good = JSON.parse(readFileSync(join(dir, 'snp-sim-state.json'), 'utf8')) as Record<string, string>;
    const otherState = JSON.parse(readFileSync(join(root, 'other', 'snp-sim-state.json'), 'utf8')) as Record<string, string>;
    writeFileSync(join(d, 'snp-sim-state.json'), JSON.stringify({ ...good, vcekKey: otherState.vcekKey }), { mode: 0o600 });
    await expect(SimulatedSnpDevice.open(d)).rejects.toThrow(/VCEK key does not match/);
    writeFileSync(join(d, 'snp-sim-state.json'), JSON.stringify({ ...good, ask: otherState.ask }), { mode: 0o600 });
    await expect(SimulatedSnpDevice.open(d)).rejects.toThrow(/chain does not verify/);
    writeFileSync(join(d, 'snp-sim-state.json'), JSON.stringify({ ...good, vcekKey: 'garbage' }), { mode: 0o600 });
    await expect(SimulatedSnpDevice.open(d)).rejects.toBeInstanceOf(ConfigError);
  }, 60_000);
});
