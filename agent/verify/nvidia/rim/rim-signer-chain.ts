/**
 * RIM signing chain (the KeyInfo X509Data of NVIDIA RIMs; nvtrust verifier/rim/__init__.py): KeyInfo certificates, leaf first, must chain to a
 * trust anchor: the pinned "NVIDIA CoRIM signing Root CA", or a simulation root the caller passes
 * explicitly. A self-issued last certificate in KeyInfo is dropped, never trusted (as both
 * NVIDIA verifiers do), so a RIM cannot bring its own root.
 * Pure: DER + anchors + time in, named checks out. OCSP is not done here (collateral layer).
 */
import { X509Certificate, type KeyObject } from 'node:crypto';
import { expectTag, parseDer, TAG, valueOf } from '../../../util/der.js';
import { certificateValidity } from '../../../formats/x509/certificate.js';
import { certificateExtensions } from '../../../formats/x509/extensions.js';
import { fail, pass, type Check } from '../../../formats/checks.js';

export interface RimAnchor {
  der: Buffer;
  /** Shown in check details, e.g. "pinned NVIDIA CoRIM signing Root CA". */
  label: string;
}

export interface RimChainResult {
  checks: Check[];
  /** The leaf's public key when the chain verified (used for the SignatureValue). */
  leafKey: KeyObject | undefined;
  /** Which anchor the chain ended at, when it verified. */
  anchor: RimAnchor | undefined;
}

const MAX_CHAIN = 8;

/** RFC 5280 §4.2.1.3: if keyUsage is present, the signer must have digitalSignature (bit 0). */
function leafMaySign(der: Uint8Array): boolean {
  const ku = certificateExtensions(der).get('2.5.29.15');
  if (!ku) return true;
  // KeyUsage is a named BIT STRING: first octet = unused bits, then the bits (DER trims trailing zeros).
  const v = valueOf(expectTag(parseDer(ku.value), TAG.BIT_STRING, 'keyUsage'));
  return v.length > 1 && (v[1]! & 0x80) !== 0;
}

const cn = (x: X509Certificate): string => x.subject.replace(/\n/g, ', ');
const iso = (d: Date): string => d.toISOString().replace('.000Z', 'Z');

/** Is `child` issued and signed by `parent`? (name/key-id match via OpenSSL, then the signature.) */
function signedBy(child: X509Certificate, parent: X509Certificate): boolean {
  try {
    return child.checkIssued(parent) && child.verify(parent.publicKey);
  } catch {
    return false;
  }
}

/** rim.chain.validity: every certificate on the path (anchor included) is valid at `at`. */
function validityCheck(certs: readonly { der: Buffer; x509: X509Certificate }[], at: Date): Check {
  // An invalid Date compares false with everything, which would pass every window: fail closed.
  if (!(at instanceof Date) || Number.isNaN(at.getTime())) return fail('rim.chain.validity', 'no valid verification time was given');
  try {
    let signerNotAfter: Date | undefined;
    for (const c of certs) {
      const v = certificateValidity(c.der);
      signerNotAfter ??= v.notAfter;
      if (at < v.notBefore || at > v.notAfter) {
        const state = at > v.notAfter ? 'expired' : 'is not yet valid';
        return fail('rim.chain.validity', `"${cn(c.x509)}" ${state}: valid ${iso(v.notBefore)} to ${iso(v.notAfter)}, verification time ${iso(at)}`);
      }
    }
    return pass(
      'rim.chain.validity',
      `all ${certs.length} certificates valid at ${iso(at)}${signerNotAfter ? ` (signer valid until ${iso(signerNotAfter)})` : ''}`,
    );
  } catch (e) {
    return fail('rim.chain.validity', `cannot read certificate validity (${(e as Error).message})`);
  }
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
  let path: { der: Buffer; x509: X509Certificate }[];
  try {
    path = certs.map((der) => ({ der, x509: new X509Certificate(der) }));
  } catch (e) {
    return none(`a KeyInfo certificate is not a valid X.509 certificate (${(e as Error).message})`);
  }
  let droppedRoot = '';
  const last = path[path.length - 1]!;
  if (path.length > 1 && last.x509.subject === last.x509.issuer) {
    path = path.slice(0, -1);
    droppedRoot = ` (the RIM's own root "${cn(last.x509)}" was ignored; only pinned roots are trusted)`;
  }
  const trusted: { anchor: RimAnchor; x509: X509Certificate }[] = [];
  for (const a of anchors) {
    try {
      trusted.push({ anchor: a, x509: new X509Certificate(a.der) });
    } catch {
      // An unreadable anchor can never match; skip it rather than fail open.
    }
  }

  let chainCheck: Check | undefined;
  try {
    if (!leafMaySign(path[0]!.der)) chainCheck = fail('rim.chain', `the signer "${cn(path[0]!.x509)}" has a keyUsage without digitalSignature`);
  } catch (e) {
    chainCheck = fail('rim.chain', `cannot read the signer's keyUsage (${(e as Error).message})`);
  }
  for (let i = 0; i + 1 < path.length && !chainCheck; i++) {
    const child = path[i]!.x509;
    const parent = path[i + 1]!.x509;
    if (!parent.ca) chainCheck = fail('rim.chain', `KeyInfo certificate ${i + 1} "${cn(parent)}" is not a CA but issues "${cn(child)}"`);
    else if (!signedBy(child, parent))
      chainCheck = fail('rim.chain', `KeyInfo certificate ${i} "${cn(child)}" is not issued and signed by certificate ${i + 1} "${cn(parent)}"`);
  }
  const top = path[path.length - 1]!.x509;
  const match = chainCheck ? undefined : trusted.find((t) => t.x509.ca && signedBy(top, t.x509));
  if (!chainCheck && !match) {
    chainCheck = fail(
      'rim.chain',
      `the RIM signing chain ends at "${cn(top)}" issued by "${top.issuer.replace(/\n/g, ', ')}", which is not signed by ${anchors.map((a) => a.label).join(' or ') || 'any trusted root'}${droppedRoot}`,
    );
  }
  if (!chainCheck) {
    chainCheck = pass('rim.chain', `${path.length} KeyInfo certificate(s) from "${cn(path[0]!.x509)}" chain to the ${match!.anchor.label}${droppedRoot}`);
  }

  // Validity of every certificate on the path, the anchor included.
  const all = match ? [...path, { der: match.anchor.der, x509: match.x509 }] : path;
  const validity = validityCheck(all, at);
  return { checks: [chainCheck, validity], leafKey: chainCheck.ok ? path[0]!.x509.publicKey : undefined, anchor: match?.anchor };
}
