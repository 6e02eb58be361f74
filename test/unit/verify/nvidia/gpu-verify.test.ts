/**
 * GPU evidence verification against the real NVIDIA vectors (test/vectors/nvidia): the complete 545 set
 * end to end, the VBIOS part of the 535 set, signature + chain + nonce of every other real report, every
 * negative vector, and policy/NVML checks.
 */
import { describe, expect, it } from 'vitest';
import { X509Certificate } from 'node:crypto';
import { vector } from '../../../helpers/paths.js';
import type { GpuEvidenceRecord } from '../../../../agent/formats/gpu-evidence-record.js';
import { verifyGpuEvidence, type GpuVerifyOptions, verifyGpus } from '../../../../agent/attest/verify-and-appraise.js';
import { parseGpuReport, reportBytesFromFile } from '../../../../agent/verify/nvidia/gpu-report.js';
import { parseGpuEvidenceJson } from '../../../../agent/formats/nvidia-evidence-json.js';
import { compareMeasurementsDetailed, parseRim, type Rim } from '../../../../agent/verify/nvidia/rim/index.js';
import { nvidiaDeviceRoot, NVIDIA_DEVICE_ROOT_SHA256 } from '../../../../agent/roots/nvidia-device.js';
import { gpuPolicyFrom } from '../../../../agent/appraise/gpu-policy.js';
import { findCheck } from '../../../helpers/checks.js';

const N = 'nvidia/nvtrust/hopper-545-complete';
const AT_2024 = new Date('2024-06-01T00:00:00Z');
const text = (p: string) => vector(p).toString('utf8');
const report = (p: string) => reportBytesFromFile(vector(p));

const ev545: GpuEvidenceRecord = { report: report(`${N}/attestationReport.txt`), certChainPem: text(`${N}/gpuAkCertChain.txt`) };
const nonce545 = Buffer.from('4cff7f5380ead8fad8ec2c531c110aca4302a88f603792801a8ca29ee151af2e', 'hex');
const rims545 = { driver: text(`${N}/Driver_RIM_test_no_gpu.swidtag`), vbios: text(`${N}/1010_0200_882_96005E0001_test_no_gpu.swidtag`) };
const full545: GpuVerifyOptions = { at: AT_2024, expectedNonce: nonce545, rims: rims545 };

const EXPECTED_NAMES = [
  'gpu.report.parse',
  'gpu.chain',
  'gpu.chain.root',
  'gpu.signature',
  'gpu.fwid',
  'gpu.arch',
  'gpu.nonce',
  'gpu.driver-version',
  'gpu.vbios-version',
  'gpu.rim.driver',
  'gpu.rim.vbios',
  'gpu.measurements',
  'gpu.revocation',
];

describe('pinned NVIDIA Device Identity root', () => {
  it('embeds the nvtrust verifier_device_root.pem with the documented fingerprint', () => {
    const root = nvidiaDeviceRoot();
    expect(NVIDIA_DEVICE_ROOT_SHA256).toBe('102bf659d5419614c9d8e6aecebc80454eb26b1df6a769ac720b9a690b167b48');
    expect(root.der.equals(new X509Certificate(vector('nvidia/nvtrust/roots/verifier_device_root.pem')).raw)).toBe(true);
    expect(root.x509.subject).toContain('CN=NVIDIA Device Identity CA');
  });
});

describe('the complete 545 set verifies end to end (pinned 2024-06-01, offline)', () => {
  const r = verifyGpuEvidence(ev545, full545);

  it('is ok; the only caveat is unchecked revocation', () => {
    expect(r.checks.map((c) => c.name)).toEqual(EXPECTED_NAMES);
    for (const c of r.checks) if (c.name !== 'gpu.revocation') expect(c, c.name).toMatchObject({ ok: true });
    expect(r.checks.filter((c) => c.warning).map((c) => c.name)).toEqual(['gpu.revocation']);
    expect(findCheck(r.checks, 'gpu.revocation').detail).toMatch(/revocation not checked/);
    expect(r.ok).toBe(true);
    expect(r.status).toBe('warning');
    expect(r.simulated).toBe(false);
  });

  it('compares all golden measurements, skipping index 35 because NVDEC0 is disabled', () => {
    expect(findCheck(r.checks, 'gpu.measurements').detail).toMatch(/all 32 active golden measurements match.*index 35 skipped/);
  });

  it('produces the claims NVIDIA would', () => {
    expect(r.claims).toMatchObject({
      arch: 'hopper',
      hwmodel: 'GH100 A01 GSP BROM',
      ueid: '460032006552296075780760406069494258829212062021',
      driverVersion: '545.00',
      vbiosVersion: '96.00.5E.00.01',
      driverRimId: 'NV_GPU_DRIVER_GH100_545.00',
      vbiosRimId: 'NV_GPU_VBIOS_1010_0200_882_96005E0001',
      measres: 'success',
      secboot: true,
      dbgstat: 'disabled',
      oemid: '5703',
      nonce: nonce545.toString('hex'),
      mismatchedMeasurements: [],
    });
    expect(r.claims?.revocation.map((x) => x.subject)).toEqual(['GH100 A01 GSP BROM', 'NVIDIA GH100 Provisioner ICA 1', 'NVIDIA GH100 Identity']);
  });

  it('finds RIMs by id in a collection', () => {
    const byId = new Map([
      ['NV_GPU_DRIVER_GH100_545.00', rims545.driver],
      ['NV_GPU_VBIOS_1010_0200_882_96005E0001', rims545.vbios],
    ]);
    const viaId = verifyGpuEvidence(ev545, { at: AT_2024, expectedNonce: nonce545, rims: { byId } });
    expect(findCheck(viaId.checks, 'gpu.measurements').ok).toBe(true);
    expect(viaId.ok).toBe(true);
  });

  it('a missing RIM is a failure naming the RIM id', () => {
    const noRims = verifyGpuEvidence(ev545, { at: AT_2024, expectedNonce: nonce545 });
    expect(noRims.ok).toBe(false);
    expect(findCheck(noRims.checks, 'gpu.rim.driver')).toMatchObject({ ok: false, detail: expect.stringContaining('NV_GPU_DRIVER_GH100_545.00 not found') });
    expect(findCheck(noRims.checks, 'gpu.rim.vbios')).toMatchObject({
      ok: false,
      detail: expect.stringContaining('NV_GPU_VBIOS_1010_0200_882_96005E0001 not found'),
    });
    expect(findCheck(noRims.checks, 'gpu.measurements').ok).toBe(false);
    expect(noRims.claims?.measres).toBe('fail');
    expect(noRims.claims?.secboot).toBeNull();
  });

  it('skip=rim turns RIM checks into visible warnings', () => {
    const skipped = verifyGpuEvidence(ev545, { at: AT_2024, expectedNonce: nonce545, skip: new Set(['rim']) });
    expect(skipped.ok).toBe(true);
    for (const n of ['gpu.rim.driver', 'gpu.rim.vbios', 'gpu.measurements']) expect(findCheck(skipped.checks, n)).toMatchObject({ ok: true, warning: true });
    expect(skipped.claims?.measres).toBe('not-checked');
  });

  it('fails after the RIM signer certificates expired (2025-06-26)', () => {
    const late = verifyGpuEvidence(ev545, { ...full545, at: new Date('2025-07-01T00:00:00Z') });
    expect(late.ok).toBe(false);
    expect(findCheck(late.checks, 'gpu.rim.driver').detail).toMatch(/rim\.chain\.validity: .*expired/);
    expect(findCheck(late.checks, 'gpu.rim.vbios').detail).toMatch(/expired/);
    expect(findCheck(late.checks, 'gpu.chain').ok).toBe(true); // device chain runs to 9999
  });

  it('rejects a RIM for another version', () => {
    const swapped = verifyGpuEvidence(ev545, { ...full545, rims: { driver: rims545.vbios, vbios: rims545.driver } });
    expect(findCheck(swapped.checks, 'gpu.rim.driver').detail).toMatch(/the RIM is for version 96\.00\.5E\.00\.01, the report says 545\.00/);
  });
});

describe('the 535 set: VBIOS part matches the genuine PROD RIM', () => {
  const ev: GpuEvidenceRecord = {
    report: report('nvidia/attestation-sdk/hopper-535/hopperAttestationReport.txt'),
    certChainPem: text('nvidia/attestation-sdk/hopper-535/hopperCertChain.txt'),
  };
  const vbiosXml = text('nvidia/nvtrust/rims-vbios-samples/1010_0200_882_96005E0001_PROD.swidtag');
  const noDriver: Rim = { ...parseRim(vbiosXml), colloquialVersion: 'none', measurements: [] };

  it('VBIOS RIM verifies; missing driver RIM fails naming NV_GPU_DRIVER_GH100_535.86.09', () => {
    const r = verifyGpuEvidence(ev, {
      at: AT_2024,
      expectedNonce: Buffer.from('27a328247bf7935c993341cf587be6f05986ccce4fe7ba2c54100bd616a58f66', 'hex'),
      rims: { vbios: vbiosXml },
    });
    expect(findCheck(r.checks, 'gpu.rim.vbios').ok).toBe(true);
    expect(findCheck(r.checks, 'gpu.rim.driver').detail).toContain('NV_GPU_DRIVER_GH100_535.86.09 not found');
    for (const n of ['gpu.signature', 'gpu.chain', 'gpu.chain.root', 'gpu.nonce']) expect(findCheck(r.checks, n).ok).toBe(true);
  });

  it('every active VBIOS golden value matches the report', () => {
    const cmp = compareMeasurementsDetailed(parseGpuReport(ev.report).measurements, noDriver, parseRim(vbiosXml), { nvdec0Status: 0x55 });
    expect(cmp.mismatches).toEqual([]);
    expect(cmp.compared).toBe(12);
  });

  it('the negative VBIOS RIM mismatches at RIM index 9', () => {
    const bad = parseRim(text('nvidia/attestation-sdk/negative/NV_GPU_VBIOS_1010_0200_882_96005E0001_measurement_mismatch.xml'));
    const cmp = compareMeasurementsDetailed(parseGpuReport(ev.report).measurements, noDriver, bad, { nvdec0Status: 0x55 });
    expect(cmp.mismatches.map((m) => m.index)).toEqual([9]);
  });
});

interface IndexFile {
  files: Record<
    string,
    {
      parsed?: { request: { nonce: string }; opaque: { driver_version: string }; expected_vbios_rim_id: string };
      entries?: { nonce: string; ueid: string; expected_vbios_rim_id: string; driver_version: string }[];
    } & Record<string, unknown>
  >;
}
const index = JSON.parse(text('nvidia/index.json')) as IndexFile;

describe('every other real report passes signature + chain + nonce', () => {
  const cases = [
    ['nvidia/nvtrust/hopper-550/hopperAttestationReport.txt', 'nvidia/nvtrust/hopper-550/hopperCertChain.txt'],
    ['nvidia/attestation-sdk/hopper-580-golden-parse/hopperAttestationReport.txt', 'nvidia/attestation-sdk/hopper-580-golden-parse/hopperCertChain.txt'],
    ['nvidia/attestation-sdk/hopper-535/hopperAttestationReport.txt', 'nvidia/attestation-sdk/hopper-535/hopperCertChain.txt'],
  ] as const;
  for (const [rep, chain] of cases) {
    it(rep, () => {
      const entry = index.files[rep.slice('nvidia/'.length)]!;
      const parsed = entry.parsed!;
      const r = verifyGpuEvidence(
        { report: report(rep), certChainPem: text(chain), arch: 'HOPPER' },
        { at: new Date(), expectedNonce: Buffer.from(parsed.request.nonce, 'hex'), skip: new Set(['rim']) },
      );
      for (const n of ['gpu.report.parse', 'gpu.signature', 'gpu.chain', 'gpu.chain.root', 'gpu.nonce', 'gpu.fwid', 'gpu.arch'])
        expect(findCheck(r.checks, n), n).toMatchObject({ ok: true });
      expect(r.ok).toBe(true);
      expect(r.claims?.vbiosRimId).toBe(parsed.expected_vbios_rim_id);
      expect(r.claims?.driverVersion).toBe(parsed.opaque.driver_version);
    });
  }

  it('550 and 580 carry an FWID that equals the AK certificate FWID', () => {
    for (const dir of ['nvidia/nvtrust/hopper-550', 'nvidia/attestation-sdk/hopper-580-golden-parse']) {
      const r = verifyGpuEvidence(
        { report: report(`${dir}/hopperAttestationReport.txt`), certChainPem: text(`${dir}/hopperCertChain.txt`) },
        { at: new Date(), skip: new Set(['rim']) },
      );
      expect(findCheck(r.checks, 'gpu.fwid').detail).toMatch(/equals the AK certificate's \(2\.23\.133\.5\.4\.1\)/);
    }
  });

  for (const file of ['evidence_hopper_590_12.json', 'hopper_evidence.json', 'hopper_evidence_cert_hold.json', 'multi_gpu_hopper.json']) {
    it(`evidence-json/${file}: every entry`, async () => {
      const entries = parseGpuEvidenceJson(vector(`nvidia/attestation-sdk/evidence-json/${file}`));
      const expected = index.files[`attestation-sdk/evidence-json/${file}`]!.entries!;
      expect(entries.length).toBe(expected.length);
      for (const [i, e] of entries.entries()) {
        const r = verifyGpuEvidence(e, { at: new Date(), expectedNonce: Buffer.from(expected[i]!.nonce, 'hex') });
        for (const n of ['gpu.report.parse', 'gpu.signature', 'gpu.chain', 'gpu.chain.root', 'gpu.nonce', 'gpu.fwid', 'gpu.arch'])
          expect(findCheck(r.checks, n), `${file}[${i}] ${n}`).toMatchObject({ ok: true });
        expect(r.claims?.ueid).toBe(expected[i]!.ueid);
        expect(r.claims?.driverVersion).toBe(expected[i]!.driver_version);
        expect(r.claims?.vbiosRimId).toBe(expected[i]!.expected_vbios_rim_id);
        expect(findCheck(r.checks, 'gpu.rim.vbios').detail).toContain(`${expected[i]!.expected_vbios_rim_id} not found`);
      }
      const all = await verifyGpus(entries, { at: new Date(), expectedNonce: Buffer.from(expected[0]!.nonce, 'hex'), skip: new Set(['rim']) });
      expect(all.ok).toBe(true);
      expect(all.perGpu.length).toBe(expected.length);
      expect(all.checks.map((c) => [c.name, c.ok])).toEqual([
        ['gpus.count', true],
        ['gpus.unique', true],
        ['gpus.mode', true],
      ]);
    });
  }
});

describe('negative vectors fail with the right reason', () => {
  it('attestation-sdk hopperAttestationReportInvalidSignature.txt does not verify against the 535 chain', () => {
    const r = verifyGpuEvidence(
      {
        report: report('nvidia/attestation-sdk/negative/hopperAttestationReportInvalidSignature.txt'),
        certChainPem: text('nvidia/attestation-sdk/hopper-535/hopperCertChain.txt'),
      },
      { at: AT_2024, skip: new Set(['rim']) },
    );
    expect(r.ok).toBe(false);
    expect(findCheck(r.checks, 'gpu.signature')).toMatchObject({ ok: false, detail: expect.stringMatching(/does not verify with the AK/) });
    expect(findCheck(r.checks, 'gpu.report.parse').ok).toBe(true);
  });

  it('go-nvtrust invalidCertChain.txt (BROM missing) breaks the chain', () => {
    const r = verifyGpuEvidence({ ...ev545, certChainPem: text('nvidia/go-nvtrust/invalidCertChain.txt') }, full545);
    expect(r.ok).toBe(false);
    const c = findCheck(r.checks, 'gpu.chain');
    expect(c.ok).toBe(false);
    expect(c.detail).toContain('expected 5 certificates, got 4');
    expect(c.detail).toContain('certificate 0 (GH100 A01 GSP FMC LF) is not signed by certificate 1 (NVIDIA GH100 Provisioner ICA 1)');
    expect(findCheck(r.checks, 'gpu.signature').ok).toBe(true); // the leaf is genuine; the chain is what is broken
  });

  it('a chain ending in another root fails gpu.chain.root', () => {
    const pem = text(`${N}/gpuAkCertChain.txt`);
    const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g)!;
    const forged = [...blocks.slice(0, 4), text('nvidia/attestation-sdk/negative/incorrect_rim_root.crt')].join('\n');
    const r = verifyGpuEvidence({ ...ev545, certChainPem: forged }, full545);
    expect(findCheck(r.checks, 'gpu.chain.root')).toMatchObject({ ok: false, detail: expect.stringContaining('not the pinned NVIDIA Device Identity CA') });
  });

  it('a report with the wrong chain fails the signature and the FWID', () => {
    const r = verifyGpuEvidence(
      {
        report: report('nvidia/nvtrust/hopper-550/hopperAttestationReport.txt'),
        certChainPem: text('nvidia/attestation-sdk/hopper-580-golden-parse/hopperCertChain.txt'),
      },
      { at: AT_2024, skip: new Set(['rim']) },
    );
    expect(findCheck(r.checks, 'gpu.signature').ok).toBe(false);
    expect(findCheck(r.checks, 'gpu.fwid')).toMatchObject({ ok: false, detail: expect.stringContaining('differs from the AK certificate') });
  });

  it.each([
    ['incorrect_signature_driver_rim.xml', /rim\.signature\.value/],
    ['incorrect_cert_chain_driver_rim.xml', /rim\.chain/],
    ['NV_GPU_DRIVER_GH100_535.86.09_measurement_mismatch.xml', /rim\.signature\.reference: the RIM content was modified/],
    ['NV_GPU_DRIVER_GH100_570.124.03_expired.xml', /rim\.signature\.reference/],
  ])('driver RIM negative/%s is rejected', (file, reason) => {
    const r = verifyGpuEvidence(ev545, {
      ...full545,
      at: new Date('2025-03-01T00:00:00Z'),
      rims: { ...rims545, driver: text(`nvidia/attestation-sdk/negative/${file}`) },
    });
    const c = findCheck(r.checks, 'gpu.rim.driver');
    expect(c.ok).toBe(false);
    expect(c.detail).toMatch(reason);
    expect(findCheck(r.checks, 'gpu.measurements').detail).toMatch(/not compared/);
    expect(r.ok).toBe(false);
  });

  it('a wrong nonce is a stale report', () => {
    const r = verifyGpuEvidence(ev545, { ...full545, expectedNonce: Buffer.alloc(32, 1) });
    expect(findCheck(r.checks, 'gpu.nonce')).toMatchObject({ ok: false, detail: expect.stringContaining('stale or replayed') });
    expect(verifyGpuEvidence(ev545, { ...full545, expectedNonce: Buffer.alloc(16) }).ok).toBe(false);
  });

  it('without an expected nonce the freshness gap is a warning, or a failure under requireNonce', () => {
    const r = verifyGpuEvidence(ev545, { ...full545, expectedNonce: undefined });
    expect(findCheck(r.checks, 'gpu.nonce')).toMatchObject({ ok: true, warning: true });
    const strict = verifyGpuEvidence(ev545, { ...full545, expectedNonce: undefined, policy: gpuPolicyFrom({ requireNonce: true }) });
    expect(findCheck(strict.checks, 'gpu.nonce').ok).toBe(false);
  });

  it('a malformed report or chain is a failed check, not an exception', () => {
    const bad = verifyGpuEvidence({ ...ev545, report: ev545.report.subarray(0, 100) }, full545);
    expect(bad.checks).toEqual([expect.objectContaining({ name: 'gpu.report.parse', ok: false })]);
    expect(bad.claims).toBeUndefined();
    const noChain = verifyGpuEvidence({ ...ev545, certChainPem: 'garbage' }, full545);
    expect(findCheck(noChain.checks, 'gpu.chain')).toMatchObject({ ok: false, detail: expect.stringContaining('certificate chain is unreadable') });
    expect(findCheck(noChain.checks, 'gpu.signature').ok).toBe(false);
  });
});

describe('NVML consistency and CC state', () => {
  const base: GpuVerifyOptions = { ...full545 };
  it('driver and VBIOS versions must equal what NVML says (VBIOS case-insensitively)', () => {
    const ok = verifyGpuEvidence({ ...ev545, nvml: { driverVersion: '545.00', vbiosVersion: '96.00.5e.00.01' } }, base);
    expect(findCheck(ok.checks, 'gpu.driver-version').detail).toContain('as NVML reports');
    expect(findCheck(ok.checks, 'gpu.vbios-version').ok).toBe(true);
    const bad = verifyGpuEvidence({ ...ev545, nvml: { driverVersion: '550.00', vbiosVersion: '96.00.5E.00.02' } }, base);
    expect(findCheck(bad.checks, 'gpu.driver-version')).toMatchObject({ ok: false, detail: expect.stringContaining('NVML says 550.00') });
    expect(findCheck(bad.checks, 'gpu.vbios-version').ok).toBe(false);
  });

  it('policy allow-lists of versions', () => {
    const r = verifyGpuEvidence(ev545, { ...base, policy: gpuPolicyFrom({ driverVersions: ['550.90.07'] }) });
    expect(findCheck(r.checks, 'gpu.driver-version').detail).toContain("not in the policy's allowed list");
  });

  it('CC on, devtools off, production environment', () => {
    const good = verifyGpuEvidence({ ...ev545, nvml: { cc: { ccEnabled: true, devToolsMode: false, environment: 'prod' } } }, base);
    for (const n of ['gpu.cc.mode', 'gpu.cc.devtools', 'gpu.cc.environment']) expect(findCheck(good.checks, n)).toMatchObject({ ok: true });
    expect(good.claims?.cc).toEqual({ ccEnabled: true, devToolsMode: false, environment: 'prod' });
    const bad = verifyGpuEvidence({ ...ev545, nvml: { cc: { ccEnabled: false, devToolsMode: true, environment: 'sim' } } }, base);
    for (const n of ['gpu.cc.mode', 'gpu.cc.devtools', 'gpu.cc.environment']) expect(findCheck(bad.checks, n), n).toMatchObject({ ok: false });
    const relaxed = verifyGpuEvidence(
      { ...ev545, nvml: { cc: { ccEnabled: true, devToolsMode: true, environment: 'sim' } } },
      { ...base, policy: gpuPolicyFrom({ allowDevtools: true, environments: ['prod', 'sim'] }) },
    );
    expect(findCheck(relaxed.checks, 'gpu.cc.devtools')).toMatchObject({ ok: true, warning: true });
    expect(findCheck(relaxed.checks, 'gpu.cc.environment').ok).toBe(true);
  });

  it('a missing CC state fails only when the policy requires it', () => {
    expect(verifyGpuEvidence(ev545, base).checks.some((c) => c.name.startsWith('gpu.cc.'))).toBe(false);
    const strict = verifyGpuEvidence(ev545, { ...base, policy: gpuPolicyFrom({ requireCcState: true }) });
    expect(findCheck(strict.checks, 'gpu.cc.mode').ok).toBe(false);
  });

  it('architecture must match the chain and the policy', () => {
    expect(findCheck(verifyGpuEvidence({ ...ev545, arch: 'BLACKWELL' }, base).checks, 'gpu.arch').detail).toContain('the device chain is hopper');
    expect(findCheck(verifyGpuEvidence(ev545, { ...base, policy: gpuPolicyFrom({ architectures: ['blackwell'] }) }).checks, 'gpu.arch').ok).toBe(false);
  });

  it('rejects bad policy keys', () => {
    expect(() => gpuPolicyFrom({ allowDevTools: true })).toThrow(/unknown key/);
    expect(() => gpuPolicyFrom({ environments: ['lab'] })).toThrow(/"environments\[0\]": "lab" is not one of unavailable, sim, prod/);
    expect(() => gpuPolicyFrom({ ocspGraceSeconds: -1 })).toThrow(/"ocspGraceSeconds": must be an integer between 0 and 2592000, got -1/);
  });
});

describe('multi-GPU', () => {
  it('the same GPU twice is a duplicate, and one bad GPU fails the whole', async () => {
    const twice = await verifyGpus([ev545, ev545], full545);
    expect(twice.perGpu.every((r) => r.ok)).toBe(true);
    expect(twice.ok).toBe(false);
    expect(twice.checks.find((c) => c.name === 'gpus.unique')?.detail).toContain('GPU 1 and GPU 0 are the same device');
    const mixed = await verifyGpus(
      [ev545, { ...ev545, report: report('nvidia/attestation-sdk/negative/hopperAttestationReportInvalidSignature.txt') }],
      full545,
    );
    expect(mixed.ok).toBe(false);
    expect(mixed.status).toBe('contraindicated');
    expect(await verifyGpus([], full545)).toMatchObject({ ok: false });
  });
});
