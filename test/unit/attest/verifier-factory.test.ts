/**
 * One verifier factory for the daemon and the controller: policies and policy id fixed at creation,
 * per-call extras (challenge binding, simulation trust) applied last, and collateral gathered only
 * for real (non-simulated) bundles.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Simulation } from '../../../agent/simulation/open.js';
import { simulatedBundle } from '../../helpers/sim-bundle.js';
import { createVerifier } from '../../../agent/attest/verifier.js';
import { verifyBundle } from '../../../agent/attest/verify-bundle.js';
import type { EvidenceBundle } from '../../../agent/formats/evidence-bundle.js';
import { CollateralStore } from '../../../agent/collateral/store.js';

let sim: Simulation;
let bundle: EvidenceBundle;
const NONCE = Buffer.alloc(32, 7);

beforeAll(async () => {
  ({ sim, bundle } = await simulatedBundle({ gpus: 1, agentId: 'verifier-test', nonce: NONCE }));
}, 120_000);

describe('createVerifier', () => {
  it('gives the same result as verifyBundle with the same options, under its own policy id', async () => {
    const at = new Date();
    const { gpuPolicy: _p, ...trust } = sim.verifyOptions(at);
    const r = await createVerifier({ policyId: 'factory-test' })(bundle, at, { ...trust, expectedNonce: NONCE, expectedAgentId: 'verifier-test' });
    const direct = verifyBundle(bundle, { at, ...trust, expectedNonce: NONCE, expectedAgentId: 'verifier-test', policyId: 'factory-test' });
    expect(r.ok).toBe(true);
    expect(r).toEqual(direct);
    expect(r.devices.every((d) => d.policyId === 'factory-test')).toBe(true);
  });

  it('applies the per-call binding: another nonce or agent id fails', async () => {
    const at = new Date();
    const { gpuPolicy: _p, ...trust } = sim.verifyOptions(at);
    const v = createVerifier({ policyId: 'x' });
    const wrongNonce = await v(bundle, at, { ...trust, expectedNonce: Buffer.alloc(32, 8) });
    expect(wrongNonce.ok).toBe(false);
    expect(wrongNonce.devices[0]!.result.checks.find((c) => c.name === 'binding.nonce')?.ok).toBe(false);
    const wrongAgent = await v(bundle, at, { ...trust, expectedAgentId: 'someone-else' });
    expect(wrongAgent.devices[0]!.result.checks.find((c) => c.name === 'binding.agent-id')?.ok).toBe(false);
  });

  it("does not consult the collateral cache for a simulated bundle (the controller's rule, now the daemon's too)", async () => {
    const at = new Date();
    const { gpuPolicy: _p, ...trust } = sim.verifyOptions(at);
    const store = new CollateralStore(join(mkdtempSync(join(tmpdir(), 'cvm-verifier-coll-')), 'c'));
    const r = await createVerifier({ policyId: 'x', collateral: { store, online: false, timeoutMs: 1000 } })(bundle, at, trust);
    expect(r.ok).toBe(true);
    expect(r.devices.flatMap((d) => d.result.checks).some((c) => c.name.startsWith('collateral.'))).toBe(false);
  });
});
