/**
 * The relay attack: a local peer on a victim VM can ask the victim's agent for evidence bound to any
 * nonce (GET /v1/evidence). A hostile agent takes a controller challenge, has the victim's REAL agent
 * daemon answer it through its socket, and presents that evidence on its own link to the REAL
 * reference controller — as a made-up agent id, or as the victim. The evidence is genuine; what
 * defeats the attack is that it is bound to the victim's agent id and that only the victim's process
 * can sign the session proof with the attested key. No AFFIRMING verdict, no key confirmation, no
 * secret. Issue 9, item 2.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { createLocalJWKSet, jwtVerify } from 'jose';
import type { PublicJwk } from '../../agent/formats/nonce-binding.js';
import { appraiseEvidence } from '../../agent/controller/appraise.js';
import { SimulationRoots } from '../../agent/simulation/controller-trust.js';
import { CLOSE } from '../../agent/link/protocol.js';
import { signEvidenceProof } from '../../agent/link/proof.js';
import { createAgentKey } from '../../agent/link/agent-key.js';
import { FakeAgent, openSim, startController, type ControllerUnderTest, type Sim } from '../helpers/controller-fixture.js';
import { startAgentDaemon, type AgentDaemon } from '../helpers/agent-daemon.js';

let sim: Sim;
let ctl: ControllerUnderTest;
let victim: AgentDaemon;
let victimKey: PublicJwk;

beforeAll(async () => {
  sim = await openSim();
  ctl = await startController(sim, 'simulation: {trust: true, dir: SIMDIR}\nreleaseSecretsOn: warning\n');
  // The victim VM: a real agent daemon on the simulated TEE, not linked to this controller.
  victim = await startAgentDaemon({ agentId: 'victim-vm', simDir: sim.dir, gpus: 2 });
  victimKey = ((await victim.get('/v1/status')).json() as { agentKey: PublicJwk }).agentKey;
}, 120_000);

afterAll(async () => {
  await victim?.stop();
  await ctl?.controller.close();
  if (sim) rmSync(sim.dir, { recursive: true, force: true });
});

const url = () => ctl.controller.address().wsUrl;

/** What the attacker does on the victim VM: ask its agent for evidence bound to the controller's nonce. */
async function relay(nonceHex: string): Promise<Record<string, unknown>> {
  const r = await victim.get(`/v1/evidence?nonce=${nonceHex}`);
  expect(r.status).toBe(200);
  return r.json() as Record<string, unknown>;
}

async function agentView(id: string): Promise<{ status: number; body: Record<string, any> | undefined }> {
  const res = await fetch(`${ctl.controller.address().url}/v1/agents/${id}`);
  return { status: res.status, body: res.status === 200 ? ((await res.json()) as Record<string, any>) : undefined };
}

describe("hostile agent: relaying a challenge through another VM's /v1/evidence", () => {
  it("control: the relayed evidence is genuine (affirming for the victim's own id, key and nonce)", async () => {
    const nonce = Buffer.alloc(32, 0x5a);
    const bundle = await relay(nonce.toString('hex'));
    expect(bundle.agentId).toBe('victim-vm');
    const a = await appraiseEvidence(
      bundle,
      nonce,
      new Date(),
      { policyId: 'p', build: 'b', simulation: new SimulationRoots(sim.dir) },
      victimKey,
      'victim-vm',
    );
    expect(a.status).toBe('affirming');
    // The same bundle under another session id fails the agent-id binding.
    const other = await appraiseEvidence(
      bundle,
      nonce,
      new Date(),
      { policyId: 'p', build: 'b', simulation: new SimulationRoots(sim.dir) },
      victimKey,
      'ghost',
    );
    expect(other.status).toBe('contraindicated');
    expect(other.devices.find((d) => d.id === 'cpu0')!.result.checks.find((c) => c.name === 'binding.agent-id')?.ok).toBe(false);
  }, 60_000);

  it("as a made-up id with the victim's key in hello: no proof of possession, so no verdict at all, and the link is closed", async () => {
    const a = await FakeAgent.connect(url());
    a.hello('ghost', 1, victimKey);
    await a.next('welcome');
    const challenge = await a.next('challenge');
    await a.answer(challenge, await relay(challenge.nonce)); // the proof is signed with the attacker's own key
    const closed = await a.waitClosed();
    expect(closed.code).toBe(CLOSE.FORBIDDEN);
    expect(a.inbox.some((m) => m.type === 'verdict')).toBe(false);
    expect(a.inbox.find((m) => m.type === 'error')).toMatchObject({ code: 'bad-proof', challengeId: challenge.id });
    const view = await agentView('ghost');
    if (view.status === 200) {
      expect(view.body!.lastVerdict).toBeNull();
      expect(view.body!.attestedKeys).toEqual([]);
    } else expect(view.status).toBe(404);
  }, 60_000);

  it("as a made-up id with its own key and a valid proof: contraindicated (agent id and key not the evidence's), no cnf, no secrets", async () => {
    const a = await FakeAgent.connect(url());
    a.hello('ghost-2');
    const challenge = await a.next('challenge');
    await a.answer(challenge, await relay(challenge.nonce));
    const verdict = await a.next('verdict');
    expect(verdict.secrets).toBeUndefined();
    const jwks = (await (await fetch(`${ctl.controller.address().url}/.well-known/jwks.json`)).json()) as { keys: never[] };
    const { payload } = await jwtVerify(verdict.token, createLocalJWKSet(jwks));
    expect(payload['ear.status']).toBe('contraindicated');
    expect(payload.cnf).toBeUndefined();
    const failed = ((payload.submods as any).cpu0['cvm.checks'] as { name: string; ok: boolean }[]).filter((c) => !c.ok).map((c) => c.name);
    expect(failed).toEqual(expect.arrayContaining(['binding.agent-id', 'link.tee-key']));
    expect((await agentView('ghost-2')).body?.attestedKeys ?? []).toEqual([]);
    a.close();
  }, 60_000);

  it('as the victim itself (its id and key in hello): the attacker cannot sign the proof, so no verdict', async () => {
    const a = await FakeAgent.connect(url());
    a.hello('victim-vm', 1, victimKey);
    const challenge = await a.next('challenge');
    await a.answer(challenge, await relay(challenge.nonce));
    expect((await a.waitClosed()).code).toBe(CLOSE.FORBIDDEN);
    expect(a.inbox.some((m) => m.type === 'verdict')).toBe(false);
    expect(a.inbox.find((m) => m.type === 'error')).toMatchObject({ code: 'bad-proof' });
    // A proof made for another challenge (say, replayed from an earlier session) does not help either.
    const b = await FakeAgent.connect(url());
    b.hello('victim-vm', 1, victimKey);
    const c2 = await b.next('challenge');
    await b.answer(c2, await relay(c2.nonce), { proof: (await signedElsewhere()).proof });
    expect((await b.waitClosed()).code).toBe(CLOSE.FORBIDDEN);
    expect(b.inbox.some((m) => m.type === 'verdict')).toBe(false);
    expect((await agentView('victim-vm')).body?.lastVerdict ?? null).toBeNull();
  }, 60_000);
});

/** A well-formed proof by some key over some other challenge (what an eavesdropper could have recorded). */
async function signedElsewhere(): Promise<{ proof: string }> {
  return { proof: await signEvidenceProof({ agentId: 'victim-vm', challengeId: 'an-old-challenge', nonce: '00'.repeat(32) }, await createAgentKey()) };
}
