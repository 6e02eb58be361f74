/**
 * Recognize what a collateral file is from its bytes alone, so `collateral import` needs no flags:
 * AMD VCEK/VLEK (DER or PEM; AMD extensions 1.3.6.1.4.1.3704.1.* and issuer CN, AMD #57230),
 * ASK/ASVK/ARK (KDS cert_chain PEM), KDS CRLs (DER/PEM, issuer ARK-<P>), NVIDIA RIM XML (SWID tag,
 * ISO/IEC 19770-2:2015), the RIM service JSON {id, rim: base64}, OCSP responses (DER, RFC 6960 §4.2),
 * the Azure IMDS THIM certification JSON {vcekCert, certificateChain, tcbm} (az-cvm-vtpm az-snp-vtpm/src/imds.rs) and our own
 * export bundle. Pure: bytes in, items out; malformed input raises ParseError/CollateralError.
 * Nothing here is trusted: verification checks chains against pinned roots later.
 */
import { ParseError } from '../errors.js';
import { children, childrenAtLeast, decodeOid, decodeString, expectTag, parseDer, TAG } from '../util/der.js';
import { encodeTcb, parseAmdCertExtensions, productFromName, tcbLayoutFor, type SnpProduct } from '../formats/snp-abi/index.js';
import { roleOf } from '../verify/snp/cert-input.js';
import { certificateValidity, parseCertificate, type Certificate } from '../formats/x509/certificate.js';
import { parseCrl } from '../verify/snp/crl.js';
import { parseOcspResponse, OCSP_RESPONSE_STATUS } from '../verify/nvidia/ocsp-check.js';
import { parseRim } from '../verify/nvidia/rim/index.js';
import { isBundleJson, parseBundle } from './bundle.js';
import { checkChain, checkRimId, keyPath, PRODUCTS } from './keys.js';
import type { ClassifiedItem, CollateralKey, KdsChain, ValidityInfo } from './collateral-types.js';
import { driverRimIdForProduct } from '../verify/nvidia/rim/ids.js';
import { derToPem, pemBlocks } from '../util/pem.js';

/** One collateral object is small (a RIM is tens of KB); bundles have their own cap. */
export const MAX_ITEM_BYTES = 1024 * 1024;

export interface ClassifyHint {
  /** The file's base name: names VBIOS RIMs (NV_GPU_VBIOS_… or nvtrust's <project>_<sku>_<chip>_<ver>_PROD.swidtag) and CRL chains ("vlek" in the name). */
  fileName?: string;
  /** RIM id when the caller knows it (RIM service request, --rim-id, a bundle key). */
  rimId?: string;
  /** Chain of a CRL when the caller knows it (the KDS URL it came from, a bundle key). */
  crlChain?: KdsChain;
}

/** Items plus, for bundles, where and when each was first obtained. */
export interface ClassifiedWithOrigin extends ClassifiedItem {
  origin?: { fetchedAt: string; source: string };
}

const OID_CN = '2.5.4.3';
const iso = (d: Date): string => d.toISOString();

export { derToPem };

function commonNameOf(nameDer: Uint8Array): string {
  for (const rdn of children(expectTag(parseDer(nameDer), TAG.SEQUENCE, 'Name'))) {
    for (const atv of children(expectTag(rdn, TAG.SET, 'RDN'))) {
      const [type, value] = childrenAtLeast(expectTag(atv, TAG.SEQUENCE, 'AttributeTypeAndValue'), 2, 'AttributeTypeAndValue');
      if (decodeOid(type!) === OID_CN) return decodeString(value!);
    }
  }
  return '';
}

function knownProduct(name: string | undefined, what: string): SnpProduct {
  const p = name === undefined ? undefined : productFromName(name);
  if (p === undefined || !PRODUCTS.includes(p))
    throw new ParseError(`${what}: unknown AMD product "${String(name).slice(0, 40)}" (expected Milan, Genoa or Turin)`);
  return p;
}

const certValidityInfo = (c: Certificate): ValidityInfo => ({ notBefore: iso(c.notBefore), notAfter: iso(c.notAfter) });

/** One DER certificate → VCEK, VLEK, ASK, ASVK or ARK. */
function classifyCertificate(der: Uint8Array): ClassifiedItem {
  const cert = parseCertificate(der);
  const { role, productName } = roleOf(cert);
  const data = Buffer.from(der);
  if (role === 'vcek' || role === 'vlek') {
    const ext = parseAmdCertExtensions(der);
    const product = knownProduct(ext.productName, `${cert.subjectCn} productName`);
    const expectedIssuer = role === 'vcek' ? `SEV-${product}` : `SEV-VLEK-${product}`;
    if (cert.issuerCn !== expectedIssuer) {
      throw new ParseError(`${cert.subjectCn} for ${product} must be issued by "${expectedIssuer}", not "${cert.issuerCn}"`);
    }
    const layout = tcbLayoutFor(product);
    const tcb = encodeTcb(
      { bootloader: ext.blSpl, tee: ext.teeSpl, snp: ext.snpSpl, microcode: ext.ucodeSpl, ...(layout === 'turin' ? { fmc: ext.fmcSpl ?? 0 } : {}) },
      layout,
    )
      .toString(16)
      .padStart(16, '0');
    const tcbText = `bl ${ext.blSpl} tee ${ext.teeSpl} snp ${ext.snpSpl} ucode ${ext.ucodeSpl}${ext.fmcSpl !== undefined ? ` fmc ${ext.fmcSpl}` : ''}`;
    if (role === 'vcek') {
      if (ext.hwId === undefined) throw new ParseError('SEV-VCEK certificate has no hwID extension (1.3.6.1.4.1.3704.1.4)');
      // Turin hwID is 8 bytes, Milan/Genoa 64 (go-sev-guest kds/kds.go; trustee get_oid_octets).
      const want = product === 'Turin' ? 8 : 64;
      if (ext.hwId.length !== want) throw new ParseError(`SEV-VCEK for ${product}: hwID of ${ext.hwId.length} bytes, expected ${want}`);
      const key: CollateralKey = { kind: 'vcek', product, hwId: ext.hwId.toString('hex'), tcb };
      return { key, data, validity: certValidityInfo(cert), description: `VCEK ${ext.productName}, ${tcbText}` };
    }
    const key: CollateralKey = { kind: 'vlek', product, tcb };
    return { key, data, validity: certValidityInfo(cert), description: `VLEK ${ext.productName}${ext.cspId ? ` (${ext.cspId})` : ''}, ${tcbText}` };
  }
  if (role === 'ask' || role === 'asvk' || role === 'ark') {
    const product = knownProduct(productName, `certificate "${cert.subjectCn}"`);
    return {
      key: { kind: role, product },
      data: Buffer.from(derToPem(der)),
      validity: certValidityInfo(cert),
      description: `${cert.subjectCn} (serial 0x${cert.serial.toString(16)})`,
    };
  }
  throw new ParseError(
    `certificate "${cert.subjectCn.slice(0, 60)}" is not AMD SEV collateral (expected CN SEV-VCEK, SEV-VLEK, SEV-<P>, SEV-VLEK-<P> or ARK-<P>)`,
  );
}

function crlChainFrom(hint: ClassifyHint): KdsChain {
  if (hint.crlChain !== undefined) return checkChain(hint.crlChain);
  // Both KDS CRLs are signed by the same ARK and look alike; the URL/file name is the only witness.
  return /vlek/i.test(hint.fileName ?? '') ? 'vlek' : 'vcek';
}

function classifyCrl(der: Uint8Array, hint: ClassifyHint): ClassifiedItem {
  const crl = parseCrl(der);
  const cn = commonNameOf(crl.issuerDer);
  const m = /^ARK-([A-Za-z]+)$/.exec(cn);
  if (!m) throw new ParseError(`CRL issued by "${cn.slice(0, 60)}" is not an AMD KDS CRL (issuer must be ARK-<product>)`);
  const product = knownProduct(m[1], `CRL issuer "${cn}"`);
  const chain = crlChainFrom(hint);
  const validity: ValidityInfo = { thisUpdate: iso(crl.thisUpdate), ...(crl.nextUpdate ? { nextUpdate: iso(crl.nextUpdate) } : {}) };
  return { key: { kind: 'crl', product, chain }, data: Buffer.from(der), validity, description: `${cn} CRL, ${crl.revokedSerials.length} revoked` };
}

function classifyOcsp(der: Uint8Array): ClassifiedItem {
  const resp = parseOcspResponse(der);
  if (resp.responseStatus !== 0)
    throw new ParseError(`OCSP response status ${OCSP_RESPONSE_STATUS[resp.responseStatus] ?? resp.responseStatus}: nothing to cache`);
  const single = resp.responses[0];
  if (!single) throw new ParseError('OCSP response without any SingleResponse');
  const serial = single.serial;
  if (serial < 0n) throw new ParseError('OCSP response for a negative serial number');
  const key: CollateralKey = { kind: 'ocsp', issuerKeyHash: Buffer.from(single.issuerKeyHash).toString('hex'), serial: serial.toString(16) };
  keyPath(key); // validates hash length and serial size
  const validity: ValidityInfo = { thisUpdate: iso(single.thisUpdate), ...(single.nextUpdate ? { nextUpdate: iso(single.nextUpdate) } : {}) };
  return { key, data: Buffer.from(der), validity, description: `OCSP ${single.status} for serial 0x${key.serial}, produced ${iso(resp.producedAt)}` };
}

/** DER: a certificate, a CRL or an OCSP response, told apart by trying each strict parser. */
function classifyDer(der: Uint8Array, hint: ClassifyHint): ClassifiedItem {
  const top = parseDer(der);
  if (top.tag !== TAG.SEQUENCE) throw new ParseError('DER: top-level object is not a SEQUENCE');
  const first = children(top)[0];
  if (first?.tag === TAG.ENUMERATED) return classifyOcsp(der);
  const errors: string[] = [];
  let isCert = true;
  try {
    parseCertificate(der);
  } catch (err) {
    if (!(err instanceof ParseError)) throw err;
    errors.push(`certificate: ${err.message}`);
    isCert = false;
  }
  // A well-formed certificate with the wrong CN/extensions: report that, not a CRL attempt.
  if (isCert) return classifyCertificate(der);
  try {
    return classifyCrl(der, hint);
  } catch (err) {
    if (!(err instanceof ParseError)) throw err;
    errors.push(`CRL: ${err.message}`);
  }
  throw new ParseError(`DER object is neither an AMD certificate, a KDS CRL nor an OCSP response (${errors.join('; ')})`);
}

const VBIOS_VERSION = /^[0-9A-Fa-f]{2}(\.[0-9A-Fa-f]{2}){4}$/;
const DRIVER_VERSION = /^[0-9]{1,4}(\.[0-9]{1,4}){1,3}$/;

/** Name a RIM: driver RIMs from their content, VBIOS RIMs from the file name; a given id must agree with the content. */
function rimIdFor(name: string, version: string, hint: ClassifyHint): string {
  const vbios = VBIOS_VERSION.test(version);
  const versionTag = vbios ? version.replace(/\./g, '').toUpperCase() : version;
  const check = (id: string, from: string): string => {
    checkRimId(id);
    if (!id.endsWith(`_${versionTag}`)) throw new ParseError(`RIM id "${id}" (${from}) does not match the RIM's version ${version}`);
    return id;
  };
  if (hint.rimId !== undefined) return check(hint.rimId, 'given');
  if (!vbios && DRIVER_VERSION.test(version)) {
    // The one driver RIM id scheme (rim/ids.ts): Hopper NV_GPU_DRIVER_GH100_<v>, Blackwell NV_GPU_CC_DRIVER_<chip>_<v>.
    return check(driverRimIdForProduct(name, version), 'from the content');
  }
  const base = (hint.fileName ?? '').replace(/\.(xml|swidtag)$/i, '');
  let m = /^(NV_GPU_VBIOS_[0-9A-Za-z]{1,16}_[0-9A-Za-z]{1,16}_[0-9A-Za-z]{1,16}_[0-9A-Fa-f]{10})(?:_.*)?$/.exec(base);
  if (m) return check(m[1]!.toUpperCase(), `from file name "${hint.fileName}"`);
  // NVSwitch VBIOS RIMs (verify/nvidia/switch-verify.ts switchBiosRimId), also as NVIDIA/attestation-sdk names its
  // sample "switchVBIOSRim_NV_SWITCH_BIOS_<project>_<sku>_<chip>_<version>.xml".
  m = /^(?:switchVBIOSRim_)?(NV_SWITCH_BIOS_[0-9A-Za-z]{1,16}_[0-9A-Za-z]{1,16}_[0-9A-Za-z]{1,16}_[0-9A-Fa-f]{10})$/i.exec(base);
  if (m) return check(m[1]!.toUpperCase(), `from file name "${hint.fileName}"`);
  m = /^([0-9A-Za-z]{1,16})_([0-9A-Za-z]{1,16})_([0-9A-Za-z]{1,16})_([0-9A-Fa-f]{10})(?:_PROD|_test_no_gpu)?$/i.exec(base);
  if (m) return check(`NV_GPU_VBIOS_${m[1]}_${m[2]}_${m[3]}_${m[4]}`.toUpperCase(), `from file name "${hint.fileName}"`);
  throw new ParseError(
    `RIM version ${version.slice(0, 40)}: its RIM id cannot be derived from the content; name the file NV_GPU_VBIOS_<project>_<sku>_<chip>_<version>.xml (NV_SWITCH_BIOS_... for an NVSwitch) or pass --rim-id`,
  );
}

function classifyRim(xml: string, hint: ClassifyHint): ClassifiedItem {
  const rim = parseRim(xml);
  const id = rimIdFor(rim.name, rim.colloquialVersion, hint);
  const validity: ValidityInfo = {};
  // A RIM carries no dates of its own; its signer chain's validity bounds when it can verify.
  let nb = -Infinity;
  let na = Infinity;
  for (const der of rim.signerCerts) {
    try {
      const v = certificateValidity(der);
      nb = Math.max(nb, v.notBefore.getTime());
      na = Math.min(na, v.notAfter.getTime());
    } catch {
      // An unreadable KeyInfo certificate is the verifier's business; it just gives no dates here.
    }
  }
  if (Number.isFinite(nb)) validity.notBefore = iso(new Date(nb));
  if (Number.isFinite(na)) validity.notAfter = iso(new Date(na));
  return { key: { kind: 'rim', id }, data: Buffer.from(xml, 'utf8'), validity, description: `RIM ${rim.name} ${rim.colloquialVersion}` };
}

function classifyPem(text: string, hint: ClassifyHint): ClassifiedItem[] {
  const out: ClassifiedItem[] = pemBlocks(text).map((der) => classifyCertificate(der));
  for (const der of pemBlocks(text, 'X509 CRL')) out.push(classifyCrl(der, hint));
  if (out.length === 0) throw new ParseError('PEM without any CERTIFICATE or X509 CRL block');
  return out;
}

function classifyJson(value: unknown, hint: ClassifyHint): ClassifiedWithOrigin[] {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ParseError('JSON collateral must be an object');
  const o = value as Record<string, unknown>;
  if (isBundleJson(o)) {
    return parseBundle(o).flatMap((e) => {
      const sub: ClassifyHint = e.key.kind === 'rim' ? { rimId: e.key.id } : e.key.kind === 'crl' ? { crlChain: e.key.chain } : {};
      const items = classifyOne(e.data, sub);
      if (!items.some((it) => keyPath(it.key) === keyPath(e.key)))
        throw new ParseError(`collateral bundle: entry ${keyPath(e.key)} holds different collateral`);
      return items.map((it) => ({ ...it, origin: { fetchedAt: e.fetchedAt, source: e.source } }));
    });
  }
  if (typeof o.vcekCert === 'string' || typeof o.certificateChain === 'string') {
    // Azure IMDS THIM certification response (az-cvm-vtpm az-snp-vtpm/src/imds.rs).
    const pem = `${typeof o.vcekCert === 'string' ? o.vcekCert : ''}\n${typeof o.certificateChain === 'string' ? o.certificateChain : ''}`;
    return classifyPem(pem, hint);
  }
  if (typeof o.rim === 'string') {
    // NVIDIA RIM service response {id, rim: base64(XML)} (nvtrust fetch_rim_file).
    const b64 = o.rim.replace(/\s+/g, '');
    if (b64.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(b64)) throw new ParseError('RIM service JSON: "rim" is not base64');
    const id = hint.rimId ?? (typeof o.id === 'string' ? o.id : undefined);
    return [classifyRim(Buffer.from(b64, 'base64').toString('utf8'), { ...hint, ...(id !== undefined ? { rimId: id } : {}) })];
  }
  throw new ParseError('JSON is neither an Azure IMDS certification response, a RIM service response nor a collateral bundle');
}

function classifyOne(bytes: Uint8Array, hint: ClassifyHint): ClassifiedWithOrigin[] {
  if (bytes.length === 0) throw new ParseError('empty file');
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf[0] === 0x30) {
    if (bytes.length > MAX_ITEM_BYTES) throw new ParseError(`DER object of ${bytes.length} bytes exceeds ${MAX_ITEM_BYTES}`);
    return [classifyDer(buf, hint)];
  }
  const text = buf
    .toString('utf8')
    .replace(/^\uFEFF/, '')
    .trimStart();
  if (text.startsWith('{')) {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw new ParseError(`invalid JSON: ${(err as Error).message}`);
    }
    return classifyJson(value, hint);
  }
  if (bytes.length > MAX_ITEM_BYTES) throw new ParseError(`file of ${bytes.length} bytes exceeds ${MAX_ITEM_BYTES} (not a single collateral object)`);
  if (text.startsWith('-----BEGIN')) return classifyPem(text, hint);
  if (text.startsWith('<')) return [classifyRim(text, hint)];
  throw new ParseError('not recognized as collateral (expected DER, PEM, RIM XML or JSON)');
}

/**
 * Classify one file's bytes. A file may hold several items (a cert_chain PEM, an IMDS response,
 * a bundle). Throws ParseError (or CollateralError for an invalid id) when nothing is recognized.
 */
export function classify(bytes: Uint8Array, hint: ClassifyHint = {}): ClassifiedWithOrigin[] {
  if (!(bytes instanceof Uint8Array)) throw new ParseError('classify: expected bytes');
  return classifyOne(bytes, hint);
}
