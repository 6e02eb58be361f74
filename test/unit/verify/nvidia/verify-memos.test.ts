/**
 * The per-verdict memos (issue 12, verification cost): the RIM text -> SHA-256 memo and the trust
 * anchor digest memo (agent/verify/nvidia/rim-cache.ts), the OCSP CertID hashes kept per issuer
 * certificate (agent/verify/nvidia/ocsp-check.ts) and the NVSwitch detector fed the already-parsed
 * opaque fields. Each answers exactly what the unmemoised computation does, and a different input
 * (same length, one character or byte apart, a mutated buffer) never gets a stale entry.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rimTextDigest, rootDigest } from '../../../../agent/verify/nvidia/rim-cache.js';
import { issuerCertIdHashes } from '../../../../agent/verify/nvidia/ocsp-check.js';
import { nvswitchEvidenceReason } from '../../../../agent/verify/nvidia/nvswitch-detect.js';
import { parseGpuReport } from '../../../../agent/verify/nvidia/gpu-report.js';
import { parseCertificate } from '../../../../agent/formats/x509/certificate.js';
import { buildSimulatedReport, loadOrCreateSimGpuIdentity, type SimGpuIdentity } from '../../../../agent/simulation/gpu-sim.js';
import { clearAllCaches } from '../../../../agent/util/bounded-cache.js';

const sha256 = (x: string | Buffer) => createHash('sha256').update(x).digest('hex');

let id: SimGpuIdentity;
beforeAll(async () => {
  id = await loadOrCreateSimGpuIdentity(mkdtempSync(join(tmpdir(), 'memo-test-')), 2);
});

describe('RIM text digest memo', () => {
  it('answers SHA-256 of the exact text; a same-length text one character apart is a different key', () => {
    const a = `<rim>${'x'.repeat(40_000)}a</rim>`;
    const b = `<rim>${'x'.repeat(40_000)}b</rim>`;
    expect(rimTextDigest(a)).toBe(sha256(a));
    expect(rimTextDigest(b)).toBe(sha256(b));
    expect(rimTextDigest(a)).toBe(sha256(a));
    // An equal text built anew (another string object) hits the same entry, with the same answer.
    const a2 = ['<rim>', 'x'.repeat(40_000), 'a</rim>'].join('');
    expect(rimTextDigest(a2)).toBe(sha256(a));
  });

  it('a non-ASCII text is hashed as UTF-8, as before', () => {
    const t = '<rim>é</rim>';
    expect(rimTextDigest(t)).toBe(createHash('sha256').update(Buffer.from(t, 'utf8')).digest('hex'));
    clearAllCaches();
    expect(rimTextDigest(t)).toBe(createHash('sha256').update(Buffer.from(t, 'utf8')).digest('hex'));
  });
});

describe('trust anchor digest memo', () => {
  it('a buffer mutated after hashing is hashed again (never a stale digest)', () => {
    const der = Buffer.from(id.rimRoot.der);
    expect(rootDigest(der).toString('hex')).toBe(sha256(der));
    der[der.length - 1] = der[der.length - 1]! ^ 1;
    expect(rootDigest(der).toString('hex')).toBe(sha256(der));
    der[der.length - 1] = der[der.length - 1]! ^ 1;
    expect(rootDigest(der).toString('hex')).toBe(sha256(der));
  });
});

describe('OCSP CertID hashes per issuer certificate', () => {
  it('each issuer and each algorithm gets its own hashes of its own Name and key', () => {
    const issuers = [id.ica, id.identity, id.root, ...id.gpus.map((g) => g.brom)].map((c) => parseCertificate(c.der));
    for (const alg of ['sha1', 'sha256', 'sha384']) {
      for (const c of issuers) {
        const h = issuerCertIdHashes(c, alg);
        expect(h.nameHash.toString('hex')).toBe(createHash(alg).update(c.subjectDer).digest('hex'));
        expect(h.keyHash.toString('hex')).toBe(createHash(alg).update(c.publicKeyBits).digest('hex'));
      }
    }
    const [a, b] = [issuerCertIdHashes(issuers[3]!, 'sha256'), issuerCertIdHashes(issuers[4]!, 'sha256')];
    expect(a.keyHash.equals(b.keyHash)).toBe(false);
  });
});

describe('NVSwitch detection with the parsed opaque fields', () => {
  it('gives the same answer as parsing the report itself', () => {
    const bytes = buildSimulatedReport(id, 0, { nonce: Buffer.alloc(32, 1) });
    const fields = parseGpuReport(bytes).opaque.fields;
    expect(nvswitchEvidenceReason(bytes, undefined, undefined, fields)).toBe(nvswitchEvidenceReason(bytes, undefined));
    expect(nvswitchEvidenceReason(bytes, undefined, undefined, fields)).toBeUndefined();
  });

  it('a switch-only field among the given fields is refused by name', () => {
    const bytes = buildSimulatedReport(id, 0, { nonce: Buffer.alloc(32, 1) });
    const fields = [...parseGpuReport(bytes).opaque.fields, { type: 26, name: 'RESERVED_26', offset: 0, value: new Uint8Array(0) }];
    expect(nvswitchEvidenceReason(bytes, undefined, undefined, fields)).toMatch(/SWITCH_GPU_PDIS \(26\)/);
  });
});
