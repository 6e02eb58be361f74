/**
 * The controller link's reconnect loop logs exactly one line per failed attempt (and per drop of a
 * link that was up): why, which attempt comes next, and after what delay; a warning, or an error when
 * waiting will not help (refused credentials). Socket errors and refusals along the way are debug
 * only, so a controller that is down for an hour is one line per backoff step, not three.
 */
import { describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { backoffDelay } from '../../../agent/link/backoff.js';
import { makeHarness, type Harness } from '../../helpers/test-controller.js';
import { linkFixture, linkUp } from '../../helpers/link-fixture.js';

const { cleanup, setup } = linkFixture();
const BACKOFF = { baseMs: 40, capMs: 200 };
const HALF = () => 0.5;

/** A loopback port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Warnings and errors, but the one at start that says ws:// is insecure (these tests use loopback ws://). */
const loud = (h: Harness) => h.logs.filter((l) => (l.level === 'warn' || l.level === 'error') && !l.msg.includes('NOT encrypted'));
const reconnectLines = (h: Harness) => h.logs.filter((l) => l.msg.startsWith('controller link down:'));

async function until(what: string, pred: () => boolean, ms = 8000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('controller link reconnect loop logging', () => {
  it('controller unreachable: one warning per attempt, with the attempt number and the next delay', async () => {
    // Delays long enough (200, 400, 800 ms) that the link is stopped while it waits, never mid-attempt.
    const backoff = { baseMs: 400, capMs: 2000 };
    const h = await makeHarness(`ws://127.0.0.1:${await closedPort()}/v1/link`, { backoff, random: HALF });
    cleanup.push(() => h.close());
    h.link.start();
    await until('three attempts', () => reconnectLines(h).length >= 3);
    await h.link.stop();
    const lines = reconnectLines(h);
    // Every loud line is a reconnect line, and there is one per connection attempt made.
    expect(loud(h)).toEqual(lines);
    expect(lines).toHaveLength(h.link.status().counters.connects);
    lines.forEach((l, i) => {
      const f = l.fields as { attempt: number; nextDelayMs: number; lastError: string; reconnectAt: string };
      expect(l.level).toBe('warn');
      expect(f.attempt).toBe(i + 1);
      expect(f.nextDelayMs).toBe(backoffDelay(i, backoff, HALF));
      expect(l.msg).toBe(`controller link down: attempt ${i + 1} in ${(f.nextDelayMs / 1000).toFixed(1)} s`);
      expect(f.lastError).toMatch(/ECONNREFUSED/);
      expect(new Date(f.reconnectAt).toISOString()).toBe(f.reconnectAt);
    });
    // Exponential with full jitter: 200, 400, 800 ms with random 0.5.
    expect(lines.map((l) => (l.fields as { nextDelayMs: number }).nextDelayMs)).toEqual([200, 400, 800]);
  });

  it('a link that was up and dropped: one warning with the close code and the next delay', async () => {
    const { controller, h } = await setup({}, { backoff: BACKOFF, random: HALF });
    h.link.start();
    await controller.waitFor(linkUp(h), 5000, 'link up');
    const before = h.logs.length;
    for (const s of controller.sockets) s.terminate();
    await until('the drop logged', () => reconnectLines(h).length >= 1);
    const after = h.logs.slice(before).filter((l) => l.level === 'warn' || l.level === 'error');
    expect(after).toHaveLength(1);
    expect(after[0]!.fields).toMatchObject({ code: 1006, attempt: 1, nextDelayMs: backoffDelay(0, BACKOFF, HALF) });
  });

  it('no credentials (the token file unreadable): an error per attempt, since waiting alone will not fix it', async () => {
    const { controller, h } = await setup({ token: 'right' }, { backoff: BACKOFF, random: HALF, tokenFile: '/nonexistent/cvm-token' });
    h.link.start();
    await until('two attempts', () => reconnectLines(h).length >= 2);
    expect(controller.unauthorized).toBe(0);
    for (const l of reconnectLines(h)) {
      expect(l.level).toBe('error');
      expect((l.fields as { lastError: string }).lastError).toMatch(/cannot read the bearer token file/);
    }
    expect(loud(h)).toEqual(reconnectLines(h));
  });
});

describe('controller link reconnect loop logging: HTTP 401', () => {
  it('logs each refused attempt once, as an error naming the status', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cvm-token-'));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, 'token'), 'wrong\n');
    // Refusals back off harder (1 s here), so the link is stopped while it waits, never mid-attempt.
    const { controller, h } = await setup({ token: 'right' }, { backoff: { baseMs: 400, capMs: 2000 }, random: HALF, tokenFile: join(dir, 'token') });
    h.link.start();
    await controller.waitFor(() => controller.unauthorized >= 2, 10_000, 'two refused attempts');
    await until('two lines', () => reconnectLines(h).length >= 2);
    await h.link.stop();
    const lines = reconnectLines(h);
    expect(lines).toHaveLength(controller.unauthorized);
    for (const l of lines) {
      expect(l.level).toBe('error');
      expect((l.fields as { lastError: string }).lastError).toMatch(/HTTP 401/);
    }
    expect(loud(h)).toEqual(lines);
  });
});
