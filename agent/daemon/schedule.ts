/**
 * When to attest: a cron schedule (UTC; node-cron's syntax, matched by cron-utc.ts) with random
 * jitter so a fleet does not attest in lock-step, an optional run at start, and retries with capped
 * exponential backoff after a failure. The next planned run is always known, for status.
 */
import { CronUtc } from './cron-utc.js';

export interface ScheduleOptions {
  cron: string;
  jitterSec: number;
  attestAtStart: boolean;
  retry: { initialSec: number; maxSec: number };
  /** One attestation; resolves true on success. Must not throw (the scheduler treats a throw as failure). */
  run: (reason: 'start' | 'schedule' | 'retry') => Promise<boolean>;
  random?: () => number;
  onError?: (err: unknown) => void;
}

/**
 * Retry delay for the n-th consecutive failure (n >= 1): "equal jitter" over a capped exponential,
 * so retries never hammer (at least half the step) yet spread out across a fleet.
 */
export function retryDelayMs(failures: number, initialSec: number, maxSec: number, random: () => number = Math.random): number {
  const step = Math.min(maxSec, initialSec * 2 ** Math.min(Math.max(failures - 1, 0), 30)) * 1000;
  return Math.round(step / 2 + random() * (step / 2));
}

/** setTimeout's limit (about 24.8 days); longer waits are re-armed. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export class Scheduler {
  private readonly cron: CronUtc;
  /** The next cron match, while the schedule runs; its timer. */
  private cronAt: Date | undefined;
  private cronTimer: NodeJS.Timeout | undefined;
  private timer: NodeJS.Timeout | undefined;
  private plannedAt: Date | undefined;
  private plannedReason: 'start' | 'schedule' | 'retry' | undefined;
  private failures = 0;
  private running = false;
  private stopped = true;
  private readonly random: () => number;

  constructor(private opts: ScheduleOptions) {
    this.cron = CronUtc.parse(opts.cron);
    this.random = opts.random ?? Math.random;
  }

  start(): void {
    this.stopped = false;
    this.armCron();
    if (this.opts.attestAtStart) this.plan(0, 'start');
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.plannedAt = undefined;
    if (this.cronTimer) clearTimeout(this.cronTimer);
    this.cronTimer = undefined;
    this.cronAt = undefined;
  }

  /** Waits for the next cron match (re-armed when the wait exceeds a timer's range or a timer fires early), then ticks. */
  private armCron(): void {
    if (this.stopped) return;
    const at = this.cron.next(new Date());
    this.cronAt = at;
    if (!at) return;
    const wait = () => {
      const left = at.getTime() - Date.now();
      if (left > 0) {
        this.cronTimer = setTimeout(wait, Math.min(left, MAX_TIMER_MS));
        return;
      }
      this.cronTimer = undefined;
      this.onTick();
      this.armCron();
    };
    wait();
  }

  /** The next run: a planned (jittered or retry) one, else the next cron match. */
  nextRun(): { at: Date; reason: 'start' | 'schedule' | 'retry' } | undefined {
    if (this.plannedAt && this.plannedReason) return { at: this.plannedAt, reason: this.plannedReason };
    return this.cronAt ? { at: this.cronAt, reason: 'schedule' } : undefined;
  }

  consecutiveFailures(): number {
    return this.failures;
  }

  private onTick(): void {
    // A retry already pending wins over the schedule: it will run sooner or the schedule will catch up.
    if (this.plannedReason === 'retry' || this.running) return;
    this.plan(Math.round(this.random() * this.opts.jitterSec * 1000), 'schedule');
  }

  private plan(delayMs: number, reason: 'start' | 'schedule' | 'retry'): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.plannedAt = new Date(Date.now() + delayMs);
    this.plannedReason = reason;
    this.timer = setTimeout(() => void this.fire(reason), delayMs);
  }

  private async fire(reason: 'start' | 'schedule' | 'retry'): Promise<void> {
    this.timer = undefined;
    this.plannedAt = undefined;
    this.plannedReason = undefined;
    this.running = true;
    let ok = false;
    try {
      ok = await this.opts.run(reason);
    } catch (err) {
      this.opts.onError?.(err);
    } finally {
      this.running = false;
    }
    if (this.stopped) return;
    if (ok) {
      this.failures = 0;
    } else {
      this.failures++;
      this.plan(retryDelayMs(this.failures, this.opts.retry.initialSec, this.opts.retry.maxSec, this.random), 'retry');
    }
  }
}
