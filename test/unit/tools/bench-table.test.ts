/**
 * The README benchmark table generator (tools/bench-table.ts) on fixed JSON: rows rendered with their
 * cache state, baseline and ratio; only the text between the markers replaced; bad input named.
 */
import { describe, expect, it } from 'vitest';
import { BENCH_END, BENCH_START, parseBenchJson, renderBenchTable, replaceBetweenMarkers } from '../../../tools/bench-table.js';

const JSONL = [
  '{"name":"gpu: verify 8 GPUs, warm","unit":"ms","value":6.5,"baseline":4.5,"ratio":1.444,"runs":21,"cache":"warm","baselineName":"floor: 8 report P-384 verifies","target":"<= 1.5x floor"}',
  '',
  '{"name":"idle RSS | max","unit":"MB","value":87.8,"baseline":null,"ratio":null,"runs":60}',
].join('\n');

describe('bench-table', () => {
  it('renders one Markdown row per JSON row', () => {
    const rows = parseBenchJson(JSONL);
    expect(rows).toHaveLength(2);
    expect(renderBenchTable(rows, 'caption').split('\n')).toEqual([
      'caption',
      '',
      '| benchmark | cache | median | runs | baseline | ratio | target |',
      '|---|---|---:|---:|---|---:|---|',
      '| gpu: verify 8 GPUs, warm | warm | 6.50 ms | 21 | floor: 8 report P-384 verifies: 4.50 ms | 1.44x | <= 1.5x floor |',
      '| idle RSS \\| max | - | 87.8 MB | 60 | - | - | - |',
    ]);
  });

  it('replaces only the text between the markers, and again idempotently', () => {
    const doc = `# t\n\nbefore\n${BENCH_START}\nold table\n${BENCH_END}\nafter\n`;
    const once = replaceBetweenMarkers(doc, 'new');
    expect(once).toBe(`# t\n\nbefore\n${BENCH_START}\nnew\n${BENCH_END}\nafter\n`);
    expect(replaceBetweenMarkers(once, 'new')).toBe(once);
  });

  it('names bad input: a non-JSON line, a row without a value, missing or doubled markers', () => {
    expect(() => parseBenchJson('running gpu-verify.bench.ts...')).toThrow('line 1 is not JSON');
    expect(() => parseBenchJson('{"name":"x","unit":"ms","runs":1}')).toThrow('line 1 is not a benchmark row');
    expect(() => replaceBetweenMarkers('no markers', 'x')).toThrow('expected one bench:start marker');
    expect(() => replaceBetweenMarkers(`${BENCH_START}${BENCH_END}${BENCH_END}`, 'x')).toThrow('expected one bench:start marker');
  });
});
