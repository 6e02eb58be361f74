/**
 * Attack: read what the demo left behind. `cvm-agent demo` writes the agent's bearer token and the
 * secret the controller releases into plain files in its directory; it used to leave them there
 * after exiting, for any later local user of the temporary directory to read. Every way the demo
 * process ends must remove everything it created: a normal exit, an error, and SIGINT/SIGTERM
 * (with --follow, and half-way through a run).
 *
 * Each case runs the real CLI in a child process with TMPDIR pointing at a directory this test owns,
 * so "nothing left" is checked by listing it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { CLI } from '../helpers/daemon-process.js';
import { repoRoot } from '../helpers/paths.js';

interface Run {
  child: ChildProcess;
  lines: string[];
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  exit: Promise<number | null>;
}

const children: ChildProcess[] = [];

function demo(args: string[], tmp: string): Run {
  const child = spawn(process.execPath, [CLI, 'demo', ...args], {
    cwd: repoRoot,
    env: { ...process.env, TMPDIR: tmp },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  const lines: string[] = [];
  let waiters: { re: RegExp; resolve: (m: RegExpMatchArray) => void }[] = [];
  const onLine = (l: string) => {
    lines.push(l);
    waiters = waiters.filter((w) => {
      const m = l.match(w.re);
      if (m) w.resolve(m);
      return !m;
    });
  };
  createInterface({ input: child.stdout! }).on('line', onLine);
  createInterface({ input: child.stderr! }).on('line', onLine);
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    child,
    lines,
    exit,
    waitFor(re, timeoutMs = 90_000) {
      for (const l of lines) {
        const m = l.match(re);
        if (m) return Promise.resolve(m);
      }
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no line matched ${re}: ${lines.join('\n')}`)), timeoutMs);
        waiters.push({
          re,
          resolve: (m) => {
            clearTimeout(t);
            resolve(m);
          },
        });
      });
    },
  };
}

/** What the demo may leave in TMPDIR: nothing (the CLI runs built, so there is no compile cache either). */
function leftovers(tmp: string): string[] {
  return readdirSync(tmp);
}

describe('cvm-agent demo leaves nothing on disk', () => {
  let root: string;
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'cvm-adv-demo-'));
  });
  afterAll(() => {
    // A demo that failed to end (the defect under test) must not outlive the test.
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    rmSync(root, { recursive: true, force: true });
  });

  const fresh = (name: string) => {
    const d = join(root, name);
    mkdirSync(d);
    return d;
  };

  it('after a normal run: its directory, token and secret are gone', async () => {
    const tmp = fresh('normal');
    const run = demo(['--gpus', '1', '--json'], tmp);
    expect(await run.exit).toBe(0);
    const r = JSON.parse(run.lines.join('\n')) as { ok: boolean; dir: string };
    expect(r.ok).toBe(true);
    expect(r.dir.startsWith(tmp)).toBe(true);
    expect(existsSync(r.dir)).toBe(false);
    expect(leftovers(tmp)).toEqual([]);
  }, 120_000);

  it('with --follow, stopped by SIGTERM: gone', async () => {
    const tmp = fresh('follow-term');
    const run = demo(['--gpus', '1', '--follow'], tmp);
    const [, dir] = await run.waitFor(/simulated TEE in (\S+)\/simulation/);
    await run.waitFor(/^Fleet page: /);
    expect(existsSync(join(dir!, 'agent.token'))).toBe(true);
    expect(existsSync(join(dir!, 'model.key'))).toBe(true);
    run.child.kill('SIGTERM');
    expect(await run.exit).toBe(0);
    expect(existsSync(dir!)).toBe(false);
    expect(leftovers(tmp)).toEqual([]);
  }, 120_000);

  it('interrupted by SIGINT half-way through a run: gone, and it says so', async () => {
    const tmp = fresh('interrupted');
    // 16 GPUs: their simulated roots take a while to create, so the signal lands mid-run.
    const run = demo(['--gpus', '16'], tmp);
    const [, dir] = await run.waitFor(/simulated TEE in (\S+)\/simulation/);
    run.child.kill('SIGINT');
    expect(await run.exit).toBe(1);
    expect(run.lines.join('\n')).toMatch(/interrupted by SIGINT; the demo's files were removed/);
    expect(existsSync(dir!)).toBe(false);
    expect(leftovers(tmp)).toEqual([]);
  }, 120_000);

  it('after an error (the agent cannot listen: socket path too long): gone', async () => {
    const tmp = fresh(`error-${'x'.repeat(90)}`);
    const run = demo(['--gpus', '1'], tmp);
    expect(await run.exit).toBe(1);
    expect(run.lines.join('\n')).toMatch(/a Unix socket path must be at most 107 bytes/);
    expect(leftovers(tmp)).toEqual([]);
  }, 120_000);

  it('in an existing --dir: removes what it created there, keeps what was there before', async () => {
    const tmp = fresh('with-dir');
    const dir = fresh('existing');
    writeFileSync(join(dir, 'keep.txt'), 'mine');
    mkdirSync(join(dir, 'simulation')); // simulated roots the user keeps between runs
    const run = demo(['--gpus', '1', '--dir', dir, '--json'], tmp);
    expect(await run.exit).toBe(0);
    expect(readdirSync(dir).sort()).toEqual(['keep.txt', 'simulation']);
    expect(readdirSync(join(dir, 'simulation')).length).toBeGreaterThan(0); // roots created there are kept
    expect(leftovers(tmp)).toEqual([]);
  }, 120_000);

  it('in a --dir that did not exist: removes the directory it created', async () => {
    const tmp = fresh('new-dir');
    const dir = join(root, 'new', 'nested');
    const run = demo(['--gpus', '1', '--dir', dir, '--json'], tmp);
    expect(await run.exit).toBe(0);
    expect(existsSync(join(root, 'new'))).toBe(false);
  }, 120_000);
});
