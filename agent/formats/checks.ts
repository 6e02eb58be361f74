/**
 * Named checks: every verifier returns a list of these, never a bare boolean, so that a human
 * (and the appraisal layer) can see which check failed and why.
 */
export type TrustStatus = 'affirming' | 'warning' | 'contraindicated' | 'none';

export interface Check {
  /** Stable machine-readable name, e.g. "snp.signature", "snp.policy.debug". */
  name: string;
  /** false = the check failed and the evidence must not be trusted. */
  ok: boolean;
  /** true = passed but with a caveat a human should see (e.g. revocation not checked). */
  warning?: boolean;
  /** A reason a human can act on. */
  detail: string;
}

export const pass = (name: string, detail: string): Check => ({ name, ok: true, detail });
export const fail = (name: string, detail: string): Check => ({ name, ok: false, detail });
export const warn = (name: string, detail: string): Check => ({ name, ok: true, warning: true, detail });

/** The checks that failed, in their order. */
export function failedChecks<C extends Check>(checks: readonly C[]): C[] {
  return checks.filter((c) => !c.ok);
}

/** The one human summary of failed checks: "<prefix><name>: <detail>" per failed check. */
export function failureLines(checks: readonly Check[], prefix = ''): string[] {
  return failedChecks(checks).map((c) => `${prefix}${c.name}: ${c.detail}`);
}

/** Fail closed: any failed check contraindicates; any warning downgrades; nothing checked = none. */
export function statusOf(checks: readonly Check[]): TrustStatus {
  if (checks.length === 0) return 'none';
  if (checks.some((c) => !c.ok)) return 'contraindicated';
  if (checks.some((c) => c.warning === true)) return 'warning';
  return 'affirming';
}

export interface VerificationResult<Claims> {
  ok: boolean;
  status: TrustStatus;
  /** True when the evidence was trusted only because simulation is enabled. */
  simulated: boolean;
  claims: Claims | undefined;
  checks: Check[];
}

export function resultOf<Claims>(checks: Check[], claims: Claims | undefined, simulated = false): VerificationResult<Claims> {
  const status = statusOf(checks);
  return { ok: status === 'affirming' || status === 'warning', status, simulated, claims, checks };
}
