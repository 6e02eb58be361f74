/**
 * The verification worker's loop (agent/attest/verify-service.ts), run here on a MessageChannel: it
 * answers only on the port it was given, answers a malformed request with an error instead of dying,
 * and keeps serving after it; it signs simulated reports with private keys only.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { generateKeyPairSync, verify } from 'node:crypto';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { serveVerification } from '../../../agent/attest/verify-service.js';
import type { VerifyReply } from '../../../agent/attest/verify-wire.js';
import type { BundleResult } from '../../../agent/attest/verify-bundle.js';

const P384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
let ports: MessagePort[] = [];
afterEach(() => {
  for (const p of ports) p.close();
  ports = [];
});

function serve(verify: () => BundleResult = () => ({ ok: true, devices: [] })) {
  const { port1, port2 } = new MessageChannel();
  ports.push(port1, port2);
  serveVerification(port2, {}, verify);
  const replies: VerifyReply[] = [];
  const next = () => new Promise<VerifyReply>((resolve) => port1.once('message', (m: VerifyReply) => resolve(m)));
  return { send: (m: unknown) => port1.postMessage(m), next, replies };
}

describe('serveVerification', () => {
  it('answers a well-formed request with the result under the same id', async () => {
    const s = serve();
    const answer = s.next();
    s.send({ id: 7, op: 'verify', bundle: {}, opts: { at: new Date() } });
    expect(await answer).toEqual({ id: 7, ok: true, result: { ok: true, devices: [] } });
  });

  it.each([
    ['a string', 'hello'],
    ['null', null],
    ['no id', { op: 'verify', bundle: {}, opts: { at: new Date() } }],
    ['no op', { id: 1, bundle: {}, opts: { at: new Date() } }],
    ['an unknown op', { id: 1, op: 'eval', code: 'process.exit()' }],
    ['a time that is not a Date', { id: 1, op: 'verify', bundle: {}, opts: { at: '2025-01-01' } }],
    ['no bundle', { id: 2, op: 'verify', opts: { at: new Date() } }],
    ['an id that is not an integer', { id: 1.5, op: 'verify', bundle: {}, opts: { at: new Date() } }],
    ['a signing job without a key', { id: 3, op: 'sign', jobs: [{ data: Buffer.from('x') }] }],
    ['a signing job with a public key', { id: 3, op: 'sign', jobs: [{ data: Buffer.from('x'), key: P384.publicKey }] }],
    ['a signing job with a PEM string as key', { id: 3, op: 'sign', jobs: [{ data: Buffer.from('x'), key: 'pem' }] }],
    [
      'more signing jobs than simulated GPUs can have',
      { id: 3, op: 'sign', jobs: Array.from({ length: 65 }, () => ({ data: Buffer.from('x'), key: P384.privateKey })) },
    ],
  ])('answers %s with ERR_INTERNAL and keeps serving', async (_what, message) => {
    let calls = 0;
    const s = serve(() => {
      calls++;
      return { ok: true, devices: [] };
    });
    const bad = s.next();
    s.send(message);
    const r = await bad;
    expect(r.ok).toBe(false);
    expect(r).toMatchObject({
      ok: false,
      error: { name: 'InternalError', code: 'ERR_INTERNAL', message: 'the verification worker received a malformed request' },
    });
    expect(calls).toBe(0);
    const good = s.next();
    s.send({ id: 9, op: 'verify', bundle: {}, opts: { at: new Date() } });
    expect(await good).toMatchObject({ id: 9, ok: true });
  });

  it('signs simulated reports: SHA-384 ECDSA P-384 in IEEE P1363 form, in the order given', async () => {
    const s = serve();
    const other = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const a = s.next();
    s.send({
      id: 4,
      op: 'sign',
      jobs: [
        { data: Buffer.from('one'), key: P384.privateKey },
        { data: Buffer.from('two'), key: other.privateKey },
      ],
    });
    const r = await a;
    expect(r.ok).toBe(true);
    const [s1, s2] = (r as { result: Uint8Array[] }).result;
    expect(s1!.length).toBe(96);
    expect(verify('sha384', Buffer.from('one'), { key: P384.publicKey, dsaEncoding: 'ieee-p1363' }, s1!)).toBe(true);
    expect(verify('sha384', Buffer.from('two'), { key: other.publicKey, dsaEncoding: 'ieee-p1363' }, s2!)).toBe(true);
  });

  it('reuses an equal simulation trust object from call to call (parsed roots stay memoised)', async () => {
    const seen: unknown[] = [];
    const s = serve(((_b: unknown, o: { simulation: unknown }) => {
      seen.push(o.simulation);
      return { ok: true, devices: [] };
    }) as never);
    const sim = () => ({ snpRoots: [{ ark: Buffer.from([1]), ask: Buffer.from([2]) }], gpuRoots: { deviceRoot: Buffer.from([3]), simulated: true } });
    for (const id of [1, 2]) {
      const a = s.next();
      s.send({ id, op: 'verify', bundle: {}, opts: { at: new Date(), simulation: sim() } });
      await a;
    }
    const a = s.next();
    s.send({
      id: 3,
      op: 'verify',
      bundle: {},
      opts: { at: new Date(), simulation: { ...sim(), gpuRoots: { deviceRoot: Buffer.from([4]), simulated: true } } },
    });
    await a;
    expect(seen[1]).toBe(seen[0]);
    expect(seen[2]).not.toBe(seen[0]);
  });
});
