/** Token bucket: `perSec` messages per second on average, bursts up to `burst`. Clock injected. */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly perSec: number,
    private readonly burst: number,
    nowMs: number,
  ) {
    this.tokens = burst;
    this.last = nowMs;
  }

  private refill(nowMs: number): void {
    this.tokens = Math.min(this.burst, this.tokens + (Math.max(0, nowMs - this.last) / 1000) * this.perSec);
    this.last = nowMs;
  }

  take(nowMs: number): boolean {
    this.refill(nowMs);
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /**
   * Backpressure instead of refusal: account for a message that has already arrived (the bucket may
   * go into debt, at most one burst deep) and return how many ms the reader should pause before
   * reading the next one (0: go on).
   */
  pauseAfter(nowMs: number): number {
    this.refill(nowMs);
    this.tokens = Math.max(-this.burst, this.tokens - 1);
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens / this.perSec) * 1000);
  }
}
