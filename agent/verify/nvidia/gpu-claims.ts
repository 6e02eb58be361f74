/**
 * Claims about one verified GPU. Names follow NVIDIA's claims where one exists (hwmodel, ueid, measres,
 * secboot, dbgstat, x-nvidia-mismatch-measurement-records: nvtrust local_gpu_verifier utils/claims_utils.py, attestation-sdk src/gpu/claims.cpp) but use plain
 * camelCase keys; the EAR layer maps them. Claims are meaningful only when the result is ok.
 */
import type { MeasurementMismatch } from './rim/measurements.js';
import type { RevocationState } from './ocsp-check.js';

export type GpuArch = 'hopper' | 'blackwell';

export interface GpuClaims {
  arch?: GpuArch;
  /** CN of the chain's second certificate, e.g. "GH100 A01 GSP BROM" (nvtrust hwmodel). */
  hwmodel?: string;
  /** Decimal serial number of the AK leaf (nvtrust ueid, confirmed against NVIDIA's sample claims). */
  ueid?: string;
  driverVersion?: string;
  vbiosVersion?: string;
  /** Request nonce, hex (eat_nonce). */
  nonce: string;
  /** SHA-384 of the whole report, hex: what the CPU report binds (docs/architecture.md "One attestation cycle"). */
  reportSha384: string;
  fwid?: string;
  project?: string;
  projectSku?: string;
  chipSku?: string;
  chipInfo?: string;
  boardId?: number;
  nvdec0?: 'enabled' | 'disabled' | string;
  protectedPcie?: 'enabled' | 'disabled' | string;
  opaqueDataVersion?: number;
  /** Raw FEATURE_FLAG; 2 = PPCIe; 0/1 meaning disputed (nvtrust parse_feature_flag vs attestation-sdk evidence.h), so not named here. */
  featureFlag?: number;
  switchPdis?: string[];
  driverRimId?: string;
  vbiosRimId?: string;
  /** OEM id from the driver RIM (FirmwareManufacturerId, "5703"). */
  oemid?: string;
  /** "success" when both RIMs verified and every golden measurement matched. */
  measres: 'success' | 'fail' | 'not-checked';
  /** nvtrust sets secboot/dbgstat only on measres success; null otherwise (as the C++ SDK does). */
  secboot: boolean | null;
  dbgstat: 'disabled' | null;
  mismatchedMeasurements: MeasurementMismatch[];
  /** Earliest notAfter of the device chain (x-nvidia-cert-expiration-date). */
  certChainExpiration?: string;
  /** Per checked certificate (chain positions 1..n-2): OCSP state. */
  revocation: { index: number; subject: string; state: RevocationState | 'not-checked' }[];
  /** NVML CC state as reported (unsigned: NVML is host-reachable but read in the guest). */
  cc?: { ccEnabled: boolean; devToolsMode: boolean; environment: string };
}

export const statusByteName = (b: number | undefined): string | undefined =>
  b === undefined ? undefined : b === 0xaa ? 'enabled' : b === 0x55 ? 'disabled' : `0x${b.toString(16).padStart(2, '0')}`;
