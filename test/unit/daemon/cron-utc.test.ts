/**
 * The scheduler's UTC cron matcher (agent/daemon/cron-utc.ts) against node-cron's own scheduler in
 * UTC, for generated expressions: the same next runs, token for token (L, L-n, nW, LW, nL, n#k).
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import cron from 'node-cron';
import { CronUtc } from '../../../agent/daemon/cron-utc.js';
import { ConfigError } from '../../../agent/errors.js';

/** node-cron's next `n` runs after now, and ours from the same whole second (retried across a second boundary). */
function bothFromNow(expr: string, n: number): { ours: number[]; theirs: number[] } {
  const task = cron.createTask(expr, () => undefined, { timezone: 'Etc/UTC', name: 'cron-utc-test' });
  try {
    for (;;) {
      const before = Math.floor(Date.now() / 1000);
      let theirs: number[] = [];
      try {
        theirs = task.getNextRuns(n).map((d) => d.getTime());
      } catch {
        // node-cron throws when nothing matches within 100 years; ours then finds nothing either
      }
      const now = new Date();
      if (Math.floor(now.getTime() / 1000) !== before) continue;
      const c = CronUtc.parse(expr);
      const ours: number[] = [];
      let from: Date | undefined = now;
      for (let i = 0; i < n && from; i++) {
        from = c.next(from);
        if (from) ours.push(from.getTime());
      }
      return { ours, theirs };
    }
  } finally {
    void task.destroy();
  }
}

const range = (lo: number, hi: number) =>
  fc.oneof(
    fc.constant('*'),
    fc.integer({ min: lo, max: hi }).map(String),
    fc.tuple(fc.integer({ min: lo, max: hi }), fc.integer({ min: lo, max: hi })).map(([a, b]) => `${Math.min(a, b)}-${Math.max(a, b)}`),
    fc.integer({ min: 1, max: Math.max(1, hi - lo) }).map((k) => `*/${k}`),
    fc.uniqueArray(fc.integer({ min: lo, max: hi }), { minLength: 2, maxLength: 4 }).map((xs) => xs.join(',')),
  );
const dayOfMonth = fc.oneof(range(1, 31), fc.constantFrom('L', 'LW', '15W', '1W', '31W', 'L-1', 'L-5', 'L,15'));
const dayOfWeek = fc.oneof(range(0, 7), fc.constantFrom('5L', '0L', '1#1', '3#2', '6#5', 'mon-fri', 'sat,sun'));
const month = fc.oneof(range(1, 12), fc.constantFrom('jan', 'feb', 'feb,aug', 'jan-mar'));

describe('CronUtc', () => {
  it("gives node-cron's next runs (UTC) for generated expressions", () => {
    fc.assert(
      fc.property(range(0, 59), range(0, 23), dayOfMonth, month, dayOfWeek, fc.boolean(), range(0, 59), (mi, h, dom, mo, dow, withSeconds, s) => {
        const expr = `${withSeconds ? `${s} ` : ''}${mi} ${h} ${dom} ${mo} ${dow}`;
        fc.pre(cron.validate(expr));
        const { ours, theirs } = bothFromNow(expr, 4);
        expect(ours, expr).toEqual(theirs);
      }),
      { numRuns: 100 },
    );
  });

  it('handles the nicknames, names and year boundaries as node-cron does', () => {
    for (const expr of [
      '@daily',
      '@weekly',
      '@monthly',
      '@yearly',
      '@hourly',
      '0 0 1 1 *',
      '0 0 29 2 *',
      '*/10 * * * *',
      '* * * * * *',
      '0 0 * * 7',
      '0 12 L * fri',
    ]) {
      const { ours, theirs } = bothFromNow(expr, 3);
      expect(ours, expr).toEqual(theirs);
    }
  });

  it('finds the next run strictly after a given time, in whole seconds', () => {
    const c = CronUtc.parse('0 0 29 2 *');
    expect(c.next(new Date('2025-01-01T00:00:00Z'))?.toISOString()).toBe('2028-02-29T00:00:00.000Z');
    expect(c.next(new Date('2028-02-29T00:00:00Z'))?.toISOString()).toBe('2032-02-29T00:00:00.000Z');
    expect(CronUtc.parse('*/10 * * * *').next(new Date('2025-05-05T10:09:59.999Z'))?.toISOString()).toBe('2025-05-05T10:10:00.000Z');
    expect(CronUtc.parse('0 0 L * *').next(new Date('2025-12-31T00:00:00.500Z'))?.toISOString()).toBe('2026-01-31T00:00:00.000Z');
  });

  it("rejects what node-cron rejects, with node-cron's reason", () => {
    expect(() => CronUtc.parse('99 * * * *')).toThrow(ConfigError);
    expect(() => CronUtc.parse('99 * * * *')).toThrow(/invalid cron expression "99 \* \* \* \*": .*minute/);
    expect(() => CronUtc.parse('not cron')).toThrow(ConfigError);
  });
});
