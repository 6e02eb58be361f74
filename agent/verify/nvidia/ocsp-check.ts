/**
 * OCSP responses (RFC 6960 §4.2) for the GPU device chain, from collateral (no network here).
 * nvtrust checks certs [1 .. n-2] of the device chain (BROM, Provisioner ICA, GH100 Identity), not the
 * AK leaf and not the root (cc_admin_utils.py ocsp_certificate_chain_validation). A response counts only when:
 * responseStatus successful, signed by the issuer itself or by a delegated responder the issuer
 * certified for OCSPSigning (RFC 6960 §4.2.2.2), the CertID names the certificate, and `at` lies in
 * [thisUpdate, nextUpdate + grace] (no nextUpdate: thisUpdate + 3600 s, as the C++ SDK's cache TTL, nv_ocsp.h).
 * Pure; malformed DER raises ParseError.
 * The daemon and the controller re-check the same responses every cycle, so the pure, time-free parts are
 * memoised, as certificate links are (verify/x509 isIssuedBy): parsed responses by their DER, and signature
 * results by the signed bytes and the signer certificate. Everything that depends on `at` (thisUpdate,
 * nextUpdate + grace, the responder certificate's validity) is judged again on every call.
 */
import { createHash, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { ParseError } from '../../errors.js';
import {
  children,
  childrenAtLeast,
  decodeInteger,
  decodeOid,
  decodeTime,
  encodedOf,
  expectTag,
  parseDer,
  TAG,
  valueOf,
  decodeBitString,
  type DerNode,
} from '../../util/der.js';
import { parseCertificateEager as parseCertificate, type Certificate } from '../../formats/x509/certificate.js';
import { isIssuedBy } from '../x509/cert-signature.js';
import { BoundedCache } from '../../util/bounded-cache.js';
import { bytesEqual } from '../../util/bytes.js';

export const OID_OCSP_BASIC = '1.3.6.1.5.5.7.48.1.1';
export const OID_KP_OCSP_SIGNING = '1.3.6.1.5.5.7.3.9';
const OID_EXT_KEY_USAGE = '2.5.29.37';
/** C++ SDK nv_ocsp.h DEFAULT_NEXT_UPDATE_TTL_SECONDS. */
export const DEFAULT_NEXT_UPDATE_TTL_SECONDS = 3600;
export const MAX_OCSP_RESPONSE_LENGTH = 64 * 1024;

const HASHES: Record<string, string> = {
  '1.3.14.3.2.26': 'sha1',
  '2.16.840.1.101.3.4.2.1': 'sha256',
  '2.16.840.1.101.3.4.2.2': 'sha384',
  '2.16.840.1.101.3.4.2.3': 'sha512',
};
/** Signature algorithms → digest (ECDSA and RSA PKCS#1 v1.5; node picks the scheme from the key). */
const SIG_ALGS: Record<string, string> = {
  '1.2.840.10045.4.3.2': 'sha256',
  '1.2.840.10045.4.3.3': 'sha384',
  '1.2.840.10045.4.3.4': 'sha512',
  '1.2.840.113549.1.1.11': 'sha256',
  '1.2.840.113549.1.1.12': 'sha384',
  '1.2.840.113549.1.1.13': 'sha512',
};

/** CRLReason (RFC 5280 §5.3.1); 6 = certificateHold. */
export const CRL_REASON_HOLD = 6;
const CRL_REASONS = [
  'unspecified',
  'keyCompromise',
  'cACompromise',
  'affiliationChanged',
  'superseded',
  'cessationOfOperation',
  'certificateHold',
  '(7)',
  'removeFromCRL',
  'privilegeWithdrawn',
  'aACompromise',
];
export const crlReasonName = (r: number | undefined): string => (r === undefined ? 'no reason given' : (CRL_REASONS[r] ?? `reason ${r}`));

export interface OcspSingleResponse {
  hashAlgorithm: string;
  issuerNameHash: Uint8Array;
  issuerKeyHash: Uint8Array;
  serial: bigint;
  status: 'good' | 'revoked' | 'unknown';
  revocationTime?: Date;
  revocationReason?: number;
  thisUpdate: Date;
  nextUpdate?: Date;
}

export interface OcspResponse {
  /** OCSPResponseStatus: 0 successful, 1 malformedRequest, 2 internalError, 3 tryLater, 5 sigRequired, 6 unauthorized. */
  responseStatus: number;
  tbsResponseData: Uint8Array;
  signatureAlgorithm: string;
  signature: Uint8Array;
  responderByName?: Uint8Array;
  responderByKeyHash?: Uint8Array;
  producedAt: Date;
  responses: OcspSingleResponse[];
  certs: Certificate[];
}

function explicitInner(node: DerNode, what: string): DerNode {
  return childrenAtLeast(node, 1, what)[0]!;
}

function parseSingle(node: DerNode): OcspSingleResponse {
  const f = childrenAtLeast(expectTag(node, TAG.SEQUENCE, 'SingleResponse'), 3, 'SingleResponse');
  const certId = childrenAtLeast(expectTag(f[0]!, TAG.SEQUENCE, 'CertID'), 4, 'CertID');
  const alg = childrenAtLeast(expectTag(certId[0]!, TAG.SEQUENCE, 'hashAlgorithm'), 1, 'hashAlgorithm');
  const hashAlgorithm = decodeOid(alg[0]!);
  const single: OcspSingleResponse = {
    hashAlgorithm,
    issuerNameHash: valueOf(expectTag(certId[1]!, TAG.OCTET_STRING, 'issuerNameHash')),
    issuerKeyHash: valueOf(expectTag(certId[2]!, TAG.OCTET_STRING, 'issuerKeyHash')),
    serial: decodeInteger(certId[3]!),
    status: 'unknown',
    thisUpdate: new Date(0),
  };
  const st = f[1]!;
  if (st.tag === 0x80)
    single.status = 'good'; // good [0] IMPLICIT NULL
  else if (st.tag === 0xa1) {
    // revoked [1] IMPLICIT RevokedInfo
    single.status = 'revoked';
    const ri = childrenAtLeast(st, 1, 'RevokedInfo');
    single.revocationTime = decodeTime(expectTag(ri[0]!, TAG.GENERALIZED_TIME, 'revocationTime'));
    if (ri[1]) {
      if (ri[1].tag !== 0xa0) throw new ParseError('OCSP: unexpected field in RevokedInfo', ri[1].start);
      const reason = explicitInner(ri[1], 'revocationReason');
      expectTag(reason, TAG.ENUMERATED, 'CRLReason');
      const v = valueOf(reason);
      if (v.length !== 1) throw new ParseError('OCSP: bad CRLReason', reason.start);
      single.revocationReason = v[0]!;
    }
  } else if (st.tag === 0x82)
    single.status = 'unknown'; // unknown [2] IMPLICIT NULL
  else throw new ParseError(`OCSP: unknown certStatus tag 0x${st.tag.toString(16)}`, st.start);
  single.thisUpdate = decodeTime(expectTag(f[2]!, TAG.GENERALIZED_TIME, 'thisUpdate'));
  for (const extra of f.slice(3)) {
    if (extra.tag === 0xa0) single.nextUpdate = decodeTime(expectTag(explicitInner(extra, 'nextUpdate'), TAG.GENERALIZED_TIME, 'nextUpdate'));
    else if (extra.tag !== 0xa1) throw new ParseError('OCSP: unexpected field in SingleResponse', extra.start);
  }
  return single;
}

/** Parse an OCSPResponse (DER). Non-successful statuses parse with no responses. */
export function parseOcspResponse(der: Uint8Array): OcspResponse {
  if (der.length > MAX_OCSP_RESPONSE_LENGTH) throw new ParseError(`OCSP: response of ${der.length} bytes is too large`);
  const top = childrenAtLeast(expectTag(parseDer(der), TAG.SEQUENCE, 'OCSPResponse'), 1, 'OCSPResponse');
  const statusNode = expectTag(top[0]!, TAG.ENUMERATED, 'responseStatus');
  const sv = valueOf(statusNode);
  if (sv.length !== 1) throw new ParseError('OCSP: bad responseStatus', statusNode.start);
  const responseStatus = sv[0]!;
  const empty: OcspResponse = {
    responseStatus,
    tbsResponseData: new Uint8Array(0),
    signatureAlgorithm: '',
    signature: new Uint8Array(0),
    producedAt: new Date(0),
    responses: [],
    certs: [],
  };
  if (responseStatus !== 0) return empty;
  if (!top[1] || top[1].tag !== 0xa0) throw new ParseError('OCSP: successful response without responseBytes');
  const rb = childrenAtLeast(expectTag(explicitInner(top[1], 'responseBytes'), TAG.SEQUENCE, 'ResponseBytes'), 2, 'ResponseBytes');
  const type = decodeOid(rb[0]!);
  if (type !== OID_OCSP_BASIC) throw new ParseError(`OCSP: response type ${type} is not id-pkix-ocsp-basic`);
  const basicDer = valueOf(expectTag(rb[1]!, TAG.OCTET_STRING, 'response'));
  const basic = childrenAtLeast(expectTag(parseDer(basicDer), TAG.SEQUENCE, 'BasicOCSPResponse'), 3, 'BasicOCSPResponse');
  const tbs = expectTag(basic[0]!, TAG.SEQUENCE, 'ResponseData');
  const sigAlg = childrenAtLeast(expectTag(basic[1]!, TAG.SEQUENCE, 'signatureAlgorithm'), 1, 'signatureAlgorithm');
  const out: OcspResponse = {
    responseStatus,
    tbsResponseData: encodedOf(tbs),
    signatureAlgorithm: decodeOid(sigAlg[0]!),
    signature: decodeBitString(basic[2]!),
    producedAt: new Date(0),
    responses: [],
    certs: [],
  };
  if (basic[3]) {
    if (basic[3].tag !== 0xa0) throw new ParseError('OCSP: unexpected field after the signature', basic[3].start);
    for (const c of children(expectTag(explicitInner(basic[3], 'certs'), TAG.SEQUENCE, 'certs'))) out.certs.push(parseCertificate(encodedOf(c)));
  }
  const rd = children(tbs);
  let i = 0;
  if (rd[i]?.tag === 0xa0) i++; // [0] EXPLICIT version DEFAULT v1
  const rid = rd[i++];
  if (!rid) throw new ParseError('OCSP: ResponseData without responderID', tbs.start);
  if (rid.tag === 0xa1) out.responderByName = encodedOf(expectTag(explicitInner(rid, 'byName'), TAG.SEQUENCE, 'Name'));
  else if (rid.tag === 0xa2) out.responderByKeyHash = valueOf(expectTag(explicitInner(rid, 'byKey'), TAG.OCTET_STRING, 'KeyHash'));
  else throw new ParseError(`OCSP: unknown responderID tag 0x${rid.tag.toString(16)}`, rid.start);
  const produced = rd[i++];
  if (!produced) throw new ParseError('OCSP: ResponseData without producedAt', tbs.start);
  out.producedAt = decodeTime(expectTag(produced, TAG.GENERALIZED_TIME, 'producedAt'));
  const list = rd[i++];
  if (!list) throw new ParseError('OCSP: ResponseData without responses', tbs.start);
  for (const s of children(expectTag(list, TAG.SEQUENCE, 'responses'))) out.responses.push(parseSingle(s));
  const ext = rd[i++];
  if (ext !== undefined && ext.tag !== 0xa1) throw new ParseError('OCSP: unexpected field in ResponseData', ext.start);
  if (rd[i] !== undefined) throw new ParseError('OCSP: trailing fields in ResponseData', rd[i]!.start);
  return out;
}

/**
 * Cache sizes for a 10,000-machine controller: each GPU has its own BROM certificate, hence its own
 * OCSP response (the ICA and Identity responses are shared by the fleet), so 8-GPU machines need
 * ~80,000 signature results; 2^17 entries leave room for responses refetched while old ones age out.
 * An entry is its key (~110 characters) plus ~64 bytes of map overhead: ~24 MiB at the entry limit.
 */
export const OCSP_SIGNATURE_CACHE_LIMITS = { maxEntries: 131_072, maxBytes: 24 * 1024 * 1024 };
/**
 * Parsed responses are ~3x their DER (~1-3 KB): kept for the daemon's own GPUs and a few hundred
 * machines; past that a response is parsed again (tens of microseconds), while its signature result,
 * the costly part, stays in the cache above.
 */
export const OCSP_PARSE_CACHE_LIMITS = { maxEntries: 4096, maxBytes: 16 * 1024 * 1024 };

const signatureCache = new BoundedCache<boolean>(OCSP_SIGNATURE_CACHE_LIMITS);
const parseCache = new BoundedCache<OcspResponse>(OCSP_PARSE_CACHE_LIMITS);
const signedDigests = new WeakMap<OcspResponse, string>();

function lengthPrefix(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

/** SHA-256 over what the signature result depends on: algorithm, signed bytes, signature (each length-prefixed). */
function signedDigest(resp: OcspResponse): string {
  let d = signedDigests.get(resp);
  if (d === undefined) {
    const alg = Buffer.from(resp.signatureAlgorithm, 'latin1');
    d = createHash('sha256')
      .update(lengthPrefix(alg.length))
      .update(alg)
      .update(lengthPrefix(resp.tbsResponseData.length))
      .update(resp.tbsResponseData)
      .update(lengthPrefix(resp.signature.length))
      .update(resp.signature)
      .digest('base64');
    signedDigests.set(resp, d);
  }
  return d;
}

/** Does `signer`'s key verify the response signature? Memoised by the signed bytes and the signer certificate. */
function verifySig(resp: OcspResponse, signer: Certificate): boolean {
  const key = `${signedDigest(resp)}:${signer.sha256}`;
  const hit = signatureCache.get(key);
  if (hit !== undefined) return hit;
  const ok = verifySigWithKey(resp, signer.publicKey);
  signatureCache.set(key, ok, 64);
  return ok;
}

function verifySigWithKey(resp: OcspResponse, key: KeyObject): boolean {
  const hash = SIG_ALGS[resp.signatureAlgorithm];
  if (!hash) return false;
  try {
    return cryptoVerify(hash, resp.tbsResponseData, key, resp.signature);
  } catch {
    return false;
  }
}

function hasOcspSigningEku(cert: Certificate): boolean {
  const eku = cert.extensions.get(OID_EXT_KEY_USAGE);
  if (!eku) return false;
  try {
    return children(parseDer(eku.value)).some((n) => decodeOid(n) === OID_KP_OCSP_SIGNING);
  } catch {
    return false;
  }
}

function responderIdMatches(resp: OcspResponse, signer: Certificate): boolean {
  if (resp.responderByName) return bytesEqual(resp.responderByName, signer.subjectDer);
  if (resp.responderByKeyHash) return bytesEqual(issuerCertIdHashes(signer, 'sha1').keyHash, resp.responderByKeyHash);
  return false;
}

/** Who signed the response, if anyone authorised to: the issuer itself or its delegated OCSP signer. */
export function authorisedResponder(resp: OcspResponse, issuer: Certificate, at: Date): { ok: true; who: string } | { ok: false; why: string } {
  if (responderIdMatches(resp, issuer) && verifySig(resp, issuer)) return { ok: true, who: `the issuer (${issuer.cn})` };
  for (const c of resp.certs) {
    if (!responderIdMatches(resp, c)) continue;
    if (!isIssuedBy(c, issuer)) return { ok: false, why: `responder certificate "${c.cn}" is not issued by ${issuer.cn}` };
    if (!hasOcspSigningEku(c)) return { ok: false, why: `responder certificate "${c.cn}" lacks the OCSPSigning extended key usage` };
    if (at < c.notBefore || at > c.notAfter) return { ok: false, why: `responder certificate "${c.cn}" is not valid at ${at.toISOString()}` };
    if (!verifySig(resp, c)) return { ok: false, why: `signature does not verify with responder certificate "${c.cn}"` };
    return { ok: true, who: `delegated responder "${c.cn}"` };
  }
  return { ok: false, why: `signature does not verify with the issuer (${issuer.cn}) and no matching delegated responder certificate is included` };
}

/**
 * An issuer's CertID hashes (RFC 6960 4.1.1: hash of its subject Name and of its key bits), per hash
 * algorithm, kept on the parsed Certificate object: they depend only on that certificate's own
 * (immutable) fields, and an issuer is looked up for every response of every GPU on every check.
 */
const certIdHashes = new WeakMap<Certificate, Map<string, { nameHash: Buffer; keyHash: Buffer }>>();

export function issuerCertIdHashes(issuer: Certificate, hash: string): { nameHash: Buffer; keyHash: Buffer } {
  let perAlg = certIdHashes.get(issuer);
  if (!perAlg) {
    perAlg = new Map();
    certIdHashes.set(issuer, perAlg);
  }
  let h = perAlg.get(hash);
  if (!h) {
    h = { nameHash: createHash(hash).update(issuer.subjectDer).digest(), keyHash: createHash(hash).update(issuer.publicKeyBits).digest() };
    perAlg.set(hash, h);
  }
  return h;
}

/** The SingleResponse whose CertID names `cert` (issued by `issuer`), if any. */
export function findSingleResponse(resp: OcspResponse, cert: Certificate, issuer: Certificate): OcspSingleResponse | undefined {
  for (const s of resp.responses) {
    const hash = HASHES[s.hashAlgorithm];
    if (!hash || s.serial !== cert.serial) continue;
    const { nameHash, keyHash } = issuerCertIdHashes(issuer, hash);
    if (bytesEqual(nameHash, s.issuerNameHash) && bytesEqual(keyHash, s.issuerKeyHash)) return s;
  }
  return undefined;
}

export type RevocationState = 'good' | 'revoked' | 'hold' | 'unknown' | 'missing' | 'invalid';

export interface CertRevocation {
  state: RevocationState;
  detail: string;
}

/**
 * Revocation status of one certificate from the given responses. A response that names the
 * certificate but fails a check makes the result 'invalid' (never silently ignored).
 */
export function certRevocationStatus(cert: Certificate, issuer: Certificate, responses: readonly OcspResponse[], at: Date, graceSeconds = 0): CertRevocation {
  const problems: string[] = [];
  for (const resp of responses) {
    if (resp.responseStatus !== 0) continue;
    const single = findSingleResponse(resp, cert, issuer);
    if (!single) continue;
    const who = authorisedResponder(resp, issuer, at);
    if (!who.ok) {
      problems.push(who.why);
      continue;
    }
    const graceMs = graceSeconds * 1000;
    const until = single.nextUpdate ?? new Date(single.thisUpdate.getTime() + DEFAULT_NEXT_UPDATE_TTL_SECONDS * 1000);
    if (at.getTime() < single.thisUpdate.getTime()) {
      problems.push(`response thisUpdate ${single.thisUpdate.toISOString()} is after ${at.toISOString()}`);
      continue;
    }
    if (at.getTime() > until.getTime() + graceMs) {
      problems.push(`response expired at ${until.toISOString()}${graceSeconds ? ` (+${graceSeconds} s grace)` : ''}`);
      continue;
    }
    if (single.status === 'good') return { state: 'good', detail: `good (signed by ${who.who}, valid until ${until.toISOString()})` };
    if (single.status === 'revoked') {
      const reason = crlReasonName(single.revocationReason);
      const when = single.revocationTime?.toISOString() ?? '?';
      return { state: single.revocationReason === CRL_REASON_HOLD ? 'hold' : 'revoked', detail: `revoked at ${when} (${reason})` };
    }
    return { state: 'unknown', detail: 'the responder does not know this certificate' };
  }
  if (problems.length > 0) return { state: 'invalid', detail: `OCSP response unusable: ${problems.join('; ')}` };
  return { state: 'missing', detail: 'no OCSP response for this certificate' };
}

/** parseOcspResponse memoised by the DER (the result is shared: callers must not modify it). */
function parseOcspResponseCached(der: Uint8Array): OcspResponse {
  if (der.length > MAX_OCSP_RESPONSE_LENGTH) return parseOcspResponse(der); // throws; never hashed
  const key = createHash('sha256').update(der).digest('base64');
  const hit = parseCache.get(key);
  if (hit) return hit;
  const parsed = parseOcspResponse(der);
  parseCache.set(key, parsed, 3 * der.length);
  return parsed;
}

/** Parse every DER response, naming which one failed (memoised by DER; the results are shared, read-only). */
export function parseOcspResponses(list: readonly Uint8Array[]): OcspResponse[] {
  return list.map((der, i) => {
    try {
      return parseOcspResponseCached(der);
    } catch (err) {
      if (err instanceof ParseError) throw new ParseError(`OCSP response ${i}: ${err.message}`, undefined, { cause: err });
      throw err;
    }
  });
}

export const OCSP_RESPONSE_STATUS = ['successful', 'malformedRequest', 'internalError', 'tryLater', '(4)', 'sigRequired', 'unauthorized'];
