/**
 * gatherCollateral (agent/collateral/resolve.ts) with real vectors in a temporary cache: the VCEK,
 * CRL, RIMs and OCSP responses a bundle needs come from the cache, or, only when online fetching is
 * on, from a loopback fake of the services; every lookup shows up as a named collateral.* check and
 * the verifier's own checks show the collateral reached it.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPairSync } from 'node:crypto';
import { CollateralStore } from '../../../agent/collateral/store.js';
import { gatherCollateral, type GatherOptions } from '../../../agent/collateral/resolve.js';
import { verifyBundle } from '../../../agent/attest/verify-bundle.js';
import { collateralVerifier } from '../../../agent/daemon/sources.js';
import type { EvidenceBundle, GpuBundleEntry } from '../../../agent/formats/evidence-bundle.js';
import type { PublicJwk } from '../../../agent/formats/nonce-binding.js';
import type { Check } from '../../../agent/formats/checks.js';
import { parseSnpReport } from '../../../agent/formats/snp-abi/index.js';
import { reportBytesFromFile } from '../../../agent/verify/nvidia/gpu-report.js';
import { buildCrl } from '../../../agent/simulation/x509-builder.js';
import { amdName } from '../../helpers/snp-sim-chain.js';
import { startFakeCollateralServer, type FakeCollateralServer } from '../../helpers/fake-collateral-server.js';
import fc from 'fast-check';
import { vector, FC_RUNS } from '../../helpers/paths.js';
import { findCheck } from '../../helpers/checks.js';

const AT_SNP = new Date('2025-06-01T00:00:00Z'); // inside the trustee VCEK's validity (2023-01-24..2030-01-24)
const AT_GPU = new Date('2024-06-01T00:00:00Z'); // inside the 545 RIM signers' validity
const DAY = 86_400_000;

const milanReport = vector('snp/trustee_snp_test-report.bin');
const milanVcek = vector('snp/trustee_snp_test-vcek.der');
const parsed = parseSnpReport(milanReport);
const chipHex = parsed.chipId.toString('hex');
const vcekRoute = `/vcek/v1/Milan/${chipHex}?blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115`; // trustee REPORTED_TCB 3/0/8/115

const N = 'nvidia/nvtrust/hopper-545-complete';
const DRIVER_ID = 'NV_GPU_DRIVER_GH100_545.00';
const VBIOS_ID = 'NV_GPU_VBIOS_1010_0200_882_96005E0001';
const driverRim = vector(`${N}/Driver_RIM_test_no_gpu.swidtag`);
const vbiosRim = vector(`${N}/1010_0200_882_96005E0001_test_no_gpu.swidtag`);
const gpu = (index: number): GpuBundleEntry => ({
  index,
  arch: 'HOPPER',
  report: reportBytesFromFile(vector(`${N}/attestationReport.txt`)),
  certChainPem: vector(`${N}/gpuAkCertChain.txt`).toString(),
  nvml: {},
});

const SW = 'nvidia/attestation-sdk/switch-ls10';
const SWITCH_RIM_ID = 'NV_SWITCH_BIOS_5612_0002_890_9610550001';
const SWITCH_RIM_FILE = `switchVBIOSRim_${SWITCH_RIM_ID}.xml`;
const switchRim = vector(`${SW}/${SWITCH_RIM_FILE}`);
const AT_SWITCH = new Date('2026-06-30T00:00:00Z'); // inside the LS10 RIM signer's validity (from 2026-05-20)
const nvswitch = (index: number) => ({
  index,
  arch: 'LS10',
  report: reportBytesFromFile(vector(`${SW}/switchAttestationReport.txt`)),
  certChainPem: vector(`${SW}/switchCertChain.txt`).toString(),
});

const teePubKey = generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey.export({ format: 'jwk' }) as PublicJwk;
function bundle(over: Partial<EvidenceBundle> = {}): EvidenceBundle {
  return {
    version: 1,
    agentId: 'vm-1',
    nonce: Buffer.alloc(32, 7),
    teePubKey,
    simulated: false,
    cpu: { kind: 'snp', source: 'sev-guest', report: milanReport, certificates: [] },
    gpus: [],
    ...over,
  };
}

// A CRL named like the Milan ARK's but signed by a key of ours: the verifier must reject its signature.
const fakeArk = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
const milanCrl = (thisUpdate: Date, nextUpdate: Date) =>
  buildCrl({ issuer: amdName('ARK-Milan'), issuerKey: fakeArk, signature: 'rsa-pss-sha384', thisUpdate, nextUpdate, revoked: [] });

const level = (c: Check) => (!c.ok ? 'fail' : c.warning ? 'warn' : 'pass');

let dir: string;
let store: CollateralStore;
let server: FakeCollateralServer;
const fast = { retries: 0, backoffBaseMs: 5, backoffMaxMs: 10 };
let online: GatherOptions;

beforeAll(async () => {
  server = await startFakeCollateralServer({
    routes: {
      [vcekRoute]: { body: milanVcek },
      '/vcek/v1/Milan/crl': { body: milanCrl(new Date('2025-05-01Z'), new Date('2025-07-01Z')) },
    },
    imds: (() => {
      const blocks = vector('snp/trustee_az-snp-vtpm_vcek.pem')
        .toString()
        .match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n?/g)!;
      return { vcekCert: blocks[0], certificateChain: blocks.slice(1).join('') };
    })(),
    rims: { [DRIVER_ID]: driverRim.toString(), [VBIOS_ID]: vbiosRim.toString(), [SWITCH_RIM_ID]: switchRim.toString() },
    ocsp: { thisUpdate: new Date('2024-05-31T00:00:00Z'), nextUpdate: new Date('2024-06-07T00:00:00Z') },
  });
});
afterAll(async () => {
  await server.close();
});
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'cvm-collateral-resolve-'));
  store = new CollateralStore(dir);
  server.requests.length = 0;
  online = { at: AT_SNP, online: true, timeoutMs: 2_000, http: fast, urls: { kds: server.url, imds: server.url, rim: server.url, ocsp: `${server.url}/ocsp` } };
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('CPU: VCEK and CRL', () => {
  it('a bundle without certificates finds its VCEK in the cache (v2 report: product found by trying each) and verifies', async () => {
    await store.putBytes(milanVcek, { source: 'import:trustee_snp_test-vcek.der' });
    const b = bundle();
    const got = await gatherCollateral(store, b, { at: AT_SNP, urls: online.urls! });
    expect(got.cpuCollateral.certificates).toEqual([milanVcek]);
    expect(server.requests).toHaveLength(0); // offline: nothing fetched even with URLs configured
    const cpu = verifyBundle(b, { at: AT_SNP, ...got }).devices[0]!.result;
    expect(level(findCheck(cpu.checks, 'collateral.vcek'))).toBe('pass');
    expect(findCheck(cpu.checks, 'collateral.vcek').detail).toMatch(/^VCEK Milan .* from the cache \(import:trustee_snp_test-vcek\.der/);
    for (const n of [
      'snp.cert.endorsement-key',
      'snp.product',
      'snp.chain.ask',
      'snp.chain.ark',
      'snp.cert.validity',
      'snp.signature',
      'snp.tcb.vcek-match',
      'snp.chip-id',
    ]) {
      expect(findCheck(cpu.checks, n), n).toMatchObject({ ok: true });
    }
    expect(findCheck(cpu.checks, 'snp.product').detail).toContain('Milan');
    // No CRL cached: the verifier warns; collateral.crl does not add a second warning but names the fix.
    expect(level(findCheck(cpu.checks, 'snp.revocation'))).toBe('warn');
    expect(level(findCheck(cpu.checks, 'collateral.crl'))).toBe('pass');
    expect(findCheck(cpu.checks, 'collateral.crl').detail).toMatch(
      /CRL Milan \(vcek\) is not in the collateral cache.*cvm-agent collateral import FILE.*collateral\.online/,
    );
  });

  it('a cache miss offline is a collateral.vcek failure naming the import command, and snp.* fail closed', async () => {
    const b = bundle();
    const got = await gatherCollateral(store, b, { at: AT_SNP, urls: online.urls! });
    expect(server.requests).toHaveLength(0);
    expect(got.cpuCollateral.certificates).toHaveLength(0);
    const r = verifyBundle(b, { at: AT_SNP, ...got });
    const cpu = r.devices[0]!.result;
    const c = findCheck(cpu.checks, 'collateral.vcek');
    expect(level(c)).toBe('fail');
    expect(c.detail).toContain('cvm-agent collateral import FILE');
    expect(c.detail).toContain('collateral.online');
    expect(c.detail).toContain('Milan, Genoa'); // v2 report: the products tried
    expect(findCheck(cpu.checks, 'snp.cert.endorsement-key').ok).toBe(false);
    expect(findCheck(cpu.checks, 'snp.signature').ok).toBe(false);
    expect(cpu.status).toBe('contraindicated');
    expect(r.ok).toBe(false);
  });

  it('online: fetches the VCEK and the CRL from the (loopback) KDS, stores them, and the next offline gather uses the cache', async () => {
    const b = bundle();
    const got = await gatherCollateral(store, b, online);
    expect(server.requests.map((q) => q.url).sort()).toEqual(['/vcek/v1/Milan/crl', vcekRoute].sort());
    expect(findCheck(got.collateralChecks.cpu, 'collateral.vcek')).toMatchObject({
      ok: true,
      detail: expect.stringContaining(`fetched from ${server.url}/vcek/v1/Milan/`),
    });
    expect(findCheck(got.collateralChecks.cpu, 'collateral.crl')).toMatchObject({
      ok: true,
      detail: expect.stringContaining(`fetched from ${server.url}/vcek/v1/Milan/crl`),
    });
    const cpu = verifyBundle(b, { at: AT_SNP, ...got }).devices[0]!.result;
    expect(findCheck(cpu.checks, 'snp.signature').ok).toBe(true);
    // The CRL reached the verifier, which (rightly) rejects it: it is not signed by the pinned ARK.
    expect(findCheck(cpu.checks, 'snp.revocation')).toMatchObject({ ok: false, detail: expect.stringContaining('not signed by the pinned') });
    expect(await store.getVcek('Milan', parsed.chipId, parsed.reportedTcb.raw)).toBeDefined();
    expect(await store.getCrl('Milan', 'vcek')).toBeDefined();

    server.requests.length = 0;
    const again = await gatherCollateral(store, b, { at: AT_SNP });
    expect(server.requests).toHaveLength(0);
    expect(again.cpuCollateral.certificates).toHaveLength(1);
    expect(again.cpuCollateral.crls).toHaveLength(1);
  });

  it('online: a fetch that fails (KDS 404) is a failure that names the URL, not an exception', async () => {
    const other = Buffer.from(milanReport);
    other[0x1a0] = other[0x1a0]! ^ 0xff; // another CHIP_ID: the KDS has no VCEK for it
    const got = await gatherCollateral(store, bundle({ cpu: { kind: 'snp', source: 'sev-guest', report: other, certificates: [] } }), online);
    const c = findCheck(got.collateralChecks.cpu, 'collateral.vcek');
    expect(level(c)).toBe('fail');
    expect(c.detail).toContain(`${server.url}/vcek/v1/Milan/`);
    expect(c.detail).toContain(`${server.url}/vcek/v1/Genoa/`); // v2 report: both candidates tried
  });

  it('a stale CRL is passed on with a "stale since" warning; an expired one with an "expired" warning', async () => {
    await store.putBytes(milanVcek, { source: 'import:vcek' });
    await store.putBytes(milanCrl(new Date('2025-05-01Z'), new Date('2025-07-01Z')), { source: 'import:crl.der', fetchedAt: new Date('2025-05-01T00:00:00Z') });
    const stale = await gatherCollateral(store, bundle(), { at: AT_SNP, freshness: { maxAgeMs: { crl: 7 * DAY } } });
    expect(stale.cpuCollateral.crls).toHaveLength(1);
    const s = findCheck(stale.collateralChecks.cpu, 'collateral.crl');
    expect(level(s)).toBe('warn');
    expect(s.detail).toContain('stale since 2025-05-08T00:00:00.000Z');
    expect(s.detail).toContain('cvm-agent collateral import FILE');
    expect(level(findCheck(stale.collateralChecks.cpu, 'collateral.vcek'))).toBe('pass'); // no age limit for VCEKs given

    const expired = await gatherCollateral(store, bundle(), { at: new Date('2025-08-01T00:00:00Z') });
    expect(expired.cpuCollateral.crls).toHaveLength(1);
    const e = findCheck(expired.collateralChecks.cpu, 'collateral.crl');
    expect(level(e)).toBe('warn');
    expect(e.detail).toMatch(/is expired \(CRL passed its nextUpdate 2025-07-01/);
  });

  it('online: when refreshing a stale entry fails, the cached copy is used and the warning says why', async () => {
    await store.putBytes(milanVcek, { source: 'import:vcek' });
    await store.putBytes(milanCrl(new Date('2025-05-01Z'), new Date('2025-07-01Z')), { source: 'import:crl.der', fetchedAt: new Date('2025-05-01T00:00:00Z') });
    const got = await gatherCollateral(store, bundle(), { ...online, urls: { kds: `${server.url}/nothing-here` }, freshness: { maxAgeMs: { crl: DAY } } });
    const c = findCheck(got.collateralChecks.cpu, 'collateral.crl');
    expect(level(c)).toBe('warn');
    expect(c.detail).toMatch(/stale since 2025-05-02.*refreshing it failed: .*nothing-here\/vcek\/v1\/Milan\/crl/);
    expect(got.cpuCollateral.crls).toHaveLength(1);
  });

  it('a damaged cache entry is reported, not thrown', async () => {
    const [entry] = await store.putBytes(milanVcek, { source: 'import:vcek' });
    const { writeFileSync } = await import('node:fs');
    writeFileSync(entry!.file, Buffer.concat([milanVcek, Buffer.from([0])]));
    const got = await gatherCollateral(store, bundle(), { at: AT_SNP });
    const c = findCheck(got.collateralChecks.cpu, 'collateral.vcek');
    expect(level(c)).toBe('fail');
    expect(c.detail).toContain('corrupt');
  });

  it('Azure (HCL report): online, the VCEK comes from IMDS THIM', async () => {
    const b = bundle({ cpu: { kind: 'azure-snp-vtpm', source: 'azure-vtpm', report: vector('snp/trustee_az-snp-vtpm_hcl-report.bin'), certificates: [] } });
    const got = await gatherCollateral(store, b, online);
    expect(findCheck(got.collateralChecks.cpu, 'collateral.vcek')).toMatchObject({
      ok: true,
      detail: expect.stringContaining('/metadata/THIM/amd/certification'),
    });
    expect(got.cpuCollateral.certificates).toHaveLength(1);
    expect(server.requests.find((q) => q.url.startsWith('/metadata/THIM'))?.headers.metadata).toBe('true');
    expect(server.requests.some((q) => q.url.startsWith('/vcek/v1/Milan/') && q.url.includes('SPL'))).toBe(false); // KDS not needed
  });

  it('the evidence that carries its VCEK is not looked up; the CRL still is', async () => {
    const got = await gatherCollateral(store, bundle({ cpu: { kind: 'snp', source: 'sev-guest', report: milanReport, certificates: [milanVcek] } }), {
      at: AT_SNP,
    });
    expect(got.collateralChecks.cpu.map((c) => c.name)).toEqual(['collateral.crl']);
    expect(got.cpuCollateral.certificates).toHaveLength(0);
  });
});

describe('GPU: RIMs and OCSP', () => {
  it('the 545 report with both RIMs imported under their ids: RIM checks and measurements pass at 2024-06-01', async () => {
    await store.putBytes(driverRim, { source: 'import:Driver_RIM_test_no_gpu.swidtag' }, { fileName: 'Driver_RIM_test_no_gpu.swidtag' });
    await store.putBytes(
      vbiosRim,
      { source: 'import:1010_0200_882_96005E0001_test_no_gpu.swidtag' },
      { fileName: '1010_0200_882_96005E0001_test_no_gpu.swidtag' },
    );
    const b = bundle({ gpus: [gpu(0)] });
    const got = await gatherCollateral(store, b, { at: AT_GPU });
    expect([...got.gpuCollateral.rims.byId.keys()].sort()).toEqual([DRIVER_ID, VBIOS_ID]);
    const g0 = verifyBundle(b, { at: AT_GPU, ...got }).devices.find((d) => d.id === 'gpu0')!.result;
    const rim = findCheck(g0.checks, 'collateral.rim');
    expect(level(rim)).toBe('pass');
    expect(rim.detail).toContain(DRIVER_ID);
    expect(rim.detail).toContain(VBIOS_ID);
    for (const n of ['gpu.rim.driver', 'gpu.rim.vbios', 'gpu.measurements', 'gpu.signature', 'gpu.chain'])
      expect(findCheck(g0.checks, n), n).toMatchObject({ ok: true });
    // No OCSP cached: gpu.revocation warns, collateral.ocsp names the fix without a second warning.
    expect(level(findCheck(g0.checks, 'gpu.revocation'))).toBe('warn');
    expect(findCheck(g0.checks, 'collateral.ocsp')).toMatchObject({ ok: true, detail: expect.stringContaining('cvm-agent collateral import FILE') });
  });

  it('a missing RIM is a collateral.rim failure and a gpu.rim.* failure, both naming the id', async () => {
    await store.putBytes(driverRim, { source: 'import:driver' }, { fileName: 'Driver_RIM_test_no_gpu.swidtag' });
    const b = bundle({ gpus: [gpu(0)] });
    const got = await gatherCollateral(store, b, { at: AT_GPU });
    const g0 = verifyBundle(b, { at: AT_GPU, ...got }).devices.find((d) => d.id === 'gpu0')!.result;
    const rim = findCheck(g0.checks, 'collateral.rim');
    expect(level(rim)).toBe('fail');
    expect(rim.detail).toContain(`RIM ${VBIOS_ID} is not in the collateral cache`);
    expect(rim.detail).toContain('cvm-agent collateral import FILE');
    expect(findCheck(g0.checks, 'gpu.rim.vbios')).toMatchObject({ ok: false, detail: expect.stringContaining(VBIOS_ID) });
    expect(findCheck(g0.checks, 'gpu.rim.driver').ok).toBe(true);
    expect(g0.status).toBe('contraindicated');
  });

  it('online, two GPUs: each RIM and each OCSP response is fetched once, cached, and reported per GPU index', async () => {
    const b = bundle({ gpus: [gpu(0), gpu(3)] });
    const got = await gatherCollateral(store, b, { ...online, at: AT_GPU });
    const rimGets = server.requests.filter((q) => q.url.startsWith('/v1/rim/')).map((q) => decodeURIComponent(q.url.slice('/v1/rim/'.length)));
    expect(rimGets.sort()).toEqual([DRIVER_ID, VBIOS_ID]);
    // The chain's three intermediates (positions 1..3 of 5) are asked about once, not once per GPU.
    expect(server.requests.filter((q) => q.method === 'POST' && q.url === '/ocsp')).toHaveLength(3);
    expect(got.gpuCollateral.ocsp).toHaveLength(3);
    expect(Object.keys(got.collateralChecks.gpu).sort()).toEqual(['0', '3']);
    for (const idx of [0, 3]) {
      const checks = got.collateralChecks.gpu[idx]!;
      expect(findCheck(checks, 'collateral.rim')).toMatchObject({ ok: true, detail: expect.stringContaining(`fetched from ${server.url}/v1/rim/`) });
      expect(level(findCheck(checks, 'collateral.ocsp'))).toBe('pass');
      expect(findCheck(checks, 'collateral.ocsp').detail.match(/OCSP response for serial/g)).toHaveLength(3);
    }
    const devices = verifyBundle(b, { at: AT_GPU, ...got }).devices;
    expect(devices.map((d) => d.id)).toEqual(['cpu0', 'gpu0', 'gpu3']);
    for (const d of devices.slice(1)) {
      expect(findCheck(d.result.checks, 'gpu.rim.driver').ok).toBe(true);
      expect(findCheck(d.result.checks, 'gpu.measurements').ok).toBe(true);
      // The responses reached the verifier (which rejects the fake responder's signature).
      expect(findCheck(d.result.checks, 'gpu.revocation').detail).not.toContain('no OCSP responses supplied');
    }
    expect(
      (await store.list()).entries
        .map((e) => e.meta.kind)
        .filter((k) => k === 'rim' || k === 'ocsp')
        .sort(),
    ).toEqual(['ocsp', 'ocsp', 'ocsp', 'rim', 'rim']);

    server.requests.length = 0;
    const cached = await gatherCollateral(store, b, { at: AT_GPU });
    expect(server.requests).toHaveLength(0);
    expect(cached.gpuCollateral.ocsp).toHaveLength(3);
    expect(level(findCheck(cached.collateralChecks.gpu[3]!, 'collateral.ocsp'))).toBe('pass');
    expect(findCheck(cached.collateralChecks.gpu[3]!, 'collateral.ocsp').detail).toContain('from the cache');
  });

  it('online: a RIM the service has not published is a failure that says so', async () => {
    const b = bundle({ gpus: [gpu(0)] });
    const got = await gatherCollateral(store, b, { ...online, at: AT_GPU, urls: { ...online.urls, rim: `${server.url}/nope` } });
    const rim = findCheck(got.collateralChecks.gpu[0]!, 'collateral.rim');
    expect(level(rim)).toBe('fail');
    expect(rim.detail).toMatch(/not published/);
  });
});

describe('daemon wiring (collateralVerifier)', () => {
  it('opens the cache at collateral.dir and verifies with what it finds there', async () => {
    await store.putBytes(milanVcek, { source: 'import:vcek' });
    const verify = collateralVerifier({ dir, online: false, timeoutMs: 1_000 }, { policyId: 'test' });
    const r = await verify(bundle(), AT_SNP);
    const cpu = r.devices[0]!;
    expect(cpu.policyId).toBe('test');
    expect(findCheck(cpu.result.checks, 'collateral.vcek').ok).toBe(true);
    expect(findCheck(cpu.result.checks, 'snp.signature').ok).toBe(true);
    const empty = collateralVerifier({ dir: join(dir, 'empty'), online: false, timeoutMs: 1_000 }, {});
    expect(findCheck((await empty(bundle(), AT_SNP)).devices[0]!.result.checks, 'snp.signature').ok).toBe(false);
  });
});

describe('hostile evidence', () => {
  it('a GPU whose reported driver version makes an invalid RIM id ("545..0") fails collateral.rim, never throws', async () => {
    // Found by the property below (fast-check seed 420080498): one byte of the report turned "545.00" into "545..0".
    const g = gpu(0);
    const at = g.report.indexOf(Buffer.from('545.00'));
    expect(at).toBeGreaterThan(0);
    const report = Buffer.from(g.report);
    report.write('545..0', at, 'latin1');
    const got = await gatherCollateral(new CollateralStore(join(dir, 'none')), bundle({ gpus: [{ ...g, report }] }), { at: AT_SNP });
    const rim = got.collateralChecks.gpu[0]!.find((c) => c.name === 'collateral.rim');
    expect(rim).toMatchObject({ ok: false });
    expect(rim!.detail).toMatch(/invalid collateral RIM id .*545\.\.0/);
  });

  it('mutated CPU and GPU reports and chains never make gatherCollateral throw (empty cache, offline)', async () => {
    const empty = new CollateralStore(join(dir, 'none'));
    const g = gpu(0);
    const hclReport = vector('snp/trustee_az-snp-vtpm_hcl-report.bin');
    const mutate = (b: Buffer, edits: Array<[number, number]>, cut: number) => {
      const out = Buffer.from(b.subarray(0, Math.max(0, b.length - cut)));
      for (const [i, v] of edits) if (out.length > 0) out[i % out.length] = v;
      return out;
    };
    const edits = fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 });
    await fc.assert(
      fc.asyncProperty(edits, edits, fc.nat({ max: 40 }), fc.boolean(), fc.string({ maxLength: 20 }), async (cpuEdits, gpuEdits, cut, azure, junk) => {
        const cpuReport = mutate(azure ? hclReport : milanReport, cpuEdits, cut % 3 === 0 ? cut : 0);
        const b = bundle({
          cpu: {
            kind: azure ? 'azure-snp-vtpm' : 'snp',
            source: 'sev-guest',
            report: cpuReport,
            certificates: cut % 5 === 0 ? [mutate(milanVcek, cpuEdits, 0)] : [],
          },
          gpus: [
            {
              ...g,
              report: mutate(g.report, gpuEdits, cut % 2 === 0 ? cut : 0),
              certChainPem: cut % 7 === 0 ? g.certChainPem.slice(0, 900) + junk : g.certChainPem,
            },
          ],
        });
        const got = await gatherCollateral(empty, b, { at: AT_SNP });
        for (const c of [...got.collateralChecks.cpu, ...got.collateralChecks.gpu[0]!]) expect(c.name).toMatch(/^collateral\.(vcek|crl|rim|ocsp)$/);
      }),
      { numRuns: FC_RUNS },
    );
  }, 120_000);
});

describe("NVSwitch: RIM and OCSP, looked up like a GPU's", () => {
  it('offline, the switch RIM imported under its file name: collateral.rim passes on switch0 and the golden measurements are compared', async () => {
    await store.putBytes(switchRim, { source: `import:${SWITCH_RIM_FILE}` }, { fileName: SWITCH_RIM_FILE });
    const b = bundle({ switches: [nvswitch(0)] });
    const got = await gatherCollateral(store, b, { at: AT_SWITCH });
    expect([...got.gpuCollateral.rims.byId.keys()]).toEqual([SWITCH_RIM_ID]);
    expect(Object.keys(got.collateralChecks.switch!)).toEqual(['0']);
    expect(server.requests).toHaveLength(0);
    const s0 = verifyBundle(b, { at: AT_SWITCH, ...got }).devices.find((d) => d.id === 'switch0')!.result;
    expect(findCheck(s0.checks, 'collateral.rim')).toMatchObject({ ok: true, detail: expect.stringContaining(SWITCH_RIM_ID) });
    for (const n of ['switch.rim.vbios', 'switch.measurements', 'switch.signature']) expect(findCheck(s0.checks, n), n).toMatchObject({ ok: true });
    // No OCSP cached: switch.revocation warns, collateral.ocsp names the fix.
    expect(level(findCheck(s0.checks, 'switch.revocation'))).toBe('warn');
    expect(findCheck(s0.checks, 'collateral.ocsp').detail).toContain('cvm-agent collateral import FILE');
  });

  it('offline without the switch RIM: collateral.rim and switch.rim.vbios fail, both naming NV_SWITCH_BIOS_...', async () => {
    const b = bundle({ switches: [nvswitch(2)] });
    const got = await gatherCollateral(store, b, { at: AT_SWITCH });
    const s2 = verifyBundle(b, { at: AT_SWITCH, ...got }).devices.find((d) => d.id === 'switch2')!.result;
    expect(findCheck(s2.checks, 'collateral.rim')).toMatchObject({
      ok: false,
      detail: expect.stringContaining(`RIM ${SWITCH_RIM_ID} is not in the collateral cache`),
    });
    expect(findCheck(s2.checks, 'switch.rim.vbios')).toMatchObject({ ok: false, detail: expect.stringContaining(SWITCH_RIM_ID) });
  });

  it('online, two switches: the switch RIM and the 3 OCSP answers for the LS10 chain are fetched once, cached, and reported per switch', async () => {
    const b = bundle({ switches: [nvswitch(0), nvswitch(1)] });
    const got = await gatherCollateral(store, b, { ...online, at: AT_SWITCH });
    const rimGets = server.requests.filter((q) => q.url.startsWith('/v1/rim/')).map((q) => decodeURIComponent(q.url.slice('/v1/rim/'.length)));
    expect(rimGets).toEqual([SWITCH_RIM_ID]);
    expect(server.requests.filter((q) => q.method === 'POST' && q.url === '/ocsp')).toHaveLength(3);
    expect(got.gpuCollateral.ocsp).toHaveLength(3);
    for (const idx of [0, 1]) {
      expect(findCheck(got.collateralChecks.switch![idx]!, 'collateral.rim').detail).toContain(`fetched from ${server.url}/v1/rim/`);
      expect(findCheck(got.collateralChecks.switch![idx]!, 'collateral.ocsp').detail.match(/OCSP response for serial/g)).toHaveLength(3);
    }
    server.requests.length = 0;
    const cached = await gatherCollateral(store, b, { at: AT_SWITCH });
    expect(server.requests).toHaveLength(0);
    expect(cached.gpuCollateral.rims.byId.has(SWITCH_RIM_ID)).toBe(true);
    expect(cached.gpuCollateral.ocsp).toHaveLength(3);
  });

  it('a switch report that does not parse gets no RIM lookup (switch.report.parse fails on its own)', async () => {
    const b = bundle({ switches: [{ ...nvswitch(0), report: Buffer.alloc(40) }] });
    const got = await gatherCollateral(store, b, { ...online, at: AT_SWITCH });
    expect(server.requests.filter((q) => q.url.startsWith('/v1/rim/'))).toHaveLength(0);
    expect(got.collateralChecks.switch![0]!.map((c) => c.name)).toEqual(['collateral.ocsp']);
  });
});
