/**
 * The one AMD Key Distribution Service URL builder (AMD "Versioned Chip Endorsement Key (VCEK)
 * Certificate and KDS Interface Specification", pub. 57230; the forms go-sev-guest kds/kds.go builds):
 *   /{vcek|vlek}/v1/{product}/cert_chain   ASK|ASVK + ARK, PEM
 *   /{vcek|vlek}/v1/{product}/crl          the ARK-signed CRL, DER
 *   /vcek/v1/{product}/{hwID hex}?…SPL=…   one chip's VCEK at a TCB
 * Pure: the fetcher, the collateral store's hints, the verifier's messages and the simulator use it.
 */
import { CollateralError } from '../errors.js';

export const KDS_BASE_URL = 'https://kdsintf.amd.com';

export type KdsChainName = 'vcek' | 'vlek';

/** The SPLs of a REPORTED_TCB, as the VCEK query names them (fmc: Turin only). */
export interface KdsTcb {
  bootloader: number;
  tee: number;
  snp: number;
  microcode: number;
  fmc?: number;
}

export const kdsCertChainPath = (product: string, chain: KdsChainName): string => `/${chain}/v1/${product}/cert_chain`;
export const kdsCrlPath = (product: string, chain: KdsChainName): string => `/${chain}/v1/${product}/crl`;

/** An absolute KDS URL for a path built above. */
export const kdsUrl = (path: string): string => `${KDS_BASE_URL}${path}`;

function spl(name: string, v: number | undefined): number {
  if (v === undefined || !Number.isInteger(v) || v < 0 || v > 255) throw new CollateralError(`KDS: TCB ${name} SPL ${String(v)} is not a byte`);
  return v;
}

/**
 * /vcek/v1/{P}/{hwID hex}?blSPL=&teeSPL=&snpSPL=&ucodeSPL= for Milan/Genoa (64-byte CHIP_ID);
 * Turin uses CHIP_ID[0..8] and adds fmcSPL (placed first as snpguest does; the KDS's tolerance of
 * parameter order/padding is unverified). `product` must already be a checked product name.
 */
export function kdsVcekPath(product: string, chipId: Uint8Array, tcb: KdsTcb): string {
  const turin = product === 'Turin';
  const id = turin ? chipId.subarray(0, 8) : chipId;
  if (id.length !== (turin ? 8 : 64)) throw new CollateralError(`KDS: ${product} needs a ${turin ? '8' : '64'}-byte hwID, got ${chipId.length} bytes`);
  const q = [
    ...(turin ? [`fmcSPL=${spl('fmc', tcb.fmc ?? 0)}`] : []),
    `blSPL=${spl('bootloader', tcb.bootloader)}`,
    `teeSPL=${spl('tee', tcb.tee)}`,
    `snpSPL=${spl('snp', tcb.snp)}`,
    `ucodeSPL=${spl('microcode', tcb.microcode)}`,
  ];
  return `/vcek/v1/${product}/${Buffer.from(id).toString('hex')}?${q.join('&')}`;
}
