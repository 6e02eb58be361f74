/**
 * The OCSP memo (agent/verify/nvidia/ocsp-check.ts: parsed responses by DER, signature results by
 * signed bytes + signer certificate): a response that passed is re-judged against the time of each
 * later call (expired then, though its signature result is cached), a different response for the same
 * certificate is never served from the cache, and a cache hit never turns a failure into a pass
 * (tampered bytes are a new key). Results with warm caches equal cold ones.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { buildOcspResponse, type OcspResponseSpec } from '../../../../agent/simulation/ocsp-sim.js';
import { buildSimulatedReport, loadOrCreateSimGpuIdentity, simulatedRoots, type SimGpuIdentity } from '../../../../agent/simulation/gpu-sim.js';
import { parsePemChain } from '../../../../agent/verify/nvidia/device-chain.js';
import type { Certificate } from '../../../../agent/formats/x509/certificate.js';
import type { GpuEvidenceRecord } from '../../../../agent/formats/gpu-evidence-record.js';
import { verifyGpuEvidence, type GpuVerifyOptions } from '../../../../agent/attest/verify-and-appraise.js';
import { clearAllCaches } from '../../../../agent/util/bounded-cache.js';

const NOW = new Date('2026-01-10T12:00:00Z');
const HOUR = 3600_000;

let id: SimGpuIdentity;
let chain: Certificate[];
let keys: KeyObject[];
let ev: GpuEvidenceRecord;
let base: GpuVerifyOptions;

type Over = Partial<Omit<OcspResponseSpec, 'cert' | 'issuer' | 'responderName'>>;
/** Responses for certs 1..3 signed by each issuer, valid NOW - 1 h .. NOW + 24 h unless overridden. */
const responses = (over: Over[] = []): Buffer[] =>
  [1, 2, 3].map((i, k) =>
    buildOcspResponse({
      cert: chain[i]!,
      issuer: chain[i + 1]!,
      signerKey: keys[i + 1]!,
      responderName: chain[i + 1]!.subjectDer,
      thisUpdate: new Date(NOW.getTime() - HOUR),
      nextUpdate: new Date(NOW.getTime() + 24 * HOUR),
      ...(over[k] ?? {}),
    }),
  );

const rev = (ocsp: readonly Uint8Array[], at = NOW) => verifyGpuEvidence(ev, { ...base, at, ocsp }).checks.find((c) => c.name === 'gpu.revocation')!;
const copies = (list: readonly Buffer[]) => list.map((b) => Buffer.from(b));

beforeAll(async () => {
  id = await loadOrCreateSimGpuIdentity(mkdtempSync(join(tmpdir(), 'ocsp-cache-')), 1);
  chain = parsePemChain(id.gpus[0]!.chainPem);
  keys = [id.gpus[0]!.leaf.key, id.gpus[0]!.brom.key, id.ica.key, id.identity.key, id.root.key];
  const nonce = Buffer.alloc(32, 5);
  ev = { report: buildSimulatedReport(id, 0, { nonce }), certChainPem: id.gpus[0]!.chainPem };
  base = { at: NOW, expectedNonce: nonce, skip: new Set(['rim']), simulatedRoots: simulatedRoots(id) };
});

describe('OCSP memo', () => {
  it('a response that passed is re-judged at a later call: expired then, though its signature result is cached', () => {
    const ocsp = responses();
    expect(rev(ocsp)).toMatchObject({ ok: true });
    const later = new Date(NOW.getTime() + 30 * HOUR);
    // The same array (parsed-list memo) and equal bytes in new buffers (DER memo) are both re-judged.
    for (const list of [ocsp, copies(ocsp)]) {
      const c = rev(list, later);
      expect(c.ok).toBe(false);
      expect(c.detail).toContain('response expired at');
    }
    // Before thisUpdate as well, and the grace policy still applies per call.
    expect(rev(ocsp, new Date(NOW.getTime() - 2 * HOUR)).detail).toContain('is after');
    expect(rev(ocsp)).toMatchObject({ ok: true });
  });

  it('a different response for the same certificate is not served from the cache', () => {
    expect(rev(responses()).ok).toBe(true);
    const revoked = rev(responses([{ status: 'revoked', reason: 1 }]));
    expect(revoked).toMatchObject({ ok: false, detail: expect.stringContaining('certificate 1 (GH100 A01 GSP BROM): revoked at') });
    const expiredSooner = rev(responses([{ nextUpdate: new Date(NOW.getTime() + HOUR) }]), new Date(NOW.getTime() + 2 * HOUR));
    expect(expiredSooner).toMatchObject({ ok: false, detail: expect.stringContaining('response expired') });
    expect(rev(responses()).ok).toBe(true);
  });

  it('a cache hit never turns a failure into a pass: tampered bytes are a new key', () => {
    const good = responses();
    const sigFlipped = good.map((b, k) => {
      if (k !== 0) return b;
      const t = Buffer.from(b);
      t[t.length - 5]! ^= 0x01; // inside the signature BIT STRING (no certs follow in these responses)
      return t;
    });
    const stranger = generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
    const wrongSigner = responses([{ signerKey: stranger }]);
    for (let round = 0; round < 2; round++) {
      expect(rev(good).ok).toBe(true);
      const a = rev(sigFlipped);
      expect(a.ok).toBe(false);
      expect(a.detail).toContain('OCSP response unusable');
      expect(rev(wrongSigner)).toMatchObject({ ok: false, detail: expect.stringContaining('OCSP response unusable') });
    }
  });

  it('warm results equal cold results', () => {
    const cases: [Buffer[], Date][] = [
      [responses(), NOW],
      [responses(), new Date(NOW.getTime() + 30 * HOUR)],
      [responses([{}, { status: 'revoked', reason: 6 }]), NOW],
      [responses([{}, {}, { status: 'unknown' }]), NOW],
    ];
    const warm = cases.map(([o, at]) => verifyGpuEvidence(ev, { ...base, at, ocsp: o }));
    const cold = cases.map(([o, at]) => {
      clearAllCaches();
      return verifyGpuEvidence(ev, { ...base, at, ocsp: o });
    });
    expect(warm).toEqual(cold);
  });
});
