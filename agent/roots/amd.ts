/**
 * Pinned AMD SEV-SNP roots per product line: ARK (root), ASK (signs VCEKs), ASVK (signs VLEKs).
 * A chain verifies only up to these; an ARK/ASK supplied with the evidence is compared with them,
 * never trusted by name (go-sev-guest#185, fixed by PR #190).
 *
 * Parsed lazily once per process and cached (X509Certificate + KeyObject) because verification is
 * on a hot path; every embedded certificate's SHA-256 is asserted at load so a corrupted embed
 * fails loudly instead of silently pinning something else.
 */
import { X509Certificate, createHash, type KeyObject } from 'node:crypto';
import { ConfigError, RootIntegrityError } from '../errors.js';
import { EMBEDDED_AMD_ROOTS, type EmbeddedCert } from './amd/certs.js';
import { loadPinnedPem } from './pinned.js';

export const AMD_PRODUCTS = ['Milan', 'Genoa', 'Turin'] as const;
export type AmdProduct = (typeof AMD_PRODUCTS)[number];

export interface RootCert {
  der: Buffer;
  x509: X509Certificate;
  publicKey: KeyObject;
  /** lower-case hex SHA-256 of the DER. */
  sha256: string;
}

/** The trust anchors for one product line; `simulated` marks test roots. */
export interface AmdProductRoots {
  product: AmdProduct;
  ark: RootCert;
  /** Signs VCEKs. */
  ask: RootCert;
  /** Signs VLEKs (SEV-VLEK-<product>); absent for simulated roots that only issue VCEKs. */
  asvk?: RootCert;
  simulated: boolean;
}

/** Simulated roots as handed over by the simulator (DER or PEM bytes/strings). */
export interface SimulatedRootsInput {
  product: string;
  ark: Uint8Array | string;
  ask: Uint8Array | string;
  asvk?: Uint8Array | string;
  simulated: true;
}

export { RootIntegrityError };

function loadEmbedded(cert: EmbeddedCert, what: string): RootCert {
  const { der, x509, sha256 } = loadPinnedPem(
    cert.pem,
    cert.sha256,
    (got) => new RootIntegrityError(`embedded AMD ${what} certificate is corrupted: SHA-256 ${got}, expected ${cert.sha256}`),
  );
  return { der, x509, publicKey: x509.publicKey, sha256 };
}

const cache = new Map<AmdProduct, AmdProductRoots>();

/** The pinned roots for a product line (parsed and integrity-checked on first use). */
export function pinnedAmdRoots(product: AmdProduct): AmdProductRoots {
  let roots = cache.get(product);
  if (!roots) {
    const e = EMBEDDED_AMD_ROOTS[product];
    roots = {
      product,
      ark: loadEmbedded(e.ark, `ARK-${product}`),
      ask: loadEmbedded(e.ask, `SEV-${product}`),
      asvk: loadEmbedded(e.asvk, `SEV-VLEK-${product}`),
      simulated: false,
    };
    cache.set(product, roots);
  }
  return roots;
}

/** SHA-256 fingerprints of the pinned ARKs (for status output and docs). */
export function pinnedArkFingerprints(): Record<AmdProduct, string> {
  return { Milan: EMBEDDED_AMD_ROOTS.Milan.ark.sha256, Genoa: EMBEDDED_AMD_ROOTS.Genoa.ark.sha256, Turin: EMBEDDED_AMD_ROOTS.Turin.ark.sha256 };
}

/**
 * Product line from a VCEK/VLEK productName or CPUID-derived name: "Milan-B0" → Milan, "Genoa" → Genoa.
 * Siena/Bergamo share Genoa's KDS roots (virtee/snpguest src/fetch.rs to_kds_url). Unknown names → undefined.
 */
export function productLine(name: string | undefined): AmdProduct | undefined {
  if (!name) return undefined;
  const base = name.split('-')[0]!.trim().toLowerCase();
  switch (base) {
    case 'milan':
      return 'Milan';
    case 'genoa':
    case 'siena':
    case 'bergamo':
      return 'Genoa';
    case 'turin':
      return 'Turin';
    default:
      return undefined;
  }
}

export function isAmdProduct(p: string): p is AmdProduct {
  return (AMD_PRODUCTS as readonly string[]).includes(p);
}

function toRootCert(input: Uint8Array | string, what: string): RootCert {
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(typeof input === 'string' ? input : Buffer.from(input));
  } catch (err) {
    throw new ConfigError(`simulated roots: ${what} is not a certificate: ${(err as Error).message}`);
  }
  const der = x509.raw;
  return { der, x509, publicKey: x509.publicKey, sha256: createHash('sha256').update(der).digest('hex') };
}

const simCache = new WeakMap<SimulatedRootsInput, AmdProductRoots>();

/** Load simulator roots (trusted only when the caller explicitly passes them). Cached per input object. */
export function simulatedAmdRoots(input: SimulatedRootsInput): AmdProductRoots {
  const cached = simCache.get(input);
  if (cached) return cached;
  const product = productLine(input.product);
  if (!product) throw new ConfigError(`simulated roots: unknown product "${input.product}"`);
  const roots: AmdProductRoots = {
    product,
    ark: toRootCert(input.ark, 'ARK'),
    ask: toRootCert(input.ask, 'ASK'),
    ...(input.asvk === undefined ? {} : { asvk: toRootCert(input.asvk, 'ASVK') }),
    simulated: true,
  };
  simCache.set(input, roots);
  return roots;
}
