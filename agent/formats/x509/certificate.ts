/**
 * The one X.509 certificate parser (RFC 5280 §4.1), over the strict DER reader: the signed TBS
 * bytes, both signature algorithms (decoded, sig-alg.ts), the signature, serial, raw and CN names,
 * validity and the SubjectPublicKeyInfo. Bytes in, structure out; no policy, no trust.
 *
 * The structure is decoded eagerly; the costlier or optional views (the imported key, the SPKI key
 * bits, the extensions, OpenSSL's view for its name rendering) are decoded on first use and kept.
 * parseCertificateEager decodes them all at once, for inputs that must be fully readable up front.
 * Parsed certificates are immutable and shared through one bounded cache keyed by the DER bytes.
 */
import { createHash, createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import { ParseError } from '../../errors.js';
import { BoundedCache } from '../../util/bounded-cache.js';
import { childrenAtLeast, decodeBitString, decodeInteger, decodeTime, encodedOf, expectTag, parseDer, TAG, type DerNode } from '../../util/der.js';
import { basicConstraintsCa, extensionsOfTbs, type Extensions } from './extensions.js';
import { commonName } from './names.js';
import { decodeSigAlg, type SigAlg } from './sig-alg.js';

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

export interface Validity {
  notBefore: Date;
  notAfter: Date;
}

/** The Certificate's three parts and the TBS fields, located but not decoded. */
function locate(der: Uint8Array) {
  const cert = expectTag(parseDer(der), TAG.SEQUENCE, 'Certificate');
  const [tbsNode, algNode, sigNode] = childrenAtLeast(cert, 3, 'Certificate');
  const fields = childrenAtLeast(expectTag(tbsNode!, TAG.SEQUENCE, 'TBSCertificate'), 6, 'TBSCertificate');
  /** Index of serialNumber: the [0] EXPLICIT version is optional. */
  const first = fields[0]!.tag === 0xa0 ? 1 : 0;
  return { tbsNode: tbsNode!, algNode: algNode!, sigNode: sigNode!, fields, first };
}

/** notBefore / notAfter straight from the DER (§4.1.2.5), so GeneralizedTime 9999 works; nothing else is decoded. */
export function certificateValidity(der: Uint8Array): Validity {
  const { fields, first } = locate(der);
  const validity = childrenAtLeast(expectTag(fields[first + 3]!, TAG.SEQUENCE, 'Validity'), 2, 'Validity');
  return { notBefore: decodeTime(validity[0]!), notAfter: decodeTime(validity[1]!) };
}

export class Certificate implements SignedParts {
  readonly tbs: Uint8Array;
  readonly sigAlg: SigAlg;
  readonly signature: Uint8Array;
  /** signature inside the TBS; must equal sigAlg (RFC 5280 §4.1.2.3). */
  readonly tbsSigAlg: SigAlg;
  readonly version: number;
  readonly serial: bigint;
  /** Encoded Name bytes (for issuer/subject matching, OCSP CertID) and the CN for messages. */
  readonly issuerDer: Uint8Array;
  readonly subjectDer: Uint8Array;
  readonly issuerCn: string;
  readonly subjectCn: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** The encoded SubjectPublicKeyInfo. */
  readonly spki: Uint8Array;
  readonly #tbsNode: DerNode;
  readonly #spkiNode: DerNode;
  #sha256?: string;
  #key?: KeyObject;
  #keyBits?: Uint8Array;
  #extensions?: Extensions;
  #isCa?: boolean;
  #x509?: X509Certificate;
  #cn?: string;

  /** Use parseCertificate. */
  constructor(readonly der: Buffer) {
    const { tbsNode, algNode, sigNode, fields, first } = locate(der);
    let version = 1;
    if (first === 1) {
      const [v] = childrenAtLeast(fields[0]!, 1, 'version');
      version = Number(decodeInteger(v!)) + 1;
    }
    const need = (k: number, what: string): DerNode => {
      const n = fields[first + k];
      if (!n) throw new ParseError(`certificate: missing ${what}`, tbsNode.start);
      return n;
    };
    const serial = decodeInteger(need(0, 'serialNumber'));
    this.tbsSigAlg = decodeSigAlg(need(1, 'signature'));
    const issuer = expectTag(need(2, 'issuer'), TAG.SEQUENCE, 'issuer');
    const [nb, na] = childrenAtLeast(expectTag(need(3, 'validity'), TAG.SEQUENCE, 'Validity'), 2, 'Validity');
    const subject = expectTag(need(4, 'subject'), TAG.SEQUENCE, 'subject');
    this.#spkiNode = expectTag(need(5, 'subjectPublicKeyInfo'), TAG.SEQUENCE, 'SubjectPublicKeyInfo');
    const outer = signedParts(der, tbsNode, algNode, sigNode);
    this.tbs = outer.tbs;
    this.sigAlg = outer.sigAlg;
    this.signature = outer.signature;
    this.#tbsNode = tbsNode;
    this.version = version;
    this.serial = serial;
    this.issuerDer = encodedOf(issuer);
    this.subjectDer = encodedOf(subject);
    this.issuerCn = commonName(issuer);
    this.subjectCn = commonName(subject);
    this.notBefore = decodeTime(nb!);
    this.notAfter = decodeTime(na!);
    this.spki = encodedOf(this.#spkiNode);
  }

  /** Lower-case hex SHA-256 of the DER (fingerprints in messages, memo keys). */
  get sha256(): string {
    this.#sha256 ??= createHash('sha256').update(this.der).digest('hex');
    return this.#sha256;
  }

  /**
   * The subject public key, imported once. When OpenSSL's view of the certificate exists (parsed for
   * its names, or eagerly), the key it decoded from the same SubjectPublicKeyInfo is taken: importing
   * the SPKI again would decode and check the point a second time (about 0.1 ms a certificate).
   */
  get publicKey(): KeyObject {
    if (!this.#key && this.#x509) {
      try {
        this.#key = this.#x509.publicKey;
      } catch {
        // Unusable there too: the import below says why, in its own words.
      }
    }
    if (!this.#key) {
      try {
        this.#key = createPublicKey({ key: Buffer.from(this.spki.buffer, this.spki.byteOffset, this.spki.byteLength), format: 'der', type: 'spki' });
      } catch (err) {
        throw new ParseError(`certificate "${this.subjectCn}": unusable public key: ${(err as Error).message}`, this.#spkiNode.start, { cause: err });
      }
    }
    return this.#key;
  }

  /**
   * Why the subject public key cannot be imported (e.g. an EC point off the curve, an unknown
   * algorithm OID), or undefined when it can. Lets verifiers fail a named check instead of throwing.
   */
  get publicKeyProblem(): string | undefined {
    try {
      void this.publicKey;
      return undefined;
    } catch (err) {
      if (!(err instanceof ParseError)) throw err;
      return err.message;
    }
  }

  /** subjectPublicKey BIT STRING contents (the OCSP issuerKeyHash input, RFC 6960 §4.1.1). */
  get publicKeyBits(): Uint8Array {
    if (!this.#keyBits) {
      const parts = childrenAtLeast(this.#spkiNode, 2, 'subjectPublicKeyInfo');
      this.#keyBits = decodeBitString(parts[1]!);
    }
    return this.#keyBits;
  }

  get extensions(): Extensions {
    this.#extensions ??= extensionsOfTbs(this.#tbsNode);
    return this.#extensions;
  }

  /** basicConstraints cA. */
  get isCa(): boolean {
    this.#isCa ??= basicConstraintsCa(this.extensions);
    return this.#isCa;
  }

  /** OpenSSL's view of the same DER (its name rendering); a certificate OpenSSL rejects is a ParseError. */
  get x509(): X509Certificate {
    if (!this.#x509) {
      try {
        this.#x509 = new X509Certificate(this.der);
      } catch (err) {
        throw new ParseError(`certificate: ${(err as Error).message}`, 0, { cause: err });
      }
    }
    return this.#x509;
  }

  /** The subject as OpenSSL renders it, one line ("C=US, O=NVIDIA Corporation, CN=..."). */
  get subject(): string {
    return this.x509.subject.replace(/\n/g, ', ');
  }

  /** The CN as OpenSSL renders it (the whole subject when there is none), for messages; found once. */
  get cn(): string {
    this.#cn ??= /(?:^|\n)CN=([^\n]*)/.exec(this.x509.subject)?.[1] ?? this.subject;
    return this.#cn;
  }
}

/**
 * Certificates (VCEKs, GPU chains, OCSP responders) repeat across verifications of the same machine
 * and are immutable: one cache for the process, keyed by the exact DER. What an entry really costs is
 * dominated by what is decoded from it, not by the DER: measured on Node 20, a fully decoded P-384
 * certificate of 1.3 KiB (node:crypto X509Certificate, KeyObject, decoded fields) takes about 32 KiB
 * of resident memory. Each entry is charged its key (the DER as a latin1 string), twice the DER and
 * DECODED_BYTES, so the byte bound is honest: 64 MiB holds about 2,000 certificates, which covers
 * a controller's working set of some hundreds of machines; past that a certificate is parsed again
 * (its signature and link results stay in their own caches).
 */
export const CERT_DECODED_BYTES = 28 * 1024;
export const CERT_CACHE_LIMITS = { maxEntries: 4096, maxBytes: 64 * 1024 * 1024 } as const;
const certCache = new BoundedCache<Certificate>(CERT_CACHE_LIMITS);

/**
 * Parse one DER certificate (trailing bytes are an error). Throws ParseError for anything
 * malformed. Cached: the parse keeps a private copy, so callers may reuse their buffers.
 */
export function parseCertificate(der: Uint8Array): Certificate {
  const key = Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString('latin1');
  const hit = certCache.get(key);
  if (hit) return hit;
  const cert = new Certificate(Buffer.from(der));
  certCache.set(key, cert, 2 * der.byteLength + CERT_DECODED_BYTES);
  return cert;
}

/**
 * parseCertificate, then every lazily decoded part now (SPKI key bits, extensions and the cA flag,
 * OpenSSL's view and the key), so a certificate that is not fully readable fails here. For certificates
 * taken whole from untrusted evidence: GPU device chains and OCSP responder certificates.
 */
export function parseCertificateEager(der: Uint8Array): Certificate {
  const cert = parseCertificate(der);
  void cert.publicKeyBits;
  void cert.extensions;
  void cert.x509;
  try {
    void cert.publicKey;
  } catch (err) {
    const why = (err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message;
    throw new ParseError(`certificate: ${why}`, 0, { cause: err });
  }
  void cert.isCa;
  return cert;
}
