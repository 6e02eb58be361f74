/**
 * The NVSwitch (LS10) verifier on the real public switch evidence (test/vectors/nvidia/attestation-sdk/
 * switch-ls10): the report, its 5-certificate chain to the pinned NVIDIA Device Identity CA and its
 * VBIOS RIM verify; the negative samples, a GPU chain, a wrong nonce, an edited RIM, every single-bit
 * flip and every truncation are rejected by a named check. In the bit-flip sweep the report signature
 * check on the unchanged signature is answered from the SHA-384 digest of what the verifier hashed
 * (test/helpers/signature-oracle.ts); flips in the signature itself verify with real ECDSA.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { vector } from '../../../helpers/paths.js';
import { findCheck } from '../../../helpers/checks.js';
import { reportBytesFromFile } from '../../../../agent/verify/nvidia/gpu-report.js';
import { switchBiosRimId, verifySwitchReport } from '../../../../agent/verify/nvidia/switch-verify.js';
import { decodeGpuEvidenceJson } from '../../../../agent/formats/nvidia-evidence-json.js';
import { readPemChain, verifyGpuReport } from '../../../../agent/verify/nvidia/gpu-verify.js';
import { parseSwitchReport } from '../../../../agent/verify/nvidia/switch-report.js';
import type { SignatureOracle } from '../../../helpers/signature-oracle.js';

const oracle = vi.hoisted(() => ({}) as SignatureOracle);
vi.mock('node:crypto', async (importOriginal) => (await import('../../../helpers/signature-oracle.js')).withSignatureOracle(importOriginal, oracle));

const D = 'nvidia/attestation-sdk/switch-ls10';
const report = reportBytesFromFile(vector(`${D}/switchAttestationReport.txt`));
const certChainPem = vector(`${D}/switchCertChain.txt`).toString('latin1');
const rim = vector(`${D}/switchVBIOSRim_NV_SWITCH_BIOS_5612_0002_890_9610550001.xml`).toString('utf8');
const nonce = Buffer.from('931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb', 'hex');
/** Inside the RIM signer's validity (from 2026-05-20) and the device chain's. */
const AT = new Date('2026-06-30T00:00:00Z');
const options = { at: AT, expectedNonce: nonce, rims: { switchBios: rim } };

const failed = (r: { checks: { name: string; ok: boolean }[] }) => r.checks.filter((c) => !c.ok).map((c) => c.name);

describe('the real LS10 switch evidence', () => {
  it('verifies: signature, chain to the pinned root, nonce, switch fields, VBIOS RIM and all 31 measurements', () => {
    const r = verifySwitchReport({ report, certChainPem, arch: 'LS10' }, options);
    expect(failed(r)).toEqual([]);
    expect(r.status).toBe('warning'); // revocation not checked: no OCSP given
    expect(findCheck(r.checks, 'switch.measurements').detail).toMatch(/all 31 active golden measurements match/);
    expect(findCheck(r.checks, 'switch.chain.root').detail).toMatch(/pinned NVIDIA Device Identity CA/);
    expect(r.claims).toMatchObject({
      arch: 'ls10',
      hwmodel: 'LS_10 A01 FSP BROM',
      vbiosVersion: '96.10.55.00.01',
      vbiosRimId: 'NV_SWITCH_BIOS_5612_0002_890_9610550001',
      switchPdi: '203eb31ad9ed0008',
      positionId: 2,
      lockStatus: 1,
      measres: 'success',
    });
    expect(r.claims!.revocation.map((x) => x.state)).toEqual(['not-checked', 'not-checked', 'not-checked']);
  });

  it("the RIM id is NVIDIA's (nvswitch_admin_utils.py get_vbios_rim_file_id)", () => {
    expect(switchBiosRimId('96.10.55.00.01')).toBe('NV_SWITCH_BIOS_5612_0002_890_9610550001');
    expect(switchBiosRimId('96.10.6d.00.01')).toBe('NV_SWITCH_BIOS_5612_0002_890_96106D0001');
  });

  it('is read from NVIDIA serialized evidence (arch LS10)', () => {
    const decoded = decodeGpuEvidenceJson(vector(`${D}/switch_evidence_ls10.json`));
    expect(decoded.gpus).toHaveLength(1);
    const r = verifySwitchReport(decoded.gpus[0]!, options);
    expect(failed(r)).toEqual([]);
  });

  it('is refused by name on the GPU path (gpu.nvswitch), never as a VBIOS parse error', () => {
    const r = verifyGpuReport({ report, certChainPem }, { at: AT, expectedNonce: nonce });
    expect(r.checks.map((c) => c.name)).toEqual(['gpu.nvswitch']);
    expect(r.checks[0]!.detail).toMatch(/NVSwitch evidence is not GPU evidence/);
  });
});

describe('hostile switch evidence', () => {
  it('the invalid-signature sample fails switch.signature', () => {
    const bad = reportBytesFromFile(vector(`${D}/switchAttestationReportInvalidSignature.txt`));
    expect(failed(verifySwitchReport({ report: bad, certChainPem }, options))).toContain('switch.signature');
  });

  it('a switch report with a GPU (GH100) chain: switch.signature and switch.arch fail', () => {
    const gpuChain = vector('nvidia/nvtrust/hopper-550/hopperCertChain.txt').toString('latin1');
    const f = failed(verifySwitchReport({ report, certChainPem: gpuChain }, { ...options, at: new Date('2024-06-01T00:00:00Z') }));
    expect(f).toContain('switch.signature');
    expect(f).toContain('switch.arch');
  });

  it('a GPU report offered as a switch is refused (switch.report.parse: GPU opaque ids are not switch fields)', () => {
    const gpu = reportBytesFromFile(vector('nvidia/nvtrust/hopper-550/hopperAttestationReport.txt'));
    expect(failed(verifySwitchReport({ report: gpu, certChainPem }, options))).toEqual(['switch.report.parse']);
  });

  it('evidence claiming a GPU architecture for a switch chain fails switch.arch', () => {
    expect(failed(verifySwitchReport({ report, certChainPem, arch: 'HOPPER' }, options))).toEqual(['switch.arch']);
  });

  it('a different nonce fails switch.nonce (stale or replayed)', () => {
    expect(failed(verifySwitchReport({ report, certChainPem }, { ...options, expectedNonce: Buffer.alloc(32, 7) }))).toEqual(['switch.nonce']);
  });

  it('an edited RIM fails switch.rim.vbios, and then the measurements are not compared', () => {
    const edited = vector('nvidia/attestation-sdk/negative/NV_SWITCH_BIOS_5612_0002_890_9610550001_measurement_mismatch.xml').toString('utf8');
    const f = failed(verifySwitchReport({ report, certChainPem }, { ...options, rims: { switchBios: edited } }));
    expect(f).toEqual(['switch.rim.vbios', 'switch.measurements']);
  });

  it('no RIM: switch.rim.vbios names the RIM id to supply', () => {
    const r = verifySwitchReport({ report, certChainPem }, { at: AT, expectedNonce: nonce });
    expect(findCheck(r.checks, 'switch.rim.vbios')).toMatchObject({ ok: false });
    expect(findCheck(r.checks, 'switch.rim.vbios').detail).toMatch(/NV_SWITCH_BIOS_5612_0002_890_9610550001 not found/);
  });

  it('every truncation is switch.report.parse', () => {
    for (let len = 0; len < report.length; len++) {
      expect(failed(verifySwitchReport({ report: report.subarray(0, len), certChainPem }, options))).toEqual(['switch.report.parse']);
    }
  });

  // Split by region so each part stays inside the test timeout on a shared machine.
  const skip = new Set(['rim', 'revocation'] as const);
  describe('every single-bit flip, the report signature answered from its digest', () => {
    beforeAll(() => {
      const parsed = parseSwitchReport(report);
      const leaf = readPemChain(certChainPem).certs![0]!;
      expect(oracle.register('sha384', parsed.signedBytes, leaf.publicKey, parsed.signature, 'ieee-p1363')).toBe(true);
    });
    afterAll(() => oracle.clear());

    for (const [name, from, to] of [
      ['request and response header (0..45)', 0, 45],
      ['measurement record (45..1750)', 45, 1750],
      ['nonce, opaque data, signature (1750..2168)', 1750, 2168],
    ] as const) {
      it(`every single-bit flip is rejected: ${name}`, () => {
        const before = { ...oracle.stats };
        let rejected = 0;
        for (let pos = from; pos < to; pos++) {
          for (let bit = 0; bit < 8; bit++) {
            const b = Buffer.from(report);
            b[pos] = b[pos]! ^ (1 << bit);
            const f = failed(verifySwitchReport({ report: b, certChainPem }, { at: AT, expectedNonce: nonce, skip }));
            if (f.includes('switch.report.parse') || f.includes('switch.signature')) rejected++;
          }
        }
        expect(rejected).toBe((to - from) * 8);
        if (from > 45)
          expect(oracle.stats.real - before.real).toBeGreaterThanOrEqual(96 * 8); // the signature's flips
        else expect(oracle.stats.fromDigest).toBeGreaterThan(before.fromDigest);
      }, 180_000);
    }
  });

  it('a sample of flips (one in every 16 bytes) is rejected with real ECDSA verification', () => {
    const real = oracle.stats.real;
    for (let pos = 0; pos < report.length; pos += 16) {
      const b = Buffer.from(report);
      b[pos] = b[pos]! ^ (1 << ((pos >> 4) & 7));
      const f = failed(verifySwitchReport({ report: b, certChainPem }, { at: AT, expectedNonce: nonce, skip }));
      expect(f.includes('switch.report.parse') || f.includes('switch.signature'), `byte ${pos}: ${f}`).toBe(true);
    }
    expect(oracle.stats.real).toBeGreaterThan(real);
  });
});
