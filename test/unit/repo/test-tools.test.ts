/**
 * test/helpers/tools.ts: finding a tool on PATH, a skip recorded for the summary line on a
 * development machine, a failure under CI=true, and the summary line itself.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../../helpers/paths.js';
import { MissingToolError, SKIPS_DIR_ENV, findTool, isCI, readSkips, requireRoot, requireTool, skipSummary } from '../../helpers/tools.js';

const dirs: string[] = [];
function temp(tag: string): string {
  const d = mkdtempSync(join(tmpdir(), `cvm-tools-${tag}-`));
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A PATH of two directories: `present` executable in the second, `plain` not executable, `dir` a directory. */
function fakePath(): string {
  const a = temp('bin-a');
  const b = temp('bin-b');
  writeFileSync(join(b, 'present'), '#!/bin/sh\n');
  chmodSync(join(b, 'present'), 0o755);
  writeFileSync(join(a, 'plain'), '');
  mkdirSync(join(a, 'dir'));
  chmodSync(join(a, 'dir'), 0o755);
  return `${a}::${b}`;
}

describe('findTool', () => {
  it('finds an executable file in any PATH directory, and only that', () => {
    const PATH = fakePath();
    expect(findTool('present', { PATH })).toBe(join(PATH.split(':')[2]!, 'present'));
    expect(findTool('plain', { PATH })).toBeUndefined();
    expect(findTool('dir', { PATH })).toBeUndefined();
    expect(findTool('absent', { PATH })).toBeUndefined();
    expect(findTool('present', {})).toBeUndefined();
    expect(findTool(process.execPath, {})).toBe(process.execPath);
  });
});

describe('requireTool / requireRoot', () => {
  it('a present tool: true, nothing recorded', () => {
    const skips = temp('skips');
    expect(requireTool('present', 'pkg', { env: { PATH: fakePath(), [SKIPS_DIR_ENV]: skips } })).toBe(true);
    expect(requireTool(['absent', 'present'], 'pkg', { env: { PATH: fakePath(), [SKIPS_DIR_ENV]: skips } })).toBe(true);
    expect(readdirSync(skips)).toEqual([]);
  });

  it('a missing tool on a development machine: false, and the skip recorded with this file as the suite', () => {
    const skips = temp('skips');
    const env = { PATH: fakePath(), [SKIPS_DIR_ENV]: skips };
    expect(requireTool('absent', 'absent-pkg', { env })).toBe(false);
    expect(requireTool(['gone', 'also-gone'], 'pkg-a pkg-b', { env, suite: 'test/x.test.ts' })).toBe(false);
    expect(requireRoot({ env, uid: 1000, suite: 'test/y.test.ts' })).toBe(false);
    expect(requireRoot({ env, uid: 0 })).toBe(true);
    expect(readSkips(skips)).toEqual([
      { suite: 'test/unit/repo/test-tools.test.ts', need: 'absent', apt: 'absent-pkg' },
      { suite: 'test/x.test.ts', need: 'gone', apt: 'pkg-a pkg-b' },
      { suite: 'test/y.test.ts', need: 'root' },
    ]);
  });

  it('without the reporter (no skips directory) a missing tool is still a plain false', () => {
    expect(requireTool('absent', 'pkg', { env: { PATH: fakePath() } })).toBe(false);
  });

  it('under CI=true a missing tool (or root) throws, naming the suite and the apt package', () => {
    const skips = temp('skips');
    for (const CI of ['true', '1']) {
      const env = { PATH: fakePath(), CI, [SKIPS_DIR_ENV]: skips };
      expect(isCI(env)).toBe(true);
      expect(() => requireTool('absent', 'absent-pkg', { env })).toThrow(MissingToolError);
      expect(() => requireTool('absent', 'absent-pkg', { env })).toThrow(
        'test/unit/repo/test-tools.test.ts: absent is not installed (apt-get install -y absent-pkg); under CI=true a missing tool is a failure, not a skip',
      );
      expect(() => requireRoot({ env, uid: 1000 })).toThrow(/it needs root; under CI=true/);
      expect(requireTool('present', 'pkg', { env })).toBe(true);
    }
    expect(readdirSync(skips)).toEqual([]);
    expect(isCI({ CI: 'false' })).toBe(false);
    expect(isCI({})).toBe(false);
  });
});

describe('readSkips / skipSummary', () => {
  it('one line: the suites with what each lacks, then the apt-get command (packages once, sorted)', () => {
    const skips = temp('skips');
    writeFileSync(
      join(skips, '1.jsonl'),
      [
        { suite: 'test/e2e/fleet-page.test.ts', need: 'chromium', apt: 'chromium' },
        { suite: 'test/unit/repo/systemd-units.test.ts', need: 'systemd-analyze', apt: 'systemd' },
      ]
        .map((s) => `${JSON.stringify(s)}\n`)
        .join(''),
    );
    writeFileSync(
      join(skips, '2.jsonl'),
      [
        { suite: 'test/unit/repo/systemd-units.test.ts', need: 'systemd-analyze', apt: 'systemd' }, // the same skip again
        { suite: 'test/unit/repo/systemd-units.test.ts', need: 'systemd-sysusers', apt: 'systemd' },
        { suite: 'test/integration/swtpm-azure.test.ts', need: 'swtpm', apt: 'swtpm' },
      ]
        .map((s) => `${JSON.stringify(s)}\n`)
        .join(''),
    );
    const line = skipSummary(readSkips(skips));
    expect(line).toBe(
      'Skipped 3 suites (tools not installed): test/e2e/fleet-page.test.ts (chromium), test/integration/swtpm-azure.test.ts (swtpm), ' +
        'test/unit/repo/systemd-units.test.ts (systemd-analyze, systemd-sysusers). To run them: sudo apt-get install -y chromium swtpm systemd',
    );
    expect(line).not.toContain('\n');
  });

  it('root is named as what to do, not as a package; nothing skipped: no line', () => {
    expect(skipSummary([{ suite: 'test/system/boot.test.ts', need: 'root' }])).toBe(
      'Skipped 1 suite (tools not installed): test/system/boot.test.ts (root). To run them: run as root',
    );
    expect(
      skipSummary([
        { suite: 'test/system/boot.test.ts', need: 'root' },
        { suite: 'test/system/boot.test.ts', need: 'debootstrap', apt: 'debootstrap' },
      ]),
    ).toBe(
      'Skipped 1 suite (tools not installed): test/system/boot.test.ts (root, debootstrap). To run them: sudo apt-get install -y debootstrap, then run as root',
    );
    expect(skipSummary([])).toBeUndefined();
  });
});

describe('README.md', () => {
  it('shows the skip line exactly as the reporter prints it', () => {
    const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
    const shown = readme.split('\n').filter((l) => l.startsWith('Skipped '));
    expect(shown).toEqual([
      skipSummary([
        { suite: 'test/e2e/fleet-page.test.ts', need: 'chromium', apt: 'chromium' },
        { suite: 'test/integration/swtpm-azure.test.ts', need: 'swtpm', apt: 'swtpm' },
      ]),
    ]);
    expect(readme).toContain('```sh\n.ci/run\n```');
    expect(readme).toContain('npm test\n```');
  });
});
