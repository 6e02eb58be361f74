/** The one X.509 parser (formats/x509) and its one cache, over real AMD and NVIDIA certificates. */
import { createPublicKey, X509Certificate } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ParseError } from '../../../../agent/errors.js';
import {
  CERT_CACHE_LIMITS,
  CERT_DECODED_BYTES,
  certificateValidity,
  parseCertificate,
  parseCertificateEager,
} from '../../../../agent/formats/x509/certificate.js';
import { pemBlocks } from '../../../../agent/util/pem.js';
import { clearAllCaches } from '../../../../agent/util/bounded-cache.js';
import { isIssuedBy } from '../../../../agent/verify/x509/cert-signature.js';
import { vector } from '../../../helpers/paths.js';
import { pointOffCurve, truncatedSpki, unknownKeyAlgorithm } from '../../../helpers/damaged-cert.js';

const amd = pemBlocks(vector('snp/ask_ark_genoa.pem').toString('latin1'));
const vcek = pemBlocks(vector('snp/trustee_az-snp-vtpm_vcek-genoa.pem').toString('latin1'));
const gpu = pemBlocks(vector('nvidia/nvtrust/hopper-550/hopperCertChain.txt').toString('latin1'));
const real = [...amd, ...vcek, ...gpu];

describe('parseCertificate', () => {
  it('reports what node:crypto X509Certificate reports, for every real certificate', () => {
    for (const der of real) {
      const c = parseCertificateEager(der);
      const x = new X509Certificate(der);
      expect(c.serial).toBe(BigInt(`0x${x.serialNumber}`));
      expect(c.notBefore.getTime()).toBe(new Date(x.validFrom).getTime());
      expect(c.notAfter.getTime()).toBe(new Date(x.validTo).getTime());
      expect(c.subject).toBe(x.subject.replace(/\n/g, ', '));
      expect(c.subjectCn).toBe(/(?:^|\n)CN=([^\n]*)/.exec(x.subject)![1]);
      expect(c.isCa).toBe(x.ca);
      expect(c.publicKey.equals(x.publicKey)).toBe(true);
      // Taken from OpenSSL's view (eager), it is the key the SubjectPublicKeyInfo imports to.
      expect(c.publicKey.equals(createPublicKey({ key: Buffer.from(c.spki), format: 'der', type: 'spki' }))).toBe(true);
      expect(c.sha256).toBe(x.fingerprint256.replace(/:/g, '').toLowerCase());
      expect(certificateValidity(der)).toEqual({ notBefore: c.notBefore, notAfter: c.notAfter });
      expect(c.sigAlg).toEqual(c.tbsSigAlg);
    }
  });

  it('decodes the AMD and NVIDIA signature algorithms and checks links with one function', () => {
    const [ask, ark] = amd.map((d) => parseCertificate(d));
    expect(ask!.sigAlg.kind).toBe('rsa-pss-sha384');
    expect(isIssuedBy(ask!, ark!)).toBe(true);
    expect(isIssuedBy(ark!, ask!)).toBe(false);
    const chain = gpu.map((d) => parseCertificateEager(d));
    expect(chain[0]!.sigAlg.kind).toBe('ecdsa-sha384');
    for (let i = 0; i + 1 < chain.length; i++) expect(isIssuedBy(chain[i]!, chain[i + 1]!)).toBe(true);
  });

  it('any truncation or trailing byte of a real certificate is a ParseError, never a crash', () => {
    fc.assert(
      fc.property(fc.constantFrom(...real), fc.nat(), (der, n) => {
        const cut = der.subarray(0, n % der.length);
        expect(() => parseCertificate(cut)).toThrow(ParseError);
        expect(() => certificateValidity(cut)).toThrow(ParseError);
        expect(() => parseCertificate(Buffer.concat([der, Buffer.from([n & 0xff])]))).toThrow(ParseError);
      }),
    );
  });

  it('a corrupted byte is a ParseError or a certificate, nothing else', () => {
    fc.assert(
      fc.property(fc.constantFrom(...real), fc.nat(), fc.integer({ min: 1, max: 255 }), (der, at, x) => {
        const bad = Buffer.from(der);
        bad[at % bad.length]! ^= x;
        try {
          parseCertificateEager(bad);
        } catch (err) {
          expect(err).toBeInstanceOf(ParseError);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('is cached by the DER bytes (a private copy), in one bounded cache', () => {
    const copy = Buffer.from(gpu[0]!);
    const a = parseCertificate(copy);
    copy.fill(0);
    expect(parseCertificate(gpu[0]!)).toBe(a);
    expect(a.der.equals(gpu[0]!)).toBe(true);
    expect(CERT_CACHE_LIMITS).toEqual({ maxEntries: 4096, maxBytes: 64 * 1024 * 1024 });
  });

  it('its byte bound counts what a decoded certificate costs, so it binds before the entry bound', () => {
    // Distinct DER by the last two signature bytes (parsing does not check the signature).
    const variant = (i: number) => {
      const d = Buffer.from(gpu[0]!);
      d[d.length - 1] = i & 0xff;
      d[d.length - 2] = (i >> 8) & 0xff;
      return d;
    };
    const perEntry = 2 * gpu[0]!.length + CERT_DECODED_BYTES;
    const fits = Math.floor(CERT_CACHE_LIMITS.maxBytes / (perEntry + gpu[0]!.length));
    expect(fits).toBeLessThan(CERT_CACHE_LIMITS.maxEntries);
    const first = parseCertificate(variant(0));
    for (let i = 1; i <= fits + 10; i++) parseCertificate(variant(i));
    expect(parseCertificate(variant(0))).not.toBe(first); // evicted by bytes, with fewer than maxEntries entries
    expect(parseCertificate(variant(fits + 10))).toBe(parseCertificate(variant(fits + 10)));
  });
});

describe('publicKeyProblem (lazy SPKI import, no throw)', () => {
  const vcek = vector('snp/trustee_snp_test-vcek.der');
  it('undefined for a good key; OpenSSL reason for an off-curve point, a truncated key, an unknown algorithm', () => {
    expect(parseCertificate(vcek).publicKeyProblem).toBeUndefined();
    for (const der of [pointOffCurve(vcek), truncatedSpki(vcek, 7), unknownKeyAlgorithm(vcek)]) {
      const cert = parseCertificate(der); // the DER parses
      expect(cert.publicKeyProblem).toMatch(/unusable public key/);
      expect(() => cert.publicKey).toThrow(ParseError);
    }
  });

  it('the same when OpenSSL parsed the certificate first (its key is taken only when it has one)', () => {
    for (const der of [pointOffCurve(vcek), truncatedSpki(vcek, 7), unknownKeyAlgorithm(vcek)]) {
      clearAllCaches();
      const cert = parseCertificate(der);
      let openssl = true;
      try {
        void cert.x509;
      } catch {
        openssl = false; // OpenSSL refuses the whole certificate: the lazy import alone judges the key
      }
      expect(cert.publicKeyProblem).toMatch(/unusable public key/);
      expect(() => cert.publicKey).toThrow(ParseError);
      expect(() => parseCertificateEager(der)).toThrow(ParseError);
      if (openssl) expect(() => cert.x509.publicKey).toThrow();
    }
  });
});
