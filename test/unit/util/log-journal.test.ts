/**
 * Log lines carry their syslog priority when, and only when, stdout is systemd's journal stream:
 * journald reads a leading "<N>" (SyslogLevelPrefix=yes) so `journalctl -p warning` filters by the
 * agent's own levels. The boot test (test/system/boot.test.ts) checks the result in a real journal;
 * here the rules, and the logger end to end in a child process whose stdout is a file: the agent's,
 * the controller's (the same factory, the same line shape) and a failed start's line on stderr.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, fstatSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createLogger, isJournalStream, stderrLine, SYSLOG_PRIORITY, withSyslogPrefix } from '../../../agent/util/log.js';
import { cycleLogLevel } from '../../../agent/daemon/daemon.js';
import { repoRoot } from '../../helpers/paths.js';
import { CLI, built } from '../../helpers/built.js';

const dir = mkdtempSync(join(tmpdir(), 'cvm-log-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('syslog priority prefix', () => {
  it('maps pino levels to RFC 5424 severities', () => {
    expect(SYSLOG_PRIORITY).toEqual({ fatal: 2, error: 3, warn: 4, info: 6, debug: 7, trace: 7 });
    for (const [level, n] of Object.entries(SYSLOG_PRIORITY)) {
      const line = `{"level":"${level}","time":"t","msg":"m"}\n`;
      expect(withSyslogPrefix(line)).toBe(`<${n}>${line}`);
    }
  });

  it('leaves a line it cannot read unchanged', () => {
    for (const line of ['{"level":"notice","msg":"m"}\n', '{"msg":"m","level":"warn"}\n', 'plain\n', '']) {
      expect(withSyslogPrefix(line)).toBe(line);
    }
  });

  it('recognises the journal stream only by the device and inode of the descriptor', () => {
    const file = join(dir, 'fd-check');
    const fd = openSync(file, 'w');
    try {
      const st = fstatSync(fd, { bigint: true });
      expect(isJournalStream({ JOURNAL_STREAM: `${st.dev}:${st.ino}` }, fd)).toBe(true);
      expect(isJournalStream({ JOURNAL_STREAM: `${st.dev}:${st.ino + 1n}` }, fd)).toBe(false);
      expect(isJournalStream({}, fd)).toBe(false);
      expect(isJournalStream({ JOURNAL_STREAM: 'garbage' }, fd)).toBe(false);
    } finally {
      closeSync(fd);
    }
  });
});

describe('createLogger, end to end in a child process', () => {
  const LOG = pathToFileURL(built('agent/util/log.ts')).href;
  const script = `const { createLogger } = await import(${JSON.stringify(LOG)});
const l = createLogger('trace');
l.trace('t'); l.debug('d'); l.info('i'); l.warn('w'); l.error('e'); l.fatal('f');
l.child({ part: 'x' }).warn('child');
await new Promise((r) => l.flush(r));`;

  /** Runs the logger with stdout on a fresh file; `journal(stat)` picks JOURNAL_STREAM from that file's identity. */
  function logTo(name: string, journal: (st: { dev: bigint; ino: bigint }) => string | undefined): string[] {
    const file = join(dir, name);
    const fd = openSync(file, 'w');
    const st = fstatSync(fd, { bigint: true });
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env.JOURNAL_STREAM;
    const js = journal(st);
    if (js !== undefined) env.JOURNAL_STREAM = js;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', fd, 'pipe'], env, timeout: 60_000 });
    closeSync(fd);
    expect(r.status, String(r.stderr)).toBe(0);
    return readFileSync(file, 'utf8').split('\n').filter(Boolean);
  }

  it('under systemd (stdout is the journal stream) every line starts with its priority', () => {
    const lines = logTo('journal', (st) => `${st.dev}:${st.ino}`);
    expect(lines).toHaveLength(7);
    for (const l of lines) {
      const m = /^<(\d)>(\{.*\})$/.exec(l);
      expect(m, l).not.toBeNull();
      const { level } = JSON.parse(m![2]!) as { level: string };
      expect(Number(m![1])).toBe(SYSLOG_PRIORITY[level]);
    }
  });

  it('elsewhere (no JOURNAL_STREAM, or stdout redirected away from it) the output is plain JSON lines', () => {
    for (const [name, journal] of [
      ['plain', () => undefined],
      ['redirected', (st: { dev: bigint; ino: bigint }) => `${st.dev}:${st.ino + 1n}`],
    ] as const) {
      const lines = logTo(name, journal);
      expect(lines).toHaveLength(7);
      for (const l of lines) expect(JSON.parse(l)).toMatchObject({ service: 'cvm-agent' });
    }
  });
});

describe('the controller logs in the agent shape, with the same journal priorities', () => {
  it('same level names, ISO time and base fields; only the service differs', () => {
    const lines: Record<string, string[]> = { agent: [], controller: [] };
    const sink = (into: string[]) => ({ write: (s: string) => void into.push(s) });
    createLogger('info', { destination: sink(lines.agent!) }).warn({ a: 1 }, 'x');
    createLogger('info', { service: 'cvm-agent-controller', destination: sink(lines.controller!) }).warn({ a: 1 }, 'x');
    const [a, c] = [JSON.parse(lines.agent![0]!), JSON.parse(lines.controller![0]!)] as Array<Record<string, unknown>>;
    expect(Object.keys(c!)).toEqual(Object.keys(a!));
    expect(Object.keys(a!)).toEqual(['level', 'time', 'service', 'pid', 'a', 'msg']);
    expect(a).toMatchObject({ level: 'warn', service: 'cvm-agent', pid: process.pid });
    expect(c).toMatchObject({ level: 'warn', service: 'cvm-agent-controller', pid: process.pid });
    expect(new Date(String(c!.time)).toISOString()).toBe(c!.time);
  });

  it('`cvm-agent controller` under systemd: every line is the shared shape with its priority prefix', async () => {
    const file = join(dir, 'controller-journal');
    const fd = openSync(file, 'w');
    const st = fstatSync(fd, { bigint: true });
    const env: NodeJS.ProcessEnv = { ...process.env, JOURNAL_STREAM: `${st.dev}:${st.ino}` };
    const child = spawn(process.execPath, [CLI, 'controller', '--listen', '127.0.0.1:0'], {
      cwd: repoRoot,
      stdio: ['ignore', fd, 'pipe'],
      env,
    });
    closeSync(fd);
    const deadline = Date.now() + 60_000;
    while (!readFileSync(file, 'utf8').includes('controller listening')) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`controller did not start: ${readFileSync(file, 'utf8')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
    const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean);
    const levels = new Set<string>();
    for (const l of lines) {
      const m = /^<(\d)>(\{.*\})$/.exec(l);
      expect(m, l).not.toBeNull();
      const rec = JSON.parse(m![2]!) as Record<string, unknown>;
      expect(Number(m![1])).toBe(SYSLOG_PRIORITY[String(rec.level)]);
      expect(rec).toMatchObject({ service: 'cvm-agent-controller', pid: child.pid, time: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/) });
      levels.add(String(rec.level));
    }
    // Without a config it warns (no tokens, ephemeral signing key) and says where it listens.
    expect([...levels].sort()).toEqual(['info', 'warn']);
  }, 90_000);

  it('a failed `cvm-agent run` start: the one line on stderr carries the err priority when stderr is the journal', () => {
    expect(stderrLine('x\n', {})).toBe('x\n');
    const cfg = join(dir, 'bad.yaml');
    writeFileSync(cfg, 'bogus: 1\n');
    const run = (journal: boolean) => {
      const err = join(dir, `run-stderr-${journal}`);
      const fd = openSync(err, 'w');
      const st = fstatSync(fd, { bigint: true });
      const env: NodeJS.ProcessEnv = { ...process.env };
      delete env.JOURNAL_STREAM;
      if (journal) env.JOURNAL_STREAM = `${st.dev}:${st.ino}`;
      const r = spawnSync(process.execPath, [CLI, 'run', '--config', cfg], {
        cwd: repoRoot,
        stdio: ['ignore', 'ignore', fd],
        env,
        timeout: 60_000,
      });
      closeSync(fd);
      expect(r.status).toBe(2);
      return readFileSync(err, 'utf8');
    };
    expect(run(true)).toMatch(/^<3>cvm-agent run: could not start: .*bogus: unknown key/);
    expect(run(false)).toMatch(/^cvm-agent run: could not start: /);
  }, 90_000);
});

describe('what `journalctl -p warning` shows of attestation cycles', () => {
  it('a passing cycle is info, a verdict that does not pass (CONTRAINDICATED, an unaccepted warning) a warning, no verdict an error', () => {
    expect(cycleLogLevel({ ok: true, status: 'affirming' })).toBe('info');
    expect(cycleLogLevel({ ok: true, status: 'warning' })).toBe('info');
    expect(cycleLogLevel({ ok: false, status: 'contraindicated' })).toBe('warn');
    expect(cycleLogLevel({ ok: false, status: 'warning' })).toBe('warn');
    expect(cycleLogLevel({ ok: false, status: 'none' })).toBe('error');
    // ...and so the journal priorities: info 6 (hidden by -p warning), warning 4, err 3.
    expect(['info', 'warn', 'error'].map((l) => SYSLOG_PRIORITY[l])).toEqual([6, 4, 3]);
  });
});
