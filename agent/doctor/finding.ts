/**
 * What `cvm-agent doctor` reports: one finding per check, each with a stable id, the area it belongs
 * to, a status, what was seen, and the fix (a command to run or a config key to set). Pure: the
 * checks build findings from gathered facts; this module summarises and prints them.
 */

export type FindingStatus = 'pass' | 'warn' | 'fail' | 'skipped';
/** In dependency order: the agent needs the platform, then the vTPM (Azure), the GPUs, its own setup, the controller. */
export type Area = 'platform' | 'vtpm' | 'gpu' | 'agent' | 'controller';
export const AREAS: readonly Area[] = ['platform', 'vtpm', 'gpu', 'agent', 'controller'];

export interface Finding {
  /** Stable, e.g. "gpu.cc"; docs/troubleshooting.md has a section per id. */
  id: string;
  area: Area;
  status: FindingStatus;
  /** What was found (for skipped: why the check did not run). */
  detail: string;
  /** What to do: a command or a config key. Always present for warn and fail. */
  fix?: string;
}

export const pass = (id: string, area: Area, detail: string, fix?: string): Finding => ({ id, area, status: 'pass', detail, ...(fix ? { fix } : {}) });
export const warn = (id: string, area: Area, detail: string, fix: string): Finding => ({ id, area, status: 'warn', detail, fix });
export const fail = (id: string, area: Area, detail: string, fix: string): Finding => ({ id, area, status: 'fail', detail, fix });
export const skipped = (id: string, area: Area, because: string, fix?: string): Finding => ({
  id,
  area,
  status: 'skipped',
  detail: because,
  ...(fix ? { fix } : {}),
});

export interface Summary {
  pass: number;
  warn: number;
  fail: number;
  skipped: number;
}

export function summarize(findings: readonly Finding[]): Summary {
  const s: Summary = { pass: 0, warn: 0, fail: 0, skipped: 0 };
  for (const f of findings) s[f.status]++;
  return s;
}

/** Exit code as the verify commands have it (README "Exit codes"): 0 all pass, 3 warnings only, 1 a failure. Skipped is not a problem. */
export function exitCodeFor(findings: readonly Finding[]): 0 | 1 | 3 {
  const s = summarize(findings);
  return s.fail > 0 ? 1 : s.warn > 0 ? 3 : 0;
}

export function overall(findings: readonly Finding[]): 'ok' | 'warnings' | 'failed' {
  const code = exitCodeFor(findings);
  return code === 1 ? 'failed' : code === 3 ? 'warnings' : 'ok';
}

const MARK: Record<FindingStatus, string> = { pass: '✔', warn: '⚠', fail: '✘', skipped: '-' };

/** The terminal table: one line per finding, its fix indented below when there is one to do. */
export function formatFindings(findings: readonly Finding[]): string {
  const width = Math.max(...findings.map((f) => f.id.length));
  const lines: string[] = [];
  let area: Area | undefined;
  for (const f of findings) {
    if (f.area !== area) {
      area = f.area;
      lines.push(`${lines.length > 0 ? '\n' : ''}${area}`);
    }
    lines.push(`${MARK[f.status]} ${f.id.padEnd(width)}  ${f.status.toUpperCase().padEnd(7)} ${f.detail}`);
    if (f.fix && f.status !== 'pass') lines.push(`  ${''.padEnd(width)}  fix:    ${f.fix}`);
  }
  const s = summarize(findings);
  const head = `cvm-agent doctor: ${overall(findings).toUpperCase()} — ${findings.length} checks: ${s.pass} passed, ${s.warn} warning(s), ${s.fail} failed, ${s.skipped} skipped`;
  return `${head}\n\n${lines.join('\n')}\n`;
}

/** --json: one object. */
export function findingsJson(findings: readonly Finding[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { status: overall(findings), exitCode: exitCodeFor(findings), summary: summarize(findings), ...extra, findings };
}
