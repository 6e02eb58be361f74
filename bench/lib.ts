/**
 * Benchmark helpers: run a function many times, take the median, compare with a baseline measured
 * in the same run. Benchmarks print; they never assert timings (that is what the table is for).
 * Every verification row says whether it ran cold (every memo cache dropped before each call) or
 * warm (caches filled by an earlier call), and its baseline is a floor doing the same work.
 */
import { performance } from 'node:perf_hooks';

export interface BenchRow {
  /** What was measured. */
  name: string;
  /** Median milliseconds per operation (or `unit`). */
  medianMs: number;
  /** How many samples the median is taken over (1 for a single measurement). */
  runs: number;
  /** Cold: nothing cached at the start of each call; warm: caches filled by an earlier call. */
  cache?: 'cold' | 'warm';
  /** The baseline it is compared with (e.g. "raw crypto floor"), measured in the same run. */
  baselineName?: string;
  baselineMs?: number;
  /** Target from the issue, e.g. "<= 1.3x floor" or "< 20 ms". */
  target?: string;
  /** Unit of medianMs/baselineMs when not milliseconds (e.g. "MB", "%"). */
  unit?: string;
  /** Optional extra note (sample counts, derived figures). */
  note?: string;
}

/** The machine-readable row `npm run bench -- --json` prints, one JSON object per line. */
export interface BenchJson {
  name: string;
  unit: string;
  value: number;
  baseline: number | null;
  ratio: number | null;
  runs: number;
  cache?: 'cold' | 'warm';
  baselineName?: string;
  target?: string;
  note?: string;
}

const round = (x: number) => Number(x.toPrecision(6));

export function toJson(r: BenchRow): BenchJson {
  const out: BenchJson = {
    name: r.name,
    unit: r.unit ?? 'ms',
    value: round(r.medianMs),
    baseline: r.baselineMs === undefined ? null : round(r.baselineMs),
    ratio: r.baselineMs === undefined ? null : round(r.medianMs / r.baselineMs),
    runs: r.runs,
  };
  if (r.cache) out.cache = r.cache;
  if (r.baselineName) out.baselineName = r.baselineName;
  if (r.target) out.target = r.target;
  if (r.note) out.note = r.note;
  return out;
}

/** Median of `runs` samples; each sample times `inner` calls of fn and divides. `before` runs untimed ahead of each call. */
export async function medianMs(
  fn: () => unknown | Promise<unknown>,
  opts: { runs?: number; inner?: number; warmup?: number; before?: () => void } = {},
): Promise<number> {
  const runs = opts.runs ?? 31;
  const inner = opts.inner ?? 10;
  const before = opts.before;
  for (let i = 0; i < (opts.warmup ?? 5); i++) {
    before?.();
    await fn();
  }
  const samples: number[] = [];
  for (let r = 0; r < runs; r++) {
    let t = 0;
    for (let i = 0; i < inner; i++) {
      before?.();
      const t0 = performance.now();
      await fn();
      t += performance.now() - t0;
    }
    samples.push(t / inner);
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)]!;
}

/**
 * Medians of a subject and its floor measured in alternating samples, so that load from other
 * processes on a shared machine falls on both alike instead of on whichever ran second.
 */
export async function pairedMedians(
  subject: () => unknown | Promise<unknown>,
  floor: () => unknown | Promise<unknown>,
  opts: { runs?: number; inner?: number; warmup?: number; before?: () => void } = {},
): Promise<{ ms: number; floorMs: number }> {
  const runs = opts.runs ?? 31;
  const one = { ...opts, runs: 1, warmup: 0 };
  for (let i = 0; i < (opts.warmup ?? 5); i++) {
    opts.before?.();
    await subject();
    await floor();
  }
  const a: number[] = [];
  const b: number[] = [];
  for (let r = 0; r < runs; r++) {
    a.push(await medianMs(subject, one));
    b.push(await medianMs(floor, { ...one, before: undefined }));
  }
  const med = (xs: number[]) => xs.sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
  return { ms: med(a), floorMs: med(b) };
}

export function formatTable(rows: BenchRow[]): string {
  const header = ['benchmark', 'cache', 'median', 'runs', 'baseline', 'baseline median', 'ratio', 'target', 'note'];
  const body = rows.map((r) => [
    r.name,
    r.cache ?? '-',
    `${r.medianMs.toFixed(3)} ${r.unit ?? 'ms'}`,
    String(r.runs),
    r.baselineName ?? '-',
    r.baselineMs === undefined ? '-' : `${r.baselineMs.toFixed(3)} ${r.unit ?? 'ms'}`,
    r.baselineMs === undefined ? '-' : `${(r.medianMs / r.baselineMs).toFixed(2)}x`,
    r.target ?? '-',
    r.note ?? '',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...body.map(line)].join('\n');
}
