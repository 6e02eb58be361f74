/**
 * A hostile agent signs with a key it did not attest, against the REAL reference controller: the
 * evidence proof by another key than the hello's, a proof made for another agent id or challenge, a
 * bundle attesting another key than the one in hello, events signed by a never-attested key. The
 * controller issues a verdict only to a session that proved possession of the attested key in that
 * session, and stores only events signed by attested keys. Issue 9, item 2.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { createAgentKey } from '../../agent/link/agent-key.js';
import { signEvent } from '../../agent/link/events.js';
import { signEvidenceProof } from '../../agent/link/proof.js';
import { CLOSE } from '../../agent/link/protocol.js';
import { FakeAgent, makeBundle, openSim, startController, type ControllerUnderTest, type Sim } from '../helpers/controller-fixture.js';

let sim: Sim;
let ctl: ControllerUnderTest;

beforeAll(async () => {
  sim = await openSim();
  ctl = await startController(sim, 'simulation: {trust: true, dir: SIMDIR}\nreleaseSecretsOn: warning\n');
}, 120_000);

afterAll(async () => {
  await ctl?.controller.close();
  if (sim) rmSync(sim.dir, { recursive: true, force: true });
});

const url = () => ctl.controller.address().wsUrl;
const view = async (id: string) => (await (await fetch(`${ctl.controller.address().url}/v1/agents/${id}`)).json()) as Record<string, any>;
/**
 * The keys the controller holds as attested for `id`. An id that never proved a key is kept only
 * while connected and forgotten at disconnect (GET /v1/agents/{id} then answers 404): no key either.
 */
const attestedKeys = async (id: string): Promise<unknown[]> => {
  const res = await fetch(`${ctl.controller.address().url}/v1/agents/${id}`);
  if (res.status === 404) return [];
  return ((await res.json()) as { attestedKeys: unknown[] }).attestedKeys;
};

/** Send evidence for the next challenge and expect the link to be refused without a verdict. */
async function expectNoVerdict(a: FakeAgent, challengeId: string): Promise<void> {
  expect((await a.waitClosed()).code).toBe(CLOSE.FORBIDDEN);
  expect(a.inbox.some((m) => m.type === 'verdict')).toBe(false);
  expect(a.inbox.find((m) => m.type === 'error')).toMatchObject({ code: 'bad-proof', challengeId });
}

describe('hostile agent: signing with a key it did not attest', () => {
  it('genuine evidence for the hello key, but the proof signed by another key: no verdict', async () => {
    const a = await FakeAgent.connect(url());
    a.hello('vm-k1');
    const c = await a.next('challenge');
    await a.answer(c, await makeBundle(sim, Buffer.from(c.nonce, 'hex'), a.key.publicJwk, 'vm-k1'), { proofKey: await createAgentKey() });
    await expectNoVerdict(a, c.id);
    expect(await attestedKeys('vm-k1')).toEqual([]);
  }, 60_000);

  it('a proof by the right key but made for another agent id, or for an earlier challenge of the session: no verdict', async () => {
    const a = await FakeAgent.connect(url());
    a.hello('vm-k2');
    const c = await a.next('challenge');
    await a.answer(c, await makeBundle(sim, Buffer.from(c.nonce, 'hex'), a.key.publicJwk, 'vm-k2'), { proofAgentId: 'vm-other' });
    await expectNoVerdict(a, c.id);

    const b = await FakeAgent.connect(url());
    b.hello('vm-k3');
    const c1 = await b.next('challenge');
    await b.answer(c1, await makeBundle(sim, Buffer.from(c1.nonce, 'hex'), b.key.publicJwk, 'vm-k3'));
    await b.next('verdict');
    const old = await signEvidenceProof({ agentId: 'vm-k3', challengeId: c1.id, nonce: c1.nonce }, b.key);
    const c2 = ctl.controller.challengeNow('vm-k3')!;
    await b.next('challenge');
    await b.answer(c2, await makeBundle(sim, c2.nonce, b.key.publicJwk, 'vm-k3'), { proof: old });
    await expectNoVerdict(b, c2.id);
  }, 60_000);

  it('a bundle attesting another key than the hello key (with a valid proof by the hello key): contraindicated, the key is not attested', async () => {
    const a = await FakeAgent.connect(url());
    a.hello('vm-k4');
    const c = await a.next('challenge');
    const other = await createAgentKey();
    await a.answer(c, await makeBundle(sim, Buffer.from(c.nonce, 'hex'), other.publicJwk, 'vm-k4'));
    const v = await a.next('verdict');
    expect(v.secrets).toBeUndefined();
    const jwks = (await (await fetch(`${ctl.controller.address().url}/.well-known/jwks.json`)).json()) as { keys: never[] };
    const { payload } = await jwtVerify(v.token, createLocalJWKSet(jwks));
    expect(payload['ear.status']).toBe('contraindicated');
    expect(payload.cnf).toBeUndefined();
    expect(await attestedKeys('vm-k4')).toEqual([]);
    a.close();
  }, 60_000);

  it("events signed by a key the agent never attested are never stored, while its attested key's are", async () => {
    const a = await FakeAgent.connect(url());
    a.hello('vm-k5');
    await a.next('welcome');
    const c = await a.next('challenge');
    await a.answer(c, await makeBundle(sim, Buffer.from(c.nonce, 'hex'), a.key.publicJwk, 'vm-k5'));
    await a.next('verdict');
    a.send(await signEvent({ seq: 1, at: new Date().toISOString(), kind: 'status', data: { genuine: 1 } }, a.key));
    expect((await a.next('ack')).seq).toBe(1);
    const stranger = await createAgentKey();
    a.send(await signEvent({ seq: 2, at: new Date().toISOString(), kind: 'status', data: { forged: 2 } }, stranger));
    await new Promise((r) => setTimeout(r, 300));
    const v = await view('vm-k5');
    expect(v.recentEvents.map((e: { data: unknown }) => e.data)).toEqual([{ genuine: 1 }]);
    expect(v.attestedKeys.map((k: { jkt: string }) => k.jkt)).toEqual([a.key.kid]);
    a.close();
  }, 60_000);
});
