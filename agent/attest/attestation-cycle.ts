/**
 * One attestation cycle (docs/architecture.md "One attestation cycle"; issue: orchestration):
 *   (nonce, agent id, agent key) -> gpuNonce -> every GPU report (in parallel) -> REPORT_DATA over them -> CPU report
 *   -> verify the whole bundle -> EAR -> GPU ready state only if the CPU and every GPU passed.
 * The CPU report has to come after the GPU reports because REPORT_DATA hashes them; the CPU is
 * collected while nothing else waits on it. One cycle at a time: callers without their own nonce
 * join the running cycle; callers with a nonce queue behind it. Every step has a timeout, and a
 * failing step yields a failed named check, never an exception to the caller.
 *
 * Failures are attributed to the device that failed: a GPU whose CC mode is off is contraindicated
 * under that GPU; a GPU, library or CPU interface that cannot be reached is an *error* for that
 * device (EAR status "none" with cvm.error), and the other devices are still attested. After the
 * gate, the ready state is read back from the driver, so status shows what the GPUs do, not what
 * the agent meant them to do.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { cpuReportData, gpuNonce, type PublicJwk } from '../formats/nonce-binding.js';
import { buildEar, type DeviceResult, type Ear } from '../appraise/ear.js';
import { fail, resultOf, type VerificationResult } from '../formats/checks.js';
import { applyGpuReadyState, type ReadyStateOutcome } from './apply-gpu-ready.js';
import { cycleReadyBlocker } from '../appraise/gpu-ready-decision.js';
import { gpuRecordOf, type GpuCollectOutcome, type GpuEvidence, type GpuSource } from '../evidence/gpu-nvml.js';
import { BUNDLE_VERSION, bundleToJson, type EvidenceBundle, type SwitchBundleEntry } from '../formats/evidence-bundle.js';
import type { CpuSource } from './cpu-sources.js';
import type { BundleResult } from './verify-bundle.js';
import { CvmError, StepTimeoutError } from '../errors.js';

const POLICY_ID = 'cvm-agent/default';

/** A device that produced no evidence because it (or its library) was unavailable: status "none". */
function unavailable(id: string, check: string, err: unknown, simulated: boolean): DeviceResult {
  const detail = message(err);
  const raw = (err as { code?: unknown } | undefined)?.code;
  const code = err instanceof CvmError ? err.code : typeof raw === 'string' ? raw : 'ERR_DEVICE';
  const result: VerificationResult<unknown> = { ok: false, status: 'none', simulated, claims: undefined, checks: [fail(check, detail)] };
  return { id, policyId: POLICY_ID, result, error: { code, message: detail } };
}

/** A GPU whose collection failed: CC off is a known-bad configuration (contraindicated), anything else unavailable. */
function gpuFailure(index: number, err: Error, simulated: boolean): DeviceResult {
  if (err instanceof CvmError && err.code === 'ERR_GPU_CC_OFF') {
    return { id: `gpu${index}`, policyId: POLICY_ID, result: resultOf([fail('gpu.cc.mode', err.message)], undefined, simulated) };
  }
  return unavailable(`gpu${index}`, 'gpu.collect', err, simulated);
}

export type CycleReason = 'start' | 'schedule' | 'retry' | 'api' | 'controller' | 'cli';

export interface CycleResult {
  id: string;
  reason: CycleReason;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  nonce: string;
  ok: boolean;
  status: Ear['ear.status'];
  simulated: boolean;
  ear: Ear;
  /** The evidence bundle as JSON (undefined when collection failed before a bundle existed). */
  bundle: Record<string, unknown> | undefined;
  gpuReady: ReadyStateOutcome | { set: false; wrote: false; reason: string };
  /** The ready state as read from the driver after the gate (null when unreadable; absent without GPUs). */
  gpuReadyRead?: ReadyStateRead;
  /** The first collection error of the cycle (a device that could not be asked), when there was one. */
  error?: string;
}

export interface ReadyStateRead {
  ready: boolean | null;
  at: string;
  error?: string;
}

export interface AttestationCycleDeps {
  teePubKey: PublicJwk;
  /** This agent's id, bound into every report next to the nonce and the key (agent/formats/nonce-binding.ts). */
  agentId: string;
  cpu: CpuSource;
  /** Absent when GPUs are disabled or none exist. */
  gpus?: GpuSource;
  /**
   * The NVSwitches of a protected-PCIe system, asked with the GPUs' nonce and bound next to them
   * (formats/nonce-binding.ts). Only the simulated HGX system provides one today (simulation/switch-sim.ts):
   * on-hardware collection goes through NVIDIA's NSCQ library, which the addon does not bind yet.
   */
  switches?: { collect(nonce: Uint8Array): Promise<SwitchBundleEntry[]> };
  /** Closure over policy, collateral and (only when simulation is enabled) simulated roots. */
  verify: (bundle: EvidenceBundle, at: Date) => BundleResult | Promise<BundleResult>;
  setReadyState: boolean;
  /** A reason to leave the ready state unset even if this cycle passes (a trust-loss consequence in force). */
  readyHold?: () => string | undefined;
  stepTimeoutMs: number;
  build: string;
  now?: () => Date;
}

export { StepTimeoutError };

function withTimeout<T>(p: Promise<T>, ms: number, step: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new StepTimeoutError(step, ms)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** Read the ready state from the driver; never throws (null with the reason when unreadable). */
export async function readReadyState(
  target: { getReadyState(): Promise<boolean> },
  timeoutMs: number,
  now: () => Date = () => new Date(),
): Promise<ReadyStateRead> {
  try {
    return { ready: await withTimeout(target.getReadyState(), timeoutMs, 'reading the GPU ready state'), at: now().toISOString() };
  } catch (err) {
    return { ready: null, at: now().toISOString(), error: message(err) };
  }
}

/** Cycles bound to callers' nonces that may wait behind the running one; more are refused (ERR_BUSY). */
export const MAX_QUEUED_CYCLES = 8;

export class AttestationCycle {
  private running: { promise: Promise<CycleResult>; hasOwnNonce: boolean } | undefined;
  private queued = 0;
  private queue: Promise<unknown> = Promise.resolve();
  private lastResult: CycleResult | undefined;
  /** The most GPUs the driver has listed: one that disappears later is reported missing. */
  private knownGpus = 0;
  private readonly now: () => Date;

  constructor(private readonly deps: AttestationCycleDeps) {
    this.now = deps.now ?? (() => new Date());
  }

  last(): CycleResult | undefined {
    return this.lastResult;
  }

  isRunning(): boolean {
    return this.running !== undefined;
  }

  /** Run a cycle. Without a nonce, join a cycle that is already running (its nonce is the agent's own). */
  run(opts: { nonce?: Uint8Array; reason: CycleReason }): Promise<CycleResult> {
    if (!opts.nonce && this.running && !this.running.hasOwnNonce) return this.running.promise;
    // Every nonce-bound request costs a full cycle: bound the queue so a flood of callers cannot grow it without limit.
    if (this.queued >= MAX_QUEUED_CYCLES) {
      return Promise.reject(new CvmError('ERR_BUSY', `${this.queued} attestation cycles are already waiting; retry later`));
    }
    const nonce = opts.nonce ? Buffer.from(opts.nonce) : randomBytes(32);
    this.queued++;
    const promise = this.queue.then(() => {
      this.queued--;
      return this.cycle(nonce, opts.reason);
    });
    const entry = { promise, hasOwnNonce: opts.nonce !== undefined };
    this.queue = promise.catch(() => undefined);
    this.running = entry;
    void promise
      .finally(() => {
        if (this.running === entry) this.running = undefined;
      })
      .catch(() => undefined);
    return promise;
  }

  private async cycle(nonce: Buffer, reason: CycleReason): Promise<CycleResult> {
    const started = this.now();
    const t0 = performance.now();
    const { deps } = this;
    const simulated = deps.cpu.simulated;
    let bundle: EvidenceBundle | undefined;
    let devices: DeviceResult[] = [];
    let error: string | undefined;
    const firstError = (err: unknown) => {
      error ??= message(err);
    };
    // Per GPU index: the result for a GPU that gave no evidence.
    const gpuResults = new Map<number, DeviceResult>();
    let gpuEvidence: GpuEvidence[] = [];
    let expectedGpus = 0;
    if (deps.gpus) {
      const gpus = deps.gpus;
      let listed: number | undefined;
      try {
        listed = (await withTimeout(gpus.list(), deps.stepTimeoutMs, 'GPU enumeration')).length;
      } catch (err) {
        firstError(err);
        // Without a list, every GPU known so far is unaccounted for (at least one: GPUs are configured).
        for (let i = 0; i < Math.max(this.knownGpus, 1); i++) gpuResults.set(i, unavailable(`gpu${i}`, 'gpu.enumerate', err, simulated));
      }
      if (listed !== undefined) {
        // A GPU attested before that NVML no longer lists is missing, not gone from the picture.
        for (let i = listed; i < this.knownGpus; i++) {
          gpuResults.set(
            i,
            unavailable(`gpu${i}`, 'gpu.present', new CvmError('ERR_GPU_MISSING', `GPU ${i} was listed before but NVML no longer lists it`), simulated),
          );
        }
        this.knownGpus = Math.max(this.knownGpus, listed);
        expectedGpus = listed;
        if (listed > 0) {
          try {
            const outcomes: GpuCollectOutcome[] = gpus.collectSettled
              ? await withTimeout(gpus.collectSettled(gpuNonce(nonce, deps.teePubKey, deps.agentId)), deps.stepTimeoutMs, 'GPU evidence collection')
              : (await withTimeout(gpus.collect(gpuNonce(nonce, deps.teePubKey, deps.agentId)), deps.stepTimeoutMs, 'GPU evidence collection')).map((e) => ({
                  index: e.index,
                  evidence: e,
                }));
            for (const o of outcomes) {
              if ('evidence' in o) gpuEvidence.push(o.evidence);
              else {
                gpuResults.set(o.index, gpuFailure(o.index, o.error, simulated));
                firstError(o.error);
              }
            }
          } catch (err) {
            firstError(err);
            for (let i = 0; i < listed; i++) gpuResults.set(i, unavailable(`gpu${i}`, 'gpu.collect', err, simulated));
          }
        }
      }
    }
    gpuEvidence = gpuEvidence.filter((g) => !gpuResults.has(g.index)).sort((a, b) => a.index - b.index);
    let switchEvidence: SwitchBundleEntry[] = [];
    if (deps.switches) {
      try {
        switchEvidence = await withTimeout(
          deps.switches.collect(gpuNonce(nonce, deps.teePubKey, deps.agentId)),
          deps.stepTimeoutMs,
          'NVSwitch evidence collection',
        );
      } catch (err) {
        firstError(err);
        devices.push(unavailable('switch0', 'switch.collect', err, simulated));
      }
    }
    const reportData = cpuReportData(
      nonce,
      deps.teePubKey,
      deps.agentId,
      gpuEvidence.map((g) => g.report),
      switchEvidence.map((s) => s.report),
    );
    let cpu: EvidenceBundle['cpu'] | undefined;
    try {
      cpu = await withTimeout(deps.cpu.collect(reportData), deps.stepTimeoutMs, 'CPU evidence collection');
    } catch (err) {
      firstError(err);
      devices.push(unavailable('cpu0', 'cpu.collect', err, simulated));
      // The CPU report is what binds the GPU reports to this nonce and key: without it they cannot be appraised.
      for (const g of gpuEvidence) {
        devices.push(
          unavailable(
            `gpu${g.index}`,
            'binding.cpu',
            new CvmError('ERR_NOT_APPRAISED', `not appraised: the CPU evidence that binds GPU ${g.index}'s report could not be collected`),
            simulated,
          ),
        );
      }
    }
    if (cpu) {
      bundle = { version: BUNDLE_VERSION, agentId: deps.agentId, nonce, teePubKey: deps.teePubKey, simulated, cpu, gpus: gpuEvidence.map(gpuRecordOf) };
      if (switchEvidence.length > 0) bundle.switches = switchEvidence;
      try {
        devices = (await withTimeout(Promise.resolve(deps.verify(bundle, this.now())), deps.stepTimeoutMs, 'verification')).devices;
      } catch (err) {
        firstError(err);
        devices = [
          unavailable('cpu0', 'cycle.verify', err, simulated),
          ...gpuEvidence.map((g) => unavailable(`gpu${g.index}`, 'cycle.verify', err, simulated)),
        ];
      }
    }
    for (const [i, d] of gpuResults) if (!devices.some((x) => x.id === `gpu${i}`)) devices.push(d);
    // A GPU that NVML lists but that produced neither evidence nor an error must fail, not vanish.
    for (let i = 0; i < expectedGpus; i++) {
      if (!devices.some((d) => d.id === `gpu${i}`))
        devices.push({
          id: `gpu${i}`,
          policyId: POLICY_ID,
          result: resultOf([fail('gpu.collect', `GPU ${i} is listed by NVML but returned no evidence`)], undefined),
        });
    }
    const order = (id: string) => (id.startsWith('cpu') ? -1 : Number(id.slice(3)));
    devices.sort((a, b) => order(a.id) - order(b.id));
    const gpuCount = devices.filter((d) => d.id.startsWith('gpu')).length;

    const ear = buildEar(devices, { at: started, nonce, build: deps.build });
    const cpuOk = devices.find((d) => d.id === 'cpu0')?.result.ok === true;
    const gpuVerdicts = devices
      .filter((d) => d.id.startsWith('gpu'))
      .map((d) => ({ index: Number(d.id.slice(3)), ok: d.result.ok, detail: d.result.checks.find((c) => !c.ok)?.detail ?? '' }));
    const hold = deps.readyHold?.();
    // The decision is pure policy (appraise/gpu-ready-decision.ts, as for `gpu ready --set`); only a "yes" touches the driver.
    const blocked = cycleReadyBlocker(
      { gpus: Boolean(deps.gpus), enabled: Boolean(deps.setReadyState), cpuOk, allPassed: devices.every((d) => d.result.ok), hold },
      gpuVerdicts,
      gpuCount,
    );
    const gpuReady: CycleResult['gpuReady'] =
      blocked !== undefined || !deps.gpus
        ? { set: false, wrote: false, reason: blocked ?? 'no GPUs to gate' }
        : await applyGpuReadyState(deps.gpus, gpuVerdicts, gpuCount);
    let gpuReadyRead: ReadyStateRead | undefined;
    if (deps.gpus && (gpuCount > 0 || this.knownGpus > 0)) gpuReadyRead = await readReadyState(deps.gpus, deps.stepTimeoutMs, this.now);

    const finished = this.now();
    const result: CycleResult = {
      id: randomUUID(),
      reason,
      startedAt: started.toISOString(),
      finishedAt: finished.toISOString(),
      durationMs: Math.round((performance.now() - t0) * 10) / 10,
      nonce: nonce.toString('hex'),
      ok: devices.every((d) => d.result.ok),
      status: ear['ear.status'],
      simulated: deps.cpu.simulated,
      ear,
      bundle: bundle ? bundleToJson(bundle) : undefined,
      gpuReady,
    };
    if (gpuReadyRead) result.gpuReadyRead = gpuReadyRead;
    if (error !== undefined) result.error = error;
    this.lastResult = result;
    return result;
  }
}
