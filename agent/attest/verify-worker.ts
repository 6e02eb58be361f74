/**
 * Entry point of the daemon's verification worker thread (started by attest/verify-thread.ts): a
 * separate, small module so that a bundler can emit it as a second entry point next to the bundled
 * daemon (verify-thread.ts looks for `verify-worker.js` beside the module that starts it). It serves
 * verifyBundle on the parent's port and nothing else (attest/verify-service.ts).
 */
import { getPriority, setPriority } from 'node:os';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { InternalError } from '../errors.js';
import { serveVerification, VERIFY_WORKER_NICE_STEP, type VerifyWorkerData } from './verify-service.js';

if (isMainThread || !parentPort) throw new InternalError('verify-worker runs only as the daemon verification worker thread (attest/verify-thread.ts)');
try {
  // On Linux, setpriority(2) on the calling thread's id 0 changes this thread only, not the process
  // (setpriority(2) BUGS: threads have their own nice value). Lowering priority needs no privilege.
  setPriority(Math.min(19, getPriority() + VERIFY_WORKER_NICE_STEP));
} catch {
  // best effort: a platform that refuses leaves the worker at the main thread's priority
}
serveVerification(parentPort, (workerData ?? {}) as VerifyWorkerData);
