/** Token bucket: `perSec` messages per second on average, bursts up to `burst`. Clock injected. */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(private readonly perSec: number, private readonly burst: number, nowMs: number) {
    this.tokens = burst;
    this.last = nowMs;
  }

  take(nowMs: number): boolean {
    this.tokens = Math.min(this.burst, this.tokens + ((nowMs - this.last) / 1000) * this.perSec);
    this.last = nowMs;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
