/**
 * SWID-tag RIM parsing (ISO/IEC 19770-2:2015 SWID tags as read by nvtrust verifier/rim/__init__.py): the fields a verifier needs, with the
 * structural rules that nvtrust enforces through its XSD validation, checked by hand.
 * Pure: string in, Rim out; anything malformed is a ParseError.
 */
import { ParseError } from '../../../errors.js';
import { attr, childElements, parseXml, textOf, type XmlDocument, type XmlElement } from '../../../util/xml.js';
import type { Rim, RimMeasurement } from './rim-types.js';

/** ISO/IEC 19770-2:2015 SWID namespace (root default namespace and ns0 in NVIDIA RIMs). */
export const SWID_NS = 'http://standards.iso.org/iso/19770/-2/2015/schema.xsd';
/** TCG RIM information model attributes on <Meta>. */
export const RIMIM_NS = 'https://trustedcomputinggroup.org/resource/tcg-reference-integrity-manifest-rim-information-model/';
/** Namespace of the HashN attributes (nvtrust reads `{http://www.w3.org/2001/04/xmlenc#sha384}Hash<k>`). */
export const SHA384_NS = 'http://www.w3.org/2001/04/xmlenc#sha384';
export const DSIG_NS = 'http://www.w3.org/2000/09/xmldsig#';

/** Upper bound on alternatives per measurement (NVIDIA uses at most 4); keeps hostile RIMs cheap. */
const MAX_ALTERNATIVES = 64;
/** SPDM block indices are one byte and RIM index i maps to block i+1, so i <= 253. */
const MAX_INDEX = 253;

/** Parse a RIM XML document. Throws ParseError on malformed XML or a RIM missing required parts. */
export function parseRim(xml: string): Rim {
  return rimFromDocument(parseXml(xml));
}

function one(parent: XmlElement, ns: string, local: string): XmlElement {
  const found = childElements(parent, ns, local);
  if (found.length !== 1) throw new ParseError(`RIM: expected exactly one <${local}> in <${parent.local}>, found ${found.length}`);
  return found[0]!;
}

function required(el: XmlElement, local: string, ns = ''): string {
  const v = attr(el, local, ns);
  if (v === undefined || v === '') throw new ParseError(`RIM: <${el.local}> has no ${local} attribute`);
  return v;
}

function decimal(v: string, what: string, max: number): number {
  if (!/^(0|[1-9][0-9]{0,5})$/.test(v)) throw new ParseError(`RIM: ${what} "${v.slice(0, 20)}" is not a decimal integer`);
  const n = Number(v);
  if (n > max) throw new ParseError(`RIM: ${what} ${n} exceeds ${max}`);
  return n;
}

/** Strict base64 (whitespace allowed between groups, as in X509Certificate/DigestValue text). */
export function decodeBase64(text: string, what: string): Buffer {
  const s = text.replace(/[ \t\n\r]+/g, '');
  if (s.length === 0 || s.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(s)) throw new ParseError(`RIM: ${what} is not valid base64`);
  return Buffer.from(s, 'base64');
}

function parseMeasurement(r: XmlElement): RimMeasurement {
  const index = decimal(required(r, 'index'), 'Resource index', MAX_INDEX);
  const activeText = required(r, 'active');
  if (!/^(true|false)$/i.test(activeText)) throw new ParseError(`RIM: Resource ${index} active="${activeText.slice(0, 20)}" is not True/False`);
  const count = decimal(required(r, 'alternatives'), `Resource ${index} alternatives`, MAX_ALTERNATIVES);
  if (count < 1) throw new ParseError(`RIM: Resource ${index} has no alternatives`);
  const sizeText = attr(r, 'size');
  const size = sizeText === undefined ? undefined : decimal(sizeText, `Resource ${index} size`, 1024);
  const alternatives: Buffer[] = [];
  for (let k = 0; k < count; k++) {
    const hex = attr(r, `Hash${k}`, SHA384_NS);
    if (hex === undefined) throw new ParseError(`RIM: Resource ${index} declares ${count} alternatives but has no Hash${k}`);
    // SHA-384 namespace: 48-byte digests, hex encoded.
    if (!/^[0-9a-fA-F]{96}$/.test(hex)) throw new ParseError(`RIM: Resource ${index} Hash${k} is not a 48-byte hex digest`);
    alternatives.push(Buffer.from(hex, 'hex'));
  }
  const extra = r.attributes.find((a) => a.ns === SHA384_NS && /^Hash[0-9]+$/.test(a.local) && Number(a.local.slice(4)) >= count);
  if (extra) throw new ParseError(`RIM: Resource ${index} has ${extra.local} beyond its ${count} alternatives`);
  if (size !== undefined && size !== 48) throw new ParseError(`RIM: Resource ${index} size ${size} does not fit SHA-384 digests (48)`);
  return {
    index,
    name: attr(r, 'name') ?? `Measurement_${index}`,
    active: activeText.toLowerCase() === 'true',
    ...(size !== undefined ? { size } : {}),
    alternatives,
  };
}

/** Build the Rim model from an already parsed document (shared with signature verification). */
export function rimFromDocument(doc: XmlDocument): Rim {
  const root = doc.root;
  if (root.ns !== SWID_NS || root.local !== 'SoftwareIdentity') {
    throw new ParseError(`RIM: root element is {${root.ns}}${root.local}, expected a SWID SoftwareIdentity`);
  }
  const tagId = required(root, 'tagId');
  const name = required(root, 'name');
  // swidSchema2015.xsd: version is optional with default "0.0".
  const version = attr(root, 'version') ?? '0.0';
  const meta = one(root, SWID_NS, 'Meta');
  const colloquialVersion = required(meta, 'colloquialVersion');
  const payload = one(root, SWID_NS, 'Payload');
  const measurements: RimMeasurement[] = [];
  const seen = new Set<number>();
  for (const r of childElements(payload, SWID_NS, 'Resource')) {
    if (attr(r, 'type') !== 'Measurement') continue;
    const m = parseMeasurement(r);
    if (seen.has(m.index)) throw new ParseError(`RIM: measurement index ${m.index} appears twice`);
    seen.add(m.index);
    measurements.push(m);
  }
  if (measurements.length === 0) throw new ParseError('RIM: <Payload> has no Measurement resources');

  const entity = childElements(root, SWID_NS, 'Entity')[0];
  const manufacturer = attr(meta, 'FirmwareManufacturer', RIMIM_NS) ?? (entity ? attr(entity, 'name') : undefined);
  const manufacturerId = attr(meta, 'FirmwareManufacturerId', RIMIM_NS);
  const product = attr(meta, 'product');
  const edition = attr(meta, 'edition');
  const persistentId = attr(meta, 'persistentId');
  const file = childElements(payload, SWID_NS, 'File')[0];
  const fileName = file ? attr(file, 'name') : undefined;

  const signerCerts: Buffer[] = [];
  for (const sig of childElements(root, DSIG_NS, 'Signature')) {
    for (const ki of childElements(sig, DSIG_NS, 'KeyInfo')) {
      for (const xd of childElements(ki, DSIG_NS, 'X509Data')) {
        for (const c of childElements(xd, DSIG_NS, 'X509Certificate')) signerCerts.push(decodeBase64(textOf(c), 'X509Certificate'));
      }
    }
  }
  return {
    tagId,
    name,
    version,
    colloquialVersion,
    ...(product !== undefined ? { product } : {}),
    ...(edition !== undefined ? { edition } : {}),
    ...(manufacturer !== undefined ? { manufacturer } : {}),
    ...(manufacturerId !== undefined ? { manufacturerId } : {}),
    ...(fileName !== undefined ? { fileName } : {}),
    ...(persistentId !== undefined ? { persistentId } : {}),
    measurements,
    signerCerts,
  };
}
