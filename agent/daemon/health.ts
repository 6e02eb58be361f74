/**
 * The agent's truthful view of itself (GET /v1/health, /v1/status, `cvm-agent status`): pure
 * functions of the last cycle, the controller's latest verdict, the age of the last success,
 * collateral freshness and the trust-loss triggers in force.
 *
 *   failing   the last cycle failed, or the controller's verdict is not affirming/warning
 *   degraded  no cycle yet, the last success is older than the bound, the controller token expired,
 *             collateral is stale or expired, or the last cycle passed with warnings
 *   ok        otherwise
 *
 * "Trusted" is stricter than "not failing": the last cycle passed and no trigger is active.
 */
import { CronUtc } from './cron-utc.js';
import type { CycleResult } from '../attest/attestation-cycle.js';
import type { Config } from '../config/schema.js';
import type { CollateralSummary } from './collateral-summary.js';
import type { ActiveTrigger } from './consequences.js';
import { failureLines } from '../formats/checks.js';

export interface Health {
  status: 'ok' | 'degraded' | 'failing';
  reasons: string[];
}

export interface VerdictState {
  status: string;
  challengeId: string;
  receivedAt: string;
  expiresAt: string;
}

export interface HealthInputs {
  now: Date;
  startedAt: Date;
  last: CycleResult | undefined;
  lastSuccessAt: Date | undefined;
  maxAgeSec: number;
  verdict: VerdictState | undefined;
  collateral: CollateralSummary | undefined;
  /** Triggers in force; after a restart they carry lost trust over until what clears them happens. */
  active?: readonly ActiveTrigger[];
}

/** "gpu1: error: ...", "cpu0: snp.policy.debug: ..." for every device that did not pass. */
export function failureReasons(last: CycleResult): string[] {
  return Object.entries(last.ear.submods).flatMap(([id, s]) => {
    if (s['cvm.error']) return [`${id}: error (${s['cvm.error'].code}): ${s['cvm.error'].message}`];
    return failureLines(s['cvm.checks'], `${id}: `);
  });
}

const passing = (status: string) => status === 'affirming' || status === 'warning';

export function evaluateHealth(i: HealthInputs): Health {
  const failing: string[] = [];
  const degraded: string[] = [];
  const { last } = i;
  if (!last) degraded.push(`no attestation has completed since the agent started at ${i.startedAt.toISOString()}`);
  else if (!last.ok) failing.push(`last attestation failed at ${last.finishedAt}`, ...failureReasons(last));
  if (i.verdict && !passing(i.verdict.status)) {
    failing.push(`controller verdict ${i.verdict.status.toUpperCase()} at ${i.verdict.receivedAt} (challenge ${i.verdict.challengeId})`);
  } else if (i.verdict && Date.parse(i.verdict.expiresAt) <= i.now.getTime()) {
    degraded.push(`the controller's token expired at ${i.verdict.expiresAt}; waiting for a new verdict`);
  }
  // Carried over from before a restart: nothing in this process's own state says it yet.
  for (const t of i.active ?? []) {
    if (t.trigger === 'cycleFailed' && !last) failing.push(`the last attestation before the restart failed (${t.detail}); waiting for a passing cycle`);
    if (t.trigger === 'controllerContraindicated' && !i.verdict) failing.push(`${t.detail} (since ${t.since}); waiting for a new controller verdict`);
  }
  const since = i.lastSuccessAt ?? i.startedAt;
  const ageSec = (i.now.getTime() - since.getTime()) / 1000;
  if (ageSec > i.maxAgeSec) {
    degraded.push(
      i.lastSuccessAt
        ? `the last successful attestation (${i.lastSuccessAt.toISOString()}) is older than the bound of ${i.maxAgeSec} s`
        : `no successful attestation within ${i.maxAgeSec} s of the start`,
    );
  }
  if (i.collateral) {
    for (const [kind, n] of Object.entries(i.collateral.kinds)) {
      if (n.expired > 0) degraded.push(`collateral: ${n.expired} ${kind} entr${n.expired === 1 ? 'y' : 'ies'} expired`);
      else if (n.stale > 0) degraded.push(`collateral: ${n.stale} ${kind} entr${n.stale === 1 ? 'y' : 'ies'} past the refresh time (expiring)`);
    }
  }
  if (last?.ok && last.status === 'warning') {
    degraded.push(
      ...Object.entries(last.ear.submods).flatMap(([id, s]) => s['cvm.checks'].filter((c) => c.warning).map((c) => `${id}: ${c.name}: ${c.detail}`)),
    );
  }
  if (failing.length) return { status: 'failing', reasons: [...failing, ...degraded] };
  if (degraded.length) return { status: 'degraded', reasons: degraded };
  return { status: 'ok', reasons: [] };
}

export interface TrustView {
  trusted: boolean;
  /** One line an operator reads first: why the VM is or is not trusted right now. */
  summary: string;
  reasons: string[];
}

const TRIGGER_TEXT: Record<string, string> = {
  cycleFailed: 'the last local attestation failed',
  controllerContraindicated: 'the controller does not trust this VM',
  tokenExpired: 'the controller token expired',
  attestationStale: 'the attestation is stale',
};

export function trustView(last: CycleResult | undefined, active: readonly ActiveTrigger[], health: Health): TrustView {
  if (active.length > 0) {
    return {
      trusted: false,
      summary: `NOT TRUSTED: ${active.map((t) => TRIGGER_TEXT[t.trigger] ?? t.trigger).join('; ')}`,
      reasons: active.map((t) => `${t.trigger} since ${t.since}: ${t.detail}`),
    };
  }
  if (!last) return { trusted: false, summary: 'NOT TRUSTED YET: no attestation has completed', reasons: health.reasons };
  if (!last.ok) return { trusted: false, summary: 'NOT TRUSTED: the last local attestation failed', reasons: health.reasons };
  if (health.status === 'failing') return { trusted: false, summary: 'NOT TRUSTED', reasons: health.reasons };
  return {
    trusted: true,
    summary: `TRUSTED: attested ${last.status}${last.simulated ? ' (SIMULATED)' : ''} at ${last.finishedAt}${health.status === 'degraded' ? ' (degraded)' : ''}`,
    reasons: health.reasons,
  };
}

/**
 * The longest gap between consecutive runs of a cron expression (UTC), from its next few matches.
 * The scheduler's own matcher (cron-utc.ts), so it agrees with the scheduler.
 */
export function cronIntervalSec(expr: string, from = new Date()): number {
  const c = CronUtc.parse(expr);
  let prev = from;
  let max = 0;
  for (let i = 0; i < 8; i++) {
    const next = c.next(prev);
    if (!next) break;
    max = Math.max(max, (next.getTime() - prev.getTime()) / 1000);
    prev = next;
  }
  return Math.max(1, Math.round(max));
}

/** health.maxAgeSec, or by default 2 x the schedule interval + the longest retry wait + the jitter. */
export function maxAttestationAgeSec(config: Config): number {
  if (config.health.maxAgeSec !== undefined) return config.health.maxAgeSec;
  return 2 * cronIntervalSec(config.schedule.cron) + config.schedule.retry.maxSec + config.schedule.jitterSec;
}
