/**
 * Collateral model: what the cache holds (AMD VCEK/VLEK, ASK/ASVK/ARK, KDS CRLs; NVIDIA RIMs and OCSP
 * responses), the key that names each item, and the metadata sidecar written next to it.
 * docs/collateral.md: offline-first, staleness explicit.
 */
import type { SnpProduct } from '../formats/snp-abi/index.js';

export type CollateralKind = 'vcek' | 'vlek' | 'ask' | 'asvk' | 'ark' | 'crl' | 'rim' | 'ocsp';
export const COLLATERAL_KINDS: readonly CollateralKind[] = ['vcek', 'vlek', 'ask', 'asvk', 'ark', 'crl', 'rim', 'ocsp'];

/** Which KDS chain a CRL belongs to: /vcek/v1/{P}/crl or /vlek/v1/{P}/crl (AMD #57230; go-sev-guest kds/kds.go). */
export type KdsChain = 'vcek' | 'vlek';

/** Identifies one cache entry. Every string in a key is validated (keys.ts) before it touches a path. */
export type CollateralKey =
  /** hwId: lowercase hex of the VCEK hwID (64 bytes Milan/Genoa, 8 bytes Turin); tcb: 16 hex digits of TCB_VERSION (u64). */
  | { kind: 'vcek'; product: SnpProduct; hwId: string; tcb: string }
  | { kind: 'vlek'; product: SnpProduct; tcb: string }
  | { kind: 'ask' | 'asvk' | 'ark'; product: SnpProduct }
  | { kind: 'crl'; product: SnpProduct; chain: KdsChain }
  /** id: RIM service id, e.g. NV_GPU_DRIVER_GH100_550.144.03 (nvtrust cc_admin_utils.py get_driver_rim_file_id). */
  | { kind: 'rim'; id: string }
  /** issuerKeyHash: hex of the CertID issuerKeyHash (its length names the hash); serial: hex of the serial number. */
  | { kind: 'ocsp'; issuerKeyHash: string; serial: string };

/** Dates found inside the object, as ISO strings (absent when the format has none). */
export interface ValidityInfo {
  notBefore?: string;
  notAfter?: string;
  thisUpdate?: string;
  nextUpdate?: string;
}

/** The JSON sidecar `<file>.meta.json`. */
export interface CollateralMeta extends ValidityInfo {
  version: 1;
  kind: CollateralKind;
  key: CollateralKey;
  /** Path relative to the store root, '/'-separated. */
  path: string;
  /** When the bytes were obtained (fetched or imported). */
  fetchedAt: string;
  /** A URL, or "import:<file name>", or "bundle:<...>". */
  source: string;
  sha256: string;
  size: number;
  /** Human description for listings (certificate subject, RIM version...). */
  description?: string;
}

/** One recognized collateral object, ready to be stored. */
export interface ClassifiedItem {
  key: CollateralKey;
  /** The bytes to store, in the canonical form for the kind (DER for certs/CRLs/OCSP, PEM for ASK/ASVK/ARK, XML for RIMs). */
  data: Buffer;
  validity: ValidityInfo;
  description: string;
}

export interface StoredEntry {
  meta: CollateralMeta;
  data: Buffer;
  /** Absolute path of the data file. */
  file: string;
}

export type FreshnessState = 'fresh' | 'stale' | 'expired';

export interface Freshness {
  state: FreshnessState;
  reason: string;
}
