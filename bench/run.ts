/**
 * `npm run bench`: runs every bench/*.bench.ts (each default-exports an async function returning
 * BenchRow[]) and prints one table. Pass names to run a subset: npm run bench -- snp gpu
 */
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { formatTable, type BenchRow } from './lib.js';

const here = dirname(fileURLToPath(import.meta.url));
const filter = process.argv.slice(2);
const files = readdirSync(here)
  .filter((f) => f.endsWith('.bench.ts'))
  .filter((f) => filter.length === 0 || filter.some((w) => f.includes(w)))
  .sort();

const rows: BenchRow[] = [];
for (const file of files) {
  process.stderr.write(`running ${file}...\n`);
  const mod = (await import(pathToFileURL(join(here, file)).href)) as { default: () => Promise<BenchRow[]> };
  rows.push(...(await mod.default()));
}
process.stdout.write(`${formatTable(rows)}\n`);
process.stdout.write(`node ${process.version}, ${process.arch}; medians of repeated runs; ratio = median / baseline median\n`);
