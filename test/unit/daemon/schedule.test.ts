import { afterEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { retryDelayMs, Scheduler } from '../../../agent/daemon/schedule.js';

const schedulers: Scheduler[] = [];
afterEach(async () => {
  await Promise.all(schedulers.splice(0).map((s) => s.stop()));
});

describe('retry backoff', () => {
  it('stays within [step/2, step] of a capped exponential step', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 100 }),
        fc.integer({ min: 1, max: 60 }),
        fc.integer({ min: 1, max: 3600 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (n, initial, max, r) => {
          const step = Math.min(max, initial * 2 ** (n - 1)) * 1000;
          const d = retryDelayMs(n, initial, max, () => r);
          expect(d).toBeGreaterThanOrEqual(Math.floor(step / 2));
          expect(d).toBeLessThanOrEqual(step);
        },
      ),
      { numRuns: 5000 },
    );
  });

  it('grows and then caps', () => {
    const mid = () => 0.5;
    expect(retryDelayMs(1, 5, 300, mid)).toBe(3750);
    expect(retryDelayMs(2, 5, 300, mid)).toBe(7500);
    expect(retryDelayMs(20, 5, 300, mid)).toBe(225000);
  });
});

describe('Scheduler', () => {
  it('rejects an invalid cron expression', () => {
    expect(() => new Scheduler({ cron: 'not cron', jitterSec: 0, attestAtStart: false, retry: { initialSec: 1, maxSec: 1 }, run: async () => true })).toThrow(
      /invalid cron/,
    );
  });

  it('attests at start, retries after a failure with backoff, and shows the next run', async () => {
    const runs: string[] = [];
    let fail = true;
    const s = new Scheduler({
      cron: '0 0 1 1 *', // yearly: only start and retries happen during the test
      jitterSec: 0,
      attestAtStart: true,
      retry: { initialSec: 1, maxSec: 1 },
      random: () => 0,
      run: async (reason) => {
        runs.push(reason);
        const ok = !fail;
        fail = false;
        return ok;
      },
    });
    schedulers.push(s);
    s.start();
    await new Promise((r) => setTimeout(r, 50));
    expect(runs).toEqual(['start']);
    expect(s.consecutiveFailures()).toBe(1);
    const next = s.nextRun();
    expect(next?.reason).toBe('retry');
    expect(next!.at.getTime() - Date.now()).toBeLessThanOrEqual(1000);
    await new Promise((r) => setTimeout(r, 700));
    expect(runs).toEqual(['start', 'retry']);
    expect(s.consecutiveFailures()).toBe(0);
    expect(s.nextRun()?.reason).toBe('schedule');
    expect(s.nextRun()!.at.getUTCMonth()).toBe(0);
  });

  it('runs on the cron schedule with jitter and never runs after stop', async () => {
    const runs: string[] = [];
    const s = new Scheduler({
      cron: '* * * * * *',
      jitterSec: 0,
      attestAtStart: false,
      retry: { initialSec: 1, maxSec: 1 },
      run: async (r) => {
        runs.push(r);
        return true;
      },
    });
    schedulers.push(s);
    s.start();
    // Until it has run (a fixed wait fails when a loaded machine stalls this process past the window).
    for (const deadline = Date.now() + 10_000; runs.length < 1 && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 50));
    expect(runs.length).toBeGreaterThanOrEqual(1);
    expect(runs.every((r) => r === 'schedule')).toBe(true);
    await s.stop();
    const count = runs.length;
    await new Promise((r) => setTimeout(r, 1200));
    expect(runs.length).toBe(count);
  });
});
