/**
 * pino JSON logs to stdout (journald), for the agent and the controller alike. Secrets are redacted by
 * key wherever they appear in a logged object; messages never interpolate secret values (pino
 * documentation on redaction: it applies to logged objects only).
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

/** The processes that log through createLogger: the `service` field of every line. */
export type ServiceName = 'cvm-agent' | 'cvm-agent-controller';

export interface LoggerOptions {
  /** Default "cvm-agent". */
  service?: ServiceName;
  /** Where lines go instead of stdout (tests); never given the syslog prefix. */
  destination?: DestinationStream;
  env?: NodeJS.ProcessEnv;
  /** Write each line before the call returns (default false: buffered, flushed on exit). */
  sync?: boolean;
}

/**
 * The one logger factory for the agent and the controller, so both write the same shape: level
 * names, ISO time, base fields {service, pid}, the same redaction, the journal priority prefix.
 */
export function createLogger(level: string, opts: LoggerOptions = {}): Logger {
  const env = opts.env ?? process.env;
  // Only our own stdout can be the journal stream; an injected destination is written as given.
  const journal = opts.destination === undefined && isJournalStream(env, 1);
  return pino(
    {
      level,
      base: { service: opts.service ?? 'cvm-agent', pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      // The level is the first key of every line, which is what withSyslogPrefix reads.
      formatters: { level: (label) => ({ level: label }) },
      ...(journal ? { hooks: { streamWrite: withSyslogPrefix } } : {}),
    },
    opts.destination ?? pino.destination({ dest: 1, sync: opts.sync ?? false }),
  );
}

/**
 * A line written to stderr outside the logger (a failed start's one-line reason): under systemd it
 * carries "<3>" (err) when stderr is the journal stream, so `journalctl -p err` shows why a start failed.
 */
export function stderrLine(text: string, env: NodeJS.ProcessEnv = process.env): string {
  return isJournalStream(env, 2) ? `<${SYSLOG_PRIORITY.error}>${text}` : text;
}

export type { Logger };
