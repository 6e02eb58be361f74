/**
 * `npm test` on a fresh machine: a vitest run of its own (test/fixtures/tool-skip: two files that
 * need a tool each, one that needs none) with a PATH that holds only `node`, as on a machine where
 * nothing but Node.js is installed. It passes and closes with the one line naming the skipped suites
 * and the apt-get command; under CI=true the same run fails. With the tools on PATH nothing is skipped.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../../helpers/paths.js';
import { SKIPS_DIR_ENV } from '../../helpers/tools.js';

const bin = mkdtempSync(join(tmpdir(), 'cvm-fresh-path-'));
symlinkSync(process.execPath, join(bin, 'node'));
afterAll(() => rmSync(bin, { recursive: true, force: true }));

function vitest(env: Record<string, string>): { status: number | null; out: string } {
  const base: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' };
  delete base.CI;
  delete base[SKIPS_DIR_ENV];
  const r = spawnSync(
    process.execPath,
    [join(repoRoot, 'node_modules', 'vitest', 'vitest.mjs'), 'run', '--config', 'test/fixtures/tool-skip/vitest.config.ts'],
    {
      cwd: repoRoot,
      env: { ...base, ...env },
      encoding: 'utf8',
      timeout: 120_000,
    },
  );
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('a machine with only Node.js', () => {
  it('passes, and the last line names the skipped suites and the apt-get command that enables them', () => {
    const r = vitest({ PATH: bin });
    expect(r.status, r.out).toBe(0);
    const lines = r.out.trimEnd().split('\n');
    expect(lines.at(-2)).toBe('Tests: 1 passed, 0 failed, 2 skipped');
    expect(lines.at(-1)).toBe(
      'Skipped 2 suites (tools not installed): test/fixtures/tool-skip/needs-chromium.fixture.ts (chromium), ' +
        'test/fixtures/tool-skip/needs-swtpm.fixture.ts (swtpm). To run them: sudo apt-get install -y chromium swtpm',
    );
    expect(lines.filter((l) => l.startsWith('Skipped '))).toHaveLength(1);
  });

  it('under CI=true the same run fails, naming each missing tool', () => {
    const r = vitest({ PATH: bin, CI: 'true' });
    expect(r.status).toBe(1);
    expect(r.out).toContain('needs-swtpm.fixture.ts: swtpm is not installed (apt-get install -y swtpm); under CI=true a missing tool is a failure, not a skip');
    expect(r.out).toContain('needs-chromium.fixture.ts: chromium or chromium-browser is not installed (apt-get install -y chromium)');
    expect(r.out).toContain('Tests: 1 passed, 2 failed, 0 skipped');
    expect(r.out).not.toMatch(/^Skipped /m);
  });

  it('with the tools on PATH every suite runs and there is no skip line', () => {
    for (const tool of ['swtpm', 'chromium']) {
      writeFileSync(join(bin, tool), '#!/bin/sh\nexit 0\n');
      chmodSync(join(bin, tool), 0o755);
    }
    const r = vitest({ PATH: bin, CI: 'true' });
    expect(r.status, r.out).toBe(0);
    expect(r.out.trimEnd().split('\n').at(-1)).toBe('Tests: 3 passed, 0 failed, 0 skipped');
  });
});
