/**
 * The GPU ready-state decision, pure: may NVML's "accepting client requests" flag be set? Only when
 * every GPU that was expected has a verdict, each index exactly once, and all of them passed; in the
 * attestation cycle also only when the feature is enabled, the CPU attestation passed and no hold
 * (a cleared ready state awaiting a full passing cycle) is in force. Used by the cycle
 * (agent/attest/attestation-cycle.ts) and by `cvm-agent gpu ready --set`, through agent/attest/apply-gpu-ready.ts
 * applyGpuReadyState, which does the reading and writing.
 */
export interface GpuVerdict {
  index: number;
  /** Only the boolean true counts as a pass. */
  ok: boolean;
  detail?: string;
}

/** Why the verdicts do not allow marking the GPUs ready, or undefined when they do. */
export function readyStateBlocker(verdicts: readonly GpuVerdict[], expectedCount: number): string | undefined {
  if (!Number.isInteger(expectedCount) || expectedCount < 1) {
    return `expected GPU count must be a positive integer, got ${String(expectedCount)}`;
  }
  if (verdicts.length !== expectedCount) {
    return `got ${verdicts.length} GPU verdict(s) for ${expectedCount} GPU(s): every GPU must be verified`;
  }
  const seen = new Set<number>();
  for (const v of verdicts) {
    if (!Number.isInteger(v.index) || v.index < 0 || v.index >= expectedCount) {
      return `verdict for unknown GPU index ${String(v.index)} (expected 0..${expectedCount - 1})`;
    }
    if (seen.has(v.index)) return `two verdicts for GPU ${v.index}`;
    seen.add(v.index);
  }
  const failed = verdicts.filter((v) => v.ok !== true);
  if (failed.length > 0) {
    const list = failed
      .sort((a, b) => a.index - b.index)
      .map((v) => (v.detail ? `GPU ${v.index} (${v.detail})` : `GPU ${v.index}`))
      .join(', ');
    return `verification failed for ${list}`;
  }
  return undefined;
}

/** The cycle's gates before the verdicts: what the attestation cycle knows beyond the GPUs' own results. */
export interface CycleReadyGates {
  /** GPUs are present and their ready state can be reached. */
  gpus: boolean;
  /** The config lets the agent set the ready state (gpus.setReadyState). */
  enabled: boolean;
  cpuOk: boolean;
  /** Every device of the cycle passed (a hold is reported only then; otherwise the failures are). */
  allPassed: boolean;
  /** Why a passing cycle must still not set it (a recovery hold), if any. */
  hold: string | undefined;
}

/**
 * The whole decision for one cycle: the reason not to set the ready state (the outcome's reason), or
 * undefined when it may be set. Without GPUs the reason is not a failure ("no GPUs to gate").
 */
export function cycleReadyBlocker(gates: CycleReadyGates, verdicts: readonly GpuVerdict[], expectedCount: number): string | undefined {
  if (!gates.gpus || expectedCount === 0) return 'no GPUs to gate';
  if (!gates.enabled) return 'setting the GPU ready state is disabled in the config';
  if (!gates.cpuOk) return 'GPU ready state not set: the CPU attestation did not pass';
  if (gates.hold !== undefined && gates.allPassed) return `GPU ready state not set: ${gates.hold}`;
  const blocker = readyStateBlocker(verdicts, expectedCount);
  return blocker === undefined ? undefined : `GPU ready state not set: ${blocker}`;
}
