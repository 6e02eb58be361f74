/**
 * The reference controller over loopback with a minimal fake agent: simulated SNP + 2 simulated GPUs,
 * challenge/evidence/verdict, signed EAR tokens, secrets sealed to the attested key, and everything
 * that must be refused (bad token, simulation not trusted, replay, expiry, tampering, bad events,
 * malformed messages).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { compactDecrypt, createLocalJWKSet, jwtVerify } from 'jose';
import { createAgentKey } from '../../../agent/link/agent-key.js';
import { signEvent } from '../../../agent/link/events.js';
import { PROTOCOL, MAX_MESSAGE_BYTES, CLOSE } from '../../../agent/link/protocol.js';
import { FakeAgent, makeBundle, openSim, SECRET_VALUE, startController, type ControllerUnderTest, type Sim } from '../../helpers/controller-fixture.js';
import { storedRecord } from '../../helpers/test-store.js';

let sim: Sim;
let trusted: ControllerUnderTest; // simulation.trust on, secrets on warning
let strict: ControllerUnderTest; // simulation.trust on, secrets only on affirming, GPU policy tolerating DevTools (a warning)
let untrusted: ControllerUnderTest; // simulation not trusted

beforeAll(async () => {
  sim = await openSim();
  trusted = await startController(sim, 'simulation: {trust: true, dir: SIMDIR}\nreleaseSecretsOn: warning\ntokenTtlSec: 120\nchallengeTtlSec: 30\n');
  const policyDir = mkdtempSync(join(tmpdir(), 'ctl-policy-'));
  writeFileSync(join(policyDir, 'gpu.yaml'), 'allowDevtools: true\n');
  strict = await startController(sim, `simulation: {trust: true, dir: SIMDIR}\npolicy: {gpu: ${join(policyDir, 'gpu.yaml')}}\n`);
  untrusted = await startController(sim, 'releaseSecretsOn: warning\n');
}, 120_000);

afterAll(async () => {
  await Promise.all([trusted, strict, untrusted].map((c) => c?.controller.close()));
  rmSync(sim.dir, { recursive: true, force: true });
});

const url = (c: ControllerUnderTest) => c.controller.address().wsUrl;
const http = (c: ControllerUnderTest, path: string) => fetch(`${c.controller.address().url}${path}`);
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const json = async (c: ControllerUnderTest, path: string): Promise<any> => (await http(c, path)).json();

async function attestOnce(c: ControllerUnderTest, agentId: string, agent?: FakeAgent, bundleOpts: { devToolsMode?: boolean } = {}) {
  const a = agent ?? (await FakeAgent.connect(url(c)));
  if (!agent) a.hello(agentId);
  const welcome = agent ? undefined : await a.next('welcome');
  const challenge = await a.next('challenge');
  const bundle = await makeBundle(sim, Buffer.from(challenge.nonce, 'hex'), a.key.publicJwk, agentId, bundleOpts);
  await a.answer(challenge, bundle);
  const verdict = await a.next('verdict');
  return { agent: a, welcome, challenge, bundle, verdict };
}

async function claimsOf(c: ControllerUnderTest, token: string) {
  const jwks = await json(c, '/.well-known/jwks.json');
  const { payload, protectedHeader } = await jwtVerify(token, createLocalJWKSet(jwks), { algorithms: ['ES384'], issuer: 'cvm-agent-controller' });
  return { payload: payload as Record<string, any>, protectedHeader };
}

describe('controller: attested agent with simulation trusted', () => {
  it('hello -> welcome -> challenge -> evidence -> verdict: signed EAR, SIMULATED, secrets sealed to the attested key', async () => {
    const { agent, welcome, challenge, verdict } = await attestOnce(trusted, 'vm-1');
    expect(welcome).toMatchObject({ protocol: 1, resumeFrom: 1 });
    expect(challenge.nonce).toMatch(/^[0-9a-f]{64}$/); // 32 random bytes
    expect(verdict.challengeId).toBe(challenge.id);

    const { payload, protectedHeader } = await claimsOf(trusted, verdict.token);
    expect(protectedHeader.alg).toBe('ES384');
    expect(payload.sub).toBe('vm-1');
    expect(payload.exp - payload.iat).toBe(120);
    expect(payload.eat_nonce).toBe(Buffer.from(challenge.nonce, 'hex').toString('base64url'));
    expect(payload.cnf).toEqual({ jkt: agent.key.kid });
    expect(Object.keys(payload.submods).sort()).toEqual(['cpu0', 'gpu0', 'gpu1']);
    for (const s of Object.values<any>(payload.submods)) {
      expect(s['cvm.simulated']).toBe(true);
      expect(s['cvm.checks'].filter((c: any) => !c.ok)).toEqual([]);
    }
    // Simulated evidence with its simulated collateral (CRL, RIMs, OCSP) appraises as affirming; it says SIMULATED.
    expect(payload['ear.status']).toBe('affirming');

    expect(verdict.secrets?.map((s) => s.name)).toEqual(['model-key']);
    const { plaintext, protectedHeader: jweHeader } = await compactDecrypt(verdict.secrets![0]!.jwe, agent.key.agreementKey);
    expect(jweHeader).toMatchObject({ alg: 'ECDH-ES+A256KW', enc: 'A256GCM' });
    expect(Buffer.from(plaintext).toString()).toBe(SECRET_VALUE);

    const list = await json(trusted, '/v1/agents');
    expect(list.agents).toContainEqual(
      expect.objectContaining({
        id: 'vm-1',
        connected: true,
        status: 'affirming',
        simulated: true,
        devices: { cpu0: 'affirming', gpu0: 'affirming', gpu1: 'affirming' },
      }),
    );
    const detail = await json(trusted, '/v1/agents/vm-1');
    expect(detail.lastVerdict.ear.submods.cpu0['cvm.checks'].some((c: any) => c.name === 'snp.report-data' && c.ok)).toBe(true);
    expect(detail.lastVerdict.secretsReleased).toEqual(['model-key']);
    expect(detail.attestedKeys[0].jkt).toBe(agent.key.kid);
    // The token is never logged.
    expect(trusted.logLines.join('\n')).not.toContain(verdict.token);
    agent.close();
  }, 60_000);

  it('releaseSecretsOn: affirming withholds secrets from a warning (non-affirming) agent but still sends the signed verdict', async () => {
    // GPUs in DevTools mode, tolerated by this controller's GPU policy: a warning, not affirming.
    const { agent, verdict } = await attestOnce(strict, 'vm-strict', undefined, { devToolsMode: true });
    const { payload } = await claimsOf(strict, verdict.token);
    expect(payload['ear.status']).toBe('warning');
    expect(payload.submods.gpu0['cvm.checks'].find((c: any) => c.name === 'gpu.cc.devtools')).toMatchObject({ ok: true, warning: true });
    expect(verdict.secrets).toBeUndefined();
    const detail = await json(strict, '/v1/agents/vm-strict');
    expect(detail.lastVerdict.secretsDecision).toMatch(/gpu0 is warning/);
    agent.close();
  }, 60_000);
});

describe('controller: refusals', () => {
  it('the same simulated evidence with simulation NOT trusted is contraindicated and gets no secrets', async () => {
    const { agent, verdict } = await attestOnce(untrusted, 'vm-untrusted');
    expect(verdict.secrets).toBeUndefined();
    const { payload } = await claimsOf(untrusted, verdict.token);
    expect(payload['ear.status']).toBe('contraindicated');
    expect(payload.cnf).toBeUndefined(); // no key was attested
    const failed = payload.submods.cpu0['cvm.checks'].filter((c: any) => !c.ok).map((c: any) => c.name);
    expect(failed).toContain('binding.simulated');
    const list = await json(untrusted, '/v1/agents');
    expect(list.agents.find((a: any) => a.id === 'vm-untrusted')).toMatchObject({ status: 'contraindicated', simulated: false });
    agent.close();
  }, 60_000);

  it('a wrong or missing bearer token is refused with 401 before the upgrade; a missing subprotocol with 400', async () => {
    const status = (opts: { token?: string; protocols?: string[] }) =>
      new Promise<number>((resolve, reject) => {
        const ws = new WebSocket(
          url(trusted),
          opts.protocols ?? [PROTOCOL],
          opts.token === undefined ? {} : { headers: { authorization: `Bearer ${opts.token}` } },
        );
        ws.on('unexpected-response', (_req, res) => {
          resolve(res.statusCode ?? 0);
          ws.terminate();
        });
        ws.on('open', () => reject(new Error('upgrade accepted')));
        ws.on('error', () => undefined);
      });
    expect(await status({ token: 'wrong-token' })).toBe(401);
    expect(await status({})).toBe(401);
    expect(await status({ token: 'test-token-0123456789abcdef', protocols: ['something-else'] })).toBe(400);
    expect(trusted.logLines.join('\n')).not.toContain('wrong-token');
  });

  it('a token bound to an agent id cannot be used for another id (close 4003)', async () => {
    const a = await FakeAgent.connect(url(trusted), { token: 'bound-token' });
    a.hello('not-the-bound-agent');
    expect((await a.waitClosed()).code).toBe(CLOSE.FORBIDDEN);
    const b = await FakeAgent.connect(url(trusted), { token: 'bound-token' });
    b.hello('bound-agent');
    await b.next('welcome');
    b.close();
  });

  it('a replayed answer to an already answered challenge is rejected', async () => {
    const { agent, challenge, bundle } = await attestOnce(trusted, 'vm-replay');
    await agent.answer(challenge, bundle);
    const err = await agent.next('error');
    expect(err).toMatchObject({ code: 'replayed-challenge', challengeId: challenge.id });
    const detail = await json(trusted, '/v1/agents/vm-replay');
    expect(detail.lastRejection.code).toBe('replayed-challenge');
    agent.close();
  }, 60_000);

  it('an answer after the challenge expired is rejected', async () => {
    const a = await FakeAgent.connect(url(trusted));
    a.hello('vm-late');
    const challenge = await a.next('challenge');
    const bundle = await makeBundle(sim, Buffer.from(challenge.nonce, 'hex'), a.key.publicJwk, 'vm-late');
    trusted.clock.offsetMs = 31_000; // challengeTtlSec is 30
    try {
      await a.answer(challenge, bundle);
      expect(await a.next('error')).toMatchObject({ code: 'expired-challenge' });
    } finally {
      trusted.clock.offsetMs = 0;
    }
    a.close();
  }, 60_000);

  it('evidence tampered in flight is contraindicated: a flipped SNP report byte, a swapped teePubKey', async () => {
    const a = await FakeAgent.connect(url(trusted));
    a.hello('vm-tamper');
    const c1 = await a.next('challenge');
    const bundle = await makeBundle(sim, Buffer.from(c1.nonce, 'hex'), a.key.publicJwk, 'vm-tamper');
    const cpu = bundle.cpu as { report: string };
    const report = Buffer.from(cpu.report, 'base64');
    report[0x90]! ^= 0x01; // MEASUREMENT (signed region)
    cpu.report = report.toString('base64');
    await a.answer(c1, bundle);
    const v1 = await a.next('verdict');
    expect(v1.secrets).toBeUndefined();
    const p1 = (await claimsOf(trusted, v1.token)).payload;
    expect(p1['ear.status']).toBe('contraindicated');
    expect(p1.submods.cpu0['cvm.checks'].find((c: any) => c.name === 'snp.signature').ok).toBe(false);

    // A man in the middle swaps in his own key: the reports were bound to the agent's key, not his.
    const mitm = await createAgentKey();
    const c2 = trusted.controller.challengeNow('vm-tamper')!;
    await a.next('challenge');
    const swapped = await makeBundle(sim, c2.nonce, a.key.publicJwk, 'vm-tamper', { announceKey: mitm.publicJwk });
    await a.answer(c2, swapped);
    const v2 = await a.next('verdict');
    expect(v2.secrets).toBeUndefined();
    const p2 = (await claimsOf(trusted, v2.token)).payload;
    expect(p2['ear.status']).toBe('contraindicated');
    const failed = (id: string) => p2.submods[id]['cvm.checks'].filter((c: any) => !c.ok).map((c: any) => c.name);
    expect(failed('cpu0')).toEqual(expect.arrayContaining(['link.tee-key', 'snp.report-data']));
    expect(failed('gpu0').length).toBeGreaterThan(0); // GPU nonce recomputed from the swapped key no longer matches
    expect(p2.cnf).toBeUndefined();
    a.close();
  }, 60_000);
});

describe('controller: events', () => {
  it('events are verified with the attested key, held until it is attested, stored strictly in seq order, de-duplicated by seq and hash, acked', async () => {
    const a = await FakeAgent.connect(url(trusted));
    a.hello('vm-events');
    const welcome = await a.next('welcome');
    // Flow control: the window is announced.
    expect(welcome).toMatchObject({ window: 256, windowBytes: 8 * 1024 * 1024 });
    const ev = (seq: number, kind: 'status' | 'error' = 'status') => signEvent({ seq, at: new Date().toISOString(), kind, data: { n: seq } }, a.key);
    // Before any verdict the key is not attested: the event is held, not acked.
    a.send(await ev(1));
    await new Promise((r) => setTimeout(r, 200));
    expect(a.inbox.some((m) => m.type === 'ack')).toBe(false);
    const challenge = await a.next('challenge');
    await a.answer(challenge, await makeBundle(sim, Buffer.from(challenge.nonce, 'hex'), a.key.publicJwk, 'vm-events'));
    await a.next('verdict');
    expect(await a.next('ack')).toEqual({ type: 'ack', seq: 1 });

    const e2 = await ev(2);
    a.send(e2);
    expect((await a.next('ack')).seq).toBe(2);
    a.send(e2); // duplicate (e.g. resent after a reconnect): acked again
    expect((await a.next('ack')).seq).toBe(2);
    const e4 = await ev(4, 'error');
    a.send(e4); // 3 is missing: 4 waits for it
    await new Promise((r) => setTimeout(r, 200));
    expect(a.inbox.some((m) => m.type === 'ack')).toBe(false);
    a.send(await ev(3));
    expect((await a.next('ack')).seq).toBe(4);

    // Tampered data under the attested key -> rejected, not acked.
    const good5 = await ev(5);
    a.send({ ...good5, data: { n: 999 } });
    expect(await a.next('error')).toMatchObject({ code: 'bad-event-signature' });
    expect(a.inbox.some((m) => m.type === 'ack')).toBe(false);
    a.send(good5);
    expect((await a.next('ack')).seq).toBe(5);

    const detail = await json(trusted, '/v1/agents/vm-events');
    expect(detail.lastSeq).toBe(5);
    expect(detail.gapRanges).toEqual([]);
    expect(detail.recentEvents.map((e: any) => e.seq)).toEqual([5, 4, 3, 2, 1]);
    a.close();
    await a.waitClosed();

    // Persisted: a new connection (or a restarted controller) asks to resume after seq 5.
    const state = (await storedRecord(trusted.stateDir, 'vm-events'))!;
    expect(state.lastSeq).toBe(5);
    const b = await FakeAgent.connect(url(trusted));
    b.hello('vm-events');
    expect((await b.next('welcome')).resumeFrom).toBe(6);
    b.close();
  }, 60_000);

  it('a burst that keeps the queue busy is still written and acked within a bounded time, not only when it ends', async () => {
    // A starved controller (every step takes 50 ms of its clock here) handling a stream that never
    // lets its queue empty: before the time bound, nothing was written or acked until the burst ended
    // (or 64 messages), so replicas killed meanwhile threw the work away and agents saw no ack for tens of seconds.
    const { agent: a } = await attestOnce(trusted, 'vm-burst');
    const events = [];
    for (let seq = 1; seq <= 40; seq++) events.push(await signEvent({ seq, at: new Date().toISOString(), kind: 'status', data: { n: seq } }, a.key));
    let steps = 0;
    Object.defineProperty(trusted.clock, 'offsetMs', { configurable: true, get: () => steps++ * 50 });
    try {
      const socket = (a.ws as unknown as { _socket: import('node:net').Socket })._socket;
      socket.cork(); // one write: the controller receives the whole burst before it handles the first event
      for (const e of events) a.send(e);
      process.nextTick(() => socket.uncork());
      const acks: number[] = [];
      while (acks.at(-1) !== 40) acks.push((await a.next('ack')).seq);
      expect(acks.length).toBeGreaterThan(1);
      expect(acks[0]).toBeLessThan(40);
      expect(acks).toEqual([...acks].sort((x, y) => x - y));
    } finally {
      Object.defineProperty(trusted.clock, 'offsetMs', { configurable: true, writable: true, value: 0 });
    }
    expect((await json(trusted, '/v1/agents/vm-burst')).lastSeq).toBe(40);
    a.close();
  }, 60_000);

  it('resumeFrom survives a controller restart (state persisted per agent)', async () => {
    const again = await startController(sim, 'simulation: {trust: true, dir: SIMDIR}\n', trusted.stateDir);
    try {
      const a = await FakeAgent.connect(url(again));
      a.hello('vm-events');
      expect((await a.next('welcome')).resumeFrom).toBe(6);
      a.close();
    } finally {
      await again.controller.close();
    }
  });
});

describe('controller: malformed input never crashes it', () => {
  it('bad JSON, schema violations, messages before hello, binary frames and oversize frames close only that link; a flood is slowed down, not closed', async () => {
    const cases: { send: (a: FakeAgent) => void; code: number }[] = [
      { send: (a) => a.send('this is not json'), code: CLOSE.PROTOCOL_ERROR },
      { send: (a) => a.send({ type: 'hello', agentId: '../../etc/passwd' }), code: CLOSE.PROTOCOL_ERROR },
      { send: (a) => a.send({ type: 'evidence', challengeId: 'x', bundle: {}, localResult: {}, proof: 'a.b.c' }), code: CLOSE.PROTOCOL_ERROR },
      { send: (a) => a.ws.send(Buffer.from([0, 1, 2, 3]), { binary: true }), code: CLOSE.PROTOCOL_ERROR },
      { send: (a) => a.send('x'.repeat(MAX_MESSAGE_BYTES + 10)), code: CLOSE.TOO_BIG },
    ];
    for (const c of cases) {
      const a = await FakeAgent.connect(url(trusted));
      c.send(a);
      expect((await a.waitClosed()).code).toBe(c.code);
    }
    // 120 messages against a burst of 60 at 20/s: the controller stops reading for a while (backpressure)
    // instead of closing, then handles what follows.
    const flooder = await FakeAgent.connect(url(trusted));
    for (let i = 0; i < 120; i++) flooder.send({ type: 'frobnicate' });
    flooder.hello('vm-flooder');
    expect((await flooder.next('welcome')).protocol).toBe(1);
    expect(flooder.closed).toBeUndefined();
    flooder.close();
    // Hostile bundle contents after a proper hello: answered with a contraindicated verdict, not a crash.
    const a = await FakeAgent.connect(url(trusted));
    a.hello('vm-hostile');
    const ch = await a.next('challenge');
    await a.answer(ch, {
      version: 1,
      agentId: 'vm-hostile',
      nonce: ch.nonce,
      teePubKey: a.key.publicJwk,
      simulated: true,
      cpu: { kind: 'snp', report: 12 },
      gpus: [],
    });
    const v = await a.next('verdict');
    expect((await claimsOf(trusted, v.token)).payload.submods.bundle['cvm.checks'][0].name).toBe('bundle.parse');
    a.close();
    // Still serving.
    expect((await http(trusted, '/v1/agents')).status).toBe(200);
  }, 60_000);
});

describe('controller: fleet HTTP API', () => {
  it('serves the page under a strict CSP, JSON problems for unknown paths and methods', async () => {
    const page = await http(trusted, '/');
    expect(page.status).toBe(200);
    const csp = page.headers.get('content-security-policy')!;
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    expect(await page.text()).toContain('<table id="agents">');
    expect((await http(trusted, '/assets/fleet.js')).headers.get('content-type')).toMatch(/javascript/);
    expect((await http(trusted, '/v1/agents/nobody')).status).toBe(404);
    expect((await http(trusted, '/v1/agents/%E0%A4%A')).status).toBe(400);
    expect((await fetch(`${trusted.controller.address().url}/v1/agents`, { method: 'POST' })).status).toBe(405);
  });
});
