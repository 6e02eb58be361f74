/**
 * Benchmark helpers: run a function many times, take the median, compare with a baseline measured
 * in the same run. Benchmarks print; they never assert timings (that is what the table is for).
 */
import { performance } from 'node:perf_hooks';

export interface BenchRow {
  /** What was measured. */
  name: string;
  /** Median milliseconds per operation. */
  medianMs: number;
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

/** Median of `runs` samples; each sample times `inner` calls of fn and divides. */
export async function medianMs(fn: () => unknown | Promise<unknown>, opts: { runs?: number; inner?: number; warmup?: number } = {}): Promise<number> {
  const runs = opts.runs ?? 31;
  const inner = opts.inner ?? 10;
  for (let i = 0; i < (opts.warmup ?? 5); i++) await fn();
  const samples: number[] = [];
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    for (let i = 0; i < inner; i++) await fn();
    samples.push((performance.now() - t0) / inner);
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)]!;
}

export function formatTable(rows: BenchRow[]): string {
  const header = ['benchmark', 'median', 'baseline', 'baseline median', 'ratio', 'target', 'note'];
  const body = rows.map((r) => [
    r.name,
    `${r.medianMs.toFixed(3)} ${r.unit ?? 'ms'}`,
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
