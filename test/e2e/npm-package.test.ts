/**
 * The package as it is shipped: `npm pack` (prepack builds dist/ and prebuilds/), `npm install -g`
 * of the tarball into a temporary prefix, and the CLI run from there, loading the native addon
 * through the /dev/sev-guest shim, without build/ or binding.gyp. Then systemd/install.sh's copy
 * from a checkout (the other supported way) must hold the same files and work the same.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stageCheckout } from '../helpers/checkout.js';
import { startDaemon } from '../helpers/daemon-process.js';
import { fakesDir, repoRoot, vectorsDir } from '../helpers/paths.js';

const work = mkdtempSync(join(tmpdir(), 'cvm-npm-package-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const SHIM_ENV = {
  LD_PRELOAD: join(fakesDir, 'sevguest-shim.so'),
  SEVGUEST_SHIM_REPORT: join(vectorsDir, 'snp', 'gosevguest_attestation.bin'),
};

function sh(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env) {
  const r = spawnSync(cmd, args, { cwd, env, encoding: 'utf8', timeout: 300_000, maxBuffer: 64 * 1024 * 1024 });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
function ok(cmd: string, args: string[], cwd: string) {
  const r = sh(cmd, args, cwd);
  expect(r.status, `${cmd} ${args.join(' ')}:\n${r.stdout}${r.stderr}`).toBe(0);
  return r;
}

/** Every path below `dir`, relative, sorted; node_modules only to its first level (versions may differ). */
function tree(dir: string): string[] {
  return (readdirSync(dir, { recursive: true, encoding: 'utf8' }) as string[])
    .filter((p) => !/^node_modules\/.+\//.test(p) && !/^node_modules\/\.package-lock\.json$/.test(p))
    .sort();
}

/**
 * A reader that goes away before the CLI writes (`cvm-agent … | head` once head has its line): the
 * write fails with EPIPE, which must end the command quietly with its own exit code, no stack trace.
 */
function closedReader(cli: string, args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cli, args, { cwd: work, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString('utf8');
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

/** The SNP report the CLI reads through the addon: REPORT_DATA (offset 0x50) carries our bytes. */
function expectAddonWorks(cli: string[]): void {
  const r = sh(cli[0]!, [...cli.slice(1), 'snp', 'report', '--source', 'device', '--report-data', 'c0ffee'], work, { ...process.env, ...SHIM_ENV });
  expect(r.status, r.stderr).toBe(0);
  const hex = r.stdout.trim();
  expect(hex).toHaveLength(1184 * 2);
  expect(hex.slice(0x50 * 2, 0x50 * 2 + 6)).toBe('c0ffee');
}

const HEAD = spawnSync('git', ['rev-parse', 'HEAD'], { cwd: repoRoot, encoding: 'utf8' }).stdout.trim();
let checkout = '';
let tgz = '';
let globalPkg = '';
beforeAll(() => {
  expect(existsSync(SHIM_ENV.LD_PRELOAD), 'run "npm run build:fakes"').toBe(true);
  checkout = stageCheckout(join(work, 'checkout'));
  // The staged copy is not a git checkout: the commit --version reports comes in as SOURCE_COMMIT.
  const packed = sh('npm', ['pack', '--silent', '--pack-destination', work], checkout, { ...process.env, SOURCE_COMMIT: HEAD });
  expect(packed.status, packed.stderr).toBe(0);
  tgz = join(work, packed.stdout.trim().split('\n').pop()!);
}, 600_000);

describe('npm pack + npm install -g', () => {
  it('the tarball holds the built code and the prebuilt addon, and nothing of the development tree', () => {
    const files = ok('tar', ['-tzf', tgz], work).stdout.trim().split('\n');
    const tuple = `${process.platform}-${process.arch}`;
    expect(files).toContain(`package/prebuilds/${tuple}/node.napi.glibc.node`);
    expect(files).toContain('package/dist/cli/main.js');
    expect(files).toContain('package/systemd/install.sh');
    expect(files.filter((f) => /^package\/(build|test|agent|node_modules|packaging)\//.test(f))).toEqual([]);
  });

  it('installs globally into a prefix; the CLI runs from there and loads the addon without build files', async () => {
    const prefix = join(work, 'global');
    ok('npm', ['install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', tgz], work);
    globalPkg = join(prefix, 'lib', 'node_modules', 'cvm-agent');
    // binding.gyp ships for building from source on other platforms; running needs neither it nor build/.
    unlinkSync(join(globalPkg, 'binding.gyp'));
    expect(existsSync(join(globalPkg, 'build'))).toBe(false);
    const bin = join(prefix, 'bin', 'cvm-agent');
    const version = ok(bin, ['--version'], work).stdout;
    expect(version).toMatch(/^cvm-agent \d+\.\d+\.\d+\n/);
    expect(version).toContain(`commit  ${HEAD}\n`);
    expect(version).toMatch(/^node    v20\.\d+\.\d+ \(modules ABI \d+, Node-API \d+\)$/m);
    expect(version).toMatch(/^addon   Node-API 8$/m);
    expect(await closedReader(bin, ['verify', 'snp', '--help'])).toEqual({ code: 0, stderr: '' });
    expectAddonWorks([bin]);
  });

  it('the installed daemon attests with its verification worker (dist/attest/verify-worker.js) from the package', async () => {
    const dir = mkdtempSync(join(work, 'run-'));
    const config = join(dir, 'config.yaml');
    writeFileSync(
      config,
      `tee: simulated\nsimulation: { gpus: 2, dir: ${dir}/sim }\napi: { socket: ${dir}/api.sock }\nstate: { dir: ${dir}/state }\ncollateral: { dir: ${dir}/cache }\nschedule: { cron: "0 0 1 1 *", jitterSec: 0 }\n`,
    );
    expect(existsSync(join(globalPkg, 'dist', 'attest', 'verify-worker.js'))).toBe(true);
    const d = startDaemon(['--config', config], { CVM_AGENT_LOG_LEVEL: 'info' }, [join(globalPkg, 'bin', 'cvm-agent.js'), 'run']);
    try {
      // The first cycle runs at start; its verification happens in the worker loaded from the package.
      const cycle = await d.waitForLog((l) => Boolean(l.cycle), 60_000);
      expect(cycle.status, JSON.stringify(cycle)).toBe('affirming');
      expect(cycle.devices).toEqual({ cpu0: 'affirming', gpu0: 'affirming', gpu1: 'affirming' });
      expect(d.logs.filter((l) => l.msg === 'verification worker stopped; the next verification starts a new one')).toEqual([]);
    } finally {
      d.child.kill('SIGTERM');
      await d.exit;
    }
  }, 90_000);

  it('systemd/install.sh from a checkout (npm ci --omit=dev) lays out the same files, which work the same', () => {
    // The checkout's node_modules is a link to ours: replace it, never let npm ci clear the target.
    unlinkSync(join(checkout, 'node_modules'));
    ok('npm', ['ci', '--omit=dev', '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund'], checkout);
    const prefix = join(work, 'staged');
    ok(join(checkout, 'systemd', 'install.sh'), ['--prefix', prefix], checkout);
    const copy = join(prefix, 'opt', 'cvm-agent');
    const fromNpm = tree(globalPkg);
    expect(tree(copy)).toEqual([...fromNpm, 'binding.gyp'].sort());
    for (const dep of ['jose', 'node-cron', 'node-gyp-build', 'pino', 'prom-client', 'ws', 'yaml']) {
      expect(existsSync(join(copy, 'node_modules', dep)), dep).toBe(true);
    }
    expect(existsSync(join(copy, 'node_modules', 'vitest'))).toBe(false);
    expectAddonWorks([process.execPath, join(copy, 'bin', 'cvm-agent.js')]);
  });
});
