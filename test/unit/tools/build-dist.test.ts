/**
 * The bundle build (tools/build-dist.ts) into a temporary directory: what `cvm-agent run` evaluates
 * at start holds none of the controller, doctor, demo, simulation or other commands' code, no
 * WebSocket client, and no verification code (the daemon verifies in its worker); the simulated TEE is a chunk of its own; every output sits two folders below
 * the package root, as the source does; the native addon's loader stays external; the bundled CLI runs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import type { Metafile } from 'esbuild';
import { buildDist, staticClosure } from '../../../tools/build-dist.js';
import { repoRoot } from '../../helpers/paths.js';

const work = mkdtempSync(join(tmpdir(), 'cvm-build-dist-'));
const out = join(work, 'dist');
let metafile: Metafile;
afterAll(() => rmSync(work, { recursive: true, force: true }));
beforeAll(async () => {
  metafile = await buildDist(out);
}, 120_000);

const outputOf = (entry: string) => {
  const hit = Object.entries(metafile.outputs).find(([, o]) => o.entryPoint === entry);
  expect(hit, entry).toBeDefined();
  return hit![0];
};

describe('build-dist', () => {
  it('`run` loads only the daemon: no controller, doctor, demo, simulation, other commands or WebSocket client', () => {
    const main = staticClosure(metafile, outputOf('agent/cli/main.ts'));
    const run = staticClosure(metafile, outputOf('agent/cli/commands/run.ts'));
    const inputs = [...new Set([...main.inputs, ...run.inputs])];
    expect(inputs).toContain('agent/daemon/daemon.ts');
    const forbidden = inputs.filter(
      (i) =>
        /^agent\/(controller|doctor|simulation)\//.test(i) ||
        i === 'agent/cli/demo-stack.ts' ||
        (/^agent\/cli\/commands\//.test(i) && !/\/(run|command-table)\.ts$/.test(i)) ||
        /node_modules\/ws\//.test(i) ||
        i === 'agent/link/link-client.ts',
    );
    expect(forbidden).toEqual([]);
  });

  it('`run` loads no verification code statically: the daemon verifies in its worker, the verifiers are import()ed only for in-thread use', () => {
    const run = [
      ...new Set([...staticClosure(metafile, outputOf('agent/cli/main.ts')).inputs, ...staticClosure(metafile, outputOf('agent/cli/commands/run.ts')).inputs]),
    ];
    expect(run).toContain('agent/attest/verifier.ts');
    const worker = staticClosure(metafile, outputOf('agent/attest/verify-worker.ts')).inputs;
    expect(worker).toContain('agent/attest/verify-bundle.ts');
    const verification = run.filter(
      (i) =>
        /^agent\/verify\//.test(i) ||
        /^agent\/attest\/verify-(bundle|and-appraise|service|worker)\.ts$/.test(i) ||
        // collateral/resolve.ts and classify.ts parse reports, chains, CRLs and RIMs: real evidence only
        /^agent\/collateral\/(resolve|classify)\.ts$/.test(i),
    );
    // The one exception: collateral/freshness.ts (collateral status) takes the OCSP default TTL from ocsp-check.ts.
    expect(verification.sort()).toEqual(['agent/verify/nvidia/ocsp-check.ts', 'agent/verify/x509/cert-signature.ts']);
  });

  it('the simulated TEE is in the bundle, in chunks that only import() reaches', () => {
    const run = new Set([
      ...staticClosure(metafile, outputOf('agent/cli/main.ts')).outputs,
      ...staticClosure(metafile, outputOf('agent/cli/commands/run.ts')).outputs,
    ]);
    const sim = Object.entries(metafile.outputs).filter(([, o]) => 'agent/simulation/open.ts' in o.inputs);
    expect(sim).toHaveLength(1);
    expect(run.has(sim[0]![0])).toBe(false);
    expect(run.has(outputOf('agent/simulation/open.ts'))).toBe(false);
  });

  it('every output sits two folders below the package root; node-gyp-build is not bundled (it finds the addon at run time)', () => {
    const files = Object.keys(metafile.outputs).map((f) => relative(work, join(repoRoot, f)));
    expect(files).toContain('dist/cli/main.js');
    for (const f of files) expect(f.split('/'), f).toHaveLength(3);
    expect(Object.keys(metafile.inputs).filter((i) => i.includes('node_modules/node-gyp-build/'))).toEqual([]);
  });

  it('the bundled CLI runs from a package root: help, a command, --version', () => {
    const pkg = join(work, 'pkg');
    cpSync(out, join(pkg, 'dist'), { recursive: true });
    cpSync(join(repoRoot, 'bin'), join(pkg, 'bin'), { recursive: true });
    cpSync(join(repoRoot, 'package.json'), join(pkg, 'package.json'));
    writeFileSync(join(pkg, 'build-info.json'), `{"commit":"${'ab'.repeat(20)}"}\n`);
    const cli = (...args: string[]) => execFileSync(process.execPath, [join(pkg, 'bin', 'cvm-agent.js'), ...args], { cwd: work, encoding: 'utf8' });
    expect(cli('--help')).toMatch(/^Usage: cvm-agent <command>/);
    expect(cli('verify', 'snp', '--help')).toMatch(/^Usage: cvm-agent verify snp /);
    expect(cli('--version')).toMatch(new RegExp(`^cvm-agent \\d+\\.\\d+\\.\\d+\\ncommit {2}${'ab'.repeat(20)}\\n`));
  });
});
