/**
 * CLI plumbing shared by all commands: the Command shape, I/O streams (injectable for tests),
 * exit codes, and argument parsing on node:util parseArgs with strict unknown-option errors.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from '../errors.js';

/** Exit codes are a contract with scripts; see README "Exit codes". */
export const EXIT = {
  OK: 0,
  FAILED: 1,
  USAGE: 2,
  WARNING: 3,
  UNAVAILABLE: 4,
  INTERNAL: 70,
} as const;

export interface CliIO {
  stdout: { write(s: string): unknown; isTTY?: boolean };
  stderr: { write(s: string): unknown };
  env: NodeJS.ProcessEnv;
  cwd: string;
}

export interface Command {
  /** Words that select it, e.g. ["verify", "snp"]. */
  path: string[];
  /** Full usage text shown by --help (options, exit codes). */
  usage: string;
  run(argv: string[], io: CliIO): Promise<number>;
}

/**
 * A command as the dispatcher knows it before running it (agent/cli/commands/command-table.ts): its
 * words, the summary --help lists, and its module, imported only when the command runs or its usage
 * is shown.
 */
export interface CommandEntry {
  path: string[];
  summary: string;
  load(): Promise<Command>;
}

export type Options = NonNullable<ParseArgsConfig['options']>;

/** Parse with strict checking; every error becomes a UsageError (exit code 2). */
export function parseOptions<O extends Options>(argv: string[], options: O, allowPositionals = false) {
  try {
    return parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}
