/**
 * RIM signing chain (the KeyInfo X509Data of NVIDIA RIMs; nvtrust verifier/rim/__init__.py): KeyInfo certificates, leaf first, must chain to a
 * trust anchor: the pinned "NVIDIA CoRIM signing Root CA", or a simulation root the caller passes
 * explicitly. A self-issued last certificate in KeyInfo is dropped, never trusted (as both
 * NVIDIA verifiers do), so a RIM cannot bring its own root.
 * Each link is what OpenSSL's X509_check_issued + X509_verify establish (RFC 5280 §6.1.3 (a)(1), (a)(4),
 * §6.1.4 (k), (n)): the issuer is a CA (basicConstraints cA, and keyCertSign when it has a keyUsage),
 * the child's issuer Name is the issuer's subject Name, the child's authorityKeyIdentifier (when
 * present) names the issuer (RFC 5280 §4.2.1.1), and the issuer's key signed the child
 * (verify/x509/cert-signature.ts, the one issued-by check). Certificates are read by the one X.509
 * parser (formats/x509/certificate.ts), each once.
 * Pure: DER + anchors + time in, named checks out. OCSP is not done here (collateral layer).
 */
import type { KeyObject } from 'node:crypto';
import { children, decodeInteger, encodedOf, expectTag, parseDer, TAG, valueOf } from '../../../util/der.js';
import { bytesEqual } from '../../../util/bytes.js';
import { parseCertificate, type Certificate } from '../../../formats/x509/certificate.js';
import { basicConstraintsCa } from '../../../formats/x509/extensions.js';
import { isIssuedBy } from '../../x509/cert-signature.js';
import { fail, pass, type Check } from '../../../formats/checks.js';

export interface RimAnchor {
  der: Buffer;
  /** Shown in check details, e.g. "pinned NVIDIA CoRIM signing Root CA". */
  label: string;
  /** The same DER already parsed (the pinned root is parsed once per process); parsed from `der` when absent. */
  cert?: Certificate;
}

export interface RimChainResult {
  checks: Check[];
  /** The leaf's public key when the chain verified (used for the SignatureValue). */
  leafKey: KeyObject | undefined;
  /** Which anchor the chain ended at, when it verified. */
  anchor: RimAnchor | undefined;
}

const MAX_CHAIN = 8;
const KEY_USAGE = '2.5.29.15';
const SUBJECT_KEY_ID = '2.5.29.14';
const AUTHORITY_KEY_ID = '2.5.29.35';
/** RFC 5280 §4.2.1.3 KeyUsage bit numbers. */
const DIGITAL_SIGNATURE = 0;
const KEY_CERT_SIGN = 5;

/**
 * Does the keyUsage allow `bit`? An absent extension allows everything (RFC 5280 §4.2.1.3).
 * KeyUsage is a named BIT STRING: first octet = unused bits, then the bits (DER trims trailing zeros).
 */
function keyUsageAllows(c: Certificate, bit: number): boolean {
  const ku = c.extensions.get(KEY_USAGE);
  if (!ku) return true;
  const v = valueOf(expectTag(parseDer(ku.value), TAG.BIT_STRING, 'keyUsage'));
  const octet = 1 + (bit >> 3);
  return v.length > octet && (v[octet]! & (0x80 >> (bit & 7))) !== 0;
}

/** May `c` issue certificates? basicConstraints cA, and keyCertSign if it has a keyUsage (OpenSSL X509_check_ca == 1). */
function mayIssue(c: Certificate): boolean {
  return basicConstraintsCa(c.extensions) && keyUsageAllows(c, KEY_CERT_SIGN);
}

/**
 * Is the child's authorityKeyIdentifier consistent with `issuer` (OpenSSL X509_check_akid)? Absent: yes.
 * keyIdentifier [0] must equal the issuer's subjectKeyIdentifier when both exist; authorityCertSerialNumber [2]
 * must be the issuer's serial; the first directoryName of authorityCertIssuer [1] must be the issuer's issuer Name.
 */
function akidMatches(child: Certificate, issuer: Certificate): boolean {
  const akid = child.extensions.get(AUTHORITY_KEY_ID);
  if (!akid) return true;
  for (const part of children(expectTag(parseDer(akid.value), TAG.SEQUENCE, 'AuthorityKeyIdentifier'))) {
    if (part.tag === 0x80) {
      const skid = issuer.extensions.get(SUBJECT_KEY_ID);
      if (skid && !bytesEqual(valueOf(part), valueOf(expectTag(parseDer(skid.value), TAG.OCTET_STRING, 'SubjectKeyIdentifier')))) return false;
    } else if (part.tag === 0x82) {
      // [2] IMPLICIT INTEGER: the same contents as an INTEGER, compared by value.
      if (decodeInteger({ ...part, tag: TAG.INTEGER }) !== issuer.serial) return false;
    } else if (part.tag === 0xa1) {
      const dirName = children(part).find((g) => g.tag === 0xa4);
      if (dirName) {
        const [name] = children(dirName);
        if (!name || !bytesEqual(encodedOf(name), issuer.issuerDer)) return false;
      }
    }
  }
  return true;
}

/** Is `child` issued and signed by `parent`? Any certificate that cannot be read this far is not. */
function signedBy(child: Certificate, parent: Certificate): boolean {
  try {
    return akidMatches(child, parent) && isIssuedBy(child, parent);
  } catch {
    return false;
  }
}

function isCa(c: Certificate): boolean {
  try {
    return mayIssue(c);
  } catch {
    return false;
  }
}

/** The name shown in details: the subject CN, or OpenSSL's rendering of the whole subject when it has none. */
function cn(c: Certificate): string {
  if (c.subjectCn !== '') return c.subjectCn;
  try {
    return c.subject;
  } catch {
    return '(unreadable subject)';
  }
}
const iso = (d: Date): string => d.toISOString().replace('.000Z', 'Z');

/** rim.chain.validity: every certificate on the path (anchor included) is valid at `at`. */
function validityCheck(certs: readonly Certificate[], at: Date): Check {
  // An invalid Date compares false with everything, which would pass every window: fail closed.
  if (!(at instanceof Date) || Number.isNaN(at.getTime())) return fail('rim.chain.validity', 'no valid verification time was given');
  for (const c of certs) {
    if (at < c.notBefore || at > c.notAfter) {
      const state = at > c.notAfter ? 'expired' : 'is not yet valid';
      return fail('rim.chain.validity', `"${cn(c)}" ${state}: valid ${iso(c.notBefore)} to ${iso(c.notAfter)}, verification time ${iso(at)}`);
    }
  }
  return pass('rim.chain.validity', `all ${certs.length} certificates valid at ${iso(at)} (signer valid until ${iso(certs[0]!.notAfter)})`);
}

/**
 * Verify the chain `certs` (KeyInfo order, leaf first) to one of `anchors` at time `at`.
 * Returns the checks `rim.chain` and `rim.chain.validity`.
 */
export function verifyRimChain(certs: readonly Buffer[], anchors: readonly RimAnchor[], at: Date): RimChainResult {
  const none = (detail: string, validity = 'not evaluated: the chain could not be read'): RimChainResult => ({
    checks: [fail('rim.chain', detail), fail('rim.chain.validity', validity)],
    leafKey: undefined,
    anchor: undefined,
  });
  if (certs.length === 0) return none('the RIM signature has no KeyInfo/X509Data/X509Certificate, so its signer is unknown');
  // NVIDIA chains have 4 certificates; a long list only costs time.
  if (certs.length > MAX_CHAIN) return none(`KeyInfo holds ${certs.length} certificates; at most ${MAX_CHAIN} are accepted`);
  let path: Certificate[];
  let droppedRoot = '';
  try {
    path = certs.map((der) => parseCertificate(der));
    const last = path[path.length - 1]!;
    const selfIssued = path.length > 1 && bytesEqual(last.subjectDer, last.issuerDer);
    // Every KeyInfo certificate must also be one OpenSSL reads (as nvtrust's and our earlier checks
    // required), the ignored root included, unless it is byte for byte an anchor (the genuine case).
    // Reading OpenSSL's view first lets Certificate.publicKey take the key it decoded.
    for (const c of path) if (c !== last || !selfIssued || !anchors.some((a) => bytesEqual(a.der, last.der))) void c.x509;
    if (selfIssued) {
      path = path.slice(0, -1);
      droppedRoot = ` (the RIM's own root "${cn(last)}" was ignored; only pinned roots are trusted)`;
    }
  } catch (e) {
    return none(`a KeyInfo certificate is not a valid X.509 certificate (${(e as Error).message})`);
  }
  const trusted: { anchor: RimAnchor; cert: Certificate }[] = [];
  for (const a of anchors) {
    try {
      trusted.push({ anchor: a, cert: a.cert ?? parseCertificate(a.der) });
    } catch {
      // An unreadable anchor can never match; skip it rather than fail open.
    }
  }

  let chainCheck: Check | undefined;
  try {
    if (!keyUsageAllows(path[0]!, DIGITAL_SIGNATURE)) chainCheck = fail('rim.chain', `the signer "${cn(path[0]!)}" has a keyUsage without digitalSignature`);
  } catch (e) {
    chainCheck = fail('rim.chain', `cannot read the signer's keyUsage (${(e as Error).message})`);
  }
  for (let i = 0; i + 1 < path.length && !chainCheck; i++) {
    const child = path[i]!;
    const parent = path[i + 1]!;
    if (!isCa(parent)) chainCheck = fail('rim.chain', `KeyInfo certificate ${i + 1} "${cn(parent)}" is not a CA but issues "${cn(child)}"`);
    else if (!signedBy(child, parent))
      chainCheck = fail('rim.chain', `KeyInfo certificate ${i} "${cn(child)}" is not issued and signed by certificate ${i + 1} "${cn(parent)}"`);
  }
  const top = path[path.length - 1]!;
  const match = chainCheck ? undefined : trusted.find((t) => isCa(t.cert) && signedBy(top, t.cert));
  if (!chainCheck && !match) {
    chainCheck = fail(
      'rim.chain',
      `the RIM signing chain ends at "${cn(top)}" issued by "${top.issuerCn}", which is not signed by ${anchors.map((a) => a.label).join(' or ') || 'any trusted root'}${droppedRoot}`,
    );
  }
  if (!chainCheck) {
    chainCheck = pass('rim.chain', `${path.length} KeyInfo certificate(s) from "${cn(path[0]!)}" chain to the ${match!.anchor.label}${droppedRoot}`);
  }

  // Validity of every certificate on the path, the anchor included.
  const all = match ? [...path, match.cert] : path;
  const validity = validityCheck(all, at);
  let leafKey: KeyObject | undefined;
  if (chainCheck.ok) {
    try {
      leafKey = path[0]!.publicKey;
    } catch {
      leafKey = undefined;
    }
  }
  return { checks: [chainCheck, validity], leafKey, anchor: match?.anchor };
}
