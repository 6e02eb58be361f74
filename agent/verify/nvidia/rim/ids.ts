/**
 * RIM ids as the RIM service and local stores name them (nvtrust
 * cc_admin_utils.py get_driver_rim_file_id / get_vbios_rim_file_id, C++ evidence.cpp get_*_rim_id).
 * The inputs come from the GPU report's opaque data, i.e. from the device: every component is
 * checked against a narrow character set so an id can be used safely in a URL or a file name.
 */
import { ParseError } from '../../../errors.js';
import type { GpuArch } from './rim-types.js';

const stripNul = (s: string): string => s.replace(/\0+$/g, '').replace(/\0/g, '');

function component(value: string, what: string, re: RegExp): string {
  const v = stripNul(value).trim();
  if (!re.test(v)) throw new ParseError(`RIM id: ${what} "${v.slice(0, 40)}" has characters outside ${re.source}`);
  return v;
}

/**
 * Driver RIM id: Hopper `NV_GPU_DRIVER_GH100_<driver>`; Blackwell `NV_GPU_CC_DRIVER_<CHIP_INFO>_<driver>`,
 * falling back to GB100 when the report has no CHIP_INFO (opaque field 35), as the C++ SDK does.
 */
export function driverRimId(driverVersion: string, arch: GpuArch, chipInfo?: string): string {
  const v = component(driverVersion, 'driver version', /^[0-9A-Za-z][0-9A-Za-z._-]{0,63}$/);
  if (arch === 'hopper') return `NV_GPU_DRIVER_GH100_${v}`;
  if (arch === 'blackwell') {
    const chip = chipInfo === undefined || stripNul(chipInfo) === '' ? 'GB100' : component(chipInfo, 'chip info', /^[0-9A-Za-z_-]{1,32}$/).toUpperCase();
    return `NV_GPU_CC_DRIVER_${chip}_${v}`;
  }
  throw new ParseError(`RIM id: unsupported GPU architecture "${String(arch)}"`);
}

/**
 * Driver RIM id from a RIM's own product name (its SoftwareIdentity name, e.g. "GH100"), for RIM files
 * imported without an id: the same scheme as driverRimId. Hopper driver RIMs are always named for
 * GH100; a Blackwell RIM's product is the CHIP_INFO its GPUs report. Any other product has no known
 * scheme, so no id is invented for it (the caller must be given one).
 */
export function driverRimIdForProduct(product: string, driverVersion: string): string {
  const chip = stripNul(product).trim().toUpperCase();
  if (chip === 'GH100') return driverRimId(driverVersion, 'hopper');
  if (/^GB[0-9][0-9A-Z_-]{0,30}$/.test(chip)) return driverRimId(driverVersion, 'blackwell', chip);
  throw new ParseError(`RIM: product "${chip.slice(0, 20)}" has no known driver RIM id scheme (Hopper GH100, Blackwell GB…)`);
}

export interface VbiosRimIdInput {
  /** Opaque field 17 PROJECT, e.g. "1010" or "G520". */
  project: string;
  /** Opaque field 18 PROJECT_SKU, e.g. "0200". */
  projectSku: string;
  /** Opaque field 15 CHIP_SKU, e.g. "882". */
  chipSku: string;
  /** Formatted VBIOS version (nvtrust format_vbios_version), e.g. "96.00.5E.00.01". */
  vbiosVersion: string;
}

/** VBIOS RIM id: `NV_GPU_VBIOS_<PROJECT>_<PROJECT_SKU>_<CHIP_SKU>_<version without dots>`, uppercased. */
export function vbiosRimId(input: VbiosRimIdInput): string {
  const field = /^[0-9A-Za-z]{1,16}$/;
  const project = component(input.project, 'project', field).toUpperCase();
  const sku = component(input.projectSku, 'project SKU', field).toUpperCase();
  const chip = component(input.chipSku, 'chip SKU', field).toUpperCase();
  const version = component(input.vbiosVersion, 'VBIOS version', /^[0-9A-Fa-f]{2}(\.[0-9A-Fa-f]{2}){4}$/)
    .replace(/\./g, '')
    .toUpperCase();
  return `NV_GPU_VBIOS_${project}_${sku}_${chip}_${version}`;
}

/** Local sample-file name used by nvtrust for a VBIOS RIM: `<project>_<sku>_<chipsku>_<ver>_PROD.swidtag`, lowercase prefix. */
export function vbiosRimFileName(input: VbiosRimIdInput): string {
  return `${vbiosRimId(input)
    .slice('NV_GPU_VBIOS_'.length)
    .toLowerCase()
    .replace(/_([0-9a-f]{10})$/, (_, v: string) => `_${v.toUpperCase()}`)}_PROD.swidtag`;
}
