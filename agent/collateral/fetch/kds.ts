/**
 * AMD Key Distribution Service client (AMD #57230; go-sev-guest kds/kds.go, virtee/snpguest
 * src/fetch.rs): VCEK by product + hwID + REPORTED_TCB, the product's cert_chain (ASK|ASVK + ARK, PEM)
 * and CRLs. The KDS rate-limits (~1 request per 10 s reported: Fraunhofer-AISEC/cmc PR #33), so callers cache (store.getOrFetch).
 */
import type { SnpProduct, TcbParts } from '../../formats/snp-abi/index.js';
import { checkProduct } from '../keys.js';
import type { KdsChain } from '../collateral-types.js';
import type { Fetched } from '../store.js';
import { httpRequest, joinUrl, type HttpOptions } from './http.js';
import { KDS_BASE_URL, kdsCertChainPath, kdsCrlPath, kdsVcekPath } from '../../util/kds-url.js';

export { KDS_BASE_URL };

export interface KdsOptions extends HttpOptions {
  /** Default https://kdsintf.amd.com (tests point it at loopback). */
  baseUrl?: string;
}

/** The VCEK path for a chip at a TCB (see kdsVcekPath); the product is checked first. */
export const vcekPath = (product: SnpProduct, chipId: Uint8Array, tcb: TcbParts): string => kdsVcekPath(checkProduct(product), chipId, tcb);
export const certChainPath = (product: SnpProduct, chain: KdsChain): string => kdsCertChainPath(checkProduct(product), chain);
export const crlPath = (product: SnpProduct, chain: KdsChain): string => kdsCrlPath(checkProduct(product), chain);

async function get(path: string, what: string, opts: KdsOptions, hint: Fetched['hint'] = {}): Promise<Fetched> {
  const url = joinUrl(opts.baseUrl ?? KDS_BASE_URL, path);
  const res = await httpRequest({ url, what }, { maxBytes: 256 * 1024, ...opts });
  return { bytes: res.body, source: url, hint };
}

/** The VCEK (DER) for a chip at a TCB: use the report's CHIP_ID and REPORTED_TCB (AMD #57230; go-sev-guest kds/kds.go). */
export function fetchVcek(product: SnpProduct, chipId: Uint8Array, tcb: TcbParts, opts: KdsOptions = {}): Promise<Fetched> {
  return get(vcekPath(product, chipId, tcb), `VCEK for ${product}`, opts);
}

/** ASK (or ASVK for the vlek chain) + ARK, PEM. */
export function fetchCertChain(product: SnpProduct, chain: KdsChain = 'vcek', opts: KdsOptions = {}): Promise<Fetched> {
  return get(certChainPath(product, chain), `AMD ${chain.toUpperCase()} cert_chain for ${product}`, opts);
}

/** The ARK-signed CRL (DER) of the vcek or vlek chain. */
export function fetchCrl(product: SnpProduct, chain: KdsChain = 'vcek', opts: KdsOptions = {}): Promise<Fetched> {
  return get(crlPath(product, chain), `AMD ${chain.toUpperCase()} CRL for ${product}`, opts, { crlChain: chain });
}
