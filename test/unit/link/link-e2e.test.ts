/**
 * The agent's ControllerLink against the reference controller (agent/controller, fixture from
 * test/helpers/controller-fixture.ts) with simulated SNP + GPU evidence: hello/welcome, challenge ->
 * evidence bound to the nonce and the agent key -> verdict with a controller token and a released
 * secret decrypted in memory, and signed events acknowledged by the controller.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { makeBundle, openSim, SECRET_VALUE, startController, TOKEN, type ControllerUnderTest, type Sim } from '../../helpers/controller-fixture.js';
import { makeHarness, type Harness } from '../../helpers/test-controller.js';

let sim: Sim;
let ctl: ControllerUnderTest;
let h: Harness;
let tokenDir: string;

beforeAll(async () => {
  sim = await openSim();
  ctl = await startController(sim, 'simulation: {trust: true, dir: SIMDIR}\nreleaseSecretsOn: warning\n');
  tokenDir = mkdtempSync(join(tmpdir(), 'cvm-e2e-token-'));
  writeFileSync(join(tokenDir, 'token'), `${TOKEN}\n`);
}, 120_000);

afterAll(async () => {
  await h?.close();
  await ctl?.controller.close();
  if (sim) rmSync(sim.dir, { recursive: true, force: true });
  if (tokenDir) rmSync(tokenDir, { recursive: true, force: true });
});

describe('ControllerLink <-> reference controller', () => {
  it('attests on challenge, receives a signed verdict and the released secret, and gets its events acked', async () => {
    let key!: Harness['key'];
    h = await makeHarness(ctl.controller.address().wsUrl, {
      agentId: 'e2e-vm',
      tokenFile: join(tokenDir, 'token'),
      // Pinned without its kid, as a key read from a PEM file is: the controller's kid header must not matter.
      tokenKeys: [{ kty: 'EC', crv: 'P-384', x: ctl.controller.signer.publicJwk.x!, y: ctl.controller.signer.publicJwk.y! }],
      handlers: {
        onChallenge: async (nonce) => ({ bundle: await makeBundle(sim, nonce, key.publicJwk, 'e2e-vm'), localResult: {} }),
      },
    });
    key = h.key;
    h.link.start();
    const deadline = Date.now() + 30_000;
    while (h.calls.verdicts.length === 0) {
      if (Date.now() > deadline) throw new Error(`no verdict; link: ${JSON.stringify(h.link.status())}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(h.link.status().state).toBe('up');
    const verdict = h.calls.verdicts[0]!;
    const claims = decodeJwt(verdict.token) as Record<string, unknown>;
    expect(claims.sub).toBe('e2e-vm');
    expect(claims.cnf).toEqual({ jkt: h.key.kid });
    expect(verdict.names).toEqual(['model-key']);
    expect(Buffer.from(h.secrets.get('model-key')!).toString()).toBe(SECRET_VALUE);

    // Events: signed with the attested key, acked by the controller, outbox drained.
    for (let i = 0; i < 5; i++) await h.outbox.append('status', { i });
    while (h.outbox.lastAcked < 5) {
      if (Date.now() > deadline) throw new Error(`events not acked: ${JSON.stringify(h.link.status())}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(h.outbox.size).toBe(0);
  }, 60_000);
});
