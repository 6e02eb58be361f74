/**
 * The daemon's verification worker (agent/attest/verify-thread.ts): the same result as verifyBundle
 * in this thread, check for check; typed errors arrive as the same class, code and message; a worker
 * that exits, hangs or outgrows its heap fails that one verification with ERR_VERIFY_WORKER and a
 * named reason, and the next verification passes on a new worker; the queue is bounded.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPairSync, verify } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { getPriority } from 'node:os';
import type { Simulation } from '../../../agent/simulation/open.js';
import { simulatedBundle } from '../../helpers/sim-bundle.js';
import { verifyBundle, type BundleVerifyOptions } from '../../../agent/attest/verify-bundle.js';
import { defaultVerifyWorkerEntry, VERIFY_WORKER_FILE, VerifyThread } from '../../../agent/attest/verify-thread.js';
import type { EvidenceBundle } from '../../../agent/formats/evidence-bundle.js';
import { buildEar } from '../../../agent/appraise/ear.js';
import { CvmError, ParseError } from '../../../agent/errors.js';
import { VERIFY_WORKER_NICE_STEP } from '../../../agent/attest/verify-service.js';

const FAULTS = new URL('../../fixtures/verify-worker-faults.ts', import.meta.url);
const NONCE = Buffer.alloc(32, 9);
let sim: Simulation;
let bundle: EvidenceBundle;
let threads: VerifyThread[] = [];

function thread(o: Partial<ConstructorParameters<typeof VerifyThread>[0]> = {}): VerifyThread {
  const t = new VerifyThread({ timeoutMs: 30_000, ...o });
  threads.push(t);
  return t;
}
const optsAt = (at: Date): BundleVerifyOptions => {
  const { gpuPolicy: _sim, ...trust } = sim.verifyOptions(at);
  return { at, expectedNonce: NONCE, ...trust };
};
const withAgent = (agentId: string): EvidenceBundle => ({ ...bundle, agentId });

beforeAll(async () => {
  ({ sim, bundle } = await simulatedBundle({ gpus: 2, agentId: 'verify-thread-test', nonce: NONCE }));
}, 120_000);

afterEach(async () => {
  await Promise.all(threads.map((t) => t.close()));
  threads = [];
});

describe('VerifyThread with the real worker entry', () => {
  it('finds its entry beside itself under the one exported name', () => {
    expect(defaultVerifyWorkerEntry().pathname).toMatch(new RegExp(`/agent/attest/${VERIFY_WORKER_FILE}\\.ts$`));
  });

  it('gives exactly what verifyBundle gives in this thread: same checks in the same order, same EAR', async () => {
    const t = thread();
    const at = new Date();
    for (const b of [bundle, { ...bundle, nonce: Buffer.alloc(32, 1) }]) {
      const here = verifyBundle(b, optsAt(at));
      const there = await t.verify(b, optsAt(at));
      expect(there).toEqual(here);
      expect(there.devices.map((d) => d.result.checks.map((c) => c.name))).toEqual(here.devices.map((d) => d.result.checks.map((c) => c.name)));
      const ear = (r: typeof here) => buildEar(r.devices, { at, nonce: NONCE, build: 'test' });
      expect(JSON.stringify(ear(there))).toBe(JSON.stringify(ear(here)));
    }
    // The second bundle answers another nonce: a failed binding check, verified the same way in both places.
    expect((await t.verify({ ...bundle, nonce: Buffer.alloc(32, 1) }, optsAt(at))).ok).toBe(false);
    expect(t.workersStarted).toBe(1);
  });

  it('signs simulated reports in the worker, which runs niced below the main thread (Linux: per-thread nice)', async () => {
    const t = thread();
    const key = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const sigs = await t.sign([
      { data: Buffer.from('report one'), key: key.privateKey },
      { data: Buffer.from('report two'), key: key.privateKey },
    ]);
    expect(sigs.map((x) => Buffer.isBuffer(x))).toEqual([true, true]);
    expect(verify('sha384', Buffer.from('report one'), { key: key.publicKey, dsaEncoding: 'ieee-p1363' }, sigs[0]!)).toBe(true);
    expect(verify('sha384', Buffer.from('report two'), { key: key.publicKey, dsaEncoding: 'ieee-p1363' }, sigs[1]!)).toBe(true);
    const nice = (tid: string) => Number(readFileSync(`/proc/self/task/${tid}/stat`, 'utf8').split(') ')[1]!.split(' ')[16]);
    expect(readdirSync('/proc/self/task').map(nice)).toContain(Math.min(19, getPriority() + VERIFY_WORKER_NICE_STEP));
  });

  it('refuses to run as a main thread: the entry talks to its parent only', async () => {
    await expect(import('../../../agent/attest/verify-worker.js')).rejects.toThrow(/runs only as the daemon verification worker thread/);
  });
});

describe('VerifyThread faults (test/fixtures/verify-worker-faults.ts)', () => {
  it('a typed error thrown in the worker arrives as the same class, code, message and fields', async () => {
    const t = thread({ entry: FAULTS });
    const err = await t.verify(withAgent('fault-parse'), optsAt(new Date())).catch((e: unknown) => e);
    const here = new ParseError('the SNP report is 12 bytes short', 1172);
    expect(err).toBeInstanceOf(ParseError);
    expect(err).toBeInstanceOf(CvmError);
    expect(err).toMatchObject({ name: here.name, code: 'ERR_PARSE', message: here.message, offset: 1172 });
    const plain = await t.verify(withAgent('fault-type'), optsAt(new Date())).catch((e: unknown) => e);
    expect(plain).toBeInstanceOf(TypeError);
    expect((plain as Error).message).toBe('Cannot read properties of undefined (reading "x")');
    // The worker survived both and still verifies.
    expect((await t.verify(bundle, optsAt(new Date()))).ok).toBe(true);
    expect(t.workersStarted).toBe(1);
  });

  it('a worker that dies mid-verification fails that one with a named reason; the next passes on a new worker', async () => {
    const reasons: string[] = [];
    const t = thread({ entry: FAULTS, onRestart: (r) => reasons.push(r) });
    const err = await t.verify(withAgent('fault-exit'), optsAt(new Date())).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CvmError);
    expect(err).toMatchObject({ code: 'ERR_VERIFY_WORKER' });
    expect((err as Error).message).toMatch(/verification worker exited \(code 3\) during verification/);
    expect(reasons).toHaveLength(1);
    expect((await t.verify(bundle, optsAt(new Date()))).ok).toBe(true);
    expect(t.workersStarted).toBe(2);
  });

  it('a hung worker is stopped at the time limit (named), and the next verification passes', async () => {
    const t = thread({ entry: FAULTS, timeoutMs: 1500 });
    const err = await t.verify(withAgent('fault-hang'), optsAt(new Date())).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_VERIFY_WORKER' });
    expect((err as Error).message).toMatch(/did not answer within 1500 ms \(verification\); it was stopped/);
    // Generous: a fresh worker loads the verifiers through tsx first.
    const t2 = thread({ entry: FAULTS, timeoutMs: 60_000 });
    expect((await t2.verify(bundle, optsAt(new Date()))).ok).toBe(true);
  });

  it('a worker past its heap limit fails that verification (named) and is replaced', async () => {
    const t = thread({ entry: FAULTS, resourceLimits: { maxOldGenerationSizeMb: 48, maxYoungGenerationSizeMb: 4 } });
    const err = await t.verify(withAgent('fault-oom'), optsAt(new Date())).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_VERIFY_WORKER' });
    expect((err as Error).message).toMatch(/ERR_WORKER_OUT_OF_MEMORY/);
    expect((await t.verify(bundle, optsAt(new Date()))).ok).toBe(true);
    expect(t.workersStarted).toBe(2);
  });

  it('drops answers to requests it never made and messages that are not answers', async () => {
    const t = thread({ entry: FAULTS });
    const at = new Date();
    const r = await t.verify(withAgent('fault-stray'), optsAt(at));
    // The real answer (this bundle's agent id differs from the one its reports are bound to), not the stray "ok".
    expect(r.devices.length).toBe(3);
    expect(r.ok).toBe(false);
    expect(r).toEqual(verifyBundle(withAgent('fault-stray'), optsAt(at)));
  });

  it('bounds the queue: past maxQueued waiting verifications, ERR_BUSY at once', async () => {
    const t = thread({ entry: FAULTS, maxQueued: 2, timeoutMs: 2000 });
    const first = t.verify(withAgent('fault-hang'), optsAt(new Date())).catch((e: unknown) => e);
    const waiting = [t.verify(bundle, optsAt(new Date())), t.verify(bundle, optsAt(new Date()))];
    await expect(t.verify(bundle, optsAt(new Date()))).rejects.toMatchObject({ code: 'ERR_BUSY' });
    expect(await first).toMatchObject({ code: 'ERR_VERIFY_WORKER' });
    // The two that waited run on the new worker.
    const results = await Promise.all(waiting);
    expect(results.map((x) => x.ok)).toEqual([true, true]);
  });

  it('close() fails what is waiting and refuses new work, with ERR_STOPPING (not a verdict); idle() resolves', async () => {
    const t = thread({ entry: FAULTS });
    await t.idle(); // nothing to wait for
    const inFlight = t.verify(withAgent('fault-hang'), optsAt(new Date())).catch((e: unknown) => e);
    const queued = t.verify(bundle, optsAt(new Date())).catch((e: unknown) => e);
    let idle = false;
    const idled = t.idle().then(() => (idle = true));
    await new Promise((r) => setTimeout(r, 50));
    expect(idle).toBe(false);
    await t.close();
    await idled;
    expect(await inFlight).toMatchObject({ code: 'ERR_STOPPING' });
    expect(await queued).toMatchObject({ code: 'ERR_STOPPING' });
    await expect(t.verify(bundle, optsAt(new Date()))).rejects.toMatchObject({ code: 'ERR_STOPPING' });
  });

  it('idle() resolves when the last request is answered', async () => {
    const t = thread();
    const r = t.verify(bundle, optsAt(new Date()));
    await t.idle();
    expect((await r).ok).toBe(true);
  });
});

describe('VerifyThread stopped when idle (idleStopMs)', () => {
  const until = async (cond: () => boolean, ms = 30_000) => {
    for (const t0 = Date.now(); !cond(); await new Promise((r) => setTimeout(r, 10))) if (Date.now() - t0 > ms) throw new Error('timed out');
  };

  it('stops the worker after idleStopMs without a request, and the next verification starts a new one', async () => {
    const t = thread({ idleStopMs: 100 });
    expect((await t.verify(bundle, optsAt(new Date()))).ok).toBe(true);
    expect(t.running).toBe(true);
    await until(() => !t.running);
    expect(t.workersStoppedIdle).toBe(1);
    expect((await t.verify(bundle, optsAt(new Date()))).ok).toBe(true);
    expect(t.workersStarted).toBe(2);
  });

  it('onIdleExit is told once per idle stop, after that worker has exited; never for a failure or close()', async () => {
    let exits = 0;
    const t = thread({ idleStopMs: 50, onIdleExit: () => exits++ });
    expect((await t.verify(bundle, optsAt(new Date()))).ok).toBe(true);
    await until(() => exits === 1);
    expect(t.running).toBe(false);
    expect(t.workersStoppedIdle).toBe(1);
    expect((await t.verify(bundle, optsAt(new Date()))).ok).toBe(true);
    await until(() => exits === 2);
    const f = thread({ entry: FAULTS, idleStopMs: 60_000, onIdleExit: () => exits++ });
    await expect(f.verify(withAgent('fault-exit'), optsAt(new Date()))).rejects.toMatchObject({ code: 'ERR_VERIFY_WORKER' });
    expect((await f.verify(bundle, optsAt(new Date()))).ok).toBe(true);
    await f.close();
    await new Promise((r) => setTimeout(r, 100));
    expect(exits).toBe(2);
  }, 120_000);

  it('warm() starts a worker that is stopped again when no request comes', async () => {
    const t = thread({ idleStopMs: 100 });
    t.warm();
    expect(t.running).toBe(true);
    await until(() => !t.running);
    expect(t.workersStoppedIdle).toBe(1);
  });

  it('never stops a worker with a request in it: a verification longer than idleStopMs completes on the first worker', async () => {
    const t = thread({ idleStopMs: 20, hooks: { delayMs: 400 } });
    const results = await Promise.all([t.verify(bundle, optsAt(new Date())), t.verify(bundle, optsAt(new Date()))]);
    expect(results.map((r) => r.ok)).toEqual([true, true]);
    expect(t.workersStarted).toBe(1);
    expect(t.workersStoppedIdle).toBe(0);
  });

  it('a request arriving while the idle worker is being terminated goes to a new worker and never fails', async () => {
    const restarts: string[] = [];
    const t = thread({ idleStopMs: 60_000, onRestart: (r) => restarts.push(r) });
    expect((await t.verify(bundle, optsAt(new Date()))).ok).toBe(true);
    // The idle stop and a request in the same tick: terminate() has begun, the old worker has not exited yet.
    t.stopIfIdle();
    expect(t.running).toBe(false);
    const racing = t.verify(bundle, optsAt(new Date()));
    expect(t.running).toBe(true);
    expect((await racing).ok).toBe(true);
    expect(t.workersStarted).toBe(2);
    // The idle timer firing at every moment around a request: 1 ms after each answer, the next request 0-2 ms later.
    const u = thread({ idleStopMs: 1, onRestart: (r) => restarts.push(r) });
    for (const delay of [0, 1, 2, 0, 2, 1]) {
      expect((await u.verify(bundle, optsAt(new Date()))).ok).toBe(true);
      await new Promise((r) => setTimeout(r, delay));
    }
    expect(u.workersStoppedIdle).toBeGreaterThan(0);
    // The old workers' exits were never taken for failures.
    expect(restarts).toEqual([]);
  }, 120_000);

  it('a worker stopped for idleness and a dead worker: the death still fails closed, the idle stop never does', async () => {
    const reasons: string[] = [];
    const t = thread({ entry: FAULTS, idleStopMs: 50, onRestart: (r) => reasons.push(r) });
    const err = await t.verify(withAgent('fault-exit'), optsAt(new Date())).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_VERIFY_WORKER' });
    expect(reasons).toHaveLength(1);
    expect((await t.verify(bundle, optsAt(new Date()))).ok).toBe(true);
    await until(() => !t.running);
    expect((await t.verify(bundle, optsAt(new Date()))).ok).toBe(true);
    expect(reasons).toHaveLength(1);
  }, 120_000);
});
