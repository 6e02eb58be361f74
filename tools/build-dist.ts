// `npm run build:ts`: bundles agent/ into dist/ with esbuild (no type check: `npm run typecheck` does that).
// `node --import tsx tools/build-dist.ts --sizes` also prints what each output file weighs.
//
// A few files instead of ~300 modules: Node resolves, reads and compiles far fewer files at start, which
// was most of what `cvm-agent run` spent before READY=1 (docs/architecture.md "Build"). Code reached only
// by a dynamic import() (each CLI command, the simulated TEE, the controller link) lands in chunks of its
// own, loaded when first used. The dependencies are bundled too, except node-gyp-build, which finds the
// native addon from the package root at run time.
//
// Every output sits two folders below the package root (dist/<folder>/<file>.js, chunks in
// dist/chunks/), as in the source tree (agent/<folder>/<file>.ts): paths relative to import.meta.url
// such as "../../package.json" (agent/util/package-version.ts) resolve the same in both.
import { build, type Metafile } from 'esbuild';
import { rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/**
 * The entry points: output path under dist/ (without .js) -> source. Add a process or worker entry
 * here; code shared between entries goes to dist/chunks/ once.
 */
export const ENTRIES: Record<string, string> = {
  'cli/main': 'agent/cli/main.ts',
  // The daemon's verification worker (agent/attest/verify-thread.ts finds it at ../attest/verify-worker.js).
  'attest/verify-worker': 'agent/attest/verify-worker.ts',
};

/** Resolved at run time from node_modules, never bundled. */
export const EXTERNAL = ['node-gyp-build'];

/** Builds into `outdir` (default dist/, emptied first); returns esbuild's metafile (inputs and outputs). */
export async function buildDist(outdir = join(root, 'dist')): Promise<Metafile> {
  rmSync(outdir, { recursive: true, force: true });
  const result = await build({
    absWorkingDir: root,
    entryPoints: Object.entries(ENTRIES).map(([out, src]) => ({ in: src, out })),
    outdir,
    chunkNames: 'chunks/[name]-[hash]',
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20.19',
    external: EXTERNAL,
    // The bundled CommonJS dependencies (pino, prom-client, ...) call require() for Node's built-in
    // modules; an ES module has no require, so each output file gets one.
    banner: { js: "import { createRequire as __cvmCreateRequire } from 'node:module'; const require = __cvmCreateRequire(import.meta.url);" },
    // Whitespace and syntax only: names stay as written, so stack traces and error class names read as in the source.
    minifyWhitespace: true,
    minifySyntax: true,
    keepNames: true,
    sourcemap: 'linked',
    sourcesContent: false,
    legalComments: 'linked',
    logLevel: 'warning',
    metafile: true,
  });
  return result.metafile;
}

/**
 * The source files a process evaluates when it loads `output` (an output path as the metafile names
 * it): that file and everything it imports statically, not what it may import() later.
 */
export function staticClosure(metafile: Metafile, output: string): { outputs: string[]; inputs: string[] } {
  const files = new Set<string>();
  const todo = [output];
  for (let file = todo.pop(); file !== undefined; file = todo.pop()) {
    if (files.has(file)) continue;
    files.add(file);
    for (const i of metafile.outputs[file]?.imports ?? []) if (i.kind === 'import-statement' && !i.external) todo.push(i.path);
  }
  const inputs = new Set<string>();
  for (const f of files) for (const input of Object.keys(metafile.outputs[f]?.inputs ?? {})) inputs.add(input);
  return { outputs: [...files], inputs: [...inputs] };
}

if (resolve(process.argv[1] ?? '') === fileURLToPath(import.meta.url)) {
  const metafile = await buildDist();
  if (process.argv.includes('--sizes'))
    for (const [file, out] of Object.entries(metafile.outputs))
      if (file.endsWith('.js')) process.stdout.write(`${String(Math.round(out.bytes / 1024)).padStart(6)} KiB  ${file}\n`);
}
