/**
 * One attestation cycle (DESIGN.md "Binding"; issue: orchestration):
 *   (nonce, agent id, agent key) -> gpuNonce -> every GPU report (in parallel) -> REPORT_DATA over them -> CPU report
 *   -> verify the whole bundle -> EAR -> GPU ready state only if the CPU and every GPU passed.
 * The CPU report has to come after the GPU reports because REPORT_DATA hashes them; the CPU is
 * collected while nothing else waits on it. One cycle at a time: callers without their own nonce
 * join the running cycle; callers with a nonce queue behind it. Every step has a timeout, and a
 * failing step yields a failed named check, never an exception to the caller.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { cpuReportData, gpuNonce, type PublicJwk } from '../binding.js';
import { buildEar, type DeviceResult, type Ear } from '../appraise/ear.js';
import { fail, resultOf } from '../verify/checks.js';
import { applyGpuReadyState, type ReadyStateOutcome } from '../evidence/gpu-ready.js';
import type { GpuEvidence, GpuSource } from '../evidence/gpu-nvml.js';
import { BUNDLE_VERSION, bundleToJson, type EvidenceBundle, type GpuBundleEntry } from './bundle.js';
import type { CpuSource } from './cpu-sources.js';
import type { BundleResult } from './verify-bundle.js';
import { CvmError } from '../errors.js';

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
  /** Why the cycle could not collect evidence at all, when that happened. */
  error?: string;
}

export interface AttestorDeps {
  teePubKey: PublicJwk;
  /** This agent's id, bound into every report next to the nonce and the key (agent/binding.ts). */
  agentId: string;
  cpu: CpuSource;
  /** Absent when GPUs are disabled or none exist. */
  gpus?: GpuSource;
  /** Closure over policy, collateral and (only when simulation is enabled) simulated roots. */
  verify: (bundle: EvidenceBundle, at: Date) => BundleResult | Promise<BundleResult>;
  setReadyState: boolean;
  stepTimeoutMs: number;
  build: string;
  now?: () => Date;
}

export class StepTimeoutError extends CvmError {
  constructor(step: string, ms: number) {
    super('ERR_STEP_TIMEOUT', `${step} did not finish within ${ms} ms`);
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, step: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new StepTimeoutError(step, ms)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

function gpuEntry(g: GpuEvidence): GpuBundleEntry {
  return {
    index: g.index,
    arch: g.architecture,
    report: g.report,
    certChainPem: g.certChainPem,
    nvml: { driverVersion: g.driverVersion, vbiosVersion: g.vbiosVersion, cc: { ccEnabled: g.cc.ccEnabled, devToolsMode: g.cc.devToolsMode, environment: g.cc.environment } },
  };
}

/** Cycles bound to callers' nonces that may wait behind the running one; more are refused (ERR_BUSY). */
export const MAX_QUEUED_CYCLES = 8;

export class Attestor {
  private running: { promise: Promise<CycleResult>; hasOwnNonce: boolean } | undefined;
  private queued = 0;
  private queue: Promise<unknown> = Promise.resolve();
  private lastResult: CycleResult | undefined;
  private readonly now: () => Date;

  constructor(private readonly deps: AttestorDeps) {
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
    void promise.finally(() => {
      if (this.running === entry) this.running = undefined;
    }).catch(() => undefined);
    return promise;
  }

  private async cycle(nonce: Buffer, reason: CycleReason): Promise<CycleResult> {
    const started = this.now();
    const t0 = performance.now();
    const { deps } = this;
    let bundle: EvidenceBundle | undefined;
    let devices: DeviceResult[];
    let error: string | undefined;
    let expectedGpus = 0;
    try {
      let gpuEvidence: GpuEvidence[] = [];
      if (deps.gpus) {
        const gpus = deps.gpus;
        expectedGpus = (await withTimeout(gpus.list(), deps.stepTimeoutMs, 'GPU enumeration')).length;
        if (expectedGpus > 0) gpuEvidence = await withTimeout(gpus.collect(gpuNonce(nonce, deps.teePubKey, deps.agentId)), deps.stepTimeoutMs, 'GPU evidence collection');
      }
      gpuEvidence.sort((a, b) => a.index - b.index);
      const reportData = cpuReportData(nonce, deps.teePubKey, deps.agentId, gpuEvidence.map((g) => g.report));
      const cpu = await withTimeout(deps.cpu.collect(reportData), deps.stepTimeoutMs, 'CPU evidence collection');
      bundle = {
        version: BUNDLE_VERSION,
        agentId: deps.agentId,
        nonce,
        teePubKey: deps.teePubKey,
        simulated: deps.cpu.simulated,
        cpu,
        gpus: gpuEvidence.map(gpuEntry),
      };
      devices = (await withTimeout(Promise.resolve(deps.verify(bundle, this.now())), deps.stepTimeoutMs, 'verification')).devices;
      // A GPU that NVML lists but that produced no evidence must fail, not vanish.
      for (let i = 0; i < expectedGpus; i++) {
        if (!devices.some((d) => d.id === `gpu${i}`)) devices.push({ id: `gpu${i}`, policyId: 'cvm-agent/default', result: resultOf([fail('gpu.collect', `GPU ${i} is listed by NVML but returned no evidence`)], undefined) });
      }
    } catch (err) {
      error = message(err);
      devices = [{ id: 'cpu0', policyId: 'cvm-agent/default', result: resultOf([fail('cycle.collect', `evidence collection failed: ${error}`)], undefined) }];
    }

    const ear = buildEar(devices, { at: started, nonce, build: deps.build });
    const cpuOk = devices.find((d) => d.id === 'cpu0')?.result.ok === true;
    const gpuVerdicts = devices.filter((d) => d.id.startsWith('gpu')).map((d) => ({ index: Number(d.id.slice(3)), ok: d.result.ok, detail: d.result.checks.find((c) => !c.ok)?.detail ?? '' }));
    let gpuReady: CycleResult['gpuReady'];
    if (!deps.gpus || expectedGpus === 0) gpuReady = { set: false, wrote: false, reason: 'no GPUs to gate' };
    else if (!deps.setReadyState) gpuReady = { set: false, wrote: false, reason: 'setting the GPU ready state is disabled in the config' };
    else if (!cpuOk) gpuReady = { set: false, wrote: false, reason: 'GPU ready state not set: the CPU attestation did not pass' };
    else gpuReady = await applyGpuReadyState(deps.gpus, gpuVerdicts, expectedGpus);

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
    if (error !== undefined) result.error = error;
    this.lastResult = result;
    return result;
  }
}
