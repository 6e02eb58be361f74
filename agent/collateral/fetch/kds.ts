/**
 * AMD Key Distribution Service client (reference/snp.md §4.3; go-sev-guest kds/kds.go, virtee/snpguest
 * src/fetch.rs): VCEK by product + hwID + REPORTED_TCB, the product's cert_chain (ASK|ASVK + ARK, PEM)
 * and CRLs. The KDS rate-limits (~1 request per 10 s reported, §4.3), so callers cache (store.getOrFetch).
 */
import { CollateralError } from '../../errors.js';
import type { SnpProduct, TcbParts } from '../../formats/snp-abi/index.js';
import { checkProduct } from '../keys.js';
import type { KdsChain } from '../types.js';
import type { Fetched } from '../store.js';
import { httpRequest, joinUrl, type HttpOptions } from './http.js';

export const KDS_BASE_URL = 'https://kdsintf.amd.com';

export interface KdsOptions extends HttpOptions {
  /** Default https://kdsintf.amd.com (tests point it at loopback). */
  baseUrl?: string;
}

function spl(name: string, v: number | undefined): number {
  if (v === undefined || !Number.isInteger(v) || v < 0 || v > 255) throw new CollateralError(`KDS: TCB ${name} SPL ${String(v)} is not a byte`);
  return v;
}

/**
 * /vcek/v1/{P}/{hwID hex}?blSPL=&teeSPL=&snpSPL=&ucodeSPL= for Milan/Genoa (64-byte CHIP_ID);
 * Turin uses CHIP_ID[0..8] and adds fmcSPL (placed first as snpguest does; snp.md §4.3 notes the
 * order/padding tolerance of the KDS is unverified).
 */
export function vcekPath(product: SnpProduct, chipId: Uint8Array, tcb: TcbParts): string {
  const p = checkProduct(product);
  const id = p === 'Turin' ? chipId.subarray(0, 8) : chipId;
  if (id.length !== (p === 'Turin' ? 8 : 64)) throw new CollateralError(`KDS: ${p} needs a ${p === 'Turin' ? '8' : '64'}-byte hwID, got ${chipId.length} bytes`);
  const q = [
    ...(p === 'Turin' ? [`fmcSPL=${spl('fmc', tcb.fmc ?? 0)}`] : []),
    `blSPL=${spl('bootloader', tcb.bootloader)}`,
    `teeSPL=${spl('tee', tcb.tee)}`,
    `snpSPL=${spl('snp', tcb.snp)}`,
    `ucodeSPL=${spl('microcode', tcb.microcode)}`,
  ];
  return `/vcek/v1/${p}/${Buffer.from(id).toString('hex')}?${q.join('&')}`;
}

export const certChainPath = (product: SnpProduct, chain: KdsChain): string => `/${chain}/v1/${checkProduct(product)}/cert_chain`;
export const crlPath = (product: SnpProduct, chain: KdsChain): string => `/${chain}/v1/${checkProduct(product)}/crl`;

async function get(path: string, what: string, opts: KdsOptions, hint: Fetched['hint'] = {}): Promise<Fetched> {
  const url = joinUrl(opts.baseUrl ?? KDS_BASE_URL, path);
  const res = await httpRequest({ url, what }, { maxBytes: 256 * 1024, ...opts });
  return { bytes: res.body, source: url, hint };
}

/** The VCEK (DER) for a chip at a TCB: use the report's CHIP_ID and REPORTED_TCB (snp.md §4.2). */
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
