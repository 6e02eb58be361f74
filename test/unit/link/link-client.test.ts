import { describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { parseBundle } from '../../../agent/formats/evidence-bundle.js';
import { createAgentKey } from '../../../agent/link/agent-key.js';
import { ControllerLink } from '../../../agent/link/link-client.js';
import { verifyEventSignature } from '../../../agent/link/events.js';
import { CLOSE, PROTOCOL } from '../../../agent/link/protocol.js';
import { makeHarness, TestController } from '../../helpers/test-controller.js';
import { linkFixture, linkUp as up, resumeAtFirstGap } from '../../helpers/link-fixture.js';
import { ConfigError } from '../../../agent/errors.js';
import { defaultIssuer } from '../../helpers/token-issuer.js';

const { cleanup, setup } = linkFixture();

describe('ControllerLink: session', () => {
  it('says hello with the agent key and resume point, and goes up on welcome', async () => {
    const { controller, h } = await setup({ heartbeatSec: 7, attestIntervalSec: 600 });
    expect(h.link.status().state).toBe('down');
    h.link.start();
    await controller.waitFor(up(h), 5000, 'link up');
    const hello = controller.hellos[0]!;
    expect(hello).toMatchObject({ type: 'hello', agentId: 'vm-test-1', version: '0.1.0', protocol: { min: 1, max: 1 }, resumeFrom: 1 });
    expect(hello.teePubKey).toEqual(h.key.publicJwk);
    expect(controller.sockets[0]!.protocol).toBe(PROTOCOL);
    const s = h.link.status();
    expect(s).toMatchObject({ state: 'up', protocol: 1, heartbeatSec: 7, attestIntervalSec: 600, attempt: 0 });
    expect(s.lastError).toBeUndefined();
    expect(s.reconnectIn).toBeUndefined();
    expect(() => new ControllerLink({ url: 'http://x' } as never)).toThrow(ConfigError);
  });

  it('closes with 4001 when no version is shared, reports why, and keeps retrying with backoff', async () => {
    const { controller, h } = await setup({ supported: { min: 2, max: 3 } });
    h.link.start();
    await controller.waitFor(() => controller.hellos.length >= 2, 8000, 'a retry');
    expect(controller.closes[0]).toMatchObject({ code: CLOSE.VERSION_MISMATCH, reason: expect.stringMatching(/agent 1\.\.1, controller 2\.\.3/) });
    const s = h.link.status();
    expect(s.state).not.toBe('up');
    expect(s.lastError).toMatch(/4001.*no common protocol version/);
  });

  it('rejects a welcome that picks a version it never offered', async () => {
    const { controller, h } = await setup({ welcome: () => ({ type: 'welcome', protocol: 2, heartbeatSec: 30 }) });
    h.link.start();
    await controller.waitFor(() => controller.closes.length >= 1, 5000, 'agent close');
    expect(controller.closes[0]!.code).toBe(CLOSE.VERSION_MISMATCH);
    expect(h.link.status().state).not.toBe('up');
  });

  it('answers a challenge with evidence bound to the nonce (real bundle round trip)', async () => {
    const evidence: unknown[] = [];
    const { controller, h } = await setup({ onEvidence: (e) => evidence.push(e) });
    h.link.start();
    await controller.waitFor(up(h));
    const nonce = 'c0ffee'.repeat(8) + '0011223344556677';
    controller.send({ type: 'challenge', id: 'ch-1', nonce, expiresAt: new Date(Date.now() + 30_000).toISOString() });
    await controller.waitFor(() => evidence.length === 1, 5000, 'evidence');
    expect(h.calls.challenges).toHaveLength(1);
    expect(h.calls.challenges[0]!.id).toBe('ch-1');
    expect(h.calls.challenges[0]!.nonce.toString('hex')).toBe(nonce);
    const ev = evidence[0] as { challengeId: string; bundle: unknown; localResult: Record<string, unknown> };
    expect(ev.challengeId).toBe('ch-1');
    const bundle = parseBundle(JSON.stringify(ev.bundle));
    expect(bundle.nonce.toString('hex')).toBe(nonce);
    expect(bundle.teePubKey).toEqual(h.key.publicJwk);
    expect(bundle.cpu.report.length).toBe(1184);
    expect(ev.localResult['ear.status']).toBe('affirming');
  });

  it('answers expired challenges and failing cycles with typed errors', async () => {
    const { controller, h } = await setup(
      {},
      {
        handlers: {
          onChallenge: async () => {
            throw new Error('sev-guest: firmware busy');
          },
        },
      },
    );
    h.link.start();
    await controller.waitFor(up(h));
    controller.send({ type: 'challenge', id: 'old', nonce: 'ab'.repeat(16), expiresAt: '2020-01-01T00:00:00Z' });
    controller.send({ type: 'challenge', id: 'bad', nonce: 'ab'.repeat(16), expiresAt: new Date(Date.now() + 30_000).toISOString() });
    await controller.waitFor(() => controller.received.filter((m) => m.type === 'error').length === 2, 5000, 'two errors');
    const errors = controller.received.filter((m) => m.type === 'error');
    expect(errors).toContainEqual({ type: 'error', code: 'challenge-expired', message: expect.stringMatching(/old expired/), challengeId: 'old' });
    expect(errors).toContainEqual({ type: 'error', code: 'attestation-failed', message: 'sev-guest: firmware busy', challengeId: 'bad' });
    expect(h.link.status().state).toBe('up');
  });

  it('runs a cycle on attest, and stores a verdict for a challenge it answered: token handed over, secrets decrypted in memory', async () => {
    const { controller, h } = await setup();
    h.link.start();
    await controller.waitFor(up(h));
    controller.send({ type: 'attest' });
    await controller.waitFor(() => h.calls.attests === 1, 5000, 'attest');
    const hello = controller.hellos[0]!;
    const issuer = await defaultIssuer();
    const answer = async (id: string) => {
      const nonce = randomBytes(32).toString('hex');
      controller.send({ type: 'challenge', id, nonce, expiresAt: new Date(Date.now() + 30_000).toISOString() });
      await controller.waitFor(() => controller.received.some((m) => m.type === 'evidence' && m.challengeId === id), 5000, `evidence for ${id}`);
      return nonce;
    };
    const n9 = await answer('ch-9');
    const v9 = await issuer.verdict({
      agentId: 'vm-test-1',
      challengeId: 'ch-9',
      nonce: n9,
      jkt: h.key.kid,
      teePubKey: hello.teePubKey,
      secrets: { 'model-key': 'k3y-material' },
    });
    controller.send(v9);
    await controller.waitFor(() => h.calls.verdicts.length === 1, 5000, 'verdict');
    expect(h.calls.verdicts[0]).toEqual({ token: v9.token, names: ['model-key'] });
    expect(Buffer.from(h.secrets.get('model-key')!).toString()).toBe('k3y-material');
    expect(JSON.stringify(h.logs)).not.toContain('k3y-material');
    // A secret for another key, listed in the token: rejected with an error message, nothing stored, link stays up.
    const n10 = await answer('ch-10');
    const otherKey = await createAgentKey();
    const v10 = await issuer.verdict({
      agentId: 'vm-test-1',
      challengeId: 'ch-10',
      nonce: n10,
      jkt: h.key.kid,
      teePubKey: otherKey.publicJwk,
      secrets: { other: 'nope' },
    });
    controller.send(v10);
    await controller.waitFor(() => controller.received.some((m) => m.type === 'error' && m.challengeId === 'ch-10'), 5000, 'verdict-rejected');
    expect(controller.received.find((m) => m.type === 'error' && m.challengeId === 'ch-10')).toMatchObject({ code: 'verdict-rejected' });
    expect(h.secrets.has('other')).toBe(false);
    expect(h.calls.verdicts).toHaveLength(1);
    expect(h.link.status().state).toBe('up');
  });
});

describe('ControllerLink: authentication', () => {
  it('a wrong bearer token is refused with 401: reported, backed off, and re-read at the next attempt', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cvm-token-'));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    const tokenFile = join(dir, 'token');
    await writeFile(tokenFile, 'wrong-token\n');
    const { controller, h } = await setup({ token: 's3cret-token' }, { tokenFile, backoff: { baseMs: 50, capMs: 400 } });
    h.link.start();
    // The controller counts a refusal before the link has read it: wait for both sides.
    await controller.waitFor(() => controller.unauthorized >= 2 && h.link.status().attempt >= 2, 8000, 'two refused attempts');
    const s = h.link.status();
    expect(s.state).not.toBe('up');
    expect(s.lastError).toMatch(/HTTP 401/);
    expect(s.attempt).toBeGreaterThanOrEqual(2);
    expect(JSON.stringify(s)).not.toContain('wrong-token');
    expect(JSON.stringify(h.logs)).not.toContain('wrong-token');
    // Backed off, not hot-looping: a handful of attempts in this time, not hundreds.
    await new Promise((r) => setTimeout(r, 300));
    expect(controller.unauthorized).toBeLessThan(20);
    await writeFile(tokenFile, 's3cret-token\n');
    await controller.waitFor(up(h), 8000, 'link up after token fix');
    expect(controller.hellos).toHaveLength(1);
  });

  it('a missing token file is reported and retried', async () => {
    const { controller, h } = await setup({ token: 't' }, { tokenFile: '/nonexistent/cvm-token' });
    h.link.start();
    await controller.waitFor(() => h.link.status().attempt >= 2, 5000, 'retries');
    expect(h.link.status().lastError).toMatch(/cannot read the bearer token file/);
    expect(controller.upgrades).toBe(0);
  });
});

describe('ControllerLink: events', () => {
  it('sends gap-free signed events in order, and acks drain the outbox', async () => {
    const { controller, h } = await setup({ autoAck: true });
    h.link.start();
    await controller.waitFor(up(h));
    for (let i = 0; i < 50; i++) await h.outbox.append(i % 2 ? 'status' : 'attestation', { i });
    await controller.waitFor(() => controller.events.length === 50, 5000, '50 events');
    expect(controller.events.map((e) => e.seq)).toEqual([...Array(50).keys()].map((i) => i + 1));
    const jwk = controller.hellos[0]!.teePubKey;
    for (const e of controller.events) expect(await verifyEventSignature(e, jwk)).toBe(true);
    await controller.waitFor(() => h.outbox.size === 0, 5000, 'outbox drained');
    expect(h.outbox.lastAcked).toBe(50);
    expect(h.link.status().lastAckedSeq).toBe(50);
  });

  it('resends from the outbox after the connection drops mid-stream: every seq exactly once after de-dup, in order', async () => {
    // The controller acks only every 10th event, so a drop leaves sent-but-unacked events behind.
    const { controller, h } = await setup({});
    resumeAtFirstGap(controller);
    h.link.start();
    await controller.waitFor(up(h));
    const total = 120;
    let dropped = 0;
    for (let i = 1; i <= total; i++) {
      await h.outbox.append('status', { i });
      if (i % 10 === 0) controller.send({ type: 'ack', seq: Math.max(0, controller.uniqueSeqs().length - 3) });
      if (i === 45 || i === 90) {
        controller.dropAll();
        dropped++;
      }
    }
    await controller.waitFor(() => controller.uniqueSeqs().length === total, 10_000, 'all events');
    expect(dropped).toBe(2);
    expect(controller.hellos.length).toBeGreaterThanOrEqual(3);
    expect(controller.uniqueSeqs()).toEqual([...Array(total).keys()].map((i) => i + 1));
    // In order on each connection: per socket, seqs strictly increase.
    const bySocket = new Map<number, number[]>();
    let sock = -1;
    for (const m of controller.received) {
      if (m.type === 'hello') sock++;
      if (m.type === 'event') bySocket.set(sock, [...(bySocket.get(sock) ?? []), m.seq]);
    }
    for (const seqs of bySocket.values()) expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    // hello.resumeFrom after a reconnect reflects acks received before the drop.
    expect(controller.hellos[1]!.resumeFrom).toBeGreaterThan(1);
  });

  it('persists across an agent restart: the new process resumes from the last ack with a continued seq', async () => {
    const controller = await TestController.start({});
    cleanup.push(() => controller.close());
    const dir = await mkdtemp(join(tmpdir(), 'cvm-restart-'));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    const first = await makeHarness(controller.url, { dir });
    first.link.start();
    await controller.waitFor(up(first));
    for (let i = 1; i <= 10; i++) await first.outbox.append('status', { run: 1, i });
    await controller.waitFor(() => controller.events.length === 10, 5000, 'first run events');
    controller.send({ type: 'ack', seq: 6 });
    await controller.waitFor(() => first.outbox.lastAcked === 6, 5000, 'ack 6');
    await first.close();

    const second = await makeHarness(controller.url, { dir });
    cleanup.push(() => second.close());
    second.link.start();
    await controller.waitFor(up(second));
    const hello = controller.hellos[1]!;
    expect(hello.resumeFrom).toBe(7);
    expect(hello.teePubKey).not.toEqual(controller.hellos[0]!.teePubKey);
    const e11 = await second.outbox.append('status', { run: 2 });
    expect(e11.seq).toBe(11);
    await controller.waitFor(() => controller.events.length === 15, 5000, 'resent + new');
    expect(controller.events.slice(10).map((e) => e.seq)).toEqual([7, 8, 9, 10, 11]);
    // Old events verify with the old key (by kid), the new one with the new key.
    expect(await verifyEventSignature(controller.events[10]!, controller.hellos[0]!.teePubKey)).toBe(true);
    expect(await verifyEventSignature(controller.events[14]!, hello.teePubKey)).toBe(true);
  });

  it('a welcome.resumeFrom ahead of the agent counts as an ack; an ack beyond what was sent is clamped', async () => {
    const { controller, h } = await setup({ resumeFrom: () => 4 });
    for (let i = 1; i <= 6; i++) await h.outbox.append('status', { i });
    h.link.start();
    await controller.waitFor(() => controller.events.length === 3, 5000, 'events from 4');
    expect(controller.events.map((e) => e.seq)).toEqual([4, 5, 6]);
    await controller.waitFor(() => h.outbox.lastAcked === 3, 2000, 'implicit ack');
    controller.send({ type: 'ack', seq: 1000 });
    // Wait until the link has handled the ack (not a fixed sleep: under load it can take longer), then
    // check it was clamped to what was sent, 6.
    await controller.waitFor(() => h.outbox.lastAcked >= 6, 5000, 'the over-ack handled');
    expect(h.outbox.lastAcked).toBe(6);
    // Events appended later are not lost to the earlier over-ack.
    await h.outbox.append('status', { later: true });
    await controller.waitFor(() => controller.events.length === 4, 5000, 'later event');
    expect(h.outbox.size).toBe(1);
  });
});

describe('ControllerLink: several controller URLs (replicas)', () => {
  it('fails over round robin: a dead first URL is passed over, and a replica that goes away hands the link to the next', async () => {
    const a = await TestController.start();
    cleanup.push(() => a.close());
    const b = await TestController.start();
    cleanup.push(() => b.close());
    // The first URL: a port nothing listens on (bound, then released).
    const dead = await TestController.start();
    const deadUrl = dead.url;
    await dead.close();
    const h = await makeHarness(deadUrl, { urls: [a.url, b.url], insecure: true });
    cleanup.push(() => h.close());
    h.link.start();
    await a.waitFor(up(h), 8000, 'link up on the second URL');
    expect(h.link.status().url).toBe(a.url);
    expect(h.logs.some((l) => l.msg.startsWith('controller link down') && (l.fields as { nextUrl?: string }).nextUrl === a.url)).toBe(true);
    // Replica a goes away: the link comes back on b, with backoff, and says hello again.
    const aUrl = a.url;
    await a.close();
    await b.waitFor(() => b.hellos.length >= 1 && h.link.status().state === 'up', 8000, 'link up on the third URL');
    expect(h.link.status().url).toBe(b.url);
    expect(() => new ControllerLink({ url: aUrl, urls: ['http://x'], insecure: true } as never)).toThrow(ConfigError);
    expect(() => new ControllerLink({ url: 'wss://x/v1/link', urls: [aUrl] } as never)).toThrow(/ws:\/\/: unencrypted/);
  });
});
