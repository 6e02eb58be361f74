/**
 * Differential test: AMD KDS-style CRLs (X.509 v2, RSASSA-PSS SHA-384, issued by the ARK) judged by
 * openssl and by agent/verify/snp/crl.ts (parseCrl + checkRevocation, "snp.revocation"):
 * - `openssl crl -verify -CAfile <ARK>`: the CRL's signature under the ARK, against our signature step;
 * - `openssl verify -crl_check -CRLfile <crl> -CAfile <ARK> -attime T <ASK>`: the whole revocation
 *   decision for the ASK (signature, freshness at T, serial listed), against our snp.revocation verdict
 *   (a pass; a warning, "no CRL from this ARK", counts as not accepted, as openssl refuses too).
 * test/vectors holds no public AMD CRL (KDS serves them live; no public repository we found stores
 * one), so the CRLs are built from RFC 5280 §5 with the simulation's builder and a simulated ARK/ASK:
 * fresh and empty, revoking the ASK, a flipped signature byte, before thisUpdate, after nextUpdate
 * (via -attime), and issued by another name (wrong issuer).
 */
import { generateKeyPairSync } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkRevocation, parseCrl } from '../../../../agent/verify/snp/crl.js';
import { parseCertificate } from '../../../../agent/formats/x509/certificate.js';
import { requireTool } from '../../../helpers/tools.js';
import { amdName, makeSimSnpChain, simCrl, type SimSnpChain } from '../../../helpers/snp-sim-chain.js';
import { mapPool, runTool, scratchDir } from '../../../helpers/tool-pool.js';

const HAVE_OPENSSL = requireTool('openssl', 'openssl');

const pem = (der: Buffer, label = 'CERTIFICATE') =>
  `-----BEGIN ${label}-----\n${der
    .toString('base64')
    .match(/.{1,64}/g)!
    .join('\n')}\n-----END ${label}-----\n`;
const INSIDE = new Date('2026-03-01T00:00:00Z');

interface Case {
  name: string;
  crl: Buffer;
  at: Date;
  /** Whether the CRL's signature is the ARK's (for the `openssl crl -verify` comparison). */
  signed: boolean;
}

describe.runIf(HAVE_OPENSSL)('AMD CRLs: openssl and agent/verify/snp/crl agree', () => {
  const scratch = scratchDir('crl-openssl-');
  let sim: SimSnpChain;
  let cases: Case[] = [];
  const rows = new Map<string, { ours: { sig: boolean; verdict: boolean; detail: string }; openssl: { sig: boolean; verdict: boolean; why: string } }>();

  beforeAll(async () => {
    sim = makeSimSnpChain();
    const ark = parseCertificate(sim.ark);
    const ask = parseCertificate(sim.ask);
    const flipped = Buffer.from(simCrl(sim));
    flipped[flipped.length - 1] = flipped[flipped.length - 1]! ^ 0x01;
    const otherKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    cases = [
      { name: 'fresh, empty', crl: simCrl(sim), at: INSIDE, signed: true },
      { name: 'revokes the ASK', crl: simCrl(sim, { revoked: [{ serial: sim.askSerial, date: new Date('2026-01-15T00:00:00Z') }] }), at: INSIDE, signed: true },
      { name: 'revokes another serial', crl: simCrl(sim, { revoked: [{ serial: 0x777n, date: new Date('2026-01-15T00:00:00Z') }] }), at: INSIDE, signed: true },
      { name: 'signature byte flipped', crl: flipped, at: INSIDE, signed: false },
      { name: 'signed by another key under the ARK name', crl: simCrl(sim, { issuerKey: otherKey }), at: INSIDE, signed: false },
      { name: 'before thisUpdate', crl: simCrl(sim), at: new Date('2026-01-01T00:00:00Z'), signed: true },
      { name: 'after nextUpdate (expired)', crl: simCrl(sim), at: new Date('2026-05-01T00:00:00Z'), signed: true },
      { name: 'issued by another name (wrong issuer)', crl: simCrl(sim, { issuer: amdName('ARK-Milan') }), at: INSIDE, signed: false },
    ];
    const arkFile = scratch.write('ark.pem', pem(sim.ark));
    const askFile = scratch.write('ask.pem', pem(sim.ask));
    const results = await mapPool(cases, async (c, i) => {
      const crlFile = scratch.write(`${i}.crl.pem`, pem(c.crl, 'X509 CRL'));
      const [sig, verdict] = await Promise.all([
        runTool('openssl', ['crl', '-verify', '-noout', '-CAfile', arkFile, '-in', crlFile]),
        runTool('openssl', ['verify', '-crl_check', '-CRLfile', crlFile, '-CAfile', arkFile, '-attime', String(Math.floor(c.at.getTime() / 1000)), askFile]),
      ]);
      const crlSays = (sig.stdout.toString() + sig.stderr).trim();
      const parsed = parseCrl(c.crl);
      const anchor = { name: 'ARK-Genoa', subjectDer: ark.subjectDer, publicKey: ark.publicKey, allowedAlgs: ['rsa-pss-sha384'] as const, crlUrl: 'sim' };
      const check = checkRevocation([parsed], anchor, [{ label: 'ASK', serial: ask.serial }], c.at);
      // Our signature step alone: at a time where freshness holds and with no subject to look up.
      const sigOnly = checkRevocation([parsed], anchor, [], INSIDE);
      return {
        ours: { sig: sigOnly.ok && !sigOnly.warning, verdict: check.ok && !check.warning, detail: check.detail },
        openssl: { sig: sig.code === 0 && /verify OK/.test(crlSays), verdict: verdict.code === 0, why: (verdict.stdout.toString() + verdict.stderr).trim() },
      };
    });
    cases.forEach((c, i) => rows.set(c.name, results[i]!));
  });
  afterAll(() => scratch.remove());

  it('the CRL signature: openssl crl -verify and our signature step agree on every case', () => {
    for (const c of cases) {
      const r = rows.get(c.name)!;
      expect(r.openssl.sig, c.name).toBe(c.signed);
      expect(r.ours.sig, `${c.name}: ${r.ours.detail}`).toBe(c.signed);
    }
  });

  it('the revocation verdict for the ASK: openssl verify -crl_check and snp.revocation agree on every case', () => {
    const disagreements = cases
      .map((c) => ({ c, r: rows.get(c.name)! }))
      .filter(({ r }) => r.ours.verdict !== r.openssl.verdict)
      .map(({ c, r }) => `${c.name}: ours ${r.ours.verdict} (${r.ours.detail}), openssl ${r.openssl.verdict} (${r.openssl.why})`);
    expect(disagreements).toEqual([]);
    expect(cases.filter((c) => rows.get(c.name)!.ours.verdict).map((c) => c.name)).toEqual(['fresh, empty', 'revokes another serial']);
  });
});
