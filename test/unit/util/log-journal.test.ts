/**
 * Log lines carry their syslog priority when, and only when, stdout is systemd's journal stream:
 * journald reads a leading "<N>" (SyslogLevelPrefix=yes) so `journalctl -p warning` filters by the
 * agent's own levels. The boot test (test/system/boot.test.ts) checks the result in a real journal;
 * here the rules, and the logger end to end in a child process whose stdout is a file.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { closeSync, fstatSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { isJournalStream, SYSLOG_PRIORITY, withSyslogPrefix } from '../../../agent/util/log.js';
import { repoRoot } from '../../helpers/paths.js';

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
  const TSX = pathToFileURL(createRequire(join(repoRoot, 'package.json')).resolve('tsx')).href;
  const LOG = pathToFileURL(join(repoRoot, 'agent', 'util', 'log.ts')).href;
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
    const r = spawnSync(process.execPath, ['--import', TSX, '--input-type=module', '-e', script], { stdio: ['ignore', fd, 'pipe'], env, timeout: 60_000 });
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
