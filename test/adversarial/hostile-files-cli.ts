/**
 * Shared harness for the hostile-files tests: run the real `cvm-agent` CLI in a child process (the
 * built bin/cvm-agent.js, as test/native/snp-report-cli.test.ts does) with a preload that records the child's peak RSS
 * (process.resourceUsage().maxRSS) into a file at exit, so a test can assert that a hostile input
 * was refused without being read into memory, and that stderr stayed one line.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { repoRoot } from '../helpers/paths.js';
import { CLI } from '../helpers/built.js';

export const MAIN = CLI;

export interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Peak resident set of the child in KiB, from its own process.resourceUsage() at exit (undefined if it never exited normally). */
  maxRssKiB: number | undefined;
  /** The child did not exit within the harness limit and was killed (an endless read, a hang). */
  killed: boolean;
}

let probeDir: string | undefined;
function probe(): string {
  if (!probeDir) {
    probeDir = mkdtempSync(join(tmpdir(), 'hostile-files-probe-'));
    // CommonJS so it runs before the ESM loader; it only writes a number at exit.
    writeFileSync(
      join(probeDir, 'rss-probe.cjs'),
      "const { writeFileSync } = require('node:fs');\n" +
        'const out = process.env.CVM_TEST_RSS_OUT;\n' +
        "if (out) process.on('exit', () => writeFileSync(out, String(process.resourceUsage().maxRSS)));\n",
    );
  }
  return join(probeDir, 'rss-probe.cjs');
}

export function cleanupProbe(): void {
  if (probeDir) rmSync(probeDir, { recursive: true, force: true });
  probeDir = undefined;
}

let runs = 0;

/**
 * Spawn `node [--require probe] <argv>` and collect the result. `limitMs` is not a timing assertion:
 * it is the point where a child that reads forever is killed so the test reports it instead of hanging.
 */
export function runNode(argv: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; limitMs?: number } = {}): Promise<CliRun> {
  const rssFile = join(tmpdir(), `hostile-files-rss-${process.pid}-${++runs}`);
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--require', probe(), ...argv], {
      cwd: opts.cwd ?? repoRoot,
      env: { ...process.env, ...opts.env, CVM_TEST_RSS_OUT: rssFile },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let killed = false;
    child.stdout.on('data', (d: Buffer) => {
      if (stdout.length < 1 << 20) stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      if (stderr.length < 1 << 20) stderr += d.toString();
    });
    const timer = setTimeout(() => {
      killed = true;
      child.kill('SIGKILL');
    }, opts.limitMs ?? 100_000);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      let maxRssKiB: number | undefined;
      try {
        maxRssKiB = Number(readFileSync(rssFile, 'utf8'));
        rmSync(rssFile, { force: true });
      } catch {
        maxRssKiB = undefined;
      }
      resolve({ code, signal, stdout, stderr, maxRssKiB, killed });
    });
  });
}

/** `cvm-agent ARGS` as a child process. */
export function cli(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; limitMs?: number } = {}): Promise<CliRun> {
  return runNode([MAIN, ...args], opts);
}

/** Exit 2, exactly one line on stderr matching `pattern`, no stack trace, no "internal error". */
export function expectOneLineRefusal(r: CliRun, pattern: RegExp): void {
  const detail = JSON.stringify({ code: r.code, signal: r.signal, killed: r.killed, stderr: r.stderr.slice(0, 2000) });
  expect(r.killed, `child was killed at the harness limit: ${detail}`).toBe(false);
  expect(r.code, detail).toBe(2);
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines, detail).toHaveLength(1);
  expect(r.stderr).not.toMatch(/internal error|\n\s+at /);
  expect(lines[0]).toMatch(pattern);
}

/**
 * `config check` refusing a file the config names: it runs the daemon's whole validation
 * (agent/daemon/preflight.ts) and lists every problem, one per line under a header, so a config whose
 * only problem is that file gives exit 2, "<config>: 1 problem:", and one "  - " line matching `pattern`.
 */
export function expectConfigCheckProblem(r: CliRun, pattern: RegExp): void {
  const detail = JSON.stringify({ code: r.code, signal: r.signal, killed: r.killed, stderr: r.stderr.slice(0, 2000) });
  expect(r.killed, `child was killed at the harness limit: ${detail}`).toBe(false);
  expect(r.code, detail).toBe(2);
  expect(r.stderr).not.toMatch(/internal error|\n\s+at /);
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines, detail).toHaveLength(2);
  expect(lines[0], detail).toMatch(/^cvm-agent config check: .*: 1 problem:$/);
  expect(lines[1], detail).toMatch(/^  - /);
  expect(lines[1]!.slice(4)).toMatch(pattern);
}

/** The configured problems list of a config error: exit 2, the listed problems, no stack trace. */
export function expectConfigProblems(r: CliRun, patterns: RegExp[]): void {
  const detail = JSON.stringify({ code: r.code, signal: r.signal, killed: r.killed, stderr: r.stderr.slice(0, 2000) });
  expect(r.killed, detail).toBe(false);
  expect(r.code, detail).toBe(2);
  expect(r.stderr).not.toMatch(/internal error|\n\s+at /);
  for (const p of patterns) expect(r.stderr).toMatch(p);
}

/**
 * Reading a 200 MB input whole costs at least 200 MB; refusing it before reading costs nothing. The
 * bound is relative to a clean run of the same CLI (module loading dominates its RSS), with a margin
 * far below the size of the hostile inputs.
 */
export const RSS_MARGIN_KIB = 64 * 1024;

export function expectSmallRss(r: CliRun, baselineKiB: number): void {
  expect(r.maxRssKiB, 'the child did not report its peak RSS').toBeTypeOf('number');
  expect(r.maxRssKiB!, `peak RSS ${r.maxRssKiB} KiB vs baseline ${baselineKiB} KiB`).toBeLessThan(baselineKiB + RSS_MARGIN_KIB);
}
