/**
 * The daemon's verification off the main thread (docs/architecture.md "One attestation cycle", step 6):
 * one node:worker_threads worker (attest/verify-worker.ts) runs verifyBundle, so signature,
 * chain, CRL, OCSP and RIM work never blocks the event loop that answers the local API. The main
 * thread still gathers collateral (I/O) and hands the worker fully formed options. In simulation the
 * worker also signs the simulated reports (`sign`). The worker runs niced below the main thread
 * (attest/verify-worker.ts), so on a machine short of cores the API gets the CPU first.
 *
 * Fail closed, never fatal: a worker that throws answers with the same typed error (agent/errors.ts)
 * the verifier threw; a worker that exits, runs out of its memory limit or does not answer within
 * `timeoutMs` fails that verification with ERR_VERIFY_WORKER and a named reason, is stopped, and a new
 * one is started for the next request. One request is in the worker at a time; at most `maxQueued`
 * wait behind it, more are refused with ERR_BUSY, so no backlog can build.
 *
 * Stopped when idle: `idleStopMs` after the last answer the worker is terminated, so an idle daemon
 * does not hold a second V8 isolate, and the next request starts a new one. The worker is detached
 * before it is told to terminate, so a request that arrives while the old one is still shutting down
 * goes to a new worker and never sees the old one's exit.
 */
import type { KeyObject } from 'node:crypto';
import { Worker, type ResourceLimits } from 'node:worker_threads';
import { CvmError } from '../errors.js';
import type { EvidenceBundle } from '../formats/evidence-bundle.js';
import type { BundleResult, BundleVerifyOptions } from './verify-bundle.js';
import type { VerifyWorkerData, VerifyWorkerHooks } from './verify-service.js';
import { errorFromWire, withBuffers, type VerifyReply, type VerifyRequest } from './verify-wire.js';

/** The worker entry's file name without extension; it must sit beside the module that starts it (also in a bundle). */
export const VERIFY_WORKER_FILE = 'verify-worker';

/**
 * The worker's heap bounds: a verification holds one bundle (at most 4 MiB of JSON) and the memo caches
 * (x509 certificates, OCSP, RIMs; each bounded in bytes); past this the worker is stopped (a failed
 * verification with ERR_VERIFY_WORKER) and restarted, never the daemon.
 */
export const VERIFY_WORKER_LIMITS: ResourceLimits = { maxOldGenerationSizeMb: 128, maxYoungGenerationSizeMb: 8, stackSizeMb: 4 };

/**
 * How long the daemon's worker stays after its last answer before it is stopped (VerifyThreadOptions
 * `idleStopMs`). A cycle sends its requests back to back (signing, then verification), never this far
 * apart, so one cycle starts at most one worker; schedules are a minute or more apart, so between
 * cycles the worker's isolate is gone (about 8 MB less median idle RSS, bench/daemon.bench.ts). The
 * restart costs about 0.1 s CPU per cycle (a new isolate, the module load, a first verification with
 * empty memo caches): about 0.2 % of a core at a one-minute schedule; measurements in
 * docs/architecture.md "Where a cycle's CPU work runs".
 */
export const VERIFY_WORKER_IDLE_STOP_MS = 5_000;

/** Requests that may wait behind the one being verified; the daemon's cycle sends one at a time. */
export const VERIFY_MAX_QUEUED = 4;

/** The worker entry beside this module: verify-worker.js when built (dist/, or a bundle), verify-worker.ts from the repository. */
export function defaultVerifyWorkerEntry(): URL {
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
  // `../attest/`, not `./`: bundled (tools/build-dist.ts) this code sits in dist/chunks/ or dist/cli/, the entry in dist/attest/.
  return new URL(`../attest/${VERIFY_WORKER_FILE}${ext}`, import.meta.url);
}

export interface VerifyThreadOptions {
  /** Longest a verification may take in the worker, from hand-over to answer. */
  timeoutMs: number;
  /** The worker's entry module (tests: a fixture); default defaultVerifyWorkerEntry(). */
  entry?: URL;
  maxQueued?: number;
  resourceLimits?: ResourceLimits;
  /** Test hooks (agent/daemon/test-hooks.ts); `exitOnFirst` applies to the first worker only. */
  hooks?: VerifyWorkerHooks;
  /** Told when a worker stops unexpectedly (for the log), with the reason. */
  onRestart?: (reason: string) => void;
  /**
   * Stop the worker once nothing has been in it for this long (the next request starts a new one);
   * absent: it stays until close() or a failure. The daemon passes VERIFY_WORKER_IDLE_STOP_MS.
   */
  idleStopMs?: number;
  /**
   * Told once a worker stopped for idleness has exited (its isolate and its thread's memory freed):
   * the daemon gives glibc's freed memory back to the kernel then (native/system.ts releaseFreedMemory).
   */
  onIdleExit?: () => void;
}

type Work = { op: 'verify'; bundle: EvidenceBundle; opts: BundleVerifyOptions } | { op: 'sign'; jobs: { data: Uint8Array; key: KeyObject }[] };

interface Pending {
  work: Work;
  resolve: (r: unknown) => void;
  reject: (e: Error) => void;
}

const workerError = (message: string) => new CvmError('ERR_VERIFY_WORKER', message);
const stopping = () => new CvmError('ERR_STOPPING', 'the verification worker was stopped: the daemon is stopping');
const doing = (w: Work) => (w.op === 'verify' ? 'verification' : 'signing simulated evidence');

export class VerifyThread {
  private worker: Worker | undefined;
  private workerError: string | undefined;
  private readonly queue: Pending[] = [];
  private inFlight: (Pending & { id: number; timer: NodeJS.Timeout }) | undefined;
  private nextId = 1;
  private started = 0;
  private closed = false;
  private readonly maxQueued: number;
  private idleWaiters: (() => void)[] = [];
  private idleTimer: NodeJS.Timeout | undefined;
  private idleStops = 0;

  constructor(private readonly opts: VerifyThreadOptions) {
    this.maxQueued = opts.maxQueued ?? VERIFY_MAX_QUEUED;
  }

  /** Workers started so far (the first one included): more than one means a restart. */
  get workersStarted(): number {
    return this.started;
  }

  /** Workers stopped because they were idle (`idleStopMs`). */
  get workersStoppedIdle(): number {
    return this.idleStops;
  }

  /** Whether a worker is running now (stopped when idle, started by the next request). */
  get running(): boolean {
    return this.worker !== undefined;
  }

  /** Start the worker now (it loads the verifiers while the daemon does other things); idempotent, never throws. */
  warm(): void {
    try {
      if (!this.closed) this.ensureWorker();
      this.armIdleStop();
    } catch {
      // the first request reports why (ERR_VERIFY_WORKER)
    }
  }

  /**
   * Stop the worker if nothing is in it or waiting (what the idle timer calls); the next request starts
   * a new one. The worker is detached first, so its exit and any late message are ignored.
   */
  stopIfIdle(): void {
    this.clearIdleStop();
    if (this.inFlight || this.queue.length > 0 || !this.worker) return;
    const w = this.worker;
    this.worker = undefined;
    this.idleStops++;
    void w.terminate().then(
      () => this.opts.onIdleExit?.(),
      () => undefined,
    );
  }

  private armIdleStop(): void {
    this.clearIdleStop();
    const ms = this.opts.idleStopMs;
    if (ms === undefined || this.closed || !this.worker || this.inFlight || this.queue.length > 0) return;
    this.idleTimer = setTimeout(() => this.stopIfIdle(), ms);
    this.idleTimer.unref();
  }

  private clearIdleStop(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }

  /** Resolves once nothing is in the worker or waiting for it (a stopping daemon lets the running cycle finish). */
  idle(): Promise<void> {
    if (!this.inFlight && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  verify(bundle: EvidenceBundle, opts: BundleVerifyOptions): Promise<BundleResult> {
    return this.submit({ op: 'verify', bundle, opts }) as Promise<BundleResult>;
  }

  /**
   * Sign simulated reports (agent/simulation/report-signer.ts: SHA-384, ECDSA P-384, IEEE P1363) in the
   * worker, below the main thread's priority; signatures in the order of `jobs`.
   */
  sign(jobs: readonly { data: Uint8Array; key: KeyObject }[]): Promise<Buffer[]> {
    return (this.submit({ op: 'sign', jobs: jobs.map((j) => ({ data: j.data, key: j.key })) }) as Promise<unknown>).then((sigs) => {
      if (!Array.isArray(sigs) || sigs.length !== jobs.length || !sigs.every((x) => Buffer.isBuffer(x)))
        throw workerError('the verification worker answered a signing request with something else than one signature per report');
      return sigs as Buffer[];
    });
  }

  private submit(work: Work): Promise<unknown> {
    if (this.closed) return Promise.reject(stopping());
    if (this.queue.length >= this.maxQueued) {
      return Promise.reject(new CvmError('ERR_BUSY', `${this.queue.length} requests are already waiting for the verification worker; retry later`));
    }
    return new Promise<unknown>((resolve, reject) => {
      this.queue.push({ work, resolve, reject });
      this.pump();
    });
  }

  /** Stop the worker; what is waiting or in flight fails with ERR_STOPPING (not a verdict on the evidence). */
  async close(): Promise<void> {
    this.closed = true;
    this.clearIdleStop();
    const w = this.worker;
    this.worker = undefined;
    const p = this.inFlight;
    if (p) this.finish(p.id)?.reject(stopping());
    for (const q of this.queue.splice(0)) q.reject(stopping());
    this.pump();
    await w?.terminate();
  }

  private pump(): void {
    if (this.inFlight) return;
    const next = this.closed ? undefined : this.queue.shift();
    if (!next) {
      this.armIdleStop();
      for (const resolve of this.idleWaiters.splice(0)) resolve();
      return;
    }
    this.clearIdleStop();
    let w: Worker;
    try {
      w = this.ensureWorker();
    } catch (err) {
      next.reject(workerError(`cannot start the verification worker: ${(err as Error).message}`));
      return this.pump();
    }
    const id = this.nextId++;
    const timer = setTimeout(() => this.onTimeout(id), this.opts.timeoutMs);
    this.inFlight = { ...next, id, timer };
    try {
      w.postMessage({ id, ...next.work } satisfies VerifyRequest);
    } catch (err) {
      // Not cloneable (a bug in what was passed): this request fails, the worker is fine.
      this.finish(id)?.reject(workerError(`cannot hand the bundle to the verification worker: ${(err as Error).message}`));
      return this.pump();
    }
    w.ref();
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const entry = this.opts.entry ?? defaultVerifyWorkerEntry();
    const hooks: VerifyWorkerHooks = { ...this.opts.hooks };
    if (this.started > 0) delete hooks.exitOnFirst;
    const data: VerifyWorkerData = Object.keys(hooks).length > 0 ? { hooks } : {};
    const options = { workerData: data, resourceLimits: this.opts.resourceLimits ?? VERIFY_WORKER_LIMITS };
    const w = entry.pathname.endsWith('.ts') ? new Worker(tsBootstrap(entry), { ...options, eval: true }) : new Worker(entry, options);
    this.started++;
    this.worker = w;
    this.workerError = undefined;
    w.unref();
    w.on('message', (m: VerifyReply) => this.onReply(w, m));
    w.on('error', (err) => {
      if (w === this.worker) this.workerError = `${(err as NodeJS.ErrnoException).code ? `${(err as NodeJS.ErrnoException).code}: ` : ''}${err.message}`;
    });
    w.on('exit', (code) => this.onExit(w, code));
    return w;
  }

  private onReply(w: Worker, m: VerifyReply): void {
    // Only the current worker's answer to the request in flight counts; anything else is dropped.
    if (w !== this.worker || typeof m !== 'object' || m === null || m.id !== this.inFlight?.id) return;
    const p = this.finish(m.id);
    if (!p) return;
    w.unref();
    if (m.ok === true && typeof m.result === 'object' && m.result !== null) p.resolve(withBuffers(m.result as object));
    else if (m.ok === false && typeof m.error === 'object' && m.error !== null) p.reject(errorFromWire(m.error));
    else p.reject(workerError('the verification worker sent a malformed answer'));
    this.pump();
  }

  private onExit(w: Worker, code: number): void {
    if (w !== this.worker) return;
    this.worker = undefined;
    const why = `the verification worker exited (code ${code}${this.workerError ? `, ${this.workerError}` : ''})`;
    this.opts.onRestart?.(why);
    if (this.inFlight) this.failInFlight(`${why} during ${doing(this.inFlight.work)}; a new worker is started for the next one`);
    this.pump();
  }

  private onTimeout(id: number): void {
    if (this.inFlight?.id !== id) return;
    const w = this.worker;
    this.worker = undefined;
    const why = `the verification worker did not answer within ${this.opts.timeoutMs} ms (${doing(this.inFlight.work)}); it was stopped and a new one is started for the next request`;
    this.opts.onRestart?.(why);
    this.failInFlight(why);
    void w?.terminate();
    this.pump();
  }

  private finish(id: number): Pending | undefined {
    const p = this.inFlight;
    if (!p || p.id !== id) return undefined;
    clearTimeout(p.timer);
    this.inFlight = undefined;
    return p;
  }

  private failInFlight(message: string): void {
    if (this.inFlight) this.finish(this.inFlight.id)?.reject(workerError(message));
  }
}

/**
 * From the repository (tsx, vitest) the entry is TypeScript: the worker registers tsx's loader first
 * (a worker does not inherit the parent's module hooks on Node 20), then imports the entry. Built
 * JavaScript (dist/, the package) never takes this path.
 */
function tsBootstrap(entry: URL): string {
  let tsx = 'tsx/esm/api';
  try {
    tsx = import.meta.resolve(tsx);
  } catch {
    // a runner without import.meta.resolve: the worker resolves it from the working directory
  }
  return `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(entry.href)}); });`;
}
