/**
 * Built JavaScript for the child processes tests spawn, so no child compiles TypeScript at start
 * (`node --import tsx` transformed ~300 modules in every process). test/helpers/global-build.ts builds
 * both once per Vitest run:
 * - the package itself (tools/build-dist.ts into dist/): children run `node bin/cvm-agent.js`, the
 *   file npm and the .deb ship;
 * - the child-process fixtures that import agent modules directly (FIXTURES), each bundled into one
 *   file under test/built/, with its npm dependencies left external (resolved from node_modules as
 *   under tsx).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build, type Plugin } from 'esbuild';
import { repoRoot } from './paths.js';

/** `cvm-agent`, as installed: bin/cvm-agent.js runs dist/cli/main.js. */
export const CLI = join(repoRoot, 'bin', 'cvm-agent.js');

/** Sources (relative to the repository root) that tests run in a child process. */
export const FIXTURES = [
  'test/native/fixtures/nvml-probe.mjs',
  'test/native/fixtures/snp-device.mjs',
  'test/native/fixtures/system.mjs',
  'test/adversarial/fixtures/nvml-ready-ops.mjs',
  'test/fixtures/link-agent.ts',
  'agent/util/log.ts',
  'agent/daemon/inventory.ts',
] as const;

export const builtDir = join(repoRoot, 'test', 'built');

/** The built file for one of FIXTURES. */
export function built(source: (typeof FIXTURES)[number]): string {
  return join(builtDir, `${source.replace(/\.(ts|mjs)$/, '')}.mjs`);
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
