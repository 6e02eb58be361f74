/**
 * The simulated HGX system's NVSwitches (agent/simulation/switch-sim.ts): created once next to the GPU
 * identity and reused (same PDIs and chains after a reopen, so a controller trusting the directory and
 * a restarted agent see the same switches), never created by a reader, ignored when made under another
 * simulated root; and the test-hook faults damage exactly one switch the way they say.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { copyFileSync, existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadOrCreateSimGpuIdentity, simulatedRoots } from '../../../agent/simulation/gpu-sim.js';
import { collectSimulatedSwitches, loadOrCreateSimPpcieSystem, SWITCH_SIM_FILE } from '../../../agent/simulation/switch-sim.js';
import { simulatedOcspResponses } from '../../../agent/simulation/ocsp-sim.js';
import { verifySwitchEvidence } from '../../../agent/attest/verify-and-appraise.js';
import { parseSwitchReport } from '../../../agent/verify/nvidia/switch-report.js';
import { findCheck } from '../../helpers/checks.js';

const root = mkdtempSync(join(tmpdir(), 'switch-sim-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const NONCE = Buffer.alloc(32, 0x17);

describe('loadOrCreateSimPpcieSystem', () => {
  it('creates the switches once (0600) and reopens the same ones', async () => {
    const id = await loadOrCreateSimGpuIdentity(join(root, 'a'), 8);
    const first = (await loadOrCreateSimPpcieSystem(id))!;
    const file = join(id.dir, SWITCH_SIM_FILE);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const again = (await loadOrCreateSimPpcieSystem(await loadOrCreateSimGpuIdentity(id.dir, 8), false))!;
    expect(again.switches.map((s) => s.pdi)).toEqual(first.switches.map((s) => s.pdi));
    expect(again.switches.map((s) => s.chainPem)).toEqual(first.switches.map((s) => s.chainPem));
    expect(again.gpuPdis).toEqual(first.gpuPdis);
    expect(new Set(first.switches.map((s) => s.pdi)).size).toBe(4);
    expect(first.gpuPdis).toHaveLength(8);
  }, 60_000);

  it('a reader (create false) gets nothing and creates nothing where there are no switches', async () => {
    const id = await loadOrCreateSimGpuIdentity(join(root, 'b'), 8);
    expect(await loadOrCreateSimPpcieSystem(id, false)).toBeUndefined();
    expect(existsSync(join(id.dir, SWITCH_SIM_FILE))).toBe(false);
  }, 60_000);

  it('switches made under another simulated root are ignored by a reader and replaced by a creator', async () => {
    const a = await loadOrCreateSimGpuIdentity(join(root, 'a'), 8);
    const other = await loadOrCreateSimGpuIdentity(join(root, 'c'), 8);
    const fromA = (await loadOrCreateSimPpcieSystem(a))!;
    // The same file name in c's directory, but c never had switches: copy a's file there.
    copyFileSync(join(a.dir, SWITCH_SIM_FILE), join(other.dir, SWITCH_SIM_FILE));
    expect(await loadOrCreateSimPpcieSystem(other, false)).toBeUndefined();
    const fresh = (await loadOrCreateSimPpcieSystem(other))!;
    expect(fresh.switches.map((s) => s.pdi)).not.toEqual(fromA.switches.map((s) => s.pdi));
  }, 60_000);
});

describe('simulated switch evidence', () => {
  it('verifies with the simulated roots, RIM and OCSP answers (revocation checked, not a warning)', async () => {
    const id = await loadOrCreateSimGpuIdentity(join(root, 'a'), 8);
    const system = (await loadOrCreateSimPpcieSystem(id))!;
    const at = new Date();
    const opts = { at, expectedNonce: NONCE, simulatedRoots: simulatedRoots(id), rims: { byId: system.rims }, ocsp: simulatedOcspResponses(id, at, system) };
    for (const s of collectSimulatedSwitches(system, NONCE)) {
      const r = verifySwitchEvidence(s, opts);
      expect(r.checks.filter((c) => !c.ok || c.warning)).toEqual([]);
      expect(findCheck(r, 'switch.revocation').detail).toMatch(/good/i);
    }
    // Without the switch chains in the responder, the switch revocation is not "good".
    const gpuOnly = verifySwitchEvidence(collectSimulatedSwitches(system, NONCE)[0]!, { ...opts, ocsp: simulatedOcspResponses(id, at) });
    expect(findCheck(gpuOnly, 'switch.revocation').warning || !findCheck(gpuOnly, 'switch.revocation').ok).toBe(true);
  }, 60_000);

  it('tamper "signature" breaks only that switch\'s signature; "foreign-gpu" keeps it signed but names a GPU of no switch', async () => {
    const id = await loadOrCreateSimGpuIdentity(join(root, 'a'), 8);
    const system = (await loadOrCreateSimPpcieSystem(id))!;
    const at = new Date();
    const opts = { at, expectedNonce: NONCE, simulatedRoots: simulatedRoots(id), rims: { byId: system.rims }, ocsp: simulatedOcspResponses(id, at, system) };
    const signature = collectSimulatedSwitches(system, NONCE, { index: 2, how: 'signature' });
    expect(signature.map((s) => findCheck(verifySwitchEvidence(s, opts), 'switch.signature').ok)).toEqual([true, true, false, true]);
    const foreign = collectSimulatedSwitches(system, NONCE, { index: 1, how: 'foreign-gpu' });
    const r = verifySwitchEvidence(foreign[1]!, opts);
    expect(r.checks.filter((c) => !c.ok)).toEqual([]);
    const pdis = parseSwitchReport(foreign[1]!.report).opaque.gpuPdis!;
    expect(system.gpuPdis).not.toContain(pdis[0]);
    expect(pdis.slice(1, 8)).toEqual(system.gpuPdis.slice(1));
  }, 60_000);
});
