/**
 * Crash trial (issue 9, item 4): the link livelocked after an outage. With more than 60 events
 * queued, the agent resent its outbox back to back, the controller closed the link on its rate
 * limit (burst 60) before acking anything, and every retry started again from the first unacked
 * event, forever.
 *
 * Here: the REAL agent link (ControllerLink + fsync'd Outbox) and the REAL reference controller
 * with its DEFAULT limits, over loopback. The controller goes away, 10,000 events pile up in the
 * outbox, the controller comes back: the backlog must drain completely on one connection, every seq
 * stored exactly once and in order, with the agent never having more than the announced window of
 * events unacknowledged, and the controller slowing the agent down (not closing on it).
 */
import { describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeBundle } from '../helpers/controller-fixture.js';
import { linkSuite } from '../helpers/link-suite.js';
import { makeHarness, type Harness } from '../helpers/test-controller.js';
import { CONTROLLER_DEFAULTS } from '../../agent/controller/config.js';
import { CONTROLLER_TOKEN_KEY, RestartableController, TOKEN, until } from '../helpers/link-load.js';

const suite = linkSuite('cvm-backlog-');
const { cleanup } = suite;

describe('crash: a 10,000-event backlog after a controller outage', () => {
  it('drains completely against a controller with its default limits: one connection, every seq once and in order, within the window', async () => {
    const N = 10_000;
    const tokenFile = join(suite.tmp, 'token');
    writeFileSync(tokenFile, `${TOKEN}\n`);
    const rc = await RestartableController.create({ stateDir: join(suite.tmp, 'state'), simDir: suite.sim.dir, limits: 'defaults', logLevel: 'info' });
    cleanup.push(() => rc.stop());
    await rc.start();
    let h!: Harness;
    h = await makeHarness(rc.wsUrl, {
      agentId: 'vm-backlog',
      tokenFile,
      tokenKeys: [CONTROLLER_TOKEN_KEY], // the restartable controller's verdicts verify under its fixed key
      maxEvents: 2 * N, // the outbox keeps the whole backlog (its own bound is tested elsewhere)
      handlers: { onChallenge: async (nonce) => ({ bundle: await makeBundle(suite.sim, nonce, h.key.publicJwk, 'vm-backlog'), localResult: {} }) },
    });
    cleanup.push(() => h.close());
    h.link.start();
    await until(() => h.calls.verdicts.length > 0, 30_000, 'the agent key attested');
    await h.outbox.append('status', { i: 0 });
    await until(() => h.outbox.lastAcked === 1, 10_000, 'the first event acked');

    // The outage: the controller is gone while the backlog builds up.
    await rc.stop();
    for (let i = 1; i <= N; i++) await h.outbox.append('status', { i });
    const lastSeq = h.outbox.lastSeq;
    expect(lastSeq).toBe(N + 1);
    expect(h.outbox.size).toBe(N);
    const linesBefore = rc.logLines.length;
    const connectsBefore = h.link.status().counters.connects;

    // Back: watch the agent's unacknowledged events while it drains.
    let maxInFlight = 0;
    const sampler = setInterval(() => {
      maxInFlight = Math.max(maxInFlight, h.link.status().inFlight);
    }, 2);
    cleanup.push(async () => clearInterval(sampler));
    await rc.start();
    await until(
      () => h.outbox.lastAcked === lastSeq,
      240_000,
      () => `the backlog drained; acked ${h.outbox.lastAcked} of ${lastSeq}, link ${JSON.stringify(h.link.status())}`,
    );
    clearInterval(sampler);

    // Every seq exactly once, in order, on the controller that came back.
    const stored = rc.applied.filter((a) => a.instance === 1 && a.what === 'stored').map((a) => a.seq);
    expect(stored.length).toBe(N);
    expect(stored.findIndex((s, k) => s !== k + 2)).toBe(-1);
    const view = await rc.getJson<{ lastSeq: number; gapRanges: unknown[] }>('/v1/agents/vm-backlog');
    expect(view.lastSeq).toBe(lastSeq);
    expect(view.gapRanges).toEqual([]);
    // Flow control: the window the controller announced, and never more than that in flight.
    const status = h.link.status();
    expect(status.window.events).toBe(CONTROLLER_DEFAULTS.limits.window);
    expect(maxInFlight).toBeGreaterThan(0);
    expect(maxInFlight).toBeLessThanOrEqual(CONTROLLER_DEFAULTS.limits.window);
    // No livelock: the whole backlog went over ONE connection to the controller that came back, which
    // never closed it on a rate limit (it stopped reading instead).
    const after = rc.logLines.slice(linesBefore).join('\n');
    expect(after.match(/"msg":"agent connected"/g)?.length).toBe(1);
    expect(after).not.toMatch(/agent disconnected|rate-limited|window-exceeded/);
    expect(status.state).toBe('up');
    console.log(
      `[backlog] ${N} events drained after the outage on one connection (${status.counters.connects - connectsBefore} attempts while it was down), max ${maxInFlight} in flight (window ${status.window.events})`,
    );
  }, 600_000);

  it('drains with holes to declare even through a window of one event (declarations never clog the window)', async () => {
    const MAX = 20;
    const tokenFile = join(suite.tmp, 'token-w1');
    writeFileSync(tokenFile, `${TOKEN}\n`);
    const rc = await RestartableController.create({
      stateDir: join(suite.tmp, 'state-w1'),
      simDir: suite.sim.dir,
      limits: { messagesPerSec: 20, burst: 60, window: 1 },
    });
    cleanup.push(() => rc.stop());
    await rc.start();
    let h!: Harness;
    h = await makeHarness(rc.wsUrl, {
      agentId: 'vm-window-1',
      tokenFile,
      tokenKeys: [CONTROLLER_TOKEN_KEY], // the restartable controller's verdicts verify under its fixed key
      maxEvents: MAX,
      handlers: { onChallenge: async (nonce) => ({ bundle: await makeBundle(suite.sim, nonce, h.key.publicJwk, 'vm-window-1'), localResult: {} }) },
    });
    cleanup.push(() => h.close());
    h.link.start();
    await until(() => h.calls.verdicts.length > 0, 30_000, 'the agent key attested');
    await rc.stop();
    // The outbox overflows several times while the controller is gone: several holes, each declared.
    for (let i = 1; i <= 10 * MAX; i++) await h.outbox.append('status', { i });
    const lastSeq = h.outbox.lastSeq;
    await rc.start();
    await until(
      () => h.outbox.lastAcked === lastSeq,
      60_000,
      () => `drained; ${JSON.stringify(h.link.status())}`,
    );
    expect(h.link.status().window.events).toBe(1);
    const view = await rc.getJson<{ lastSeq: number; gapRanges: Array<{ from: number; to: number; reason: string }> }>('/v1/agents/vm-window-1');
    expect(view.lastSeq).toBe(lastSeq);
    expect(view.gapRanges.length).toBeGreaterThan(0);
    expect(view.gapRanges.every((g) => g.reason === 'dropped-by-agent')).toBe(true);
    expect(view.gapRanges[0]!.from).toBe(1);
    // Stored and declared together cover every seq exactly once.
    const stored = new Set(rc.applied.filter((a) => a.what === 'stored').map((a) => a.seq));
    for (let s = 1; s <= lastSeq; s++) {
      const declared = view.gapRanges.some((g) => g.from <= s && s <= g.to);
      expect(stored.has(s) !== declared, `seq ${s}`).toBe(true);
    }
  }, 120_000);
});
