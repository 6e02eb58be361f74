/**
 * Just enough X.509 for the AMD chain, parsed once with the strict DER reader: the signed TBS bytes,
 * the signature algorithm (decoded, never byte-compared: AMD certs use two encodings of the same
 * RSASSA-PSS parameters, reference/snp.md §4.1), serial, names, validity, public key.
 * Signature checks use node:crypto on the TBS bytes so the PSS parameters are the ones we asserted.
 */
import { createPublicKey, verify as cryptoVerify, constants, type KeyObject } from 'node:crypto';
import { ParseError } from '../../errors.js';
import {
  parseDer,
  children,
  childrenAtLeast,
  expectTag,
  decodeOid,
  decodeInteger,
  decodeTime,
  decodeString,
  decodeBitString,
  encodedOf,
  TAG,
  type DerNode,
} from '../../util/der.js';
import { BoundedCache } from '../../util/bounded-cache.js';

const OID = {
  rsassaPss: '1.2.840.113549.1.1.10',
  mgf1: '1.2.840.113549.1.1.8',
  sha384: '2.16.840.1.101.3.4.2.2',
  sha384WithRsa: '1.2.840.113549.1.1.12',
  ecdsaWithSha384: '1.2.840.10045.4.3.3',
  commonName: '2.5.4.3',
} as const;

/**
 * A decoded signature algorithm. 'rsa-pss-sha384' means exactly SHA-384, MGF1-SHA-384, salt 48,
 * trailer 1 (what AMD uses everywhere); any other PSS parameters are 'unsupported'.
 */
export type SigAlg =
  | { kind: 'rsa-pss-sha384' }
  | { kind: 'ecdsa-sha384' }
  | { kind: 'rsa-pkcs1-sha384' }
  | { kind: 'unsupported'; oid: string; reason: string };

export function describeSigAlg(alg: SigAlg): string {
  return alg.kind === 'unsupported' ? `${alg.oid} (${alg.reason})` : alg.kind;
}

function hashOidOf(algId: DerNode): string {
  const [oid] = childrenAtLeast(expectTag(algId, TAG.SEQUENCE, 'AlgorithmIdentifier'), 1, 'AlgorithmIdentifier');
  return decodeOid(oid!);
}

/** Decode an AlgorithmIdentifier (RFC 4055 §3.1 for the RSASSA-PSS-params). */
export function decodeSigAlg(algId: DerNode): SigAlg {
  const parts = childrenAtLeast(expectTag(algId, TAG.SEQUENCE, 'AlgorithmIdentifier'), 1, 'AlgorithmIdentifier');
  const oid = decodeOid(parts[0]!);
  if (oid === OID.ecdsaWithSha384) return parts.length === 1 ? { kind: 'ecdsa-sha384' } : { kind: 'unsupported', oid, reason: 'ECDSA with parameters' };
  if (oid === OID.sha384WithRsa) return { kind: 'rsa-pkcs1-sha384' };
  if (oid !== OID.rsassaPss) return { kind: 'unsupported', oid, reason: 'not RSASSA-PSS/SHA-384' };
  const params = parts[1];
  if (!params || params.tag !== TAG.SEQUENCE) return { kind: 'unsupported', oid, reason: 'RSASSA-PSS without parameters (SHA-1 defaults)' };
  let hash: string | undefined;
  let mgf: string | undefined;
  let mgfHash: string | undefined;
  let salt: bigint | undefined;
  let trailer = 1n;
  for (const p of children(params)) {
    const [inner] = childrenAtLeast(p, 1, 'RSASSA-PSS-params field');
    switch (p.tag) {
      case 0xa0:
        hash = hashOidOf(inner!);
        break;
      case 0xa1: {
        const mg = childrenAtLeast(expectTag(inner!, TAG.SEQUENCE, 'maskGenAlgorithm'), 2, 'maskGenAlgorithm');
        mgf = decodeOid(mg[0]!);
        mgfHash = hashOidOf(mg[1]!);
        break;
      }
      case 0xa2:
        salt = decodeInteger(inner!);
        break;
      case 0xa3:
        trailer = decodeInteger(inner!);
        break;
      default:
        return { kind: 'unsupported', oid, reason: `unknown RSASSA-PSS field 0x${p.tag.toString(16)}` };
    }
  }
  if (hash !== OID.sha384 || mgf !== OID.mgf1 || mgfHash !== OID.sha384 || salt !== 48n || trailer !== 1n) {
    return {
      kind: 'unsupported',
      oid,
      reason: `RSASSA-PSS hash=${hash ?? 'sha1'} mgf=${mgf ?? 'mgf1'}/${mgfHash ?? 'sha1'} salt=${salt ?? 20n} trailer=${trailer}`,
    };
  }
  return { kind: 'rsa-pss-sha384' };
}

export function sameSigAlg(a: SigAlg, b: SigAlg): boolean {
  return a.kind === b.kind && (a.kind !== 'unsupported' || (b.kind === 'unsupported' && a.oid === b.oid && a.reason === b.reason));
}

/** What an issuer signed, how, and the signature: the envelope shared by certificates and CRLs. */
export interface SignedParts {
  der: Uint8Array;
  /** The TBS encoding: exactly the bytes the signature covers. */
  tbs: Uint8Array;
  /** signatureAlgorithm outside the TBS. */
  sigAlg: SigAlg;
  signature: Uint8Array;
}

/**
 * Decode the outer fields of a SIGNED{} structure, Certificate or CertificateList
 * (RFC 5280 §4.1.1.2-3, §5.1.1.2-3). Called after the TBS is parsed, so its errors come first.
 */
export function signedParts(der: Uint8Array, tbsNode: DerNode, algNode: DerNode, sigNode: DerNode): SignedParts {
  return { der, tbs: encodedOf(tbsNode), sigAlg: decodeSigAlg(algNode), signature: decodeBitString(sigNode) };
}

export interface ParsedCert extends SignedParts {
  /** signature inside the TBS; must equal sigAlg (RFC 5280 §4.1.2.3). */
  tbsSigAlg: SigAlg;
  version: number;
  serial: bigint;
  /** Encoded Name bytes (for issuer/subject matching) and the CN for messages. */
  issuerDer: Uint8Array;
  subjectDer: Uint8Array;
  issuerCn: string;
  subjectCn: string;
  notBefore: Date;
  notAfter: Date;
  spki: Uint8Array;
  /** Imported lazily (one import per parsed cert). */
  publicKey(): KeyObject;
}

function commonName(name: DerNode): string {
  for (const rdn of children(expectTag(name, TAG.SEQUENCE, 'Name'))) {
    for (const atv of children(expectTag(rdn, TAG.SET, 'RelativeDistinguishedName'))) {
      const [type, value] = childrenAtLeast(expectTag(atv, TAG.SEQUENCE, 'AttributeTypeAndValue'), 2, 'AttributeTypeAndValue');
      if (decodeOid(type!) === OID.commonName) return decodeString(value!);
    }
  }
  return '';
}

/** Parse one DER certificate. Throws ParseError for anything malformed. */
export function parseCertificate(der: Uint8Array): ParsedCert {
  const cert = expectTag(parseDer(der), TAG.SEQUENCE, 'Certificate');
  const [tbsNode, algNode, sigNode] = childrenAtLeast(cert, 3, 'Certificate');
  const tbsFields = childrenAtLeast(expectTag(tbsNode!, TAG.SEQUENCE, 'TBSCertificate'), 6, 'TBSCertificate');
  let i = 0;
  let version = 1;
  if (tbsFields[0]!.tag === 0xa0) {
    const [v] = childrenAtLeast(tbsFields[0]!, 1, 'version');
    version = Number(decodeInteger(v!)) + 1;
    i = 1;
  }
  const need = (k: number, what: string): DerNode => {
    const n = tbsFields[i + k];
    if (!n) throw new ParseError(`certificate: missing ${what}`, tbsNode!.start);
    return n;
  };
  const serial = decodeInteger(need(0, 'serialNumber'));
  const tbsSigAlg = decodeSigAlg(need(1, 'signature'));
  const issuer = expectTag(need(2, 'issuer'), TAG.SEQUENCE, 'issuer');
  const [nb, na] = childrenAtLeast(expectTag(need(3, 'validity'), TAG.SEQUENCE, 'Validity'), 2, 'Validity');
  const subject = expectTag(need(4, 'subject'), TAG.SEQUENCE, 'subject');
  const spkiNode = expectTag(need(5, 'subjectPublicKeyInfo'), TAG.SEQUENCE, 'SubjectPublicKeyInfo');
  const spki = encodedOf(spkiNode);
  let key: KeyObject | undefined;
  return {
    ...signedParts(der, tbsNode!, algNode!, sigNode!),
    tbsSigAlg,
    version,
    serial,
    issuerDer: encodedOf(issuer),
    subjectDer: encodedOf(subject),
    issuerCn: commonName(issuer),
    subjectCn: commonName(subject),
    notBefore: decodeTime(nb!),
    notAfter: decodeTime(na!),
    spki,
    publicKey() {
      if (!key) {
        try {
          key = createPublicKey({ key: Buffer.from(spki.buffer, spki.byteOffset, spki.byteLength), format: 'der', type: 'spki' });
        } catch (err) {
          throw new ParseError(`certificate "${commonName(subject)}": unusable public key: ${(err as Error).message}`, spkiNode.start);
        }
      }
      return key;
    },
  };
}

// Certificates (VCEKs especially) repeat across verifications of the same machine and are immutable:
// keep a few parsed ones (with their imported key, the costliest step) keyed by their exact DER bytes.
const certCache = new BoundedCache<ParsedCert>({ maxEntries: 32, maxBytes: 32 * 64 * 1024 });

/** parseCertificate with a small LRU keyed by the full DER (a private copy is parsed, so callers may reuse buffers). */
export function parseCertificateCached(der: Uint8Array): ParsedCert {
  const key = Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString('latin1');
  const hit = certCache.get(key);
  if (hit) return hit;
  const cert = parseCertificate(Buffer.from(der));
  // The parsed form holds the DER (and slices of it) plus a key: count the DER twice.
  certCache.set(key, cert, 2 * der.byteLength);
  return cert;
}

/**
 * Verify `signature` over `data` with `key` under a decoded algorithm. Unsupported algorithms and
 * crypto errors (wrong key type, malformed signature) are a failed verification, not an exception.
 */
export function verifyWithAlg(alg: SigAlg, data: Uint8Array, signature: Uint8Array, key: KeyObject): boolean {
  try {
    switch (alg.kind) {
      case 'rsa-pss-sha384':
        if (key.asymmetricKeyType !== 'rsa' && key.asymmetricKeyType !== 'rsa-pss') return false;
        return cryptoVerify('sha384', data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 48 }, signature);
      case 'rsa-pkcs1-sha384':
        if (key.asymmetricKeyType !== 'rsa') return false;
        return cryptoVerify('sha384', data, { key, padding: constants.RSA_PKCS1_PADDING }, signature);
      case 'ecdsa-sha384':
        if (key.asymmetricKeyType !== 'ec') return false;
        return cryptoVerify('sha384', data, { key, dsaEncoding: 'der' }, signature);
      default:
        return false;
    }
  } catch {
    return false;
  }
}

/** Did `issuerKey` sign `cert`? (Outer and TBS algorithms must agree.) */
export function verifyCertSignature(cert: ParsedCert, issuerKey: KeyObject): boolean {
  if (!sameSigAlg(cert.sigAlg, cert.tbsSigAlg)) return false;
  return verifyWithAlg(cert.sigAlg, cert.tbs, cert.signature, issuerKey);
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}
