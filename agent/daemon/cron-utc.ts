/**
 * When a cron expression next matches, in UTC. The expression is read by node-cron's own parser
 * (`cron.parse`: the syntax, names, nicknames and checks that config validation reports with); the
 * matching is done here with UTC date arithmetic. node-cron's scheduler formats every date it tests
 * through Intl.DateTimeFormat, and loading ICU's time-zone data for that made up about 8 MB of the
 * idle daemon's resident memory and tens of milliseconds of its start.
 *
 * The semantics are node-cron 4's: a day must match both the day-of-month and the day-of-week field;
 * day-of-month tokens `L` (last day), `L-n` (n days before it), `nW` and `LW` (nearest weekday within
 * the month); day-of-week tokens `nL` (the month's last such weekday) and `n#k` (its k-th).
 * test/unit/daemon/cron-utc.test.ts compares the results with node-cron's own for generated expressions.
 */
import cron from 'node-cron';
import { ConfigError } from '../errors.js';

type Field = readonly (number | string)[];

/** node-cron looks as far ahead; an expression such as "0 0 30 2 *" never matches. */
const MAX_DAYS = 366 * 100;
const DAY_MS = 86_400_000;

const lastDayOfMonth = (year: number, month: number) => new Date(Date.UTC(year, month, 0)).getUTCDate();
const weekdayOf = (year: number, month: number, day: number) => new Date(Date.UTC(year, month - 1, day)).getUTCDay();

/** The weekday (Mon-Fri) nearest to `target` without leaving the month; -1 when the month has no such day. */
function nearestWeekday(year: number, month: number, target: number): number {
  const last = lastDayOfMonth(year, month);
  if (target < 1 || target > last) return -1;
  const wd = weekdayOf(year, month, target);
  if (wd === 6) return target === 1 ? target + 2 : target - 1;
  if (wd === 0) return target === last ? target - 2 : target + 1;
  return target;
}

function matchesDayOfMonth(field: Field, year: number, month: number, day: number): boolean {
  for (const v of field) {
    if (v === day) return true;
    if (typeof v !== 'string') continue;
    if (v === 'L' && day === lastDayOfMonth(year, month)) return true;
    const w = /^(\d{1,2}|L)W$/.exec(v);
    if (w && nearestWeekday(year, month, w[1] === 'L' ? lastDayOfMonth(year, month) : Number(w[1])) === day) return true;
    const off = /^L-(\d{1,2})$/.exec(v);
    if (off && lastDayOfMonth(year, month) - Number(off[1]) === day) return true;
  }
  return false;
}

function matchesDayOfWeek(field: Field, year: number, month: number, day: number): boolean {
  const wd = weekdayOf(year, month, day);
  for (const v of field) {
    if (typeof v === 'number') {
      if (v % 7 === wd) return true;
      continue;
    }
    const nth = /^([0-7])#([1-5])$/.exec(v);
    if (nth) {
      if (Number(nth[1]) % 7 === wd && Math.floor((day - 1) / 7) + 1 === Number(nth[2])) return true;
      continue;
    }
    const last = /^([0-7])L$/i.exec(v);
    if (last && Number(last[1]) % 7 === wd && day + 7 > lastDayOfMonth(year, month)) return true;
  }
  return false;
}

const ascending = (xs: readonly number[]): number[] => [...xs].sort((a, b) => a - b);

export class CronUtc {
  private constructor(
    private readonly seconds: number[],
    private readonly minutes: number[],
    private readonly hours: number[],
    private readonly daysOfMonth: Field,
    private readonly months: ReadonlySet<number>,
    private readonly daysOfWeek: Field,
  ) {}

  /** Throws ConfigError with node-cron's reason when node-cron rejects the expression. */
  static parse(expr: string): CronUtc {
    let f: ReturnType<typeof cron.parse>;
    try {
      f = cron.parse(expr);
    } catch (err) {
      throw new ConfigError(`invalid cron expression "${expr}": ${(err as Error).message}`);
    }
    return new CronUtc(ascending(f.second), ascending(f.minute), ascending(f.hour), f.dayOfMonth, new Set(f.month), f.dayOfWeek);
  }

  /** The first match strictly after `after` (whole seconds, as node-cron); undefined if none within 100 years. */
  next(after: Date): Date | undefined {
    const base = Math.floor(after.getTime() / 1000) * 1000;
    const start = new Date(base);
    let dayMs = Date.UTC(start.getUTCFullYear(), start.getUTCMonth(), start.getUTCDate());
    for (let i = 0; i < MAX_DAYS; i++, dayMs += DAY_MS) {
      const d = new Date(dayMs);
      const year = d.getUTCFullYear();
      const month = d.getUTCMonth() + 1;
      const day = d.getUTCDate();
      if (!this.months.has(month) || !matchesDayOfMonth(this.daysOfMonth, year, month, day) || !matchesDayOfWeek(this.daysOfWeek, year, month, day)) continue;
      const found = this.firstTimeOnDay(dayMs, base);
      if (found !== undefined) return new Date(found);
    }
    return undefined;
  }

  private firstTimeOnDay(dayMs: number, base: number): number | undefined {
    for (const h of this.hours) {
      if (dayMs + (h + 1) * 3_600_000 <= base) continue;
      for (const m of this.minutes) {
        if (dayMs + h * 3_600_000 + (m + 1) * 60_000 <= base) continue;
        for (const s of this.seconds) {
          const t = dayMs + h * 3_600_000 + m * 60_000 + s * 1000;
          if (t > base) return t;
        }
      }
    }
    return undefined;
  }
}
