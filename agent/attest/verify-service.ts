/**
 * The verification worker's loop (docs/architecture.md "One attestation cycle", step 6): requests come
 * only from the parent thread's port, one at a time; each is verified with verifyBundle (pure: bundle,
 * collateral and time in, one result per device out) and answered on the same port with the result or
 * the error it threw (attest/verify-wire.ts). In simulation it also signs the simulated reports. The worker opens nothing else: no socket, no file, no
 * other port, so nothing outside the daemon's process can send it a message.
 */
import { KeyObject, sign } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import type { MessagePort } from 'node:worker_threads';
import { InternalError } from '../errors.js';
import { verifyBundle, type BundleResult, type BundleVerifyOptions } from './verify-bundle.js';
import { errorToWire, withBuffers, type VerifyReply, type VerifyRequest } from './verify-wire.js';
import type { EvidenceBundle } from '../formats/evidence-bundle.js';

/** Fault injection for tests only, set by the daemon under CVM_AGENT_TEST_HOOKS=1 (agent/daemon/test-hooks.ts). */
export interface VerifyWorkerHooks {
  /** Block this worker thread for so long before each verification (a slow verification). */
  delayMs?: number;
  /** End this worker thread (exit code 70) when its first verification request arrives (a crash mid-cycle). */
  exitOnFirst?: boolean;
}

/** How much nicer than the main thread the worker runs (so the CPU goes to the API first when cores are short). */
export const VERIFY_WORKER_NICE_STEP = 10;

/** What the parent hands the worker at start (workerData). */
export interface VerifyWorkerData {
  hooks?: VerifyWorkerHooks;
}

type Verify = (bundle: EvidenceBundle, opts: BundleVerifyOptions) => BundleResult;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;

/** The request, checked field by field (the port is the parent's, but a bug there must not crash this loop). */
function checkRequest(m: unknown): VerifyRequest {
  if (isObject(m) && Number.isSafeInteger(m.id)) {
    if (m.op === 'verify' && isObject(m.bundle) && isObject(m.opts) && m.opts.at instanceof Date) return m as unknown as VerifyRequest;
    if (
      m.op === 'sign' &&
      Array.isArray(m.jobs) &&
      m.jobs.length <= MAX_SIGN_JOBS &&
      m.jobs.every((j: unknown) => isObject(j) && j.data instanceof Uint8Array && j.key instanceof KeyObject && j.key.type === 'private')
    )
      return m as unknown as VerifyRequest;
  }
  throw new InternalError('the verification worker received a malformed request');
}

/** At most this many signatures per request: one per simulated GPU (at most 64) or the one CPU report. */
const MAX_SIGN_JOBS = 64;

export function serveVerification(port: MessagePort, data: VerifyWorkerData = {}, verify: Verify = verifyBundle): void {
  const hooks = data.hooks ?? {};
  let firstVerify = true;
  // The simulation trust is the same from call to call; the verifier memoises parsed roots per object,
  // so an equal one is replaced by the one seen before (a structured clone is a new object every time).
  let lastSimulation: BundleVerifyOptions['simulation'];
  port.on('message', (m: unknown) => {
    const id = isObject(m) && Number.isSafeInteger(m.id) ? (m.id as number) : -1;
    let reply: VerifyReply;
    try {
      const req = checkRequest(m);
      if (req.op === 'sign') {
        // The simulated TEE's ECDSA P-384 signatures (agent/simulation/report-signer.ts), made here below the main thread's priority.
        reply = { id, ok: true, result: req.jobs.map((j) => sign('sha384', j.data, { key: j.key, dsaEncoding: 'ieee-p1363' })) };
      } else {
        if (firstVerify && hooks.exitOnFirst) process.exit(70);
        firstVerify = false;
        const bundle = withBuffers(req.bundle);
        const opts = withBuffers(req.opts);
        if (opts.simulation) {
          if (lastSimulation && isDeepStrictEqual(lastSimulation, opts.simulation)) opts.simulation = lastSimulation;
          else lastSimulation = opts.simulation;
        }
        if (hooks.delayMs) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, hooks.delayMs);
        reply = { id, ok: true, result: verify(bundle, opts) };
      }
    } catch (err) {
      reply = { id, ok: false, error: errorToWire(err) };
    }
    try {
      port.postMessage(reply);
    } catch (err) {
      // A result that cannot be cloned is a bug here, answered as one instead of leaving the parent waiting.
      port.postMessage({ id, ok: false, error: errorToWire(new InternalError(`the verification result could not be sent: ${(err as Error).message}`)) });
    }
  });
}
