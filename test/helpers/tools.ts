/**
 * External programs some suites need (swtpm, chromium, systemd's tools, promtool, debootstrap) and
 * root. A suite asks requireTool()/requireRoot() and runs only when the answer is true:
 * - on a development machine a missing tool is a skip, recorded for the one closing line of
 *   test/helpers/summary-reporter.ts (which suites, and the apt-get command that enables them), so
 *   `npm test` passes on a fresh machine that has only Node.js and a C compiler;
 * - under CI (`CI=true`), where .ci/run installs every tool, it throws: nothing is skipped silently.
 * Skips travel from the test workers to the reporter as JSON lines in the directory named by
 * SKIPS_DIR_ENV (the reporter creates it and sets the variable before the workers start).
 */
import { accessSync, appendFileSync, constants, existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { delimiter, isAbsolute, join, relative } from 'node:path';
import { expect } from 'vitest';
import { repoRoot } from './paths.js';

export const SKIPS_DIR_ENV = 'CVM_TEST_SKIPS_DIR';

/** One suite (test file) skipped for want of `need`: a program (with its Debian package) or root. */
export interface Skip {
  suite: string;
  need: string;
  apt?: string;
}

export function isCI(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.CI === 'true' || env.CI === '1';
}

/** The first executable `name` in the directories of PATH (what a shell would run), or undefined. */
export function findTool(name: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (isAbsolute(name)) return executable(name) ? name : undefined;
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    const p = join(dir, name);
    if (executable(p)) return p;
  }
  return undefined;
}

function executable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

export class MissingToolError extends Error {}

export interface RequireOptions {
  env?: NodeJS.ProcessEnv;
  /** The suite to name in the summary; by default the test file being collected. */
  suite?: string;
}

/**
 * Whether the suite can run: true when one of `names` is on PATH. Otherwise it records the skip
 * (false) or, under CI, throws MissingToolError naming the apt package.
 */
export function requireTool(names: string | readonly string[], aptPackage: string, opts: RequireOptions = {}): boolean {
  const env = opts.env ?? process.env;
  const list = typeof names === 'string' ? [names] : names;
  if (list.some((n) => findTool(n, env) !== undefined)) return true;
  return missing(
    { suite: opts.suite ?? currentSuite(), need: list[0]!, apt: aptPackage },
    `${list.join(' or ')} is not installed (apt-get install -y ${aptPackage})`,
    env,
  );
}

/** Whether the suite can run: true for uid 0 (mounts, namespaces, cgroups). Otherwise as requireTool. */
export function requireRoot(opts: RequireOptions & { uid?: number } = {}): boolean {
  const env = opts.env ?? process.env;
  if ((opts.uid ?? process.getuid?.()) === 0) return true;
  return missing({ suite: opts.suite ?? currentSuite(), need: 'root' }, 'it needs root', env);
}

function missing(skip: Skip, why: string, env: NodeJS.ProcessEnv): false {
  if (isCI(env)) throw new MissingToolError(`${skip.suite}: ${why}; under CI=true a missing tool is a failure, not a skip`);
  const dir = env[SKIPS_DIR_ENV];
  if (dir && existsSync(dir)) appendFileSync(join(dir, `${process.pid}.jsonl`), `${JSON.stringify(skip)}\n`);
  return false;
}

function currentSuite(): string {
  const path = expect.getState().testPath;
  return path ? relative(repoRoot, path) : 'unknown suite';
}

/** Every skip recorded in `dir` (one JSON object a line, a file per worker), duplicates removed. */
export function readSkips(dir: string): Skip[] {
  const seen = new Map<string, Skip>();
  for (const f of readdirSync(dir).sort()) {
    for (const line of readFileSync(join(dir, f), 'utf8').split('\n')) {
      if (line === '') continue;
      const s = JSON.parse(line) as Skip;
      seen.set(`${s.suite}\0${s.need}`, s);
    }
  }
  return [...seen.values()];
}

/**
 * The one closing line about skips, or undefined when none: the suites with what each lacks, then
 * the command that enables them, e.g.
 * "Skipped 2 suites (tools not installed): test/e2e/fleet-page.test.ts (chromium),
 *  test/integration/swtpm-azure.test.ts (swtpm). To run them: sudo apt-get install -y chromium swtpm".
 */
export function skipSummary(skips: readonly Skip[]): string | undefined {
  if (skips.length === 0) return undefined;
  const bySuite = new Map<string, string[]>();
  for (const s of skips) bySuite.set(s.suite, [...(bySuite.get(s.suite) ?? []), s.need]);
  const suites = [...bySuite.keys()].sort();
  const list = suites.map((s) => `${s} (${bySuite.get(s)!.join(', ')})`).join(', ');
  const pkgs = [...new Set(skips.flatMap((s) => (s.apt ? s.apt.split(/\s+/) : [])))].sort();
  const todo: string[] = [];
  if (pkgs.length > 0) todo.push(`sudo apt-get install -y ${pkgs.join(' ')}`);
  if (skips.some((s) => s.need === 'root')) todo.push('run as root');
  const n = suites.length;
  return `Skipped ${n} suite${n === 1 ? '' : 's'} (tools not installed): ${list}. To run them: ${todo.join(', then ')}`;
}
