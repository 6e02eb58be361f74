/**
 * pino JSON logs to stdout (journald). Secrets are redacted by key wherever they appear in a logged
 * object; messages never interpolate secret values (pino docs/redaction.md: redaction applies to logged objects only).
 *
 * Under systemd, stdout is a stream to journald, which stores every line at the unit's SyslogLevel=
 * (info) unless the line starts with a "<N>" syslog priority prefix (SyslogLevelPrefix=yes, the
 * default; sd-daemon(3)). So when stdout is that stream, each line gets the prefix of its pino level
 * and `journalctl -p warning` shows warnings and worse only. Anywhere else the output is unchanged.
 */
import { fstatSync } from 'node:fs';
import pino, { type DestinationStream, type Logger } from 'pino';

export const REDACT_PATHS = [
  'token',
  '*.token',
  'bearer',
  '*.bearer',
  'authorization',
  '*.authorization',
  'headers.authorization',
  'secret',
  '*.secret',
  'secrets',
  '*.secrets',
  'jwe',
  '*.jwe',
  'privateKey',
  '*.privateKey',
  'key',
  '*.key',
  'd',
  '*.d',
];

/** pino level -> syslog priority (RFC 5424 §6.2.1): crit 2, err 3, warning 4, info 6, debug 7. */
export const SYSLOG_PRIORITY: Readonly<Record<string, number>> = {
  fatal: 2,
  error: 3,
  warn: 4,
  info: 6,
  debug: 7,
  trace: 7,
};

/**
 * True when `fd` is the stream systemd connected to journald: $JOURNAL_STREAM is "<st_dev>:<st_ino>"
 * of that stream (systemd.exec(5)), so a redirect of stdout elsewhere (a pipe, a file) is not
 * mistaken for it even though the variable is inherited.
 */
export function isJournalStream(env: NodeJS.ProcessEnv = process.env, fd = 1): boolean {
  const m = /^(\d+):(\d+)$/.exec(env.JOURNAL_STREAM ?? '');
  if (!m) return false;
  try {
    const st = fstatSync(fd, { bigint: true });
    return st.dev === BigInt(m[1]!) && st.ino === BigInt(m[2]!);
  } catch {
    return false;
  }
}

const LEVEL_AT_START = /^\{"level":"([a-z]+)"/;

/** Prefixes one serialized pino line with "<N>" for its level; a line it cannot read goes out as it is. */
export function withSyslogPrefix(line: string): string {
  const m = LEVEL_AT_START.exec(line);
  const priority = m ? SYSLOG_PRIORITY[m[1]!] : undefined;
  return priority === undefined ? line : `<${priority}>${line}`;
}

export function createLogger(level: string, destination?: DestinationStream, env: NodeJS.ProcessEnv = process.env): Logger {
  // Only our own stdout can be the journal stream; an injected destination is written as given.
  const journal = destination === undefined && isJournalStream(env, 1);
  return pino(
    {
      level,
      base: { service: 'cvm-agent', pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      // The level is the first key of every line, which is what withSyslogPrefix reads.
      formatters: { level: (label) => ({ level: label }) },
      ...(journal ? { hooks: { streamWrite: withSyslogPrefix } } : {}),
    },
    destination ?? pino.destination({ dest: 1, sync: false }),
  );
}

export type { Logger };
