/**
 * Several GPUs of one machine. Each GPU is verified (and appraised) independently, by
 * agent/attest/verify-and-appraise.ts verifyGpus; then these cross-GPU checks run: the same GPU must
 * not appear twice (a replayed or duplicated report would otherwise count as two GPUs), and all GPUs
 * must report one mode (nvtrust cc_admin.py attest).
 * The overall result is the AND over every GPU and the cross-GPU checks.
 */
import { fail, pass, statusOf, warn, type Check, type TrustStatus, type VerificationResult } from '../../formats/checks.js';
import type { GpuClaims } from './gpu-claims.js';
import type { SwitchClaims } from './switch-verify.js';
import { HGX_PPCIE_TOPOLOGY, ppcieTopologyCheck, type PpcieTopology } from './ppcie-topology.js';

export interface MultiGpuResult {
  ok: boolean;
  status: TrustStatus;
  simulated: boolean;
  perGpu: VerificationResult<GpuClaims>[];
  /** NVSwitch (LS10) results, in evidence order (protected-PCIe systems); empty without switch evidence. */
  perSwitch: VerificationResult<SwitchClaims>[];
  /** Cross-device checks: gpus.count, gpus.unique, gpus.mode, and ppcie.topology when switches are given. */
  checks: Check[];
}

/**
 * The per-GPU and per-switch results (in evidence order) with the cross-device checks and the overall
 * verdict. With switches, `ppcie.topology` (verify/nvidia/ppcie-topology.ts) joins them: GPUs and
 * switches must agree on the configured topology; switches alone are verified one by one and the
 * topology is a warning (not evaluated).
 */
export function crossGpuResult(
  perGpu: VerificationResult<GpuClaims>[],
  perSwitch: VerificationResult<SwitchClaims>[] = [],
  topology: PpcieTopology = HGX_PPCIE_TOPOLOGY,
): MultiGpuResult {
  const checks: Check[] = [];
  const devices = perGpu.length + perSwitch.length;
  const what = `${perGpu.length} GPU(s)${perSwitch.length > 0 ? ` and ${perSwitch.length} NVSwitch(es)` : ''} verified`;
  checks.push(devices > 0 ? pass('gpus.count', what) : fail('gpus.count', 'no GPU evidence to verify'));

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

  if (perSwitch.length > 0) {
    checks.push(
      perGpu.length > 0
        ? ppcieTopologyCheck(
            perGpu.map((r) => r.claims),
            perSwitch.map((r) => r.claims),
            topology,
          )
        : warn('ppcie.topology', 'not evaluated: NVSwitch evidence without the GPU evidence of the same system (give both to check the topology)'),
    );
  }

  const devicesResults = [...perGpu, ...perSwitch];
  const all = [...devicesResults.flatMap((r) => r.checks), ...checks];
  const status = devicesResults.some((r) => !r.ok) ? 'contraindicated' : statusOf(all);
  return {
    ok: devices > 0 && devicesResults.every((r) => r.ok) && checks.every((c) => c.ok),
    status,
    simulated: devicesResults.some((r) => r.simulated),
    perGpu,
    perSwitch,
    checks,
  };
}
