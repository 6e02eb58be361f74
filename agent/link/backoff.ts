/**
 * Reconnect delays: capped exponential backoff with FULL jitter,
 *   delay = random(0, min(cap, base * 2^attempt))
 * (after the AWS "Exponential Backoff and Jitter" analysis: full jitter
 * spreads a fleet that lost its controller at once, so they do not all come back in the same second).
 * Pure: the random source is a parameter.
 */
export interface BackoffOptions {
  /** First ceiling, ms (attempt 0). */
  baseMs: number;
  /** Largest ceiling, ms. */
  capMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 1000, capMs: 60_000 };

/** The ceiling for an attempt: min(cap, base * 2^attempt); never NaN, never above cap. */
export function backoffCeiling(attempt: number, opts: BackoffOptions = DEFAULT_BACKOFF): number {
  const a = Number.isFinite(attempt) && attempt > 0 ? Math.floor(attempt) : 0;
  // 2^a overflows to Infinity for large a; min() then yields the cap.
  return Math.max(0, Math.min(opts.capMs, opts.baseMs * 2 ** Math.min(a, 1024)));
}

/** A delay in [0, ceiling) (or 0 when the ceiling is 0); `random` returns [0, 1) like Math.random. */
export function backoffDelay(attempt: number, opts: BackoffOptions = DEFAULT_BACKOFF, random: () => number = Math.random): number {
  const r = random();
  const unit = Number.isFinite(r) && r >= 0 && r < 1 ? r : 0.5;
  return Math.floor(unit * backoffCeiling(attempt, opts));
}
