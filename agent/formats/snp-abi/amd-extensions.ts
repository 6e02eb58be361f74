/**
 * AMD VCEK/VLEK X.509 extensions, OIDs 1.3.6.1.4.1.3704.1.* (AMD #57230; go-sev-guest kds/kds.go,
 * tinfoilsh/go-sev-guest kds.go for …3.9 fmcSPL, trustee get_oid_octets for hwID). Node's
 * X509Certificate does not expose custom extensions, hence formats/x509/extensions.ts.
 */
import { ParseError } from '../../errors.js';
import { TAG, decodeInteger, decodeString, parseDer, readNode, valueOf, type DerNode } from '../../util/der.js';
import { certificateExtensions } from '../x509/extensions.js';
import { productFromName } from './tcb-version.js';
import type { AmdCertExtensions } from './abi-types.js';

const AMD = '1.3.6.1.4.1.3704.1';
export const AMD_OID = {
  structVersion: `${AMD}.1`,
  productName: `${AMD}.2`,
  blSpl: `${AMD}.3.1`,
  teeSpl: `${AMD}.3.2`,
  snpSpl: `${AMD}.3.3`,
  spl4: `${AMD}.3.4`,
  spl5: `${AMD}.3.5`,
  spl6: `${AMD}.3.6`,
  spl7: `${AMD}.3.7`,
  ucodeSpl: `${AMD}.3.8`,
  fmcSpl: `${AMD}.3.9`,
  hwId: `${AMD}.4`,
  cspId: `${AMD}.5`,
} as const;

/** hwID lengths: 64 bytes (Milan/Genoa CHIP_ID), 8 bytes (Turin): go-sev-guest kds/kds.go, trustee deps/verifier/src/snp/mod.rs. */
const HWID_LENGTHS = new Set([8, 64]);
const STRING_TAGS = new Set<number>([TAG.IA5_STRING, TAG.UTF8_STRING, TAG.PRINTABLE_STRING]);

function single(value: Uint8Array, what: string): DerNode {
  try {
    return parseDer(value);
  } catch (e) {
    throw new ParseError(`AMD extension ${what}: ${(e as Error).message}`, undefined, { cause: e });
  }
}

/** SPLs are bytes (ucode ≥128 is encoded with a leading 0x00, e.g. 02 02 00 db). */
function byteInteger(value: Uint8Array, what: string): number {
  const node = single(value, what);
  if (node.tag !== TAG.INTEGER) throw new ParseError(`AMD extension ${what}: expected INTEGER`);
  const n = decodeInteger(node);
  if (n < 0n || n > 255n) throw new ParseError(`AMD extension ${what}: value ${n} is out of range 0..255`);
  return Number(n);
}

function text(value: Uint8Array, what: string): string {
  const node = single(value, what);
  if (!STRING_TAGS.has(node.tag)) throw new ParseError(`AMD extension ${what}: expected a string, got tag 0x${node.tag.toString(16)}`);
  return decodeString(node);
}

/**
 * hwID is stored raw (no DER tag) by the KDS; some issuers wrap it in an OCTET STRING. Decide by
 * length: 8 or 64 bytes is raw; otherwise it must be exactly one OCTET STRING of 8 or 64 bytes.
 */
function hwId(value: Uint8Array): Buffer {
  if (HWID_LENGTHS.has(value.length)) return Buffer.from(value);
  if (value.length > 2 && value[0] === TAG.OCTET_STRING) {
    const node = readNode(value, 0, value.length);
    const inner = valueOf(node);
    if (node.end === value.length && HWID_LENGTHS.has(inner.length)) return Buffer.from(inner);
  }
  throw new ParseError(`AMD extension hwID: expected 8 or 64 bytes (raw or OCTET STRING), got ${value.length} bytes`);
}

/** Parse the AMD extensions of a VCEK/VLEK certificate (DER). Missing productName or SPLs is a ParseError. */
export function parseAmdCertExtensions(certDer: Uint8Array): AmdCertExtensions {
  if (!(certDer instanceof Uint8Array)) throw new ParseError('certificate: expected bytes');
  const ext = certificateExtensions(certDer);
  const get = (oid: string) => ext.get(oid)?.value;
  const need = (oid: string, what: string) => {
    const v = get(oid);
    if (v === undefined) throw new ParseError(`certificate has no AMD ${what} extension (${oid})`);
    return v;
  };

  const productName = text(need(AMD_OID.productName, 'productName'), 'productName');
  const out: AmdCertExtensions = {
    productName,
    blSpl: byteInteger(need(AMD_OID.blSpl, 'blSPL'), 'blSPL'),
    teeSpl: byteInteger(need(AMD_OID.teeSpl, 'teeSPL'), 'teeSPL'),
    snpSpl: byteInteger(need(AMD_OID.snpSpl, 'snpSPL'), 'snpSPL'),
    ucodeSpl: byteInteger(need(AMD_OID.ucodeSpl, 'ucodeSPL'), 'ucodeSPL'),
  };
  const product = productFromName(productName);
  if (product !== undefined) out.product = product;
  const sv = get(AMD_OID.structVersion);
  if (sv !== undefined) out.structVersion = byteInteger(sv, 'structVersion');
  for (const k of ['fmcSpl', 'spl4', 'spl5', 'spl6', 'spl7'] as const) {
    const v = get(AMD_OID[k]);
    if (v !== undefined) out[k] = byteInteger(v, k);
  }
  const hw = get(AMD_OID.hwId);
  if (hw !== undefined) out.hwId = hwId(hw);
  const csp = get(AMD_OID.cspId);
  if (csp !== undefined) out.cspId = text(csp, 'cspId');
  return out;
}
