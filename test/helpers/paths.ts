/** Paths used by tests: the repository root, the copied public test vectors, built fakes. */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const vectorsDir = join(repoRoot, 'test', 'vectors');
export const fakesDir = join(repoRoot, 'test', 'fakes', 'out');

export function vector(relPath: string): Buffer {
  return readFileSync(join(vectorsDir, relPath));
}

/** fast-check runs per property: at least 10,000 in CI (issue requirement), fewer locally if asked. */
export const FC_RUNS = Number(process.env.FC_RUNS ?? 10_000);
