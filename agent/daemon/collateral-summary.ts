/**
 * Collateral freshness for status and metrics (docs/collateral.md "Freshness"): counts per kind of
 * fresh / stale / expired entries in the cache, recomputed at most once a minute (it reads the cache).
 */
import { CollateralStore } from '../collateral/store.js';
import { freshness } from '../collateral/freshness.js';

export interface CollateralSummary {
  dir: string;
  online: boolean;
  checkedAt: string;
  kinds: Record<string, { fresh: number; stale: number; expired: number }>;
  problems: number;
  /** The first few non-fresh entries with their reasons. */
  attention: { path: string; state: string; reason: string }[];
  error?: string;
}

export class CollateralSummarizer {
  private cached: { at: number; value: CollateralSummary } | undefined;
  private running: Promise<CollateralSummary> | undefined;

  constructor(
    private readonly dir: string,
    private readonly online: boolean,
    private readonly maxAgeMs = 60_000,
  ) {}

  get(now = new Date()): Promise<CollateralSummary> {
    if (this.cached && now.getTime() - this.cached.at < this.maxAgeMs) return Promise.resolve(this.cached.value);
    this.running ??= this.compute(now).finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async compute(now: Date): Promise<CollateralSummary> {
    const value: CollateralSummary = { dir: this.dir, online: this.online, checkedAt: now.toISOString(), kinds: {}, problems: 0, attention: [] };
    try {
      const { entries, problems } = await new CollateralStore(this.dir).list();
      value.problems = problems.length;
      for (const e of entries) {
        const f = freshness(e.meta, now);
        const k = (value.kinds[e.meta.kind] ??= { fresh: 0, stale: 0, expired: 0 });
        k[f.state === 'fresh' ? 'fresh' : f.state === 'stale' ? 'stale' : 'expired']++;
        if (f.state !== 'fresh' && value.attention.length < 5) value.attention.push({ path: e.meta.path, state: f.state, reason: f.reason });
      }
    } catch (err) {
      value.error = (err as Error).message;
    }
    this.cached = { at: now.getTime(), value };
    return value;
  }
}
