/**
 * The edge pieces every `cvm-agent verify …` command shares: reading an input file, the --at option,
 * CRL files, and turning a list of named checks into the text table, the --json checks and the exit
 * code. One place, so the verify commands keep one contract (README "exit codes").
 */
import { resolve } from 'node:path';
import { ParseError, UsageError } from '../errors.js';
import { failedChecks, type Check, type TrustStatus, type VerificationResult } from '../formats/checks.js';
import { parseCrl } from '../verify/snp/crl.js';
import { DEFAULT_SNP_POLICY, parseSnpPolicy, type SnpPolicy } from '../appraise/snp-policy.js';
import { EXIT, type CliIO } from './command.js';
import { InputFileError, readBoundedSync, type InputKind } from '../util/bounded-read.js';
import { pemBlocks } from '../util/pem.js';

/**
 * Read a whole input file relative to the CLI's cwd, capped by its kind before any byte is read
 * (util/bounded-read.ts; pipes and devices are read to at most the cap). An unreadable file is a usage
 * error, an oversized one or a directory a one-line ParseError: both exit 2.
 */
export function readInput(file: string, io: CliIO, what: string, kind: InputKind): Buffer {
  try {
    return readBoundedSync(resolve(io.cwd, file), kind, { streams: true });
  } catch (err) {
    if (err instanceof InputFileError) throw new ParseError(`${what} "${file}": ${err.reason}`, undefined, { cause: err });
    throw new UsageError(`cannot read ${what} "${file}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** --at: an ISO 8601 date or date-time (no free text such as "yesterday"); absent means now. */
export function parseAt(text: string | undefined): Date {
  if (text === undefined) return new Date();
  if (!/^\d{4}-\d{2}-\d{2}(T[\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(text) || Number.isNaN(Date.parse(text))) {
    throw new UsageError(`--at "${text}" is not an ISO 8601 time (e.g. 2025-06-01T00:00:00Z)`);
  }
  return new Date(text);
}

/** A CRL file: DER as is, or PEM with one or more X509 CRL blocks (AMD KDS serves DER; tools store PEM). */
export function decodeCrlFile(bytes: Buffer): Buffer[] {
  const text = bytes.subarray(0, 64).toString('latin1').trimStart();
  if (!text.startsWith('-----BEGIN')) return [bytes];
  const out = pemBlocks(bytes.toString('latin1'), 'X509 CRL');
  if (out.length === 0) throw new ParseError('CRL file: PEM without an X509 CRL block');
  return out;
}

/** Every --crl FILE, decoded and parsed up front so a malformed CRL is a usage error (exit 2), not a failed check. */
export function loadCrlFiles(files: readonly string[] | undefined, io: CliIO): Buffer[] {
  const crls = (files ?? []).flatMap((f) => decodeCrlFile(readInput(f, io, 'CRL file', 'crl')));
  crls.forEach((c, i) => {
    try {
      parseCrl(c);
    } catch (err) {
      if (err instanceof ParseError) throw new ParseError(`CRL #${i + 1}: ${err.message}`);
      throw err;
    }
  });
  return crls;
}

const MARK = (c: Check) => (!c.ok ? '✘' : c.warning ? '⚠' : '✔');

/**
 * `--policy FILE` for the SEV-SNP verifiers: the file's policy, else the defaults. A given file must
 * hold a mapping (an empty or comment-only file is an error, exit 2, not "no allow-lists").
 */
export function loadSnpPolicyOption(file: string | undefined, io: CliIO): SnpPolicy {
  return file === undefined ? { ...DEFAULT_SNP_POLICY } : parseSnpPolicy(readInput(file, io, 'policy file', 'policy').toString('utf8'), `SNP policy "${file}"`);
}

/** The human table: a headline "<title>: STATUS — n checks, …" and one aligned line per check. */

export function formatChecks(title: string, status: string, simulated: boolean, checks: Check[]): string {
  const width = Math.max(...checks.map((c) => c.name.length));
  const lines = checks.map((c) => `${MARK(c)} ${c.name.padEnd(width)}  ${c.detail}`);
  const failed = failedChecks(checks).length;
  const warned = checks.filter((c) => c.ok && c.warning).length;
  const head = `${title}: ${status.toUpperCase()}${simulated ? ' (SIMULATED)' : ''} — ${checks.length} checks, ${failed} failed, ${warned} warning(s)`;
  return `${head}\n${lines.join('\n')}\n`;
}

/** The checks as --json prints them; `warning` only where set, so passing checks stay three fields. */
export function checksJson(checks: readonly Check[]): Array<{ name: string; ok: boolean; detail: string; warning?: true }> {
  return checks.map((c) => ({ name: c.name, ok: c.ok, detail: c.detail, ...(c.warning ? { warning: true as const } : {}) }));
}

/** The detected input format, as `verify …` names it: an id, a human name, and what was ignored or assumed. */
export interface InputFormat {
  format: string;
  name: string;
  notes: readonly string[];
}

/** The input lines under the table: "input: <name>" and one "note:" line each. */
export function formatInput(input: InputFormat): string {
  return [`input: ${input.name}`, ...input.notes.map((n) => `note: ${n}`)].join('\n') + '\n';
}

/** The input as --json prints it. */
export function inputJson(input: InputFormat): { format: string; name: string; notes: string[] } {
  return { format: input.format, name: input.name, notes: [...input.notes] };
}

/**
 * Print one verifier's result, --json as {ok, status, simulated, report: claims | null, checks, input},
 * else the table under `title` followed by the input format, and return the exit code for its status.
 */
export function printResult(io: CliIO, result: VerificationResult<unknown>, title: string, json: boolean | undefined, input: InputFormat): number {
  if (json) {
    const out = {
      ok: result.ok,
      status: result.status,
      simulated: result.simulated,
      report: result.claims ?? null,
      checks: checksJson(result.checks),
      input: inputJson(input),
    };
    io.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  } else {
    io.stdout.write(formatChecks(title, result.status, result.simulated, result.checks) + formatInput(input));
  }
  return exitForStatus(result.status);
}

/** affirming → 0, warning → 3, contraindicated or none (nothing checked) → 1: fail closed. */
export function exitForStatus(status: TrustStatus): number {
  return status === 'affirming' ? EXIT.OK : status === 'warning' ? EXIT.WARNING : EXIT.FAILED;
}
