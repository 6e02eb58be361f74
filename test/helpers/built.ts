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
import { join } from 'node:path';
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
  'test/helpers/scale-controller-child.ts',
  'test/helpers/protocol-agent-worker.ts',
  'agent/util/log.ts',
  'agent/daemon/inventory.ts',
] as const;

export const builtDir = join(repoRoot, 'test', 'built');

/** The built file for one of FIXTURES. */
export function built(source: (typeof FIXTURES)[number]): string {
  return join(builtDir, `${source.replace(/\.(ts|mjs)$/, '')}.mjs`);
}

/**
 * Node arguments that run one of FIXTURES: its built file under Vitest (the globalSetup built it for
 * this run), the source through tsx elsewhere (the benchmarks share these helpers and build nothing).
 */
export function fixtureArgs(source: (typeof FIXTURES)[number]): string[] {
  return process.env.VITEST ? [built(source)] : ['--import', 'tsx', join(repoRoot, source)];
}
