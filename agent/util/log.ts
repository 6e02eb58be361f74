/**
 * pino JSON logs to stdout (journald). Secrets are redacted by key wherever they appear in a logged
 * object; messages never interpolate secret values (reference/node-daemon.md §5).
 */
import pino, { type DestinationStream, type Logger } from 'pino';

export const REDACT_PATHS = [
  'token', '*.token', 'bearer', '*.bearer', 'authorization', '*.authorization', 'headers.authorization',
  'secret', '*.secret', 'secrets', '*.secrets', 'jwe', '*.jwe', 'privateKey', '*.privateKey', 'key', '*.key', 'd', '*.d',
];

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'cvm-agent', pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      formatters: { level: (label) => ({ level: label }) },
    },
    destination ?? pino.destination({ dest: 1, sync: false }),
  );
}

export type { Logger };
