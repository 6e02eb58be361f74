/**
 * Cache keys → relative paths. Paths are built ONLY from validated components (known product names,
 * fixed-length lowercase hex, a strict RIM-id alphabet), so a hostile file, bundle or server answer
 * can never name a path outside the store (no '/', no '..', no absolute paths).
 */
import { CollateralError } from '../errors.js';
import type { SnpProduct } from '../formats/snp-abi/index.js';
import type { CollateralKey, CollateralKind, KdsChain } from './collateral-types.js';

export const PRODUCTS: readonly SnpProduct[] = ['Milan', 'Genoa', 'Turin'];

function bad(what: string, value: unknown): never {
  const shown = typeof value === 'string' ? JSON.stringify(value.slice(0, 80)) : typeof value;
  throw new CollateralError(`invalid collateral ${what} ${shown}`);
}

export function checkProduct(p: unknown): SnpProduct {
  if (typeof p !== 'string' || !(PRODUCTS as readonly string[]).includes(p)) bad('product (expected Milan, Genoa or Turin)', p);
  return p as SnpProduct;
}

/** hwID: 64 bytes (Milan/Genoa CHIP_ID) or 8 bytes (Turin): go-sev-guest kds/kds.go. */
export function checkHwId(h: unknown): string {
  if (typeof h !== 'string' || !/^(?:[0-9a-f]{16}|[0-9a-f]{128})$/.test(h)) bad('hwID (expected 16 or 128 lowercase hex digits)', h);
  return h;
}

/** TCB_VERSION is a u64 (SNP ABI #56860 TCB_VERSION): exactly 16 hex digits. */
export function checkTcb(t: unknown): string {
  if (typeof t !== 'string' || !/^[0-9a-f]{16}$/.test(t)) bad('TCB (expected 16 lowercase hex digits)', t);
  return t;
}

/** RIM ids look like NV_GPU_DRIVER_GH100_550.144.03 or NV_GPU_VBIOS_1010_0200_882_96005E0001 (nvtrust cc_admin_utils.py get_driver_rim_file_id / get_vbios_rim_file_id). */
export function checkRimId(id: unknown): string {
  if (typeof id !== 'string' || !/^NV_[A-Za-z0-9_.-]{1,124}$/.test(id) || id.includes('..')) bad('RIM id (expected NV_<letters, digits, _ . ->)', id);
  return id;
}

/** CertID issuerKeyHash: SHA-1, SHA-256, SHA-384 or SHA-512 length. */
export function checkKeyHash(h: unknown): string {
  if (typeof h !== 'string' || !/^(?:[0-9a-f]{40}|[0-9a-f]{64}|[0-9a-f]{96}|[0-9a-f]{128})$/.test(h)) bad('OCSP issuer key hash', h);
  return h;
}

/** Certificate serial (RFC 5280 §4.1.2.2: at most 20 octets; allow a little slack). */
export function checkSerial(s: unknown): string {
  if (typeof s !== 'string' || !/^[0-9a-f]{1,64}$/.test(s)) bad('serial number (expected lowercase hex)', s);
  return s;
}

export function checkChain(c: unknown): KdsChain {
  if (c !== 'vcek' && c !== 'vlek') bad('CRL chain (expected vcek or vlek)', c);
  return c;
}

/** Validate a key of unknown origin (a bundle, a sidecar, a caller) and return a clean copy. */
export function checkKey(k: unknown): CollateralKey {
  if (typeof k !== 'object' || k === null) bad('key', k);
  const o = k as Record<string, unknown>;
  switch (o.kind as CollateralKind) {
    case 'vcek':
      return { kind: 'vcek', product: checkProduct(o.product), hwId: checkHwId(o.hwId), tcb: checkTcb(o.tcb) };
    case 'vlek':
      return { kind: 'vlek', product: checkProduct(o.product), tcb: checkTcb(o.tcb) };
    case 'ask':
    case 'asvk':
    case 'ark':
      return { kind: o.kind as 'ask' | 'asvk' | 'ark', product: checkProduct(o.product) };
    case 'crl':
      return { kind: 'crl', product: checkProduct(o.product), chain: checkChain(o.chain) };
    case 'rim':
      return { kind: 'rim', id: checkRimId(o.id) };
    case 'ocsp':
      return { kind: 'ocsp', issuerKeyHash: checkKeyHash(o.issuerKeyHash), serial: checkSerial(o.serial) };
    default:
      return bad('kind', o.kind);
  }
}

/**
 * Relative path of an entry (layout in docs/collateral.md):
 * amd/<P>/vcek/<hwId>/<tcb>.der, amd/<P>/vlek/<tcb>.der, amd/<P>/{ask,asvk,ark}.pem, amd/<P>/crl-{vcek,vlek}.der,
 * nvidia/rim/<id>.xml, nvidia/ocsp/<issuerKeyHash>-<serial>.der.
 */
export function keyPath(key: CollateralKey): string {
  const k = checkKey(key);
  switch (k.kind) {
    case 'vcek':
      return `amd/${k.product}/vcek/${k.hwId}/${k.tcb}.der`;
    case 'vlek':
      return `amd/${k.product}/vlek/${k.tcb}.der`;
    case 'ask':
    case 'asvk':
    case 'ark':
      return `amd/${k.product}/${k.kind}.pem`;
    case 'crl':
      return `amd/${k.product}/crl-${k.chain}.der`;
    case 'rim':
      return `nvidia/rim/${k.id}.xml`;
    case 'ocsp':
      return `nvidia/ocsp/${k.issuerKeyHash}-${k.serial}.der`;
  }
}

/** Short human label for messages and listings. */
export function describeKey(key: CollateralKey): string {
  switch (key.kind) {
    case 'vcek':
      return `VCEK ${key.product} hwID ${key.hwId.slice(0, 16)}${key.hwId.length > 16 ? '…' : ''} TCB ${key.tcb}`;
    case 'vlek':
      return `VLEK ${key.product} TCB ${key.tcb}`;
    case 'ask':
      return `ASK ${key.product}`;
    case 'asvk':
      return `ASVK ${key.product}`;
    case 'ark':
      return `ARK ${key.product}`;
    case 'crl':
      return `CRL ${key.product} (${key.chain})`;
    case 'rim':
      return `RIM ${key.id}`;
    case 'ocsp':
      return `OCSP response for serial ${key.serial} (issuer key hash ${key.issuerKeyHash.slice(0, 16)}…)`;
  }
}

export function sameKey(a: CollateralKey, b: CollateralKey): boolean {
  return keyPath(a) === keyPath(b);
}
