/**
 * Simulated roots and CRLs: a Genoa-shaped chain (ARK → ASK → VCEK) made with the project's X.509
 * builder signs a report; it is trusted ONLY when its roots are passed as simulatedRoots, and then
 * says simulated. CRLs signed by the (simulated) ARK exercise revocation, freshness and signature.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPairSync } from 'node:crypto';
import { buildCrl } from '../../../../agent/simulation/x509-builder.js';
import { makeSimSnpChain, amdName, type SimSnpChain as Sim } from '../../../helpers/snp-sim-chain.js';
import { verifySnpAttestation } from '../../../../agent/attest/verify-and-appraise.js';
import { checkRevocation, parseCrl } from '../../../../agent/verify/snp/crl.js';
import type { VerificationResult } from '../../../../agent/formats/checks.js';
import { findCheck } from '../../../helpers/checks.js';

const AT = new Date('2026-03-01T00:00:00Z');
const failedNames = (res: VerificationResult<unknown>) => res.checks.filter((c) => !c.ok).map((c) => c.name);
const warnNames = (res: VerificationResult<unknown>) => res.checks.filter((c) => c.ok && c.warning).map((c) => c.name);

let sim: Sim;
beforeAll(() => {
  sim = makeSimSnpChain();
});

const crl = (over: Partial<Parameters<typeof buildCrl>[0]> = {}) =>
  buildCrl({
    issuer: amdName('ARK-Genoa'),
    issuerKey: sim.arkKey,
    signature: 'rsa-pss-sha384',
    thisUpdate: new Date('2026-02-01T00:00:00Z'),
    nextUpdate: new Date('2026-04-01T00:00:00Z'),
    revoked: [{ serial: 0x99999, date: new Date('2026-01-15T00:00:00Z') }],
    crlNumber: 7,
    ...over,
  });

describe('simulated roots', () => {
  it('are NOT trusted unless passed explicitly', () => {
    const res = verifySnpAttestation({ report: sim.report, certificates: [sim.vcek] }, { at: AT });
    expect(res.ok).toBe(false);
    expect(res.simulated).toBe(false);
    expect(findCheck(res, 'snp.chain.ask').ok).toBe(false);
    expect(findCheck(res, 'snp.chain.ask').detail).toMatch(/not signed by the pinned SEV-Genoa/);
  });

  it('verify when enabled, and the result says SIMULATED', () => {
    const res = verifySnpAttestation({ report: sim.report, certificates: [sim.vcek] }, { at: AT, simulatedRoots: [sim.roots] });
    expect(failedNames(res)).toEqual([]);
    expect(res.simulated).toBe(true);
    expect(res.status).toBe('warning');
    expect(warnNames(res)).toEqual(['snp.revocation']);
    expect(findCheck(res, 'snp.simulated').detail).toMatch(/^SIMULATED/);
    expect(findCheck(res, 'snp.chain.ask').detail).toMatch(/simulated SEV-Genoa/);
  });

  it('a fresh CRL signed by the sim ARK makes the result affirming (still flagged simulated)', () => {
    const res = verifySnpAttestation(
      { report: sim.report, certificates: [sim.vcek, sim.ask, sim.ark], crls: [crl()] },
      { at: AT, simulatedRoots: [sim.roots] },
    );
    expect(failedNames(res)).toEqual([]);
    expect(findCheck(res, 'snp.revocation').warning).toBeUndefined();
    expect(findCheck(res, 'snp.revocation').detail).toMatch(/not revoked/);
    expect(warnNames(res)).toEqual([]);
    expect(res.status).toBe('affirming');
    expect(res.simulated).toBe(true);
    expect(findCheck(res, 'snp.simulated').detail).toMatch(/^SIMULATED/);
  });

  it('real AMD reports still verify against the pinned roots when sim roots are enabled', async () => {
    const { vector } = await import('../../../helpers/paths.js');
    const res = verifySnpAttestation(
      { report: vector('snp/trustee_snp_test-report.bin'), certificates: [vector('snp/trustee_snp_test-vcek.der')] },
      { at: AT, simulatedRoots: [sim.roots] },
    );
    expect(failedNames(res)).toEqual([]);
    expect(res.simulated).toBe(false);
  });

  it('the sim ARK supplied with real Genoa evidence is rejected as not the pinned ARK', async () => {
    const { vector } = await import('../../../helpers/paths.js');
    const { pemBlocks: pemCertificates } = await import('../../../../agent/util/pem.js');
    const ev = JSON.parse(vector('snp/trustee_az-snp-vtpm_evidence-genoa.json').toString('utf8')) as { report: number[]; vcek: string };
    const res = verifySnpAttestation(
      { report: Buffer.from(ev.report).subarray(0x20, 0x20 + 0x4a0), certificates: [...pemCertificates(ev.vcek), sim.ark] },
      { at: AT },
    );
    expect(failedNames(res)).toEqual(['snp.chain.ark']);
  });
});

describe('revocation', () => {
  const run = (crls: Buffer[]) => verifySnpAttestation({ report: sim.report, certificates: [sim.vcek], crls }, { at: AT, simulatedRoots: [sim.roots] });

  it('revoked VCEK serial', () => {
    const res = run([crl({ revoked: [{ serial: sim.vcekSerial, date: new Date('2026-01-20T00:00:00Z') }] })]);
    expect(failedNames(res)).toEqual(['snp.revocation']);
    expect(findCheck(res, 'snp.revocation').detail).toMatch(/VCEK serial 0x1234 is REVOKED/);
  });

  it('revoked ASK serial', () => {
    const res = run([crl({ revoked: [{ serial: sim.askSerial, date: new Date('2026-01-20T00:00:00Z') }] })]);
    expect(failedNames(res)).toEqual(['snp.revocation']);
    expect(findCheck(res, 'snp.revocation').detail).toMatch(/ASK SEV-Genoa serial 0x20001 is REVOKED/);
  });

  it('expired (stale) CRL', () => {
    const res = run([crl({ thisUpdate: new Date('2025-12-01T00:00:00Z'), nextUpdate: new Date('2026-01-01T00:00:00Z') })]);
    expect(failedNames(res)).toEqual(['snp.revocation']);
    expect(findCheck(res, 'snp.revocation').detail).toMatch(/stale/);
  });

  it('CRL from the future', () => {
    const res = run([crl({ thisUpdate: new Date('2026-03-02T00:00:00Z'), nextUpdate: new Date('2026-05-01T00:00:00Z') })]);
    expect(findCheck(res, 'snp.revocation').detail).toMatch(/not yet valid/);
  });

  it('CRL naming the ARK but signed by another key', () => {
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    const res = run([crl({ issuerKey: other })]);
    expect(failedNames(res)).toEqual(['snp.revocation']);
    expect(findCheck(res, 'snp.revocation').detail).toMatch(/not signed by the pinned ARK-Genoa key/);
  });

  it('CRL with a non-PSS algorithm from an AMD root is rejected', () => {
    const ecKey = generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).privateKey;
    const res = verifySnpAttestation(
      { report: sim.report, certificates: [sim.vcek], crls: [crl({ issuerKey: ecKey, signature: 'ecdsa-sha384' })] },
      { at: AT, simulatedRoots: [sim.roots] },
    );
    // simulated roots may use ECDSA, but the signature is still not the ARK's:
    expect(findCheck(res, 'snp.revocation').ok).toBe(false);
    const parsed = parseCrl(crl({ issuerKey: ecKey, signature: 'ecdsa-sha384' }));
    const pinnedOnly = checkRevocation(
      [parsed],
      { name: 'ARK-Genoa', subjectDer: parsed.issuerDer, publicKey: ecKey, allowedAlgs: ['rsa-pss-sha384'], crlUrl: 'x' },
      [],
      AT,
    );
    expect(pinnedOnly.ok).toBe(false);
    expect(pinnedOnly.detail).toMatch(/signature algorithm ecdsa-sha384/);
  });

  it('a CRL from another issuer is ignored: revocation stays a warning', () => {
    const otherArk = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    const res = run([crl({ issuer: amdName('ARK-Milan'), issuerKey: otherArk })]);
    expect(findCheck(res, 'snp.revocation').warning).toBe(true);
    expect(findCheck(res, 'snp.revocation').detail).toMatch(/none issued by ARK-Genoa/);
  });

  it('parses the revoked serials and times', () => {
    const p = parseCrl(
      crl({
        revoked: [
          { serial: 5, date: new Date('2026-01-01Z') },
          { serial: 0x1234, date: new Date('2026-01-02Z') },
        ],
      }),
    );
    expect(p.revokedSerials).toEqual([5n, 0x1234n]);
    expect(p.thisUpdate.toISOString()).toBe('2026-02-01T00:00:00.000Z');
    expect(p.nextUpdate?.toISOString()).toBe('2026-04-01T00:00:00.000Z');
  });
});

describe("the project's simulated SNP device (agent/simulation/snp-sim.ts)", () => {
  it('its reports verify only with its roots, affirming with its CRL, for report versions 2, 3 and 5', async () => {
    const { mkdtempSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { SimulatedSnpDevice } = await import('../../../../agent/simulation/snp-sim.js');
    const { certificatesFromBytes } = await import('../../../../agent/verify/snp/cert-input.js');
    const dir = mkdtempSync(join(tmpdir(), 'snp-sim-verify-'));
    try {
      const now = new Date();
      const dev = await SimulatedSnpDevice.open(dir, { now });
      const reportData = Buffer.alloc(64, 0xa5);
      for (const version of [2, 3, 5]) {
        const ev = await dev.getExtReport(reportData, { version });
        const input = { report: ev.report, certificates: certificatesFromBytes(ev.certTable), crls: [dev.crl(now)] };
        const res = verifySnpAttestation(input, { at: now, expectedReportData: reportData, simulatedRoots: [dev.roots()] });
        expect(failedNames(res)).toEqual([]);
        expect(res.status).toBe('affirming');
        expect(res.simulated).toBe(true);
        expect(res.claims?.product).toBe('Genoa');
        const untrusted = verifySnpAttestation(input, { at: now });
        expect(untrusted.ok).toBe(false);
        expect(failedNames(untrusted)).toContain('snp.chain.ark'); // its ARK is not AMD's
      }
      const vmpl2 = await dev.getReport(reportData, 2);
      const res = verifySnpAttestation({ report: vmpl2.report, certificates: [vmpl2.vcek] }, { at: now, simulatedRoots: [dev.roots()] });
      expect(failedNames(res)).toEqual(['snp.policy.vmpl']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
