/**
 * Tiny X.509 certificate and CRL builder (RFC 5280) over util/der-writer.ts, for SIMULATED
 * evidence (test roots, simulated VCEKs and GPU chains) and tests. It signs with node:crypto.
 * RSA-PSS uses SHA-384 / MGF1-SHA-384 / salt 48, with the explicit RSASSA-PSS-params
 * AlgorithmIdentifier AMD's certificates carry (AMD #57230; RFC 4055 §3.1).
 */
import { constants, sign, type KeyObject } from 'node:crypto';
import { CvmError } from '../errors.js';
import {
  bitString,
  boolean,
  explicit,
  implicit,
  integer,
  namedBits,
  nullValue,
  octetString,
  oid,
  printableString,
  sequence,
  set,
  utf8String,
  x509Time,
} from './der-writer.js';

export type SignatureScheme = 'rsa-pss-sha384' | 'ecdsa-sha384';

/** Simple distinguished name; attributes are emitted in the object's key order, one per RDN. */
export interface NameSpec {
  CN: string;
  O?: string;
  OU?: string;
  C?: string;
  L?: string;
  ST?: string;
  serialNumber?: string;
}

export interface ExtensionSpec {
  oid: string;
  critical?: boolean;
  /** The extnValue contents (the DER of the extension's own value, or raw bytes for AMD hwID). */
  value: Uint8Array;
}

export interface CertificateSpec {
  /** Non-negative; bytes are an unsigned big-endian magnitude. */
  serial: bigint | number | Uint8Array;
  issuer: NameSpec;
  subject: NameSpec;
  notBefore: Date;
  notAfter: Date;
  subjectPublicKey: KeyObject;
  extensions?: ExtensionSpec[];
  issuerKey: KeyObject;
  signature: SignatureScheme;
}

export interface CrlSpec {
  issuer: NameSpec;
  issuerKey: KeyObject;
  signature: SignatureScheme;
  thisUpdate: Date;
  nextUpdate: Date;
  revoked: Array<{ serial: bigint | number | Uint8Array; date: Date }>;
  /** cRLNumber extension (RFC 5280 §5.2.3) when given. */
  crlNumber?: bigint | number;
}

/** RFC 4519 / X.520 attribute type OIDs. */
const NAME_OIDS: Record<keyof NameSpec, string> = {
  CN: '2.5.4.3',
  serialNumber: '2.5.4.5',
  C: '2.5.4.6',
  L: '2.5.4.7',
  ST: '2.5.4.8',
  O: '2.5.4.10',
  OU: '2.5.4.11',
};

export const OIDS = {
  sha384: '2.16.840.1.101.3.4.2.2',
  mgf1: '1.2.840.113549.1.1.8',
  rsassaPss: '1.2.840.113549.1.1.10',
  ecdsaWithSha384: '1.2.840.10045.4.3.3',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  subjectKeyIdentifier: '2.5.29.14',
  authorityKeyIdentifier: '2.5.29.35',
  crlDistributionPoints: '2.5.29.31',
  crlNumber: '2.5.29.20',
} as const;

function invalid(message: string): never {
  throw new CvmError('ERR_INVALID_ARGUMENT', `x509 builder: ${message}`);
}

export function encodeName(name: NameSpec): Buffer {
  if (typeof name?.CN !== 'string') invalid('a name needs a CN');
  const rdns: Buffer[] = [];
  for (const [key, value] of Object.entries(name)) {
    if (value === undefined) continue;
    const type = NAME_OIDS[key as keyof NameSpec];
    if (type === undefined) invalid(`unsupported name attribute "${key}"`);
    // countryName and serialNumber are PrintableString (RFC 5280 App. A); others UTF8String.
    const encoded = key === 'C' || key === 'serialNumber' ? printableString(value) : utf8String(value);
    rdns.push(set(sequence(oid(type), encoded)));
  }
  return sequence(...rdns);
}

/** AlgorithmIdentifier for the scheme. PSS: RSASSA-PSS-params {sha384, mgf1(sha384), salt 48}, trailer DEFAULT omitted. */
export function signatureAlgorithm(scheme: SignatureScheme): Buffer {
  if (scheme === 'ecdsa-sha384') return sequence(oid(OIDS.ecdsaWithSha384)); // parameters absent (RFC 5758 §3.2)
  if (scheme === 'rsa-pss-sha384') {
    const sha384 = sequence(oid(OIDS.sha384), nullValue());
    return sequence(oid(OIDS.rsassaPss), sequence(explicit(0, sha384), explicit(1, sequence(oid(OIDS.mgf1), sha384)), explicit(2, integer(48))));
  }
  return invalid(`unsupported signature scheme "${String(scheme)}"`);
}

function signWith(scheme: SignatureScheme, key: KeyObject, data: Buffer): Buffer {
  if (key.type !== 'private') invalid('the issuer key must be a private key');
  const kind = key.asymmetricKeyType;
  if (scheme === 'ecdsa-sha384') {
    if (kind !== 'ec') invalid(`ecdsa-sha384 needs an EC key, got ${kind}`);
    return sign('sha384', data, { key, dsaEncoding: 'der' }); // X.509 ECDSA-Sig-Value is DER
  }
  if (kind !== 'rsa' && kind !== 'rsa-pss') invalid(`rsa-pss-sha384 needs an RSA key, got ${kind}`);
  // OpenSSL's MGF1 digest defaults to the signature digest (SHA-384).
  return sign('sha384', data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 48 });
}

function serialNumber(serial: bigint | number | Uint8Array): Buffer {
  if (typeof serial !== 'object' && BigInt(serial) < 0n) invalid('serial must not be negative');
  return integer(serial);
}

function encodeExtensions(exts: readonly ExtensionSpec[]): Buffer {
  const seen = new Set<string>();
  return sequence(
    ...exts.map((e) => {
      if (seen.has(e.oid)) invalid(`duplicate extension ${e.oid}`);
      seen.add(e.oid);
      return e.critical ? sequence(oid(e.oid), boolean(true), octetString(e.value)) : sequence(oid(e.oid), octetString(e.value));
    }),
  );
}

/** Build and sign an X.509 v3 certificate; returns DER. */
export function buildCertificate(spec: CertificateSpec): Buffer {
  if (!(spec.notBefore < spec.notAfter)) invalid('notBefore must be before notAfter');
  const algId = signatureAlgorithm(spec.signature);
  const spki = spec.subjectPublicKey.type === 'public' ? spec.subjectPublicKey : invalid('subjectPublicKey must be a public key');
  const fields = [
    explicit(0, integer(2)), // version v3
    serialNumber(spec.serial),
    algId,
    encodeName(spec.issuer),
    sequence(x509Time(spec.notBefore), x509Time(spec.notAfter)),
    encodeName(spec.subject),
    spki.export({ type: 'spki', format: 'der' }),
  ];
  if (spec.extensions !== undefined && spec.extensions.length > 0) fields.push(explicit(3, encodeExtensions(spec.extensions)));
  const tbs = sequence(...fields);
  return sequence(tbs, algId, bitString(signWith(spec.signature, spec.issuerKey, tbs)));
}

/** Build and sign a v2 CRL (RFC 5280 §5.1); returns DER. */
export function buildCrl(spec: CrlSpec): Buffer {
  if (!(spec.thisUpdate < spec.nextUpdate)) invalid('thisUpdate must be before nextUpdate');
  const algId = signatureAlgorithm(spec.signature);
  const fields = [integer(1), algId, encodeName(spec.issuer), x509Time(spec.thisUpdate), x509Time(spec.nextUpdate)];
  if (spec.revoked.length > 0) {
    fields.push(sequence(...spec.revoked.map((r) => sequence(serialNumber(r.serial), x509Time(r.date)))));
  }
  if (spec.crlNumber !== undefined) {
    fields.push(explicit(0, encodeExtensions([{ oid: OIDS.crlNumber, value: integer(spec.crlNumber) }])));
  }
  const tbs = sequence(...fields);
  return sequence(tbs, algId, bitString(signWith(spec.signature, spec.issuerKey, tbs)));
}

// ---- extension helpers -------------------------------------------------------------------------

/** basicConstraints (RFC 5280 §4.2.1.9), critical. */
export function basicConstraints(opts: { ca: boolean; pathLen?: number }): ExtensionSpec {
  const parts: Buffer[] = [];
  if (opts.ca) parts.push(boolean(true)); // cA DEFAULT FALSE: omitted when false (DER)
  if (opts.pathLen !== undefined) {
    if (!opts.ca) invalid('pathLen needs ca: true');
    parts.push(integer(opts.pathLen));
  }
  return { oid: OIDS.basicConstraints, critical: true, value: sequence(...parts) };
}

export type KeyUsageName =
  | 'digitalSignature'
  | 'nonRepudiation'
  | 'keyEncipherment'
  | 'dataEncipherment'
  | 'keyAgreement'
  | 'keyCertSign'
  | 'cRLSign'
  | 'encipherOnly'
  | 'decipherOnly';
const KEY_USAGE_BITS: Record<KeyUsageName, number> = {
  digitalSignature: 0,
  nonRepudiation: 1,
  keyEncipherment: 2,
  dataEncipherment: 3,
  keyAgreement: 4,
  keyCertSign: 5,
  cRLSign: 6,
  encipherOnly: 7,
  decipherOnly: 8,
};

/** keyUsage (RFC 5280 §4.2.1.3), critical. */
export function keyUsage(usages: readonly KeyUsageName[]): ExtensionSpec {
  const bits = usages.map((u) => KEY_USAGE_BITS[u] ?? invalid(`unknown key usage "${u}"`));
  return { oid: OIDS.keyUsage, critical: true, value: namedBits(bits) };
}

/** subjectKeyIdentifier (RFC 5280 §4.2.1.2). */
export function subjectKeyIdentifier(keyId: Uint8Array): ExtensionSpec {
  return { oid: OIDS.subjectKeyIdentifier, value: octetString(keyId) };
}

/** authorityKeyIdentifier with keyIdentifier only (RFC 5280 §4.2.1.1). */
export function authorityKeyIdentifier(keyId: Uint8Array): ExtensionSpec {
  return { oid: OIDS.authorityKeyIdentifier, value: sequence(implicit(0, keyId)) };
}

/** cRLDistributionPoints with one URI (RFC 5280 §4.2.1.13), as on AMD ASK/ARK certificates. */
export function crlDistributionPoint(uri: string): ExtensionSpec {
  // DistributionPoint { [0] distributionPoint { [0] fullName GeneralNames { [6] URI } } }
  if (!/^[\x21-\x7e]+$/.test(uri)) invalid(`"${uri}" is not a URI`);
  const generalName = implicit(6, Buffer.from(uri, 'latin1')); // uniformResourceIdentifier [6] IMPLICIT IA5String
  return { oid: OIDS.crlDistributionPoints, value: sequence(sequence(explicit(0, explicit(0, generalName)))) };
}
