/**
 * DER writer and X.509/CRL builder: encodings checked against util/der.ts and real AMD bytes, and
 * built certificates accepted and verified by Node's X509Certificate (RSA-PSS and ECDSA).
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { X509Certificate, constants, generateKeyPairSync, verify, type KeyObject } from 'node:crypto';
import { CvmError, ParseError } from '../../../agent/errors.js';
import { TAG, children, decodeBitString, decodeInteger, decodeOid, decodeTime, encodedOf, parseDer, readNode, valueOf } from '../../../agent/util/der.js';
import { certificateExtensions } from '../../../agent/formats/x509/extensions.js';
import * as w from '../../../agent/util/der-writer.js';
import {
  authorityKeyIdentifier,
  basicConstraints,
  buildCertificate,
  buildCrl,
  crlDistributionPoint,
  keyUsage,
  signatureAlgorithm,
  subjectKeyIdentifier,
  type NameSpec,
} from '../../../agent/simulation/x509-builder.js';
import { AMD_OID, parseAmdCertExtensions } from '../../../agent/formats/snp-abi/index.js';
import { FC_RUNS, vector } from '../../helpers/paths.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('der-writer', () => {
  it.each([
    [0, '020100'],
    [127, '02017f'],
    [128, '02020080'],
    [256, '02020100'],
    [-1, '0201ff'],
    [-128, '020180'],
    [-129, '0202ff7f'],
  ])('integer(%d) = %s', (n, expected) => {
    expect(hex(w.integer(n))).toBe(expected);
    expect(hex(w.integer(BigInt(n)))).toBe(expected);
  });

  it('integer(bytes) is an unsigned magnitude: leading zeros stripped, 0x00 added before a high bit', () => {
    expect(hex(w.integer(Buffer.from('0000ff', 'hex')))).toBe('020200ff');
    expect(hex(w.integer(Buffer.from('000001', 'hex')))).toBe('020101');
    expect(hex(w.integer(new Uint8Array(0)))).toBe('020100');
    expect(hex(w.integer(new Uint8Array(3)))).toBe('020100');
  });

  it('integer(bigint) round-trips through decodeInteger (property)', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -(1n << 600n), max: 1n << 600n }), (n) => decodeInteger(parseDer(w.integer(n))) === n),
      { numRuns: FC_RUNS },
    );
  });

  it('oid round-trips through decodeOid, including the AMD arcs and large arcs (property)', () => {
    expect(hex(w.oid('1.3.6.1.4.1.3704.1.3.8'))).toBe('060a2b060104019c78010308');
    expect(decodeOid(parseDer(w.oid('2.999.1')))).toBe('2.999.1');
    const arb = fc
      .tuple(fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 39 }), fc.array(fc.integer({ min: 0, max: 0x1fffff }), { maxLength: 8 }))
      .map(([a, b, rest]) => [a, b, ...rest].join('.'));
    fc.assert(
      fc.property(arb, (o) => decodeOid(parseDer(w.oid(o))) === o),
      { numRuns: FC_RUNS },
    );
    expect(() => w.oid('1.40')).toThrow(CvmError);
    expect(() => w.oid('3.1')).toThrow(CvmError);
    expect(() => w.oid('1')).toThrow(CvmError);
  });

  it('long-form lengths are minimal and readable by readNode', () => {
    for (const n of [0, 127, 128, 255, 256, 65535, 65536]) {
      const enc = w.octetString(Buffer.alloc(n, 7));
      const node = parseDer(enc);
      expect(node.end - node.valueStart).toBe(n);
      const lenBytes = node.valueStart - 1;
      expect(lenBytes).toBe(n < 128 ? 1 : n < 256 ? 2 : n < 65536 ? 3 : 4);
    }
  });

  it('times: UTCTime through 2049, GeneralizedTime from 2050, both decode back (seconds precision)', () => {
    const t1 = new Date(Date.UTC(2049, 11, 31, 23, 59, 59, 999));
    const t2 = new Date(Date.UTC(2050, 0, 1, 0, 0, 0));
    expect(w.x509Time(t1)[0]).toBe(TAG.UTC_TIME);
    expect(w.x509Time(t2)[0]).toBe(TAG.GENERALIZED_TIME);
    expect(w.utcTime(t1).subarray(2).toString()).toBe('491231235959Z');
    expect(decodeTime(parseDer(w.x509Time(t1))).getTime()).toBe(t1.getTime() - 999);
    expect(decodeTime(parseDer(w.x509Time(t2))).getTime()).toBe(t2.getTime());
    expect(
      w
        .generalizedTime(new Date(Date.UTC(1949, 0, 2)))
        .subarray(2)
        .toString(),
    ).toBe('19490102000000Z');
    expect(() => w.utcTime(new Date(Date.UTC(2050, 0, 1)))).toThrow(CvmError);
    expect(() => w.x509Time(new Date(Number.NaN))).toThrow(CvmError);
  });

  it('strings, booleans, null, bit strings, context tags', () => {
    expect(hex(w.boolean(true))).toBe('0101ff');
    expect(hex(w.boolean(false))).toBe('010100');
    expect(hex(w.nullValue())).toBe('0500');
    expect(hex(w.utf8String('é'))).toBe('0c02c3a9');
    expect(hex(w.printableString('US'))).toBe('13025553');
    expect(() => w.printableString('a@b')).toThrow(CvmError);
    expect(hex(w.ia5String('ab'))).toBe('16026162');
    expect(() => w.ia5String('é')).toThrow(CvmError);
    expect(hex(w.bitString(Buffer.from([0xab])))).toBe('030200ab');
    expect(hex(decodeBitString(parseDer(w.bitString(Buffer.from([1, 2])))))).toBe('0102');
    expect(hex(w.namedBits([5, 6]))).toBe('03020106'); // keyCertSign | cRLSign, as on CA certificates
    expect(hex(w.namedBits([0]))).toBe('03020780'); // digitalSignature
    expect(hex(w.namedBits([0, 8]))).toBe('0303078080');
    expect(hex(w.explicit(0, w.integer(2)))).toBe('a003020102');
    expect(hex(w.implicit(6, Buffer.from('a')))).toBe('860161');
    expect(hex(w.implicit(0, Buffer.from('0500', 'hex'), true))).toBe('a0020500');
    expect(() => w.explicit(31, w.nullValue())).toThrow(CvmError);
  });

  it('SET OF is sorted by encoding (DER)', () => {
    const s = w.set(w.integer(3), w.integer(1), w.integer(2));
    expect(children(parseDer(s)).map((n) => Number(decodeInteger(n)))).toEqual([1, 2, 3]);
  });
});

// RSA-2048 keeps the test fast; the builder does not depend on the modulus size.
const rsaRoot = generateKeyPairSync('rsa', { modulusLength: 2048 });
const rsaOther = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ecCa = generateKeyPairSync('ec', { namedCurve: 'P-384' });
const ecLeaf = generateKeyPairSync('ec', { namedCurve: 'P-384' });
const amdName = (cn: string): NameSpec => ({ OU: 'Engineering', C: 'US', L: 'Santa Clara', ST: 'CA', O: 'Advanced Micro Devices', CN: cn });
const notBefore = new Date(Date.UTC(2024, 0, 1));
const notAfter = new Date(Date.UTC(2049, 0, 1));

function selfSigned(key: { publicKey: KeyObject; privateKey: KeyObject }, signature: 'rsa-pss-sha384' | 'ecdsa-sha384', cn = 'SIMULATED ARK-Genoa') {
  return buildCertificate({
    serial: 0x10000n,
    issuer: amdName(cn),
    subject: amdName(cn),
    notBefore,
    notAfter,
    subjectPublicKey: key.publicKey,
    issuerKey: key.privateKey,
    signature,
    extensions: [basicConstraints({ ca: true }), keyUsage(['keyCertSign', 'cRLSign']), crlDistributionPoint('https://kdsintf.amd.com/vcek/v1/Genoa/crl')],
  });
}

describe('buildCertificate', () => {
  it('RSA-PSS self-signed root: Node accepts it, verify(own key) true, verify(other key) false', () => {
    const der = selfSigned(rsaRoot, 'rsa-pss-sha384');
    const cert = new X509Certificate(der);
    expect(cert.verify(rsaRoot.publicKey)).toBe(true);
    expect(cert.verify(rsaOther.publicKey)).toBe(false);
    expect(cert.ca).toBe(true);
    expect(cert.subject).toBe('OU=Engineering\nC=US\nL=Santa Clara\nST=CA\nO=Advanced Micro Devices\nCN=SIMULATED ARK-Genoa');
    expect(cert.serialNumber).toBe('010000');
    expect(new Date(cert.validFrom).getTime()).toBe(notBefore.getTime());
    expect(new Date(cert.validTo).getTime()).toBe(notAfter.getTime());
    expect(cert.checkIssued(cert)).toBe(true);
  });

  it('RSA-PSS AlgorithmIdentifier is byte-identical to the one in a 2024+ AMD VCEK (sha384, mgf1-sha384, salt 48)', () => {
    const amd = vector('snp/virtee_vcek_turin.der');
    const [, amdAlg] = children(parseDer(amd));
    expect(hex(signatureAlgorithm('rsa-pss-sha384'))).toBe(hex(encodedOf(amdAlg!)));
    const ours = children(parseDer(selfSigned(rsaRoot, 'rsa-pss-sha384')));
    expect(hex(encodedOf(ours[1]!))).toBe(hex(encodedOf(amdAlg!)));
    // and the tbsCertificate's inner signature field matches the outer one
    expect(hex(encodedOf(children(ours[0]!)[2]!))).toBe(hex(encodedOf(amdAlg!)));
  });

  it('the RSA-PSS signature really uses salt 48 / SHA-384 (verified independently with node:crypto)', () => {
    const der = selfSigned(rsaRoot, 'rsa-pss-sha384');
    const [tbs, , sig] = children(parseDer(der));
    const ok = (saltLength: number) =>
      verify('sha384', encodedOf(tbs!), { key: rsaRoot.publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength }, decodeBitString(sig!));
    expect(ok(48)).toBe(true);
    expect(ok(32)).toBe(false);
  });

  it('ECDSA P-384 chain: CA → leaf verifies; the leaf does not verify under another key', () => {
    const ca = new X509Certificate(selfSigned(ecCa, 'ecdsa-sha384', 'SIMULATED GPU Root'));
    const leafDer = buildCertificate({
      serial: 7,
      issuer: amdName('SIMULATED GPU Root'),
      subject: { CN: 'SIMULATED GPU leaf', O: 'NVIDIA' },
      notBefore,
      notAfter: new Date(Date.UTC(2099, 0, 1)), // GeneralizedTime path
      subjectPublicKey: ecLeaf.publicKey,
      issuerKey: ecCa.privateKey,
      signature: 'ecdsa-sha384',
      extensions: [basicConstraints({ ca: false }), keyUsage(['digitalSignature'])],
    });
    const leaf = new X509Certificate(leafDer);
    expect(ca.verify(ecCa.publicKey)).toBe(true);
    expect(leaf.verify(ca.publicKey)).toBe(true);
    expect(leaf.verify(ecLeaf.publicKey)).toBe(false);
    expect(leaf.checkIssued(ca)).toBe(true);
    expect(leaf.ca).toBe(false);
    expect(new Date(leaf.validTo).getUTCFullYear()).toBe(2099);
    expect(leaf.publicKey.asymmetricKeyDetails?.namedCurve).toBe('secp384r1');
  });

  it('RSA-PSS issuer over an EC leaf (the AMD ASK → VCEK shape)', () => {
    const leaf = new X509Certificate(
      buildCertificate({
        serial: 0,
        issuer: amdName('SIMULATED SEV-Genoa'),
        subject: amdName('SEV-VCEK'),
        notBefore,
        notAfter,
        subjectPublicKey: ecLeaf.publicKey,
        issuerKey: rsaRoot.privateKey,
        signature: 'rsa-pss-sha384',
      }),
    );
    expect(leaf.verify(rsaRoot.publicKey)).toBe(true);
    expect(leaf.serialNumber).toMatch(/^0+$/); // AMD VCEKs have serial 0 too
  });

  it('extensions come out as given (critical flags, key ids, CRL DP), readable by certificateExtensions', () => {
    const der = buildCertificate({
      serial: Buffer.from('00ff01', 'hex'),
      issuer: { CN: 'i' },
      subject: { CN: 's', serialNumber: 'ABC123' },
      notBefore,
      notAfter,
      subjectPublicKey: ecLeaf.publicKey,
      issuerKey: ecCa.privateKey,
      signature: 'ecdsa-sha384',
      extensions: [
        basicConstraints({ ca: true, pathLen: 0 }),
        keyUsage(['keyCertSign']),
        subjectKeyIdentifier(Buffer.alloc(20, 1)),
        authorityKeyIdentifier(Buffer.alloc(20, 2)),
        crlDistributionPoint('https://kdsintf.amd.com/vcek/v1/Milan/crl'),
        { oid: '1.2.3.4', value: Buffer.from('raw bytes, not DER') },
      ],
    });
    const cert = new X509Certificate(der);
    expect(cert.serialNumber).toBe('FF01');
    expect(cert.subject).toContain('serialNumber=ABC123');
    const ext = certificateExtensions(der);
    expect(ext.get('2.5.29.19')).toEqual({ critical: true, value: Buffer.from('30060101ff020100', 'hex') });
    expect(ext.get('2.5.29.15')?.critical).toBe(true);
    expect(ext.get('2.5.29.14')?.critical).toBe(false);
    expect(Buffer.from(ext.get('1.2.3.4')!.value).toString()).toBe('raw bytes, not DER');
    expect(cert.infoAccess).toBeUndefined();
    // CRL DP structure as on AMD ASKs: SEQ { SEQ { [0] { [0] { [6] uri } } } }
    const dp = Buffer.from(ext.get('2.5.29.31')!.value);
    const amdAsk = vector('snp/ask_ark_milan.pem').toString();
    const askDer = Buffer.from(new X509Certificate(amdAsk.slice(0, amdAsk.indexOf('-----END CERTIFICATE-----') + 25)).raw);
    expect(hex(dp)).toBe(hex(certificateExtensions(askDer).get('2.5.29.31')!.value));
  });

  it('rejects mismatched keys, inverted validity, duplicate extensions, negative serials with typed errors', () => {
    const base = {
      serial: 1,
      issuer: { CN: 'a' },
      subject: { CN: 'b' },
      notBefore,
      notAfter,
      subjectPublicKey: ecLeaf.publicKey,
      issuerKey: ecCa.privateKey,
      signature: 'ecdsa-sha384' as const,
    };
    const bad = [
      { ...base, signature: 'rsa-pss-sha384' as const },
      { ...base, issuerKey: rsaRoot.privateKey },
      { ...base, issuerKey: ecCa.publicKey },
      { ...base, subjectPublicKey: ecLeaf.privateKey },
      { ...base, notBefore: notAfter, notAfter: notBefore },
      { ...base, serial: -1 },
      { ...base, extensions: [keyUsage(['cRLSign']), keyUsage(['cRLSign'])] },
      { ...base, subject: { CN: 'x', C: 'ü' } },
      { ...base, signature: 'rsa-sha256' as never },
    ];
    for (const spec of bad) expect(() => buildCertificate(spec)).toThrow(CvmError);
    expect(() => basicConstraints({ ca: false, pathLen: 1 })).toThrow(CvmError);
    expect(() => keyUsage(['bogus' as never])).toThrow(CvmError);
    expect(() => crlDistributionPoint('has space')).toThrow(CvmError);
  });
});

describe('AMD extension layouts over built certificates (hwID encodings and sizes)', () => {
  const amdCert = (hw: Uint8Array | undefined, extra: Array<{ oid: string; value: Uint8Array }> = []) =>
    buildCertificate({
      serial: 0,
      issuer: amdName('SIMULATED SEV-Genoa'),
      subject: amdName('SEV-VCEK'),
      notBefore,
      notAfter,
      subjectPublicKey: ecLeaf.publicKey,
      issuerKey: ecCa.privateKey,
      signature: 'ecdsa-sha384',
      extensions: [
        { oid: AMD_OID.structVersion, value: w.integer(0) },
        { oid: AMD_OID.productName, value: w.ia5String('Genoa') },
        { oid: AMD_OID.blSpl, value: w.integer(10) },
        { oid: AMD_OID.teeSpl, value: w.integer(0) },
        { oid: AMD_OID.snpSpl, value: w.integer(23) },
        { oid: AMD_OID.ucodeSpl, value: w.integer(219) },
        ...(hw === undefined ? [] : [{ oid: AMD_OID.hwId, value: hw }]),
        ...extra,
      ],
    });

  it('raw 64 / raw 8 / OCTET STRING-wrapped 64 and 8 byte hwIDs decode', () => {
    const id64 = Buffer.alloc(64, 0xa5);
    const id8 = Buffer.alloc(8, 0x5a);
    expect(parseAmdCertExtensions(amdCert(id64)).hwId).toEqual(id64);
    expect(parseAmdCertExtensions(amdCert(id8)).hwId).toEqual(id8);
    expect(parseAmdCertExtensions(amdCert(w.octetString(id64))).hwId).toEqual(id64);
    expect(parseAmdCertExtensions(amdCert(w.octetString(id8))).hwId).toEqual(id8);
    const e = parseAmdCertExtensions(amdCert(id64));
    expect(e).toMatchObject({ productName: 'Genoa', product: 'Genoa', structVersion: 0, blSpl: 10, teeSpl: 0, snpSpl: 23, ucodeSpl: 219 });
  });

  it.each([0, 7, 9, 32, 63, 65])('a %d-byte hwID (raw or wrapped) is a ParseError', (n) => {
    expect(() => parseAmdCertExtensions(amdCert(Buffer.alloc(n, 1)))).toThrow(ParseError);
    expect(() => parseAmdCertExtensions(amdCert(w.octetString(Buffer.alloc(n, 1))))).toThrow(ParseError);
  });

  it('wrong value types are ParseErrors: string SPL, INTEGER productName', () => {
    expect(() => parseAmdCertExtensions(amdCert(undefined, [{ oid: AMD_OID.fmcSpl, value: w.utf8String('1') }]))).toThrow(/fmcSpl/);
    expect(() => parseAmdCertExtensions(amdCert(undefined, [{ oid: AMD_OID.cspId, value: w.integer(1) }]))).toThrow(/cspId/);
    expect(() => parseAmdCertExtensions(amdCert(undefined, [{ oid: AMD_OID.spl4, value: Buffer.from('0201', 'hex') }]))).toThrow(ParseError);
  });
});

describe('buildCrl', () => {
  it('builds a v2 CRL whose signature verifies (RSA-PSS) and lists the revoked serials', () => {
    const thisUpdate = new Date(Date.UTC(2025, 5, 1));
    const nextUpdate = new Date(Date.UTC(2025, 6, 1));
    const der = buildCrl({
      issuer: amdName('SIMULATED ARK-Genoa'),
      issuerKey: rsaRoot.privateKey,
      signature: 'rsa-pss-sha384',
      thisUpdate,
      nextUpdate,
      revoked: [
        { serial: 0x10001n, date: new Date(Date.UTC(2025, 4, 1)) },
        { serial: Buffer.from('ff', 'hex'), date: new Date(Date.UTC(2025, 4, 2)) },
      ],
      crlNumber: 5,
    });
    const [tbs, alg, sig] = children(parseDer(der));
    expect(hex(encodedOf(alg!))).toBe(hex(signatureAlgorithm('rsa-pss-sha384')));
    expect(verify('sha384', encodedOf(tbs!), { key: rsaRoot.publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 48 }, decodeBitString(sig!))).toBe(
      true,
    );
    expect(
      verify('sha384', encodedOf(tbs!), { key: rsaOther.publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 48 }, decodeBitString(sig!)),
    ).toBe(false);
    const f = children(tbs!);
    expect(decodeInteger(f[0]!)).toBe(1n); // v2
    expect(decodeTime(f[3]!).getTime()).toBe(thisUpdate.getTime());
    expect(decodeTime(f[4]!).getTime()).toBe(nextUpdate.getTime());
    expect(children(f[5]!).map((e) => decodeInteger(children(e)[0]!))).toEqual([0x10001n, 0xffn]);
    expect(f[6]!.tag).toBe(0xa0);
    const crlNumberExt = children(children(f[6]!)[0]!)[0]!;
    expect(decodeOid(children(crlNumberExt)[0]!)).toBe('2.5.29.20');
    expect(decodeInteger(readNode(valueOf(children(crlNumberExt)[1]!)))).toBe(5n);
  });

  it('an ECDSA CRL with no revocations omits revokedCertificates and verifies', () => {
    const der = buildCrl({
      issuer: { CN: 'SIMULATED GPU Root' },
      issuerKey: ecCa.privateKey,
      signature: 'ecdsa-sha384',
      thisUpdate: notBefore,
      nextUpdate: notAfter,
      revoked: [],
    });
    const [tbs, , sig] = children(parseDer(der));
    expect(children(tbs!).length).toBe(5);
    expect(verify('sha384', encodedOf(tbs!), ecCa.publicKey, decodeBitString(sig!))).toBe(true);
  });

  it('rejects inverted update times', () => {
    expect(() =>
      buildCrl({ issuer: { CN: 'x' }, issuerKey: ecCa.privateKey, signature: 'ecdsa-sha384', thisUpdate: notAfter, nextUpdate: notBefore, revoked: [] }),
    ).toThrow(CvmError);
  });
});
