/**
 * The controller's simulation trust (agent/simulation/controller-trust.ts): it reads the roots the
 * simulated agent created and never creates them; without SNP roots, or without GPU roots for a
 * bundle with GPUs, it refuses with ERR_SIMULATION naming the directory and the missing file; a simulated
 * HGX system's switches (switch-sim-identity.json) are trusted with their RIM and OCSP answers, looked
 * for once a bundle has switches.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SimulationRoots } from '../../../agent/simulation/controller-trust.js';
import { SimulatedSnpDevice } from '../../../agent/simulation/snp-sim.js';
import { openSimulation } from '../../../agent/simulation/open.js';
import { verifyBundle } from '../../../agent/attest/verify-bundle.js';
import { BUNDLE_VERSION } from '../../../agent/formats/evidence-bundle.js';
import { cpuReportData, gpuNonce, type PublicJwk } from '../../../agent/formats/nonce-binding.js';
import { gpuRecordOf } from '../../../agent/evidence/gpu-nvml.js';
import { switchBiosRimId } from '../../../agent/verify/nvidia/switch-verify.js';
import { SIM_SWITCH_VBIOS_VERSION } from '../../../agent/simulation/switch-sim.js';
import { generateKeyPairSync } from 'node:crypto';

const root = mkdtempSync(join(tmpdir(), 'controller-trust-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('SimulationRoots (controller, simulation.trust: true)', () => {
  it('refuses an empty directory without creating roots there', async () => {
    const dir = join(root, 'empty');
    await expect(new SimulationRoots(dir).trust(new Date(), { gpus: false, switches: false })).rejects.toMatchObject({
      code: 'ERR_SIMULATION',
      message: expect.stringContaining(`no simulated SNP roots in ${dir} (snp-sim-state.json)`),
    });
    expect(readdirSync(root)).toEqual([]);
  });

  it("uses the simulated agent's SNP roots, and asks for GPU roots only when the bundle has GPUs", async () => {
    const dir = join(root, 'sim');
    const device = await SimulatedSnpDevice.open(dir);
    const roots = new SimulationRoots(dir);
    const t = await roots.trust(new Date(), { gpus: false, switches: false });
    expect(t.simulation.snpRoots).toEqual([device.roots()]);
    expect(t.cpuCollateral.crls).toHaveLength(1);
    await expect(roots.trust(new Date(), { gpus: true, switches: false })).rejects.toMatchObject({
      code: 'ERR_SIMULATION',
      message: expect.stringContaining('(gpu-sim-identity.json); the bundle has GPUs'),
    });
  }, 60_000);

  it('concurrent first appraisals share one load; a failed load refuses each of them and does not block a later one', async () => {
    const dir = join(root, 'concurrent');
    const roots = new SimulationRoots(dir);
    const none = await Promise.allSettled(Array.from({ length: 4 }, () => roots.trust(new Date(), { gpus: true, switches: false })));
    expect(none.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected', 'rejected']);
    await openSimulation(dir, 2);
    const all = await Promise.all(Array.from({ length: 8 }, () => roots.trust(new Date(), { gpus: true, switches: false })));
    for (const t of all) {
      expect(t.simulation.snpRoots).toEqual(all[0]!.simulation.snpRoots);
      expect(t.gpuCollateral.rims?.byId?.size).toBeGreaterThan(0);
    }
  }, 60_000);

  it("trusts a simulated HGX system's switches too: their RIM and OCSP answers, so the agent's bundle is affirming", async () => {
    const dir = join(root, 'hgx');
    const sim = await openSimulation(dir, 8, { ppcie: true });
    const roots = new SimulationRoots(dir);
    // Looked for when a bundle has switches (not before: an appraisal does not stat for them).
    const gpusOnly = await roots.trust(new Date(), { gpus: true, switches: false });
    expect(gpusOnly.gpuCollateral.rims?.byId?.has(switchBiosRimId(SIM_SWITCH_VBIOS_VERSION))).toBe(false);
    const t = await roots.trust(new Date(), { gpus: true, switches: true });
    expect(t.gpuCollateral.rims?.byId?.has(switchBiosRimId(SIM_SWITCH_VBIOS_VERSION))).toBe(true);
    const teePubKey = generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey.export({ format: 'jwk' }) as PublicJwk;
    const nonce = Buffer.alloc(32, 9);
    const n = gpuNonce(nonce, teePubKey, 'hgx');
    const gpus = (await sim.gpus!.collect(n)).map(gpuRecordOf);
    const switches = await sim.switches!.collect(n);
    const cpu = await sim.cpu.collect(
      cpuReportData(
        nonce,
        teePubKey,
        'hgx',
        gpus.map((g) => g.report),
        switches.map((s) => s.report),
      ),
    );
    const r = verifyBundle(
      { version: BUNDLE_VERSION, agentId: 'hgx', nonce, teePubKey, simulated: true, cpu, gpus, switches },
      { at: new Date(), expectedNonce: nonce, ...t },
    );
    expect(r.devices.map((d) => d.id)).toEqual(['cpu0', ...[0, 1, 2, 3, 4, 5, 6, 7].map((i) => `gpu${i}`), 'switch0', 'switch1', 'switch2', 'switch3']);
    expect(r.devices.flatMap((d) => d.result.checks.filter((c) => !c.ok || c.warning).map((c) => `${d.id}:${c.name}`))).toEqual([]);
    // A concurrent appraisal a little earlier reuses the signed CRL and OCSP answers (backdated, so valid
    // then too); one much earlier gets its own.
    const earlier = new Date(Date.now() - 20 * 60_000);
    const t2 = await roots.trust(earlier, { gpus: true, switches: true });
    expect(t2.gpuCollateral.ocsp).toBe(t.gpuCollateral.ocsp);
    expect(t2.cpuCollateral.crls).toEqual(t.cpuCollateral.crls);
    const r2 = verifyBundle(
      { version: BUNDLE_VERSION, agentId: 'hgx', nonce, teePubKey, simulated: true, cpu, gpus, switches },
      { at: earlier, expectedNonce: nonce, ...t2 },
    );
    expect(r2.devices.flatMap((d) => d.result.checks.filter((c) => !c.ok || c.warning).map((c) => `${d.id}:${c.name}`))).toEqual([]);
    const t3 = await roots.trust(new Date(Date.now() - 2 * 3600_000), { gpus: true, switches: true });
    expect(t3.gpuCollateral.ocsp).not.toBe(t.gpuCollateral.ocsp);
  }, 120_000);
});
