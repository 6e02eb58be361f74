/**
 * `npm run bench`: runs every bench/*.bench.ts (each default-exports an async function returning
 * BenchRow[]) and prints one table. Pass names to run a subset: npm run bench -- snp gpu
 * `--json` prints one JSON object per row instead ({name, unit, value, baseline, ratio, runs, ...});
 * tools/bench-table.ts turns those lines into the README table.
 */
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { formatTable, toJson, type BenchRow } from './lib.js';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const json = args.includes('--json');
const filter = args.filter((a) => !a.startsWith('--'));
const files = readdirSync(here)
  .filter((f) => f.endsWith('.bench.ts'))
  .filter((f) => filter.length === 0 || filter.some((w) => f.includes(w)))
  .sort();

const rows: BenchRow[] = [];
for (const file of files) {
  process.stderr.write(`running ${file}...\n`);
  const mod = (await import(pathToFileURL(join(here, file)).href)) as { default: () => Promise<BenchRow[]> };
  const got = await mod.default();
  rows.push(...got);
  if (json) for (const r of got) process.stdout.write(`${JSON.stringify(toJson(r))}\n`);
}
if (!json) {
  process.stdout.write(`${formatTable(rows)}\n`);
  process.stdout.write(`node ${process.version}, ${process.arch}; medians of repeated runs; ratio = median / baseline median\n`);
}
