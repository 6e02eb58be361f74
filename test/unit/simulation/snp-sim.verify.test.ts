/**
 * Integration: evidence from the simulated SNP device goes through the real SEV-SNP verifier.
 * It is trusted only when the caller passes the simulator roots (and then says simulated);
 * without them the pinned AMD roots reject it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SimulatedSnpDevice, type SimExtReport } from '../../../agent/simulation/snp-sim.js';
import { verifySnpAttestation } from '../../../agent/attest/verify-and-appraise.js';

const root = mkdtempSync(join(tmpdir(), 'snp-sim-verify-'));
let sim: SimulatedSnpDevice;
let ev: SimExtReport;
const reportData = Buffer.alloc(64, 0x5c);
const at = new Date();

beforeAll(async () => {
  sim = await SimulatedSnpDevice.open(root);
  ev = await sim.getExtReport(reportData);
}, 60_000);
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('simulated SNP evidence through verifySnpAttestation', () => {
  it('with simulation enabled (sim roots + sim CRL): ok, and the result says simulated', () => {
    const res = verifySnpAttestation(
      { report: ev.report, certificates: [ev.vcek, ev.ask, ev.ark], crls: [sim.crl(at)] },
      { at, expectedReportData: reportData, simulatedRoots: [sim.roots()] },
    );
    expect(res.checks.filter((c) => !c.ok)).toEqual([]);
    expect(res.ok).toBe(true);
    expect(res.simulated).toBe(true);
  });

  it('without simulation: the chain does not reach a pinned AMD root → not ok, not simulated', () => {
    const res = verifySnpAttestation({ report: ev.report, certificates: [ev.vcek, ev.ask, ev.ark] }, { at, expectedReportData: reportData });
    expect(res.ok).toBe(false);
    expect(res.simulated).toBe(false);
    expect(res.checks.some((c) => !c.ok && c.name.startsWith('snp.chain'))).toBe(true);
  });

  it('a tampered simulated report fails its signature check even with simulation enabled', () => {
    const bad = Buffer.from(ev.report);
    bad[0x90]! ^= 1; // MEASUREMENT
    const res = verifySnpAttestation(
      { report: bad, certificates: [ev.vcek, ev.ask, ev.ark], crls: [sim.crl(at)] },
      { at, expectedReportData: reportData, simulatedRoots: [sim.roots()] },
    );
    expect(res.ok).toBe(false);
    expect(res.checks.find((c) => c.name === 'snp.signature')?.ok).toBe(false);
  });
});
