/**
 * Signed RIMs for simulated GPUs: the same SWID + enveloped XML-DSig profile as NVIDIA's RIMs
 * (ISO/IEC 19770-2:2015 SWID, as nvtrust verifier/rim/__init__.py reads it), signed by a simulation chain. verifyRimSignature accepts them only
 * when the simulation root is passed in `extraRoots`, i.e. only when simulation is enabled.
 * The digest and signature are computed with the same parser and canonicaliser the verifier uses.
 */
import { createHash, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { CvmError } from '../errors.js';
import { childElements, parseXml } from '../util/xml.js';
import { C14N11, canonicalizeDocument, canonicalizeSubset, escapeAttr } from '../util/xml-c14n.js';
import { DSIG_NS, RIMIM_NS, SHA384_NS, SWID_NS } from '../verify/nvidia/rim/parse.js';
import { DIGEST_SHA384, ECDSA_SHA384, ENVELOPED } from '../verify/nvidia/rim/rim-signature.js';

export interface BuildRimMeasurement {
  /** RIM index (0-based; report block index + 1). */
  index: number;
  active?: boolean;
  /** 48-byte SHA-384 digests. */
  alternatives: Uint8Array[];
  name?: string;
}

export interface BuildRimInput {
  kind: 'driver' | 'vbios';
  /** colloquialVersion: driver version ("550.90.07") or VBIOS version ("96.00.5E.00.01"). */
  version: string;
  measurements: BuildRimMeasurement[];
  signer: {
    /** EC P-384 private key of the leaf. */
    key: KeyObject;
    /** DER certificates for KeyInfo, leaf first (a trailing root is fine; verifiers ignore it). */
    chain: Uint8Array[];
  };
  /** SoftwareIdentity@name / Meta@product (default "GH100"). */
  product?: string;
}

const b64Lines = (der: Uint8Array): string =>
  (
    Buffer.from(der)
      .toString('base64')
      .match(/.{1,64}/g) ?? []
  ).join('\n') + '\n';

/** Produce a signed RIM XML string. Throws CvmError on unusable input (wrong key type, bad digests). */
export function buildSignedRim(input: BuildRimInput): string {
  const { key, chain } = input.signer;
  if (key.type !== 'private' || key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'secp384r1') {
    throw new CvmError('ERR_RIM_BUILD', 'the RIM signer key must be an EC P-384 private key (ecdsa-sha384)');
  }
  if (chain.length === 0) throw new CvmError('ERR_RIM_BUILD', 'the RIM signer chain must contain at least the leaf certificate');
  if (input.measurements.length === 0) throw new CvmError('ERR_RIM_BUILD', 'a RIM needs at least one measurement');
  const product = input.product ?? 'GH100';
  const seen = new Set<number>();
  const resources = [...input.measurements]
    .sort((a, b) => a.index - b.index)
    .map((m) => {
      if (!Number.isInteger(m.index) || m.index < 0 || m.index > 253 || seen.has(m.index)) {
        throw new CvmError('ERR_RIM_BUILD', `measurement index ${m.index} is invalid or repeated`);
      }
      seen.add(m.index);
      if (m.alternatives.length === 0 || m.alternatives.some((a) => a.length !== 48)) {
        throw new CvmError('ERR_RIM_BUILD', `measurement ${m.index} needs 1+ alternatives of 48 bytes (SHA-384)`);
      }
      const hashes = m.alternatives.map((a, k) => ` ns2:Hash${k}="${Buffer.from(a).toString('hex')}"`).join('');
      const name = escapeAttr(m.name ?? `Measurement_${m.index}`);
      return `        <ns0:Resource type="Measurement" index="${m.index}" active="${m.active === false ? 'False' : 'True'}" alternatives="${m.alternatives.length}"${hashes} name="${name}" size="48"/>\n`;
    })
    .join('');
  const version = escapeAttr(input.version);
  const tagId = createHash('sha384').update(`${input.kind}\0${input.version}\0${resources}`).digest('hex');
  const head =
    `<SoftwareIdentity xmlns="${SWID_NS}" xmlns:ns0="${SWID_NS}" xmlns:ns2="${SHA384_NS}" corpus="false" name="${escapeAttr(product)}" patch="false" supplemental="false" tagId="${tagId}" version="1.0" tagVersion="0">\n` +
    `    <ns0:Entity name="NVIDIA Corporation (SIMULATED)" role="softwareCreator tagCreator"/>\n` +
    `    <ns0:Meta xmlns:ns1="${RIMIM_NS}" colloquialVersion="${version}" edition="GPU" product="${escapeAttr(product)}" revision="sim" PayloadType="direct" ns1:BindingSpec="RIMIM" ns1:BindingSpecVersion="1.01" ns1:FirmwareManufacturer="SIMULATED ${input.kind} RIM" ns1:FirmwareManufacturerId="5703"/>\n` +
    `    <ns0:Payload>\n${resources}    </ns0:Payload>\n`;
  const keyInfo = `<ds:KeyInfo><ds:X509Data>${chain.map((c) => `<ds:X509Certificate>${b64Lines(c)}</ds:X509Certificate>`).join('')}</ds:X509Data></ds:KeyInfo>`;
  const signedInfo = (digest: string): string =>
    `<ds:SignedInfo><ds:CanonicalizationMethod Algorithm="${C14N11}"/><ds:SignatureMethod Algorithm="${ECDSA_SHA384}"/>` +
    `<ds:Reference URI=""><ds:Transforms><ds:Transform Algorithm="${ENVELOPED}"/><ds:Transform Algorithm="${C14N11}"/></ds:Transforms>` +
    `<ds:DigestMethod Algorithm="${DIGEST_SHA384}"/><ds:DigestValue>${digest}</ds:DigestValue></ds:Reference></ds:SignedInfo>`;
  const assemble = (digest: string, sigValue: string): string =>
    `${head}<ds:Signature xmlns:ds="${DSIG_NS}">${signedInfo(digest)}<ds:SignatureValue>${sigValue}</ds:SignatureValue>${keyInfo}</ds:Signature></SoftwareIdentity>`;

  // 1. Digest: the enveloped-signature transform removes the Signature, so canonicalise the
  //    document as it will be, minus the signature.
  const draft = parseXml(assemble('', ''));
  const draftSig = childElements(draft.root, DSIG_NS, 'Signature')[0]!;
  const digest = createHash('sha384')
    .update(canonicalizeDocument(draft, { omit: draftSig }), 'utf8')
    .digest('base64');
  // 2. Signature over the canonical SignedInfo with its inherited namespaces, raw r||s.
  const withDigest = parseXml(assemble(digest, ''));
  const si = childElements(childElements(withDigest.root, DSIG_NS, 'Signature')[0]!, DSIG_NS, 'SignedInfo')[0]!;
  const sig = cryptoSign('sha384', Buffer.from(canonicalizeSubset(si), 'utf8'), { key, dsaEncoding: 'ieee-p1363' });
  return assemble(digest, sig.toString('base64'));
}
