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
import { DEFAULT_SNP_POLICY, type SnpPolicy } from '../appraise/snp-policy.js';
import { DEFAULT_GPU_POLICY, type GpuPolicy } from '../appraise/gpu-policy.js';
import { snpPolicyChecks } from '../appraise/snp-checks.js';
import { appraiseGpuChecks } from '../appraise/gpu-checks.js';

export type { SnpVerifyInput, SnpClaims, AzureClaims, GpuEvidenceRecord, GpuClaims, MultiGpuResult };

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

/** Several GPUs, each verified and appraised, then the cross-GPU checks (agent/verify/nvidia/multi-gpu.ts). */
export async function verifyGpus(list: readonly GpuEvidenceRecord[], options: GpuVerifyOptions): Promise<MultiGpuResult> {
  const perGpu = await Promise.all(list.map(async (ev, i) => verifyGpuEvidence({ ...ev, index: ev.index ?? i }, options)));
  return crossGpuResult(perGpu);
}
