/**
 * The GPU ready-state gate: NVML's "accepting client requests" flag is set ONLY when every GPU that
 * was expected has a verdict, each index exactly once, and all of them passed. Anything else leaves
 * the flag alone and says why. Setting it may be one-way per boot (nvtrust's "terminal state" wording;
 * nvml.h nvmlSystemSetConfComputeGpusReadyState), so this never tries to clear it and never sets it unconditionally; like nvtrust's CLI it
 * reads the state first and writes only when not ready yet (cc_admin.py). The decision itself is pure
 * policy (agent/appraise/gpu-ready-decision.ts), shared by the cycle and `cvm-agent gpu ready --set`.
 */
import { readyStateBlocker, type GpuVerdict } from '../appraise/gpu-ready-decision.js';

export interface ReadyStateTarget {
  getReadyState(): Promise<boolean>;
  setReadyState(ready: boolean): Promise<void>;
}

export interface ReadyStateOutcome {
  /** True when the GPUs are accepting work because every expected GPU passed. */
  set: boolean;
  /** True when this call wrote the flag (false if it was already set or nothing was allowed). */
  wrote: boolean;
  reason: string;
  /** The device error, when reading or writing the flag failed. */
  error?: Error;
}

export async function applyGpuReadyState(source: ReadyStateTarget, verdicts: readonly GpuVerdict[], expectedCount: number): Promise<ReadyStateOutcome> {
  const blocker = readyStateBlocker(verdicts, expectedCount);
  if (blocker !== undefined) {
    return { set: false, wrote: false, reason: `GPU ready state not set: ${blocker}` };
  }
  try {
    if ((await source.getReadyState()) === true) {
      return { set: true, wrote: false, reason: `all ${expectedCount} GPU(s) passed; GPUs were already accepting work` };
    }
    await source.setReadyState(true);
    return { set: true, wrote: true, reason: `all ${expectedCount} GPU(s) passed; GPUs marked ready to accept work` };
  } catch (err) {
    const error = err instanceof Error ? err : new Error(String(err));
    return { set: false, wrote: false, reason: `GPU ready state not set: ${error.message}`, error };
  }
}
