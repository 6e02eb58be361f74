/**
 * OCSP over HTTP (RFC 6960 §4.1 request, Appendix A.1 POST transport) for certificates whose revocation
 * the verifier checks from cached responses (the NVIDIA GPU and RIM chains, nvtrust cc_admin_utils.py ocsp_certificate_chain_validation:
 * POST DER with `Content-Type: application/ocsp-request` to http://ocsp.ndis.nvidia.com, CertID SHA-384).
 *
 * OCSPRequest ::= SEQUENCE { tbsRequest TBSRequest, optionalSignature [0] EXPLICIT Signature OPTIONAL }
 * TBSRequest  ::= SEQUENCE { version [0] EXPLICIT DEFAULT v1, requestorName [1] OPTIONAL,
 *                            requestList SEQUENCE OF Request, requestExtensions [2] EXPLICIT Extensions OPTIONAL }
 * Request     ::= SEQUENCE { reqCert CertID, singleRequestExtensions [0] EXPLICIT OPTIONAL }
 * CertID      ::= SEQUENCE { hashAlgorithm AlgorithmIdentifier, issuerNameHash OCTET STRING,
 *                            issuerKeyHash OCTET STRING, serialNumber CertificateSerialNumber }
 * issuerNameHash = H(DER of the issuer's subject Name); issuerKeyHash = H(issuer subjectPublicKey BIT
 * STRING value, without tag, length and unused-bits octet) (RFC 6960 §4.1.1).
 */
import { createHash, randomBytes } from 'node:crypto';
import { CollateralError, ParseError } from '../../errors.js';
import { explicit, integer, nullValue, octetString, oid, sequence } from '../../util/der-writer.js';
import { parseCertificateEager as parseCertificate } from '../../formats/x509/certificate.js';
import { parseOcspResponse, OCSP_RESPONSE_STATUS } from '../../verify/nvidia/ocsp-check.js';
import type { CollateralKey } from '../collateral-types.js';
import type { Fetched } from '../store.js';
import { CollateralFetchError, httpRequest, type HttpOptions } from './http.js';

export const NVIDIA_OCSP_URL = 'http://ocsp.ndis.nvidia.com/';
const HASH_OIDS = { sha1: '1.3.14.3.2.26', sha384: '2.16.840.1.101.3.4.2.2' } as const;
/** id-pkix-ocsp-nonce (RFC 6960 §4.4.1; RFC 8954: 1..32 octets). */
export const OID_OCSP_NONCE = '1.3.6.1.5.5.7.48.1.2';

export type CertIdHash = keyof typeof HASH_OIDS;

export interface CertId {
  hash: CertIdHash;
  issuerNameHash: Buffer;
  issuerKeyHash: Buffer;
  serial: bigint;
}

export interface OcspRequestInput {
  /** The certificate whose status is asked, DER. */
  cert: Uint8Array;
  /** Its issuer, DER. */
  issuer: Uint8Array;
  /** CertID hash; NVIDIA uses SHA-384 (default). */
  hash?: CertIdHash;
  /** Nonce bytes (1..32), or true for 32 random bytes; default none (cacheable responses). */
  nonce?: Uint8Array | boolean;
}

export function certIdFor(certDer: Uint8Array, issuerDer: Uint8Array, hash: CertIdHash = 'sha384'): CertId {
  const cert = parseCertificate(certDer);
  const issuer = parseCertificate(issuerDer);
  if (Buffer.compare(Buffer.from(cert.issuerDer), Buffer.from(issuer.subjectDer)) !== 0) {
    throw new CollateralError(`OCSP request: "${issuer.cn}" is not the issuer of "${cert.cn}"`);
  }
  if (cert.serial < 0n) throw new ParseError('OCSP request: negative certificate serial number');
  return {
    hash,
    issuerNameHash: createHash(hash).update(issuer.subjectDer).digest(),
    issuerKeyHash: createHash(hash).update(issuer.publicKeyBits).digest(),
    serial: cert.serial,
  };
}

/** Cache key of the response for this CertID (nvidia/ocsp/<issuerKeyHash>-<serial>.der). */
export function ocspKey(id: CertId): CollateralKey {
  return { kind: 'ocsp', issuerKeyHash: id.issuerKeyHash.toString('hex'), serial: id.serial.toString(16) };
}

export function encodeCertId(id: CertId): Buffer {
  return sequence(sequence(oid(HASH_OIDS[id.hash]), nullValue()), octetString(id.issuerNameHash), octetString(id.issuerKeyHash), integer(id.serial));
}

/** A minimal unsigned OCSPRequest for one certificate; returns the DER, the CertID and the nonce. */
export function buildOcspRequest(input: OcspRequestInput): { der: Buffer; certId: CertId; nonce?: Buffer } {
  const certId = certIdFor(input.cert, input.issuer, input.hash ?? 'sha384');
  let nonce: Buffer | undefined;
  if (input.nonce === true) nonce = randomBytes(32);
  else if (input.nonce instanceof Uint8Array) {
    if (input.nonce.length < 1 || input.nonce.length > 32) throw new CollateralError('OCSP request: nonce must be 1..32 bytes (RFC 8954)');
    nonce = Buffer.from(input.nonce);
  }
  const request = sequence(encodeCertId(certId));
  const tbsFields = [sequence(request)];
  if (nonce) tbsFields.push(explicit(2, sequence(sequence(oid(OID_OCSP_NONCE), octetString(octetString(nonce))))));
  const der = sequence(sequence(...tbsFields));
  return { der, certId, ...(nonce ? { nonce } : {}) };
}

export interface OcspFetchOptions extends HttpOptions {
  /** Responder URL; default NVIDIA's (the AIA of NVIDIA's chains). */
  url?: string;
  hash?: CertIdHash;
  nonce?: Uint8Array | boolean;
  serviceKey?: string;
}

/**
 * POST an OCSP request for `cert` and return the DER response after checking that it is a successful
 * response for exactly this CertID (signature and time checks belong to the verifier, verify/nvidia/ocsp-check.ts).
 */
export async function fetchOcsp(cert: Uint8Array, issuer: Uint8Array, opts: OcspFetchOptions = {}): Promise<Fetched & { certId: CertId }> {
  const { der, certId } = buildOcspRequest({ cert, issuer, hash: opts.hash ?? 'sha384', ...(opts.nonce !== undefined ? { nonce: opts.nonce } : {}) });
  const url = opts.url ?? NVIDIA_OCSP_URL;
  const headers: Record<string, string> = { 'Content-Type': 'application/ocsp-request', Accept: 'application/ocsp-response' };
  if (opts.serviceKey) headers.Authorization = `Bearer ${opts.serviceKey}`;
  const what = `OCSP status of serial 0x${certId.serial.toString(16)}`;
  const res = await httpRequest({ url, what, method: 'POST', headers, body: der }, { maxBytes: 64 * 1024, ...opts });
  let parsed;
  try {
    parsed = parseOcspResponse(res.body);
  } catch (err) {
    throw new CollateralFetchError('invalid', url, `${what}: ${url} returned something that is not an OCSP response (${(err as Error).message})`, res.status, {
      cause: err,
    });
  }
  if (parsed.responseStatus !== 0) {
    throw new CollateralFetchError(
      'invalid',
      url,
      `${what}: responder ${url} answered ${OCSP_RESPONSE_STATUS[parsed.responseStatus] ?? parsed.responseStatus}`,
      res.status,
    );
  }
  const match = parsed.responses.some(
    (s) =>
      s.serial === certId.serial && Buffer.from(s.issuerKeyHash).equals(certId.issuerKeyHash) && Buffer.from(s.issuerNameHash).equals(certId.issuerNameHash),
  );
  if (!match) throw new CollateralFetchError('invalid', url, `${what}: the response from ${url} is not about the requested certificate`, res.status);
  return { bytes: res.body, source: url, certId };
}
