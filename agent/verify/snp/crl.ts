/**
 * AMD KDS CRLs (`/vcek/v1/{P}/crl`, `/vlek/v1/{P}/crl`): DER X.509 v2 CRLs signed by the product's
 * ARK that revoke ASKs/ASVKs (AMD #57230 KDS interface; go-sev-guest verify/verify.go CheckRevocations). Parsing and the revocation check
 * are pure: CRL bytes + ARK key + time in, a named check out.
 *
 * CertificateList ::= SEQUENCE { tbsCertList, signatureAlgorithm, signatureValue }   (RFC 5280 §5.1)
 * TBSCertList ::= SEQUENCE { version OPTIONAL, signature, issuer, thisUpdate, nextUpdate OPTIONAL,
 *                            revokedCertificates SEQUENCE OF SEQUENCE { serial, date, ... } OPTIONAL,
 *                            [0] crlExtensions OPTIONAL }
 * The CRL signature result is memoised (pure: signed bytes + anchor key); the freshness and the
 * serials are judged against `at` on every call, as the certificate-link cache does.
 */
import { createHash, type KeyObject } from 'node:crypto';
import { ParseError } from '../../errors.js';
import { parseDer, children, childrenAtLeast, expectTag, decodeInteger, decodeTime, encodedOf, TAG } from '../../util/der.js';
import { fail, pass, warn, type Check } from '../../formats/checks.js';
import { decodeSigAlg, describeSigAlg, sameSigAlg, type SigAlg } from '../../formats/x509/sig-alg.js';
import { signedParts, type SignedParts } from '../../formats/x509/certificate.js';
import { bytesEqual } from '../../util/bytes.js';
import { verifyWithAlg } from '../x509/cert-signature.js';
import { BoundedCache } from '../../util/bounded-cache.js';

export interface ParsedCrl extends SignedParts {
  tbsSigAlg: SigAlg;
  issuerDer: Uint8Array;
  thisUpdate: Date;
  nextUpdate?: Date;
  revokedSerials: bigint[];
}

export function parseCrl(der: Uint8Array): ParsedCrl {
  const list = expectTag(parseDer(der), TAG.SEQUENCE, 'CertificateList');
  const [tbsNode, algNode, sigNode] = childrenAtLeast(list, 3, 'CertificateList');
  const f = childrenAtLeast(expectTag(tbsNode!, TAG.SEQUENCE, 'TBSCertList'), 3, 'TBSCertList');
  let i = f[0]!.tag === TAG.INTEGER ? 1 : 0;
  const at = (what: string) => {
    const n = f[i++];
    if (!n) throw new ParseError(`CRL: missing ${what}`, tbsNode!.start);
    return n;
  };
  const tbsSigAlg = decodeSigAlg(at('signature'));
  const issuer = expectTag(at('issuer'), TAG.SEQUENCE, 'CRL issuer');
  const thisUpdate = decodeTime(at('thisUpdate'));
  let nextUpdate: Date | undefined;
  const revokedSerials: bigint[] = [];
  const next = f[i];
  if (next && (next.tag === TAG.UTC_TIME || next.tag === TAG.GENERALIZED_TIME)) {
    nextUpdate = decodeTime(next);
    i++;
  }
  const revoked = f[i];
  if (revoked && revoked.tag === TAG.SEQUENCE) {
    for (const entry of children(revoked)) {
      const [serial] = childrenAtLeast(expectTag(entry, TAG.SEQUENCE, 'revokedCertificate'), 2, 'revokedCertificate');
      revokedSerials.push(decodeInteger(serial!));
    }
    i++;
  }
  const ext = f[i];
  if (ext && ext.tag !== 0xa0) throw new ParseError(`CRL: unexpected field tag 0x${ext.tag.toString(16)}`, ext.start);
  if (f.length > i + (ext ? 1 : 0)) throw new ParseError('CRL: trailing TBSCertList fields', tbsNode!.start);
  return {
    ...signedParts(der, tbsNode!, algNode!, sigNode!),
    tbsSigAlg,
    issuerDer: encodedOf(issuer),
    thisUpdate,
    ...(nextUpdate ? { nextUpdate } : {}),
    revokedSerials,
  };
}

export interface RevocationSubject {
  /** e.g. "VCEK", "ASK (SEV-Milan)". */
  label: string;
  serial: bigint;
}

export interface RevocationAnchor {
  /** e.g. "ARK-Milan". */
  name: string;
  subjectDer: Uint8Array;
  publicKey: KeyObject;
  /** Algorithms the anchor is allowed to sign CRLs with (AMD: RSASSA-PSS SHA-384 only). */
  allowedAlgs: readonly SigAlg['kind'][];
  /** Where to get the CRL, for the "not checked" message (KDS /vcek/v1/<P>/crl or /vlek/v1/<P>/crl). */
  crlUrl: string;
}

const iso = (d: Date) => d.toISOString();

/**
 * AMD KDS serves one CRL per product line and signing key (VCEK/VLEK): Milan, Genoa, Turin, ... x 2,
 * each replaced about daily, and every machine of a product checks the same one; so even a
 * 10,000-machine controller needs a handful of entries. 64 leave room for old and new side by side.
 */
export const CRL_SIGNATURE_CACHE_LIMITS = { maxEntries: 64, maxBytes: 64 * 1024 };
const crlSignatureCache = new BoundedCache<boolean>(CRL_SIGNATURE_CACHE_LIMITS);
const keyIds = new WeakMap<KeyObject, string>();

function keyId(key: KeyObject): string {
  let id = keyIds.get(key);
  if (id === undefined) {
    id = createHash('sha256')
      .update(key.export({ type: 'spki', format: 'der' }))
      .digest('base64');
    keyIds.set(key, id);
  }
  return id;
}

/** Did `key` sign the CRL? Memoised by SHA-256 over the algorithm, the TBS and the signature, and the key. */
function crlSignedBy(crl: ParsedCrl, key: KeyObject): boolean {
  const h = createHash('sha256');
  for (const part of [Buffer.from(crl.sigAlg.kind, 'latin1'), crl.tbs, crl.signature]) {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(part.length);
    h.update(len).update(part);
  }
  const id = `${h.digest('base64')}:${keyId(key)}`;
  const hit = crlSignatureCache.get(id);
  if (hit !== undefined) return hit;
  const ok = verifyWithAlg(crl.sigAlg, crl.tbs, crl.signature, key);
  crlSignatureCache.set(id, ok, 64);
  return ok;
}

/**
 * The "snp.revocation" check. CRLs issued by another CA (other product) are ignored; a CRL that names
 * this ARK as issuer must verify under it and be fresh at `at`, and no subject serial may be listed.
 * No applicable CRL → warning (revocation not checked), never a silent pass.
 */
export function checkRevocation(crls: readonly ParsedCrl[], anchor: RevocationAnchor, subjects: readonly RevocationSubject[], at: Date): Check {
  const name = 'snp.revocation';
  const mine = crls.filter((c) => bytesEqual(c.issuerDer, anchor.subjectDer));
  if (mine.length === 0) {
    const extra = crls.length > 0 ? ` (${crls.length} CRL(s) supplied, none issued by ${anchor.name})` : '';
    return warn(name, `revocation not checked: no CRL in collateral${extra}; fetch ${anchor.crlUrl} and pass it with --crl`);
  }
  for (const crl of mine) {
    if (!sameSigAlg(crl.sigAlg, crl.tbsSigAlg) || !anchor.allowedAlgs.includes(crl.sigAlg.kind)) {
      return fail(name, `CRL from ${anchor.name} uses signature algorithm ${describeSigAlg(crl.sigAlg)}; expected ${anchor.allowedAlgs.join(' or ')}`);
    }
    if (!crlSignedBy(crl, anchor.publicKey)) {
      return fail(name, `CRL claiming issuer ${anchor.name} is not signed by the pinned ${anchor.name} key; discard it and re-fetch from AMD KDS`);
    }
    if (crl.thisUpdate.getTime() > at.getTime()) {
      return fail(name, `CRL from ${anchor.name} is not yet valid at ${iso(at)} (thisUpdate ${iso(crl.thisUpdate)}); check the verification time/clock`);
    }
    if (!crl.nextUpdate) {
      return fail(name, `CRL from ${anchor.name} has no nextUpdate, so its freshness cannot be judged; fetch a current CRL`);
    }
    if (crl.nextUpdate.getTime() <= at.getTime()) {
      return fail(name, `CRL from ${anchor.name} is stale at ${iso(at)} (nextUpdate ${iso(crl.nextUpdate)}); fetch a current CRL from AMD KDS`);
    }
    for (const s of subjects) {
      if (crl.revokedSerials.includes(s.serial)) {
        return fail(
          name,
          `${s.label} serial 0x${s.serial.toString(16)} is REVOKED by the CRL from ${anchor.name} (thisUpdate ${iso(crl.thisUpdate)}); do not trust this platform`,
        );
      }
    }
  }
  const labels = subjects.map((s) => `${s.label} 0x${s.serial.toString(16)}`).join(', ');
  return pass(name, `not revoked: ${labels} absent from ${mine.length} fresh CRL(s) signed by ${anchor.name}`);
}
