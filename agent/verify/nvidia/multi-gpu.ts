/**
 * Several GPUs of one machine. Each GPU is verified (and appraised) independently, by
 * agent/attest/verify-and-appraise.ts verifyGpus; then these cross-GPU checks run: the same GPU must
 * not appear twice (a replayed or duplicated report would otherwise count as two GPUs), and all GPUs
 * must report one mode (nvtrust cc_admin.py attest).
 * The overall result is the AND over every GPU and the cross-GPU checks.
 */
import { fail, pass, statusOf, type Check, type TrustStatus, type VerificationResult } from '../../formats/checks.js';
import type { GpuClaims } from './gpu-claims.js';

export interface MultiGpuResult {
  ok: boolean;
  status: TrustStatus;
  simulated: boolean;
  perGpu: VerificationResult<GpuClaims>[];
  /** Cross-GPU checks: gpus.count, gpus.unique, gpus.mode. */
  checks: Check[];
}

/** The per-GPU results (in evidence order) with the cross-GPU checks and the overall verdict. */
export function crossGpuResult(perGpu: VerificationResult<GpuClaims>[]): MultiGpuResult {
  const checks: Check[] = [];
  checks.push(perGpu.length > 0 ? pass('gpus.count', `${perGpu.length} GPU(s) verified`) : fail('gpus.count', 'no GPU evidence to verify'));

  const seen = new Map<string, number>();
  const dups: string[] = [];
  perGpu.forEach((r, i) => {
    const id = r.claims?.ueid;
    if (id === undefined) return;
    const first = seen.get(id);
    if (first !== undefined) dups.push(`GPU ${i} and GPU ${first} are the same device (ueid ${id})`);
    else seen.set(id, i);
  });
  checks.push(
    dups.length === 0 ? pass('gpus.unique', 'every GPU has a distinct device identity') : fail('gpus.unique', `duplicate evidence: ${dups.join('; ')}`),
  );

  const flags = new Set(perGpu.map((r) => r.claims?.featureFlag).filter((f): f is number => f !== undefined));
  checks.push(
    flags.size <= 1
      ? pass('gpus.mode', flags.size === 0 ? 'no GPU reports a mode feature flag' : `all GPUs report feature flag ${[...flags][0]}`)
      : fail('gpus.mode', `GPUs report different modes (feature flags ${[...flags].join(', ')}): mixed SPT/MPT/PPCIe is not a valid configuration`),
  );

  const all = [...perGpu.flatMap((r) => r.checks), ...checks];
  const status = perGpu.some((r) => !r.ok) ? 'contraindicated' : statusOf(all);
  return {
    ok: perGpu.length > 0 && perGpu.every((r) => r.ok) && checks.every((c) => c.ok),
    status,
    simulated: perGpu.some((r) => r.simulated),
    perGpu,
    checks,
  };
}
