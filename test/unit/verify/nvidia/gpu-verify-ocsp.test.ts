/**
 * Device-chain revocation from OCSP collateral (RFC 6960): responses built here with the DER writer and
 * signed by the simulated chain's CAs (or a delegated responder). Good / revoked / hold / unknown /
 * expired / wrong signer / unauthorised delegate / missing coverage / malformed.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import fc from 'fast-check';
import { FC_RUNS } from '../../../helpers/paths.js';
import { oid, sequence, tlv } from '../../../../agent/util/der-writer.js';
import { buildOcspResponse, type OcspResponseSpec } from '../../../../agent/simulation/ocsp-sim.js';
import { buildCertificate, keyUsage, type NameSpec } from '../../../../agent/simulation/x509-builder.js';
import { buildSimulatedReport, loadOrCreateSimGpuIdentity, simulatedRoots, type SimGpuIdentity } from '../../../../agent/simulation/gpu-sim.js';
import { parsePemChain } from '../../../../agent/verify/nvidia/device-chain.js';
import type { Certificate as ParsedCert } from '../../../../agent/formats/x509/certificate.js';
import { parseOcspResponse } from '../../../../agent/verify/nvidia/ocsp-check.js';
import type { GpuEvidenceRecord } from '../../../../agent/formats/gpu-evidence-record.js';
import { verifyGpuEvidence, type GpuVerifyOptions } from '../../../../agent/attest/verify-and-appraise.js';
import { gpuPolicyFrom } from '../../../../agent/appraise/gpu-policy.js';
import { ParseError } from '../../../../agent/errors.js';

const NOW = new Date('2026-01-10T12:00:00Z');
const HOUR = 3600_000;

/** The shared builder's spec, with the dates defaulting to around NOW. */
type OcspSpec = Omit<OcspResponseSpec, 'thisUpdate' | 'nextUpdate'> & { thisUpdate?: Date; nextUpdate?: Date | null };

/** Test defaults (around NOW) over the shared builder the simulation uses too. */
function buildOcsp(s: OcspSpec): Buffer {
  const { thisUpdate, nextUpdate, ...rest } = s;
  return buildOcspResponse({
    ...rest,
    revokedAt: new Date(NOW.getTime() - 10 * HOUR),
    thisUpdate: thisUpdate ?? new Date(NOW.getTime() - HOUR),
    nextUpdate: nextUpdate === undefined ? new Date(NOW.getTime() + 24 * HOUR) : nextUpdate,
  });
}

let id: SimGpuIdentity;
let chain: ParsedCert[];
let ev: GpuEvidenceRecord;
let base: GpuVerifyOptions;
let keys: KeyObject[];
const ICA_NAME: NameSpec = { CN: 'SIMULATED NVIDIA GH100 Provisioner ICA 1', O: 'NVIDIA Corporation (SIMULATED)' };

/** Good responses for certs 1..3, signed by each issuer. */
const allGood = (over: Partial<OcspSpec>[] = []): Buffer[] =>
  [1, 2, 3].map((i, k) =>
    buildOcsp({ cert: chain[i]!, issuer: chain[i + 1]!, signerKey: keys[i + 1]!, responderName: chain[i + 1]!.subjectDer, ...(over[k] ?? {}) }),
  );

const rev = (opts: GpuVerifyOptions) => verifyGpuEvidence(ev, opts).checks.find((c) => c.name === 'gpu.revocation')!;

beforeAll(async () => {
  id = await loadOrCreateSimGpuIdentity(mkdtempSync(join(tmpdir(), 'ocsp-')), 1);
  chain = parsePemChain(id.gpus[0]!.chainPem);
  keys = [id.gpus[0]!.leaf.key, id.gpus[0]!.brom.key, id.ica.key, id.identity.key, id.root.key];
  const nonce = Buffer.alloc(32, 3);
  ev = { report: buildSimulatedReport(id, 0, { nonce }), certChainPem: id.gpus[0]!.chainPem };
  base = { at: NOW, expectedNonce: nonce, skip: new Set(['rim']), simulatedRoots: simulatedRoots(id) };
});

describe('OCSP revocation of the device chain', () => {
  it('all three intermediates good → pass; claims record the states', () => {
    const r = verifyGpuEvidence(ev, { ...base, ocsp: allGood() });
    const c = r.checks.find((x) => x.name === 'gpu.revocation')!;
    expect(c).toMatchObject({ ok: true });
    expect(c.warning).toBeUndefined();
    expect(c.detail).toContain('certificate 1 (GH100 A01 GSP BROM): good');
    expect(r.claims?.revocation.map((x) => x.state)).toEqual(['good', 'good', 'good']);
  });

  it('SHA-384 CertIDs work too (nvtrust uses SHA-384, the C++ SDK SHA-1)', () => {
    expect(rev({ ...base, ocsp: allGood([{ hash: 'sha384' }, { hash: 'sha384' }, { hash: 'sha384' }]) }).ok).toBe(true);
  });

  it('revoked → fail with time and reason', () => {
    const c = rev({ ...base, ocsp: allGood([{ status: 'revoked', reason: 1 }]) });
    expect(c).toMatchObject({ ok: false, detail: expect.stringContaining('certificate 1 (GH100 A01 GSP BROM): revoked at') });
    expect(c.detail).toContain('keyCompromise');
  });

  it('certificateHold fails unless the policy allows hold', () => {
    const ocsp = allGood([{}, { status: 'revoked', reason: 6 }]);
    expect(rev({ ...base, ocsp }).ok).toBe(false);
    expect(rev({ ...base, ocsp, policy: gpuPolicyFrom({ allowHoldCert: true }) })).toMatchObject({
      ok: true,
      warning: true,
      detail: expect.stringContaining('tolerated by policy allowHoldCert'),
    });
  });

  it('unknown → fail', () => {
    expect(rev({ ...base, ocsp: allGood([{}, {}, { status: 'unknown' }]) })).toMatchObject({ ok: false, detail: expect.stringContaining('does not know') });
  });

  it('expired response fails; a grace period accepts it; no nextUpdate means thisUpdate + 1 h', () => {
    const stale = allGood([{ thisUpdate: new Date(NOW.getTime() - 48 * HOUR), nextUpdate: new Date(NOW.getTime() - 2 * HOUR) }]);
    expect(rev({ ...base, ocsp: stale })).toMatchObject({ ok: false, detail: expect.stringContaining('response expired') });
    expect(rev({ ...base, ocsp: stale, policy: gpuPolicyFrom({ ocspGraceSeconds: 3 * 3600 }) }).ok).toBe(true);
    const noNext = allGood([{ thisUpdate: new Date(NOW.getTime() - 2 * HOUR), nextUpdate: null }]);
    expect(rev({ ...base, ocsp: noNext }).ok).toBe(false);
    expect(rev({ ...base, ocsp: allGood([{ thisUpdate: new Date(NOW.getTime() - 0.5 * HOUR), nextUpdate: null }]) }).ok).toBe(true);
    const future = allGood([{ thisUpdate: new Date(NOW.getTime() + HOUR) }]);
    expect(rev({ ...base, ocsp: future }).detail).toContain('is after');
  });

  it('a response signed by someone else is unusable', () => {
    const stranger = generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
    expect(rev({ ...base, ocsp: allGood([{ signerKey: stranger }]) })).toMatchObject({ ok: false, detail: expect.stringContaining('OCSP response unusable') });
  });

  it('a delegated responder needs OCSPSigning EKU and issuance by the CA', () => {
    const pair = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const responder = (eku: boolean, issuerKey: KeyObject) =>
      buildCertificate({
        serial: 77n,
        issuer: ICA_NAME,
        subject: { CN: 'SIM OCSP responder' },
        notBefore: new Date('2025-01-01T00:00:00Z'),
        notAfter: new Date('2027-01-01T00:00:00Z'),
        subjectPublicKey: pair.publicKey,
        issuerKey,
        signature: 'ecdsa-sha384',
        extensions: [keyUsage(['digitalSignature']), ...(eku ? [{ oid: '2.5.29.37', value: sequence(oid('1.3.6.1.5.5.7.3.9')) }] : [])],
      });
    const delegated = (cert: Buffer) => allGood([{ signerKey: pair.privateKey, responderName: parsePemChainFromDer(cert).subjectDer, certs: [cert] }]);
    expect(rev({ ...base, ocsp: delegated(responder(true, id.ica.key)) }).ok).toBe(true);
    expect(rev({ ...base, ocsp: delegated(responder(false, id.ica.key)) }).detail).toContain('lacks the OCSPSigning');
    expect(rev({ ...base, ocsp: delegated(responder(true, id.identity.key)) }).detail).toContain('is not issued by');
  });

  it('responses for only some certificates → warning naming the uncovered ones', () => {
    const c = rev({ ...base, ocsp: allGood().slice(0, 2) });
    expect(c).toMatchObject({ ok: true, warning: true });
    expect(c.detail).toContain('certificate 3 (SIMULATED NVIDIA GH100 Identity): no OCSP response');
  });

  it('no OCSP at all → warning "revocation not checked", never a silent pass; skip → warning', () => {
    expect(rev(base)).toMatchObject({ ok: true, warning: true, detail: expect.stringContaining('revocation not checked') });
    expect(rev({ ...base, ocsp: allGood(), skip: new Set(['rim', 'revocation']) })).toMatchObject({
      warning: true,
      detail: expect.stringContaining('skipped by request'),
    });
  });

  it('malformed OCSP → fail; non-successful status responses are ignored', () => {
    expect(rev({ ...base, ocsp: [Buffer.from([0x30, 0x03, 0x0a, 0x01])] })).toMatchObject({ ok: false, detail: expect.stringContaining('malformed OCSP') });
    const tryLater = sequence(tlv(0x0a, Buffer.from([3])));
    expect(parseOcspResponse(tryLater).responseStatus).toBe(3);
    expect(rev({ ...base, ocsp: [tryLater] }).warning).toBe(true);
  });

  it('the OCSP parser never throws anything but ParseError', () => {
    const good = allGood()[0]!;
    fc.assert(
      fc.property(
        fc.array(fc.record({ pos: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 4 }),
        fc.option(fc.nat(), { nil: undefined }),
        (edits, cut) => {
          let b = Buffer.from(good);
          for (const e of edits) b[e.pos % b.length] = e.byte;
          if (cut !== undefined) b = b.subarray(0, cut % (b.length + 1));
          try {
            parseOcspResponse(b);
          } catch (err) {
            if (!(err instanceof ParseError)) throw err;
          }
        },
      ),
      { numRuns: FC_RUNS },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (b) => {
        try {
          parseOcspResponse(b);
        } catch (err) {
          if (!(err instanceof ParseError)) throw err;
        }
      }),
      { numRuns: FC_RUNS },
    );
  });
});

function parsePemChainFromDer(der: Buffer): ParsedCert {
  return parsePemChain(`-----BEGIN CERTIFICATE-----\n${der.toString('base64')}\n-----END CERTIFICATE-----\n`)[0]!;
}
