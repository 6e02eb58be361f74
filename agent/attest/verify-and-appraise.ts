/**
 * Verification then appraisal, as one call per kind of evidence: the verifiers (agent/verify/:
 * signatures, chains, collateral, freshness) and the policy (agent/appraise/: SNP policy and minimum
 * TCB, GPU architecture / version / CC-state rules) never import each other, as go-sev-guest's verify/
 * and validate/; this layer above both runs one and hands its findings to the other. The check list
 * is the verifier's, with the policy's checks in their place: SNP policy checks after the SNP ones,
 * GPU rules where the verifier establishes the facts they judge. Pure, like both halves.
 */
import { resultOf, type VerificationResult } from '../formats/checks.js';
import { verifySnpReport, type SnpClaims, type SnpReportVerifyOptions, type SnpVerifyInput } from '../verify/snp/snp-verifier.js';
import { verifyAzureReport, type AzureClaims, type AzureReportVerifyOptions } from '../verify/azure/azure-verifier.js';
import { verifyGpuReport, type GpuReportVerifyOptions } from '../verify/nvidia/gpu-verify.js';
import type { GpuEvidenceRecord } from '../formats/gpu-evidence-record.js';
import { crossGpuResult, type MultiGpuResult } from '../verify/nvidia/multi-gpu.js';
import type { GpuClaims } from '../verify/nvidia/gpu-claims.js';
import type { AzureEvidence } from '../formats/azure/evidence-formats.js';
import { verifySwitchReport, type SwitchClaims, type SwitchReportVerifyOptions } from '../verify/nvidia/switch-verify.js';
import { nvswitchEvidenceReason } from '../verify/nvidia/nvswitch-detect.js';
import { DEFAULT_SNP_POLICY, type SnpPolicy } from '../appraise/snp-policy.js';
import { DEFAULT_GPU_POLICY, type GpuPolicy } from '../appraise/gpu-policy.js';
import { snpPolicyChecks } from '../appraise/snp-checks.js';
import { appraiseGpuChecks } from '../appraise/gpu-checks.js';

export type { SnpVerifyInput, SnpClaims, AzureClaims, GpuEvidenceRecord, GpuClaims, SwitchClaims, MultiGpuResult };

export interface SnpVerifyOptions extends SnpReportVerifyOptions {
  policy?: SnpPolicy;
}

export interface AzureVerifyOptions extends AzureReportVerifyOptions {
  /** SNP appraisal policy; VMPL is always forced to [0] (the paravisor's level, trustee HCL_VMPL_VALUE). */
  policy?: SnpPolicy;
}

export interface GpuVerifyOptions extends Omit<GpuReportVerifyOptions, 'ocspGraceSeconds' | 'allowHoldCert'> {
  /** Also supplies the verifier's OCSP tolerance (ocspGraceSeconds, allowHoldCert). */
  policy?: GpuPolicy;
}

/** The SEV-SNP report verified (agent/verify/snp/snp-verifier.ts) and appraised (agent/appraise/snp-checks.ts). */
export function verifySnpAttestation(input: SnpVerifyInput, options: SnpVerifyOptions): VerificationResult<SnpClaims> {
  const { policy, ...verifyOptions } = options;
  const v = verifySnpReport(input, verifyOptions);
  const checks = v.report ? [...v.checks, ...snpPolicyChecks(v.report, policy ?? DEFAULT_SNP_POLICY, v.product)] : v.checks;
  return resultOf(checks, v.claims, v.simulated);
}

/** Azure evidence verified (agent/verify/azure/azure-verifier.ts), its SNP report appraised at VMPL 0. */
export function verifyAzureEvidence(evidence: AzureEvidence, options: AzureVerifyOptions): VerificationResult<AzureClaims> {
  const { policy, ...verifyOptions } = options;
  const v = verifyAzureReport(evidence, verifyOptions);
  const checks = v.snpReport ? [...v.checks, ...snpPolicyChecks(v.snpReport, { ...(policy ?? DEFAULT_SNP_POLICY), vmpl: [0] }, v.snpProduct)] : v.checks;
  return resultOf(checks, v.claims, v.simulated);
}

/** One GPU verified (agent/verify/nvidia/gpu-verify.ts) and appraised (agent/appraise/gpu-checks.ts). */
export function verifyGpuEvidence(evidence: GpuEvidenceRecord, options: GpuVerifyOptions): VerificationResult<GpuClaims> {
  const { policy = DEFAULT_GPU_POLICY, ...verifyOptions } = options;
  const v = verifyGpuReport(evidence, { ...verifyOptions, ocspGraceSeconds: policy.ocspGraceSeconds, allowHoldCert: policy.allowHoldCert });
  if (!v.claims) return v; // the report did not parse: nothing to appraise
  const checks = appraiseGpuChecks(
    v.checks,
    {
      arch: v.claims.arch,
      driverVersion: v.claims.driverVersion,
      vbiosVersion: v.claims.vbiosVersion,
      cc: evidence.nvml?.cc,
      nonceGiven: options.expectedNonce !== undefined,
      simulated: v.simulated,
    },
    policy,
  );
  return resultOf(checks, v.claims, v.simulated);
}

/**
 * One NVSwitch (LS10) verified (agent/verify/nvidia/switch-verify.ts). A switch has no driver, NVML state
 * or architecture allow-list: the GPU policy lends only its OCSP tolerance, and a switch RIM is looked
 * up by id (rims.byId) or given explicitly (rims.switchBios).
 */
export function verifySwitchEvidence(evidence: GpuEvidenceRecord, options: GpuVerifyOptions & { switchBiosRim?: string }): VerificationResult<SwitchClaims> {
  const { policy = DEFAULT_GPU_POLICY, rims, switchBiosRim, ...rest } = options;
  const switchOptions: SwitchReportVerifyOptions = { ...rest, ocspGraceSeconds: policy.ocspGraceSeconds, allowHoldCert: policy.allowHoldCert };
  const switchRims: NonNullable<SwitchReportVerifyOptions['rims']> = {};
  if (rims?.byId) switchRims.byId = rims.byId;
  if (switchBiosRim !== undefined) switchRims.switchBios = switchBiosRim;
  switchOptions.rims = switchRims;
  return verifySwitchReport(evidence, switchOptions);
}

/** Whether a record is NVSwitch evidence (arch LS10, an LS_10 chain or the switch-only opaque field). */
export function isSwitchEvidence(evidence: GpuEvidenceRecord): boolean {
  if (evidence.arch !== undefined && /^(ls_?10|nvswitch)$/i.test(evidence.arch)) return true;
  return nvswitchEvidenceReason(evidence.report, evidence.arch) !== undefined;
}

/**
 * Several GPUs (and the NVSwitches of a protected-PCIe system, recognised by isSwitchEvidence), each
 * verified and appraised, then the cross-device checks (agent/verify/nvidia/multi-gpu.ts).
 */
export async function verifyGpus(list: readonly GpuEvidenceRecord[], options: GpuVerifyOptions & { switchBiosRim?: string }): Promise<MultiGpuResult> {
  const { switchBiosRim, ...gpuOptions } = options;
  const indexed = list.map((ev, i) => ({ ...ev, index: ev.index ?? i }));
  const switches = indexed.filter(isSwitchEvidence);
  const gpus = indexed.filter((ev) => !switches.includes(ev));
  const perGpu = await Promise.all(gpus.map(async (ev) => verifyGpuEvidence(ev, gpuOptions)));
  const perSwitch = switches.map((ev) => verifySwitchEvidence(ev, options));
  return crossGpuResult(perGpu, perSwitch);
}
