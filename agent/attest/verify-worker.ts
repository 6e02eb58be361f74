/**
 * Entry point of the daemon's verification worker thread (started by attest/verify-thread.ts): a
 * separate, small module so that a bundler can emit it as a second entry point next to the bundled
 * daemon (verify-thread.ts looks for `verify-worker.js` beside the module that starts it). It serves
 * verifyBundle on the parent's port and nothing else (attest/verify-service.ts).
 */
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { InternalError } from '../errors.js';
import { serveVerification, type VerifyWorkerData } from './verify-service.js';

if (isMainThread || !parentPort) throw new InternalError('verify-worker runs only as the daemon verification worker thread (attest/verify-thread.ts)');
serveVerification(parentPort, (workerData ?? {}) as VerifyWorkerData);
