/**
 * XML-DSig verification of an NVIDIA RIM (W3C XML-DSig, C14N 1.1; NVIDIA RIMs as nvtrust verifier/rim/__init__.py verifies them):
 * - exactly one enveloped <ds:Signature>, a child of the root, with exactly one Reference URI="";
 * - transforms: enveloped-signature then Canonical XML 1.1; digest SHA-384 (xmldsig-more#sha384);
 * - SignatureMethod ecdsa-sha384 over the C14N 1.1 SignedInfo, canonicalised as a document subset
 *   WITH its inherited namespaces (the inclusive-C14N subset rule); SignatureValue is raw r||s (RFC 4050 / 6931);
 * - the KeyInfo chain to the pinned CoRIM root (chain.ts).
 * Anything not exactly this profile fails closed with a named check. Pure: string + time in, checks out.
 */
import { createHash, timingSafeEqual, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { ParseError } from '../../../errors.js';
import { attr, childElements, parseXml, textOf, type XmlDocument, type XmlElement } from '../../../util/xml.js';
import { C14N11, canonicalizeDocument, canonicalizeSubset } from '../../../util/xml-c14n.js';
import { nvidiaRimRoot } from '../../../roots/nvidia-rim.js';
import { parseCertificate, type Certificate } from '../../../formats/x509/certificate.js';
import { fail, pass, type Check } from '../../../formats/checks.js';
import { verifyRimChain, type RimAnchor } from './rim-signer-chain.js';
import { DSIG_NS, decodeBase64, rimFromDocument } from './parse.js';
import type { Rim } from './rim-types.js';

export const ENVELOPED = 'http://www.w3.org/2000/09/xmldsig#enveloped-signature';
export const ECDSA_SHA384 = 'http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384';
export const DIGEST_SHA384 = 'http://www.w3.org/2001/04/xmldsig-more#sha384';

export interface RimVerifyOptions {
  /** Verification time: certificate validity is judged at this instant. */
  at: Date;
  /** Extra trust anchors (DER). ONLY for simulated RIMs when simulation is explicitly enabled. */
  extraRoots?: readonly Buffer[];
}

/** The parts of a well-formed signature, or the reason it is not one. */
interface SignatureParts {
  signature: XmlElement;
  signedInfo: XmlElement;
  digestValue: Buffer;
  signatureValue: Buffer;
  certs: Buffer[];
}

function only(parent: XmlElement, local: string): XmlElement {
  const found = childElements(parent, DSIG_NS, local);
  if (found.length !== 1) throw new ParseError(`XML-DSig: expected exactly one ds:${local} in ds:${parent.local}, found ${found.length}`);
  return found[0]!;
}

function algorithm(el: XmlElement, expected: string): void {
  const alg = attr(el, 'Algorithm');
  if (alg !== expected) throw new ParseError(`XML-DSig: ds:${el.local} Algorithm "${alg ?? ''}" is not the supported "${expected}"`);
}

function countSignatures(el: XmlElement): number {
  let n = el.ns === DSIG_NS && el.local === 'Signature' ? 1 : 0;
  for (const c of el.children) if (c.kind === 'element') n += countSignatures(c);
  return n;
}

/**
 * Locate and check the shape of the one enveloped signature; ParseError describes what is wrong.
 * `keyInfoCerts`: the KeyInfo certificates rimFromDocument already decoded (the same elements once
 * there is exactly one signature), so they are not decoded twice.
 */
function signatureParts(doc: XmlDocument, keyInfoCerts: Buffer[] | undefined): SignatureParts {
  const sigs = childElements(doc.root, DSIG_NS, 'Signature');
  const total = countSignatures(doc.root);
  // One signature, directly under the root: no wrapping tricks with a second, unreferenced one.
  if (sigs.length !== 1 || total !== 1) throw new ParseError(`XML-DSig: expected exactly one ds:Signature as a child of the root, found ${total}`);
  const signature = sigs[0]!;
  const signedInfo = only(signature, 'SignedInfo');
  algorithm(only(signedInfo, 'CanonicalizationMethod'), C14N11);
  algorithm(only(signedInfo, 'SignatureMethod'), ECDSA_SHA384);
  const ref = only(signedInfo, 'Reference');
  if (attr(ref, 'URI') !== '') throw new ParseError(`XML-DSig: Reference URI "${attr(ref, 'URI') ?? '(none)'}" is not "" (the whole document)`);
  const transforms = childElements(only(ref, 'Transforms'), DSIG_NS, 'Transform').map((t) => attr(t, 'Algorithm') ?? '');
  if (transforms.length !== 2 || transforms[0] !== ENVELOPED || transforms[1] !== C14N11) {
    throw new ParseError(`XML-DSig: Reference transforms [${transforms.join(', ')}] are not [enveloped-signature, xml-c14n11]`);
  }
  algorithm(only(ref, 'DigestMethod'), DIGEST_SHA384);
  const digestValue = decodeBase64(textOf(only(ref, 'DigestValue')), 'DigestValue');
  if (digestValue.length !== 48) throw new ParseError(`XML-DSig: DigestValue is ${digestValue.length} bytes, SHA-384 gives 48`);
  const signatureValue = decodeBase64(textOf(only(signature, 'SignatureValue')), 'SignatureValue');
  let certs = keyInfoCerts;
  if (!certs) {
    certs = [];
    for (const ki of childElements(signature, DSIG_NS, 'KeyInfo')) {
      for (const xd of childElements(ki, DSIG_NS, 'X509Data')) {
        for (const c of childElements(xd, DSIG_NS, 'X509Certificate')) certs.push(decodeBase64(textOf(c), 'X509Certificate'));
      }
    }
  }
  return { signature, signedInfo, digestValue, signatureValue, certs };
}

/** ecdsa-sha384 with a raw r||s value (96 bytes for P-384). */
function verifyEcdsaSha384(key: KeyObject, data: string, sig: Buffer): boolean {
  const details = key.asymmetricKeyDetails;
  if (key.asymmetricKeyType !== 'ec' || details?.namedCurve !== 'secp384r1' || sig.length !== 96) return false;
  return cryptoVerify('sha384', Buffer.from(data, 'utf8'), { key, dsaEncoding: 'ieee-p1363' }, sig);
}

/**
 * The pinned root as an anchor, parsed once per process: it is a constant (its SHA-256 is asserted by
 * nvidiaRimRoot), so holding it outside the memo caches changes no result, and a cold verification
 * (every memo cache dropped) still parses and imports everything that comes with the RIM.
 */
let pinnedAnchor: (RimAnchor & { cert: Certificate }) | undefined;
function pinned(): RimAnchor {
  if (!pinnedAnchor) {
    const { der } = nvidiaRimRoot();
    const cert = parseCertificate(der);
    void cert.publicKey; // imported once, with the parse
    pinnedAnchor = { der, label: 'pinned NVIDIA CoRIM signing Root CA', cert };
  }
  return pinnedAnchor;
}

function anchorsFor(extraRoots: readonly Buffer[] | undefined): RimAnchor[] {
  const anchors: RimAnchor[] = [pinned()];
  for (const der of extraRoots ?? []) anchors.push({ der, label: 'simulation root (trusted only because simulation is enabled)' });
  return anchors;
}

/** Checks on an already parsed document; also returns the Rim model when its structure is valid. */
export function verifyRimDocument(doc: XmlDocument, options: RimVerifyOptions): { checks: Check[]; rim: Rim | undefined } {
  const checks: Check[] = [];
  let rim: Rim | undefined;
  try {
    rim = rimFromDocument(doc);
    checks.push(
      pass(
        'rim.schema',
        `SWID tag "${rim.name}" ${rim.colloquialVersion}: Meta, Payload and ${rim.measurements.length} measurements present (${rim.measurements.filter((m) => m.active).length} active)`,
      ),
    );
  } catch (e) {
    checks.push(fail('rim.schema', (e as Error).message));
  }

  let parts: SignatureParts;
  try {
    parts = signatureParts(doc, rim?.signerCerts);
  } catch (e) {
    const why = (e as Error).message;
    checks.push(fail('rim.signature.reference', why), fail('rim.signature.value', why));
    checks.push(...verifyRimChain([], anchorsFor(options.extraRoots), options.at).checks);
    return { checks, rim };
  }

  // Reference: enveloped-signature transform, then C14N 1.1 of the whole document, then SHA-384.
  const digest = createHash('sha384')
    .update(canonicalizeDocument(doc, { omit: parts.signature }), 'utf8')
    .digest();
  checks.push(
    timingSafeEqual(digest, parts.digestValue)
      ? pass('rim.signature.reference', 'SHA-384 of the canonicalised document (signature removed) equals DigestValue')
      : fail(
          'rim.signature.reference',
          `the RIM content was modified after signing: SHA-384 of the canonicalised document is ${digest.toString('base64')}, DigestValue is ${parts.digestValue.toString('base64')}`,
        ),
  );

  // SignatureValue over canonical SignedInfo with the KeyInfo leaf's key (trust comes from rim.chain).
  // parseCertificate keeps the parse (and the imported key) for the chain below: each certificate is read once.
  let leafKey: KeyObject | undefined;
  try {
    if (parts.certs[0]) {
      // OpenSSL must read the signer certificate too (see rim-signer-chain.ts); its view holds the decoded key.
      const leaf = parseCertificate(parts.certs[0]);
      void leaf.x509;
      leafKey = leaf.publicKey;
    }
  } catch {
    leafKey = undefined;
  }
  if (!leafKey) checks.push(fail('rim.signature.value', 'no readable signer certificate in KeyInfo'));
  else {
    let ok = false;
    let why = '';
    try {
      ok = verifyEcdsaSha384(leafKey, canonicalizeSubset(parts.signedInfo), parts.signatureValue);
    } catch (e) {
      why = ` (${(e as Error).message})`;
    }
    checks.push(
      ok
        ? pass('rim.signature.value', 'ecdsa-sha384 SignatureValue over the canonical SignedInfo verifies with the KeyInfo signer key')
        : fail(
            'rim.signature.value',
            `SignatureValue does not verify with the KeyInfo signer's P-384 key${why}; the RIM was not signed by that certificate or was altered`,
          ),
    );
  }
  checks.push(...verifyRimChain(parts.certs, anchorsFor(options.extraRoots), options.at).checks);
  return { checks, rim };
}

/**
 * Verify a RIM's XML-DSig and signing chain. Returns the checks rim.schema, rim.signature.reference,
 * rim.signature.value, rim.chain, rim.chain.validity (always all five). Throws ParseError only when the
 * text is not well-formed XML (or is refused: DOCTYPE, size, depth).
 */
export function verifyRimSignature(xml: string, options: RimVerifyOptions): Check[] {
  return verifyRimDocument(parseXml(xml), options).checks;
}

/** Parse once, verify, and return the model with the checks (the model is untrusted unless all pass). */
export function verifyRim(xml: string, options: RimVerifyOptions): { checks: Check[]; rim: Rim | undefined } {
  return verifyRimDocument(parseXml(xml), options);
}
