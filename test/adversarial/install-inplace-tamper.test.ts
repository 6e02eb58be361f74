/**
 * Attack: a package that someone other than root can change, used in place by systemd/install.sh.
 * install.sh runs as root and links /usr/bin/cvm-agent into an `npm install -g` tree, whose code the
 * service then runs; if a non-root user can write the package, any file in it, or a directory above
 * it, they can swap the code that root and the agent run. Each case below plants one such weakness
 * in an otherwise good npm global tree and expects install.sh to refuse it: exit 1, one line that
 * names the path, and nothing installed. The control case (a root-only tree below the sticky /tmp)
 * is accepted, so the refusals are not a blanket failure.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../helpers/paths.js';

const NOBODY = 65534;
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** <tmp>/npm/lib/node_modules/cvm-agent: a built package where `npm install -g --prefix <tmp>/npm` puts it. */
function npmGlobalTree(): { top: string; lib: string; pkg: string } {
  const top = mkdtempSync(join(tmpdir(), 'cvm-inplace-'));
  dirs.push(top);
  chmodSync(top, 0o755);
  const lib = join(top, 'npm', 'lib', 'node_modules');
  const pkg = join(lib, 'cvm-agent');
  mkdirSync(join(pkg, 'bin'), { recursive: true, mode: 0o755 });
  cpSync(join(repoRoot, 'systemd'), join(pkg, 'systemd'), { recursive: true });
  writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: 'cvm-agent', version: '0.0.0-test' }));
  cpSync(join(repoRoot, 'bin', 'cvm-agent.js'), join(pkg, 'bin', 'cvm-agent.js'));
  mkdirSync(join(pkg, 'dist', 'cli'), { recursive: true });
  writeFileSync(join(pkg, 'dist', 'cli', 'main.js'), 'export async function main() { return 0; }\n');
  mkdirSync(join(pkg, 'node_modules', '.bin'), { recursive: true });
  writeFileSync(join(pkg, 'node_modules', 'dep.js'), '');
  symlinkSync('../dep.js', join(pkg, 'node_modules', '.bin', 'dep')); // npm's own links stay inside
  spawnSync('chmod', ['-R', 'go-w', top]);
  return { top, lib, pkg };
}

function install(pkg: string): { status: number | null; stdout: string; stderr: string; prefix: string } {
  const prefix = mkdtempSync(join(tmpdir(), 'cvm-inplace-prefix-'));
  dirs.push(prefix);
  const r = spawnSync(join(pkg, 'systemd', 'install.sh'), ['--prefix', prefix], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, prefix };
}

function expectRefused(r: ReturnType<typeof install>, pathAndReason: RegExp): void {
  expect(r.status, r.stdout + r.stderr).toBe(1);
  const lines = r.stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^install\.sh: error: refusing to use .* in place: /);
  expect(lines[0]).toMatch(pathAndReason);
  expect(readdirSync(r.prefix)).toEqual([]); // nothing installed, no link to the package
}

describe('install.sh refuses an npm global package that others can change', () => {
  it('control: a root-only tree (below the sticky /tmp) is used in place', () => {
    const { pkg } = npmGlobalTree();
    const r = install(pkg);
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain(`package: using ${pkg} in place (npm global install)`);
  });

  it('the package directory is owned by another user', () => {
    const { pkg } = npmGlobalTree();
    chownSync(pkg, NOBODY, NOBODY);
    expectRefused(install(pkg), new RegExp(`${pkg} is owned by uid ${NOBODY}, not root`));
  });

  it('a file in the package is owned by another user', () => {
    const { pkg } = npmGlobalTree();
    chownSync(join(pkg, 'dist', 'cli', 'main.js'), NOBODY, NOBODY);
    expectRefused(install(pkg), /dist\/cli\/main\.js is not owned by root/);
  });

  it('a file in the package is world-writable', () => {
    const { pkg } = npmGlobalTree();
    chmodSync(join(pkg, 'dist', 'cli', 'main.js'), 0o666);
    expectRefused(install(pkg), /dist\/cli\/main\.js is writable by group or others/);
  });

  it('a dependency directory is group-writable', () => {
    const { pkg } = npmGlobalTree();
    chmodSync(join(pkg, 'node_modules'), 0o775);
    expectRefused(install(pkg), /node_modules is writable by group or others/);
  });

  it('the package directory itself is world-writable, even with the sticky bit', () => {
    const { pkg } = npmGlobalTree();
    chmodSync(pkg, 0o1777);
    expectRefused(install(pkg), new RegExp(`${pkg} is writable by group or others \\(mode 1777`));
  });

  it('a parent directory is world-writable (another user can rename the package away and plant one)', () => {
    const { lib } = npmGlobalTree();
    chmodSync(lib, 0o777);
    expectRefused(install(join(lib, 'cvm-agent')), new RegExp(`${lib} is writable by group or others \\(mode 777`));
  });

  it('a parent directory is owned by another user', () => {
    const { top, pkg } = npmGlobalTree();
    chownSync(join(top, 'npm'), NOBODY, NOBODY);
    expectRefused(install(pkg), new RegExp(`${top}/npm is owned by uid ${NOBODY}, not root`));
  });

  it('a link in the package points outside it (to a file another user controls)', () => {
    const { top, pkg } = npmGlobalTree();
    const outside = join(top, 'user-file.js');
    writeFileSync(outside, '');
    chownSync(outside, NOBODY, NOBODY);
    symlinkSync(outside, join(pkg, 'node_modules', 'evil.js'));
    expectRefused(install(pkg), /node_modules\/evil\.js links outside the package/);
  });
});
