/**
 * A real evidence bundle from the simulated TEE: one attestation cycle run in this process with a
 * fresh agent key, for tests that need signed evidence to verify (not the daemon's cycle itself).
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AttestationCycle } from '../../agent/attest/attestation-cycle.js';
import { verifyBundle } from '../../agent/attest/verify-bundle.js';
import { parseBundle, type EvidenceBundle } from '../../agent/formats/evidence-bundle.js';
import type { PublicJwk } from '../../agent/formats/nonce-binding.js';
import { openSimulation, type Simulation } from '../../agent/simulation/open.js';

export async function simulatedBundle(opts: { gpus: number; agentId: string; nonce: Uint8Array }): Promise<{ sim: Simulation; bundle: EvidenceBundle }> {
  const sim = await openSimulation(mkdtempSync(join(tmpdir(), `cvm-${opts.agentId}-`)), opts.gpus);
  const teePubKey = generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey.export({ format: 'jwk' }) as PublicJwk;
  const r = await new AttestationCycle({
    teePubKey,
    agentId: opts.agentId,
    cpu: sim.cpu,
    gpus: sim.gpus,
    build: 'test',
    setReadyState: false,
    stepTimeoutMs: 30_000,
    verify: (b, at) => verifyBundle(b, { at, ...sim.verifyOptions(at) }),
  }).run({ reason: 'cli', nonce: opts.nonce });
  return { sim, bundle: parseBundle(r.bundle) };
}
