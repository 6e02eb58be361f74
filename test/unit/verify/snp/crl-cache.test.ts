/**
 * The CRL signature memo (agent/verify/snp/crl.ts): a cached signature result never spares the time
 * checks (a CRL that passed is stale at a later call), never serves a different CRL (other bytes, other
 * key), and a cache hit never turns a failure into a pass. Results with warm caches equal cold ones.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPairSync } from 'node:crypto';
import { checkRevocation, parseCrl, type RevocationAnchor } from '../../../../agent/verify/snp/crl.js';
import { parseCertificate } from '../../../../agent/formats/x509/certificate.js';
import { clearAllCaches } from '../../../../agent/util/bounded-cache.js';
import { makeSimSnpChain, simCrl, type SimSnpChain } from '../../../helpers/snp-sim-chain.js';

const INSIDE = new Date('2026-03-01T00:00:00Z');
const STALE = new Date('2026-05-01T00:00:00Z'); // after simCrl's nextUpdate

let sim: SimSnpChain;
let anchor: RevocationAnchor;
let askSerial: bigint;

const judge = (crl: Buffer, at: Date, a: RevocationAnchor = anchor) => checkRevocation([parseCrl(crl)], a, [{ label: 'ASK', serial: askSerial }], at);

beforeAll(() => {
  sim = makeSimSnpChain();
  const ark = parseCertificate(sim.ark);
  askSerial = parseCertificate(sim.ask).serial;
  anchor = { name: 'ARK-Genoa', subjectDer: ark.subjectDer, publicKey: ark.publicKey, allowedAlgs: ['rsa-pss-sha384'], crlUrl: 'sim' };
});

describe('CRL signature memo', () => {
  it('a CRL that passed is judged stale at a later call, though its signature result is cached', () => {
    const crl = simCrl(sim);
    expect(judge(crl, INSIDE)).toMatchObject({ ok: true });
    expect(judge(crl, STALE)).toMatchObject({ ok: false, detail: expect.stringContaining('is stale at 2026-05-01') });
    expect(judge(crl, new Date('2026-01-01T00:00:00Z'))).toMatchObject({ ok: false, detail: expect.stringContaining('not yet valid') });
    expect(judge(crl, INSIDE)).toMatchObject({ ok: true });
  });

  it('a different CRL from the same ARK is not served from the cache', () => {
    expect(judge(simCrl(sim), INSIDE).ok).toBe(true);
    const revoking = simCrl(sim, { revoked: [{ serial: askSerial, date: new Date('2026-01-15T00:00:00Z') }] });
    expect(judge(revoking, INSIDE)).toMatchObject({ ok: false, detail: expect.stringContaining('is REVOKED') });
  });

  it('a cache hit never turns a failure into a pass: tampered bytes, another signer, another anchor key', () => {
    const good = simCrl(sim);
    const flipped = Buffer.from(good);
    flipped[flipped.length - 1]! ^= 0x01;
    const forged = simCrl(sim, { issuerKey: generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey });
    const otherAnchor = { ...anchor, publicKey: generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey };
    for (let round = 0; round < 2; round++) {
      expect(judge(good, INSIDE).ok).toBe(true);
      expect(judge(flipped, INSIDE)).toMatchObject({ ok: false, detail: expect.stringContaining('is not signed by the pinned ARK-Genoa key') });
      expect(judge(forged, INSIDE)).toMatchObject({ ok: false, detail: expect.stringContaining('is not signed by the pinned ARK-Genoa key') });
      expect(judge(good, INSIDE, otherAnchor)).toMatchObject({ ok: false, detail: expect.stringContaining('is not signed by the pinned ARK-Genoa key') });
    }
  });

  it('warm results equal cold results', () => {
    const cases: [Buffer, Date][] = [
      [simCrl(sim), INSIDE],
      [simCrl(sim), STALE],
      [simCrl(sim, { revoked: [{ serial: askSerial, date: new Date('2026-01-15T00:00:00Z') }] }), INSIDE],
    ];
    const warm = cases.map(([c, at]) => judge(c, at));
    const cold = cases.map(([c, at]) => {
      clearAllCaches();
      return judge(c, at);
    });
    expect(warm).toEqual(cold);
  });
});
