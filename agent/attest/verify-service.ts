/**
 * The verification worker's loop (docs/architecture.md "One attestation cycle", step 6): requests come
 * only from the parent thread's port, one at a time; each is verified with verifyBundle (pure: bundle,
 * collateral and time in, one result per device out) and answered on the same port with the result or
 * the error it threw (attest/verify-wire.ts). The worker opens nothing else: no socket, no file, no
 * other port, so nothing outside the daemon's process can send it a message.
 */
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
  /** End this worker thread (exit code 70) when its first request arrives (a crash mid-cycle). */
  exitOnFirst?: boolean;
}

/** What the parent hands the worker at start (workerData). */
export interface VerifyWorkerData {
  hooks?: VerifyWorkerHooks;
}

type Verify = (bundle: EvidenceBundle, opts: BundleVerifyOptions) => BundleResult;

function isRequest(m: unknown): m is VerifyRequest {
  if (typeof m !== 'object' || m === null) return false;
  const r = m as Partial<VerifyRequest>;
  return (
    Number.isSafeInteger(r.id) &&
    typeof r.bundle === 'object' &&
    r.bundle !== null &&
    typeof r.opts === 'object' &&
    r.opts !== null &&
    r.opts.at instanceof Date
  );
}

export function serveVerification(port: MessagePort, data: VerifyWorkerData = {}, verify: Verify = verifyBundle): void {
  const hooks = data.hooks ?? {};
  let first = true;
  // The simulation trust is the same from call to call; the verifier memoises parsed roots per object,
  // so an equal one is replaced by the one seen before (a structured clone is a new object every time).
  let lastSimulation: BundleVerifyOptions['simulation'];
  port.on('message', (m: unknown) => {
    if (first && hooks.exitOnFirst) process.exit(70);
    first = false;
    const id = typeof m === 'object' && m !== null && Number.isSafeInteger((m as { id?: unknown }).id) ? (m as { id: number }).id : -1;
    let reply: VerifyReply;
    try {
      if (!isRequest(m)) throw new InternalError('the verification worker received a malformed request');
      const bundle = withBuffers(m.bundle);
      const opts = withBuffers(m.opts);
      if (opts.simulation) {
        if (lastSimulation && isDeepStrictEqual(lastSimulation, opts.simulation)) opts.simulation = lastSimulation;
        else lastSimulation = opts.simulation;
      }
      if (hooks.delayMs) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, hooks.delayMs);
      reply = { id, ok: true, result: verify(bundle, opts) };
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
