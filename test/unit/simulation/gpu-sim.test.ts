/**
 * Simulated GPUs: the software device chain and RIMs are created once per directory and reused; their
 * reports verify end to end ONLY when the simulation roots are passed, and then say simulated.
 */
import { describe, expect, it, beforeAll } from 'vitest';
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sign } from 'node:crypto';
import {
  buildSimulatedReport,
  loadOrCreateSimGpuIdentity,
  loadSimGpuIdentity,
  simulatedRims,
  simulatedRoots,
  SimulatedGpuSource,
  SIM_FILE,
  type SimGpuIdentity,
} from '../../../agent/simulation/gpu-sim.js';
import { verifyGpuEvidence, type GpuVerifyOptions, verifyGpus } from '../../../agent/attest/verify-and-appraise.js';
import { parseGpuReport } from '../../../agent/verify/nvidia/gpu-report.js';
import { findCheck } from '../../helpers/checks.js';

const nonce = Buffer.alloc(32, 0x5a);
let dir: string;
let id: SimGpuIdentity;
let opts: GpuVerifyOptions;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gpu-sim-'));
  id = await loadOrCreateSimGpuIdentity(dir, 2);
  opts = { at: new Date(), expectedNonce: nonce, rims: { byId: simulatedRims(id).byId }, simulatedRoots: simulatedRoots(id) };
});

describe('simulated GPU identity', () => {
  it('is created once (0600) and reused; more GPUs are added on demand', async () => {
    expect(statSync(join(dir, SIM_FILE)).mode & 0o777).toBe(0o600);
    const again = await loadOrCreateSimGpuIdentity(dir, 3);
    expect(again.root.der.equals(id.root.der)).toBe(true);
    expect(again.gpus[1]!.leaf.der.equals(id.gpus[1]!.leaf.der)).toBe(true);
    expect(again.gpus.length).toBe(3);
    expect((await loadSimGpuIdentity(dir)).gpus.length).toBe(3);
    await expect(loadSimGpuIdentity(join(dir, 'nothing-here'))).rejects.toThrow(/no simulated GPU identity/);
  });

  it('chains are 5 P-384 certificates under "SIMULATED NVIDIA Device Identity CA"', () => {
    expect(id.gpus[0]!.chainPem.match(/BEGIN CERTIFICATE/g)?.length).toBe(5);
    expect(id.gpus[0]!.chainPem).not.toEqual(id.gpus[1]!.chainPem);
  });
});

describe('simulated reports', () => {
  it('have the real layout and verify end to end with the simulation roots, flagged simulated', () => {
    const report = buildSimulatedReport(id, 0, { nonce });
    const parsed = parseGpuReport(report);
    expect(parsed.response.numberOfBlocks).toBe(64);
    expect(parsed.opaque.vbiosVersion).toBe('96.00.9F.00.01');
    const r = verifyGpuEvidence(
      {
        report,
        certChainPem: id.gpus[0]!.chainPem,
        arch: 'HOPPER',
        nvml: { driverVersion: '550.90.07', vbiosVersion: '96.00.9F.00.01', cc: { ccEnabled: true, devToolsMode: false, environment: 'sim' } },
      },
      opts,
    );
    for (const c of r.checks) if (!['gpu.revocation', 'gpu.simulated'].includes(c.name)) expect(c, `${c.name}: ${c.detail}`).toMatchObject({ ok: true });
    expect(findCheck(r.checks, 'gpu.simulated')).toMatchObject({ ok: true });
    expect(findCheck(r.checks, 'gpu.simulated')?.warning).toBeUndefined();
    expect(r.simulated).toBe(true);
    expect(findCheck(r.checks, 'gpu.fwid').detail).toContain('equals');
    expect(findCheck(r.checks, 'gpu.measurements').detail).toMatch(/all 32 active golden measurements match.*index 35 skipped/);
    expect(r.ok).toBe(true);
    expect(r.simulated).toBe(true);
    expect(r.status).toBe('warning');
  });

  it('are rejected without the simulation roots (the real pinned root does not trust them)', () => {
    const report = buildSimulatedReport(id, 0, { nonce });
    const r = verifyGpuEvidence({ report, certChainPem: id.gpus[0]!.chainPem }, { ...opts, simulatedRoots: undefined });
    expect(r.ok).toBe(false);
    expect(r.simulated).toBe(false);
    expect(findCheck(r.checks, 'gpu.chain.root')).toMatchObject({ ok: false, detail: expect.stringContaining('not the pinned NVIDIA Device Identity CA') });
    expect(findCheck(r.checks, 'gpu.rim.driver').ok).toBe(false); // simulated RIMs are not trusted either
  });

  it('a tampered measurement is reported by index', () => {
    const report = buildSimulatedReport(id, 1, { nonce, tamperRimIndices: [9] });
    const r = verifyGpuEvidence({ report, certChainPem: id.gpus[1]!.chainPem }, opts);
    expect(r.ok).toBe(false);
    expect(findCheck(r.checks, 'gpu.measurements').detail).toMatch(/vbios RIM index 9/);
    expect(r.claims?.mismatchedMeasurements.map((m) => [m.index, m.source])).toEqual([[9, 'vbios']]);
    expect(r.claims?.measres).toBe('fail');
  });

  it('a report signed by GPU 0 does not verify with GPU 1 chain; an FWID mismatch is named', () => {
    const report = buildSimulatedReport(id, 0, { nonce });
    const r = verifyGpuEvidence({ report, certChainPem: id.gpus[1]!.chainPem }, opts);
    expect(findCheck(r.checks, 'gpu.signature').ok).toBe(false);
    expect(findCheck(r.checks, 'gpu.fwid').ok).toBe(false);
    // Re-sign a report whose FWID field is GPU 1's with GPU 0's key: signature fine, FWID wrong.
    const parsed = parseGpuReport(report);
    const signed = Buffer.from(parsed.signedBytes);
    const fwidAt = signed.indexOf(id.gpus[0]!.fwid);
    id.gpus[1]!.fwid.copy(signed, fwidAt);
    const forged = Buffer.concat([signed, sign('sha384', signed, { key: id.gpus[0]!.leaf.key, dsaEncoding: 'ieee-p1363' })]);
    const f = verifyGpuEvidence({ report: forged, certChainPem: id.gpus[0]!.chainPem }, opts);
    expect(findCheck(f.checks, 'gpu.signature').ok).toBe(true);
    expect(findCheck(f.checks, 'gpu.fwid')).toMatchObject({ ok: false, detail: expect.stringContaining('differs from the AK certificate') });
  });

  it('8 simulated GPUs verify together; different modes are rejected', async () => {
    const eight = await loadOrCreateSimGpuIdentity(dir, 8);
    const list = eight.gpus.slice(0, 8).map((g, i) => ({ report: buildSimulatedReport(eight, i, { nonce }), certChainPem: g.chainPem }));
    const all = await verifyGpus(list, opts);
    expect(all.ok).toBe(true);
    expect(all.simulated).toBe(true);
    expect(all.perGpu.length).toBe(8);
    const mixed = await verifyGpus(
      [
        { report: buildSimulatedReport(eight, 0, { nonce, featureFlag: 0 }), certChainPem: eight.gpus[0]!.chainPem },
        { report: buildSimulatedReport(eight, 1, { nonce, featureFlag: 2 }), certChainPem: eight.gpus[1]!.chainPem },
      ],
      opts,
    );
    expect(mixed.ok).toBe(false);
    expect(mixed.checks.find((c) => c.name === 'gpus.mode')?.ok).toBe(false);
  });

  it('SimulatedGpuSource collects evidence that verifies', async () => {
    const src = new SimulatedGpuSource(id, 2);
    expect((await src.list()).length).toBe(2);
    expect((await src.systemState()).cc?.ccEnabled).toBe(true);
    const evs = await src.collect(nonce);
    const res = await verifyGpus(
      evs.map((e) => ({
        report: e.report,
        certChainPem: e.certChainPem,
        arch: e.architecture,
        nvml: { driverVersion: e.driverVersion, vbiosVersion: e.vbiosVersion, cc: e.cc },
      })),
      opts,
    );
    expect(res.ok).toBe(true);
    expect(await src.getReadyState()).toBe(false);
    await src.setReadyState(true);
    expect(await src.getReadyState()).toBe(true);
  });
});
