/**
 * A hostile controller (or anything on a ws:// path) against the REAL agent daemon: a raw `ws` server
 * (test/helpers/test-controller.ts) that challenges the agent properly and then sends verdicts that
 * answer nothing the agent asked, carry unsigned or wrongly signed tokens, tokens for another agent,
 * nonce or key, or secret JWEs the token does not authenticate. Each must be refused with
 * `verdict-rejected`, and nothing may be stored or served: GET /v1/token and /v1/secrets/{name} over
 * the agent's socket stay 404. A control verdict built the right way is accepted, so the refusals are
 * the defence at work and not a broken setup. Issue 9, item 3.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { calculateJwkThumbprint, SignJWT } from 'jose';
import { openSimulation } from '../../agent/simulation/open.js';
import { TestController } from '../helpers/test-controller.js';
import { startAgentDaemon, type AgentDaemon } from '../helpers/agent-daemon.js';
import { sealTo, TokenIssuer } from '../helpers/token-issuer.js';
import type { ErrorMessage, EvidenceMessage, HelloMessage, VerdictMessage } from '../../agent/link/protocol.js';
import { SECRETS_CLAIM, secretDigest } from '../../agent/link/verdict.js';

const AGENT = 'vm-under-attack';
let simDir: string;
let keyDir: string;
let issuer: TokenIssuer;
let controller: TestController;
let agent: AgentDaemon;
const evidence: EvidenceMessage[] = [];

beforeAll(async () => {
  simDir = mkdtempSync(join(tmpdir(), 'cvm-hostile-ctl-sim-'));
  await openSimulation(simDir, 0);
  issuer = await TokenIssuer.create();
  keyDir = mkdtempSync(join(tmpdir(), 'cvm-hostile-ctl-key-'));
  writeFileSync(join(keyDir, 'controller.jwk'), JSON.stringify({ keys: [issuer.publicJwk] }));
  controller = await TestController.start({ onEvidence: (e) => evidence.push(e), attestIntervalSec: 3600 });
  agent = await startAgentDaemon({ agentId: AGENT, simDir, controller: { url: controller.url, insecure: true, tokenKey: join(keyDir, 'controller.jwk') } });
  // The welcome goes out before any challenge on the same socket, so the agent is up when they arrive.
  await controller.waitFor(() => controller.hellos.length === 1 && controller.current !== undefined, 20_000, "the agent's hello");
}, 120_000);

afterAll(async () => {
  await agent?.stop();
  await controller?.close();
  if (simDir) rmSync(simDir, { recursive: true, force: true });
  if (keyDir) rmSync(keyDir, { recursive: true, force: true });
});

const hello = (): HelloMessage => controller.hellos[controller.hellos.length - 1]!;

/** Challenge the agent like a real controller and wait until it answered with evidence. */
async function challenge(): Promise<{ id: string; nonce: string }> {
  const id = `ch-${randomBytes(6).toString('hex')}`;
  const nonce = randomBytes(32).toString('hex');
  controller.send({ type: 'challenge', id, nonce, expiresAt: new Date(Date.now() + 60_000).toISOString() });
  await controller.waitFor(() => evidence.some((e) => e.challengeId === id), 60_000, `evidence for ${id}`);
  return { id, nonce };
}

/** Send a verdict and wait for the agent's `verdict-rejected` answer to it. */
async function expectRejected(v: VerdictMessage | Record<string, unknown>, why: RegExp): Promise<void> {
  const before = controller.received.length;
  controller.send(v);
  const id = (v as { challengeId: string }).challengeId;
  await controller.waitFor(
    () => controller.received.slice(before).some((m) => m.type === 'error' && m.challengeId === id),
    20_000,
    `verdict-rejected for ${id}`,
  );
  const err = controller.received.slice(before).find((m) => m.type === 'error' && m.challengeId === id) as ErrorMessage;
  expect(err.code).toBe('verdict-rejected');
  expect(err.message).toMatch(why);
}

async function expectNothingServed(): Promise<void> {
  expect((await agent.get('/v1/token')).status).toBe(404);
  const secret = await agent.get('/v1/secrets/model-key');
  expect(secret.status).toBe(404);
  expect(secret.contentType).toMatch(/problem\+json/);
}

/**
 * No token is held or served. After a contraindicated verdict the daemon's consequences also withhold
 * the token (503, trust lost: docs/config.md "Consequences"), so the link's own token is checked too:
 * the verdict that attests nothing must have replaced it, not merely hidden it.
 */
async function expectNoToken(): Promise<void> {
  const r = await agent.get('/v1/token');
  expect([404, 503]).toContain(r.status);
  expect(r.body.toString()).not.toMatch(/eyJ/);
  expect((agent.daemon as unknown as { link: { currentToken(): unknown } }).link.currentToken()).toBeUndefined();
}

/** The key thumbprint a correct verdict confirms (the agent's own key, from its hello). */
async function agentKid(): Promise<string> {
  const { kty, crv, x, y } = hello().teePubKey;
  return calculateJwkThumbprint({ kty, crv, x, y } as never, 'sha256');
}

async function good(c: { id: string; nonce: string }, over: Partial<Parameters<TokenIssuer['verdict']>[0]> = {}): Promise<VerdictMessage> {
  return issuer.verdict({
    agentId: AGENT,
    challengeId: c.id,
    nonce: c.nonce,
    jkt: await agentKid(),
    teePubKey: hello().teePubKey,
    secrets: { 'model-key': 'weights-key' },
    ...over,
  });
}

describe('hostile controller: verdicts that answer nothing the agent asked', () => {
  it('warns at start that the ws:// link is not protected (controller.insecure: true)', async () => {
    expect(agent.logs.some((l) => l.level === 40 && /NOT encrypted or authenticated/.test(String(l.msg)))).toBe(true);
  });

  it('an unsolicited verdict (a challenge never issued) with a correctly signed token and secret is refused', async () => {
    const v = await good({ id: 'never-issued', nonce: randomBytes(32).toString('hex') });
    await expectRejected(v, /did not answer on this connection/);
    await expectNothingServed();
  }, 60_000);

  it('a token that is unsigned (alg none), signed by another key, or altered after signing is refused', async () => {
    const c1 = await challenge();
    const right = await good(c1);
    const p = right.token.split('.')[1];
    const none = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')}.${p}.AAAA`;
    await expectRejected({ ...right, token: none }, /token rejected/);

    const c2 = await challenge();
    const rogue = await TokenIssuer.create();
    const v2 = await rogue.verdict({
      agentId: AGENT,
      challengeId: c2.id,
      nonce: c2.nonce,
      jkt: await agentKid(),
      teePubKey: hello().teePubKey,
      secrets: { 'model-key': 'weights-key' },
    });
    await expectRejected(v2, /token rejected/);

    const c3 = await challenge();
    const v3 = await good(c3);
    const [h3, p3, s3] = v3.token.split('.');
    const claims = JSON.parse(Buffer.from(p3!, 'base64url').toString()) as Record<string, unknown>;
    const altered = `${h3}.${Buffer.from(JSON.stringify({ ...claims, 'ear.status': 'affirming', exp: 9_999_999_999 })).toString('base64url')}.${s3}`;
    await expectRejected({ ...v3, token: altered }, /token rejected/);

    // HS256 with the public key as the MAC key (algorithm confusion) is not ES384: refused.
    const c4 = await challenge();
    const hs = await new SignJWT({ sub: AGENT, eat_nonce: Buffer.from(c4.nonce, 'hex').toString('base64url'), cnf: { jkt: await agentKid() } })
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(new TextEncoder().encode(JSON.stringify(issuer.publicJwk)));
    await expectRejected({ type: 'verdict', challengeId: c4.id, token: hs }, /token rejected/);
    await expectNothingServed();
  }, 120_000);

  it('a token for another agent id, another challenge nonce, another key, or already expired is refused', async () => {
    const c1 = await challenge();
    await expectRejected(await good(c1, { claims: { sub: 'some-other-vm' } }), /token rejected: .*sub/);
    const c2 = await challenge();
    await expectRejected(await good(c2, { nonce: randomBytes(32).toString('hex') }), /eat_nonce/);
    const c3 = await challenge();
    await expectRejected(await good(c3, { jkt: 'x'.repeat(43) }), /cnf\.jkt/);
    const c4 = await challenge();
    await expectRejected(await good(c4, { ttlSec: -3600 }), /token rejected: .*exp/);
    await expectNothingServed();
  }, 120_000);

  it('a secret JWE sealed to the agent key but not authenticated by the token is refused, and nothing of the verdict is stored', async () => {
    // (a) the token lists no secrets at all
    const c1 = await challenge();
    await expectRejected(await good(c1, { unlisted: ['model-key'] }), /not authenticated by the token/);
    // (b) the token lists another JWE's hash for the name (a JWE swapped in flight)
    const c2 = await challenge();
    const v2 = await good(c2);
    const swapped = { ...v2, secrets: [{ name: 'model-key', jwe: await sealTo(hello().teePubKey, 'attacker-chosen-key') }] };
    await expectRejected(swapped, /not authenticated by the token/);
    // (c) a verdict without cnf (attesting nothing about the key) that still carries secrets
    const c3 = await challenge();
    await expectRejected(await good(c3, { jkt: null }), /does not confirm this agent's key/);
    // (d) the token lists a secret that did not arrive (dropped in flight)
    const c4 = await challenge();
    const v4 = await good(c4);
    const payload = JSON.parse(Buffer.from(v4.token.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
    const listed = payload[SECRETS_CLAIM] as Record<string, string>;
    const extra = await issuer.sign({ ...payload, [SECRETS_CLAIM]: { ...listed, 'second-key': secretDigest('x.y.z.w.v') } });
    await expectRejected({ ...v4, token: extra }, /did not arrive/);
    await expectNothingServed();
  }, 120_000);

  it('control: a verdict built the right way is accepted and served; its replay, and replays on a new connection, are refused', async () => {
    const c1 = await challenge();
    const v1 = await good(c1);
    controller.send(v1);
    const deadline = Date.now() + 20_000;
    let token = await agent.get('/v1/token');
    while (token.status !== 200 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      token = await agent.get('/v1/token');
    }
    expect(token.status).toBe(200);
    expect((token.json() as { token: string }).token).toBe(v1.token);
    const secret = await agent.get('/v1/secrets/model-key');
    expect(secret.status).toBe(200);
    expect(secret.body.toString()).toBe('weights-key');

    // A verdict that attests nothing about the key (contraindicated, no cnf) replaces the token: nothing served.
    const c2 = await challenge();
    const before = agent.logs.length;
    controller.send(await good(c2, { jkt: null, secrets: {}, status: 'contraindicated' }));
    const seen = () => agent.logs.slice(before).some((l) => /does not attest this agent's key/.test(String(l.msg)));
    const until = Date.now() + 20_000;
    while (!seen() && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    expect(seen()).toBe(true);
    await expectNoToken();

    // The earlier, valid verdict sent again: accepted once only.
    await expectRejected(v1, /did not answer on this connection \(unsolicited or replayed\)/);
    await expectNoToken();

    // After a reconnect the challenge belongs to a closed connection: still refused.
    const hellos = controller.hellos.length;
    controller.dropAll();
    await controller.waitFor(() => controller.hellos.length > hellos && controller.current !== undefined, 30_000, 'reconnect');
    await new Promise((r) => setTimeout(r, 100));
    await challenge(); // the new connection is live and answering
    await expectRejected(await good(c2), /did not answer on this connection/);
    await expectNoToken();
  }, 120_000);
  it("only an authenticated verdict moves the agent's trust state: forged or unsolicited verdicts neither clear nor raise controllerContraindicated", async () => {
    const active = () => agent.daemon.trustSnapshot().triggers.some((t) => t.trigger === 'controllerContraindicated');
    const settle = async (want: boolean, what: string) => {
      const deadline = Date.now() + 20_000;
      while (active() !== want && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(active(), what).toBe(want);
    };
    const rogue = await TokenIssuer.create();
    const forged = async (c: { id: string; nonce: string }, status: string) =>
      rogue.verdict({ agentId: AGENT, challengeId: c.id, nonce: c.nonce, jkt: await agentKid(), teePubKey: hello().teePubKey, status });

    // An authenticated CONTRAINDICATED verdict (no cnf: it attests nothing about the key) raises the trigger.
    const c1 = await challenge();
    controller.send(await good(c1, { jkt: null, secrets: {}, status: 'contraindicated' }));
    await settle(true, 'raised by the authenticated contraindicated verdict');

    // A forged AFFIRMING verdict for an answered challenge, and a correctly signed one for a challenge
    // never answered, are refused and clear nothing.
    await expectRejected(await forged(await challenge(), 'affirming'), /token rejected/);
    await expectRejected(await good({ id: 'never-answered', nonce: randomBytes(32).toString('hex') }, { secrets: {} }), /did not answer on this connection/);
    expect(active()).toBe(true);

    // The authenticated AFFIRMING verdict clears it.
    controller.send(await good(await challenge(), { secrets: {} }));
    await settle(false, 'cleared by the authenticated affirming verdict');

    // A forged CONTRAINDICATED verdict raises nothing.
    await expectRejected(await forged(await challenge(), 'contraindicated'), /token rejected/);
    expect(active()).toBe(false);
  }, 120_000);
});
