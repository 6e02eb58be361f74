/** Vitest globalSetup: builds dist/ and the child-process fixtures once per run (test/helpers/built.ts). */
import { readFileSync, rmSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { build, type Plugin } from 'esbuild';
import { buildDist } from '../../tools/build-dist.js';
import { FIXTURES, builtDir } from './built.js';
import { repoRoot } from './paths.js';

export default async function setup(): Promise<void> {
  rmSync(builtDir, { recursive: true, force: true });
  await Promise.all([buildDist(), buildFixtures()]);
}

/**
 * Each module keeps its source location as import.meta.url, as it has under tsx: paths relative to
 * it (agent/util/package-version.ts, agent/native/addon-loader.ts) resolve as before, and
 * agent/cli/main.ts does not take a fixture that imports it for its own entry point.
 */
const sourceUrls: Plugin = {
  name: 'source-import-meta-url',
  setup(b) {
    b.onLoad({ filter: /\.(ts|mjs|js)$/ }, (args) => {
      if (args.path.includes('/node_modules/')) return undefined;
      const text = readFileSync(args.path, 'utf8').replaceAll('import.meta.url', JSON.stringify(pathToFileURL(args.path).href));
      return { contents: text, loader: args.path.endsWith('.ts') ? 'ts' : 'js' };
    });
  },
};

export async function buildFixtures(outdir = builtDir): Promise<void> {
  await build({
    absWorkingDir: repoRoot,
    entryPoints: FIXTURES.map((src) => ({ in: src, out: src.replace(/\.(ts|mjs)$/, '') })),
    outdir,
    outExtension: { '.js': '.mjs' },
    bundle: true,
    // What an entry reaches only through import() (each CLI command) stays in a chunk loaded when used.
    splitting: true,
    chunkNames: 'chunks/[name]-[hash]',
    format: 'esm',
    platform: 'node',
    target: 'node20.19',
    packages: 'external',
    sourcemap: 'linked',
    logLevel: 'warning',
    plugins: [sourceUrls],
  });
}
