/**
 * The controller's simulation trust (agent/simulation/controller-trust.ts): it reads the roots the
 * simulated agent created and never creates them; without SNP roots, or without GPU roots for a
 * bundle with GPUs, it refuses with ERR_SIMULATION naming the directory and the missing file.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SimulationRoots } from '../../../agent/simulation/controller-trust.js';
import { SimulatedSnpDevice } from '../../../agent/simulation/snp-sim.js';

const root = mkdtempSync(join(tmpdir(), 'controller-trust-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('SimulationRoots (controller, simulation.trust: true)', () => {
  it('refuses an empty directory without creating roots there', async () => {
    const dir = join(root, 'empty');
    await expect(new SimulationRoots(dir).trust(new Date(), false)).rejects.toMatchObject({
      code: 'ERR_SIMULATION',
      message: expect.stringContaining(`no simulated SNP roots in ${dir} (snp-sim-state.json)`),
    });
    expect(readdirSync(root)).toEqual([]);
  });

  it("uses the simulated agent's SNP roots, and asks for GPU roots only when the bundle has GPUs", async () => {
    const dir = join(root, 'sim');
    const device = await SimulatedSnpDevice.open(dir);
    const roots = new SimulationRoots(dir);
    const t = await roots.trust(new Date(), false);
    expect(t.simulation.snpRoots).toEqual([device.roots()]);
    expect(t.cpuCollateral.crls).toHaveLength(1);
    await expect(roots.trust(new Date(), true)).rejects.toMatchObject({
      code: 'ERR_SIMULATION',
      message: expect.stringContaining('(gpu-sim-identity.json); the bundle has GPUs'),
    });
  }, 60_000);
});
