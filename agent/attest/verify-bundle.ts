/**
 * Verify a whole evidence bundle: recompute the binding (docs/architecture.md "One attestation cycle") from the verifier's own
 * nonce, the bundle's agentId (checked against the id the verifier expects, when it has one) and teePubKey, then verify the CPU report against the expected REPORT_DATA and
 * every GPU report against the expected GPU nonce. Pure: bundle + collateral + time in, one result
 * per device out. Used by the agent's own cycle and by the reference controller.
 */
import { timingSafeEqual } from 'node:crypto';
import { cpuReportData, gpuNonce } from '../formats/nonce-binding.js';
import { fail, pass, resultOf, type Check, type VerificationResult } from '../formats/checks.js';
import {
  verifySnpAttestation,
  type SnpVerifyOptions,
  verifyGpuEvidence,
  verifySwitchEvidence,
  type GpuVerifyOptions,
  verifyAzureEvidence,
  type AzureVerifyOptions,
} from './verify-and-appraise.js';
import type { SnpPolicy } from '../appraise/snp-policy.js';
import type { GpuPolicy } from '../appraise/gpu-policy.js';
import type { EvidenceBundle } from '../formats/evidence-bundle.js';
import { azureEvidenceOfBytes } from '../formats/azure/evidence-formats.js';
import { ParseError } from '../errors.js';
import type { DeviceResult } from '../appraise/ear.js';
import { HGX_PPCIE_TOPOLOGY, ppcieTopologyCheck, type PpcieTopology } from '../verify/nvidia/ppcie-topology.js';

export interface BundleVerifyOptions {
  at: Date;
  /** The nonce the verifier chose (a challenge) — never taken from the bundle itself when given. */
  expectedNonce?: Uint8Array;
  /** The agent id the verifier expects (the controller: the session's agent id); the bundle's must equal it. */
  expectedAgentId?: string;
  snpPolicy?: SnpPolicy;
  gpuPolicy?: GpuPolicy;
  /** Extra DER certificates (VCEK from collateral) and CRLs for the CPU. */
  cpuCollateral?: { certificates?: Uint8Array[]; crls?: Uint8Array[] };
  gpuCollateral?: { rims?: GpuVerifyOptions['rims']; ocsp?: Uint8Array[]; skip?: GpuVerifyOptions['skip'] };
  /** Present only when simulation is explicitly enabled. */
  simulation?: { snpRoots: NonNullable<SnpVerifyOptions['simulatedRoots']>; gpuRoots: NonNullable<GpuVerifyOptions['simulatedRoots']> };
  /** The policy id to report in the EAR. */
  policyId?: string;
  /** The protected-PCIe topology a bundle with switches must show (default: HGX, 8 GPUs and 4 NVSwitches). */
  ppcieTopology?: PpcieTopology;
  /** Named checks from gathering collateral (missing, stale, fetched), shown with the device they serve; gpu by GPU index, switch by switch index. */
  collateralChecks?: { cpu?: Check[]; gpu?: Record<number, Check[]>; switch?: Record<number, Check[]> };
}

export interface BundleResult {
  ok: boolean;
  devices: DeviceResult[];
}

const same = (a: Uint8Array, b: Uint8Array) => a.length === b.length && timingSafeEqual(a, b);

function withCheck<T>(r: VerificationResult<T>, extra: Check[]): VerificationResult<T> {
  return resultOf([...extra, ...r.checks], r.claims, r.simulated);
}

export function verifyBundle(bundle: EvidenceBundle, opts: BundleVerifyOptions): BundleResult {
  const policyId = opts.policyId ?? 'cvm-agent/default';
  const bindingChecks: Check[] = [];
  if (opts.expectedNonce) {
    bindingChecks.push(
      same(opts.expectedNonce, bundle.nonce)
        ? pass('binding.nonce', "the bundle answers the verifier's nonce")
        : fail('binding.nonce', 'the bundle carries a different nonce than the one the verifier issued (replay or a stale bundle)'),
    );
  }
  if (opts.expectedAgentId !== undefined) {
    bindingChecks.push(
      bundle.agentId === opts.expectedAgentId
        ? pass('binding.agent-id', `the bundle is bound to agent id "${bundle.agentId}"`)
        : fail(
            'binding.agent-id',
            `the bundle is bound to agent id "${bundle.agentId}", not "${opts.expectedAgentId}" (evidence of another agent, relayed or replayed)`,
          ),
    );
  }
  if (bundle.simulated && !opts.simulation) {
    bindingChecks.push(fail('binding.simulated', 'the bundle is SIMULATED evidence and simulation is not enabled on this verifier'));
  }
  const nonce = opts.expectedNonce ?? bundle.nonce;
  // Recomputed from the bundle's own agentId: a bundle whose agentId was edited no longer matches its reports.
  const expectedGpuNonce = gpuNonce(nonce, bundle.teePubKey, bundle.agentId);
  const expectedReportData = cpuReportData(
    nonce,
    bundle.teePubKey,
    bundle.agentId,
    bundle.gpus.map((g) => g.report),
    (bundle.switches ?? []).map((s) => s.report),
  );

  const devices: DeviceResult[] = [];
  if (bundle.cpu.kind === 'snp') {
    const snpOpts: SnpVerifyOptions = { at: opts.at, expectedReportData };
    if (opts.snpPolicy) snpOpts.policy = opts.snpPolicy;
    if (opts.simulation) snpOpts.simulatedRoots = opts.simulation.snpRoots;
    const certificates = [...bundle.cpu.certificates, ...(opts.cpuCollateral?.certificates ?? [])];
    const r = verifySnpAttestation({ report: bundle.cpu.report, certificates, crls: opts.cpuCollateral?.crls ?? [] }, snpOpts);
    devices.push({ id: 'cpu0', policyId, result: withCheck(r, [...bindingChecks, ...(opts.collateralChecks?.cpu ?? [])]) });
  } else {
    devices.push({
      id: 'cpu0',
      policyId,
      result: withCheck(verifyAzureCpu(bundle, expectedReportData, opts), [...bindingChecks, ...(opts.collateralChecks?.cpu ?? [])]),
    });
  }

  for (const g of bundle.gpus) {
    const gOpts: GpuVerifyOptions = { at: opts.at, expectedNonce: expectedGpuNonce };
    if (opts.gpuPolicy) gOpts.policy = opts.gpuPolicy;
    if (opts.gpuCollateral?.rims) gOpts.rims = opts.gpuCollateral.rims;
    if (opts.gpuCollateral?.ocsp) gOpts.ocsp = opts.gpuCollateral.ocsp;
    if (opts.gpuCollateral?.skip) gOpts.skip = opts.gpuCollateral.skip;
    if (opts.simulation) gOpts.simulatedRoots = opts.simulation.gpuRoots;
    const r = verifyGpuEvidence(g, gOpts);
    devices.push({ id: `gpu${g.index}`, policyId, result: withCheck(r, [...bindingChecks, ...(opts.collateralChecks?.gpu?.[g.index] ?? [])]) });
  }
  const switches = bundle.switches ?? [];
  if (switches.length > 0) devices.push(...verifySwitches(bundle, devices, expectedGpuNonce, bindingChecks, opts, policyId));
  return { ok: devices.every((d) => d.result.ok), devices };
}

/**
 * The NVSwitches of a protected-PCIe bundle: each verified with the GPUs' nonce (submods switch0, ...),
 * then `ppcie.topology` over the GPUs and switches, added to every GPU's and every switch's result (the
 * GPU results of `devices` are replaced): a topology the devices disagree on contraindicates them all.
 */
function verifySwitches(
  bundle: EvidenceBundle,
  devices: DeviceResult[],
  expectedGpuNonce: Buffer,
  bindingChecks: Check[],
  opts: BundleVerifyOptions,
  policyId: string,
): DeviceResult[] {
  const sOpts: GpuVerifyOptions = { at: opts.at, expectedNonce: expectedGpuNonce };
  if (opts.gpuPolicy) sOpts.policy = opts.gpuPolicy;
  if (opts.gpuCollateral?.rims?.byId) sOpts.rims = { byId: opts.gpuCollateral.rims.byId };
  if (opts.gpuCollateral?.ocsp) sOpts.ocsp = opts.gpuCollateral.ocsp;
  if (opts.gpuCollateral?.skip) sOpts.skip = opts.gpuCollateral.skip;
  if (opts.simulation) sOpts.simulatedRoots = opts.simulation.gpuRoots;
  const switchResults = (bundle.switches ?? []).map((s) => ({ index: s.index, result: verifySwitchEvidence(s, sOpts) }));
  const gpuIndex = devices.flatMap((d, i) => (d.id.startsWith('gpu') ? [i] : []));
  const topology = ppcieTopologyCheck(
    gpuIndex.map((i) => devices[i]!.result.claims as { switchPdis?: string[] } | undefined),
    switchResults.map((s) => s.result.claims),
    opts.ppcieTopology ?? HGX_PPCIE_TOPOLOGY,
  );
  for (const i of gpuIndex) {
    const d = devices[i]!;
    devices[i] = { ...d, result: resultOf([...d.result.checks, topology], d.result.claims, d.result.simulated) };
  }
  return switchResults
    .map((s) => ({ id: `switch${s.index}`, policyId, result: withCheck(s.result, [...bindingChecks, ...(opts.collateralChecks?.switch?.[s.index] ?? [])]) }))
    .map((d) => ({
      ...d,
      result: resultOf([...d.result.checks, topology], d.result.claims, d.result.simulated),
    }));
}

/** Azure: the binding is the 64 bytes written to the HCL user data; the quote carries SHA-256 of them. */
function verifyAzureCpu(bundle: EvidenceBundle, binding: Buffer, opts: BundleVerifyOptions): VerificationResult<unknown> {
  const q = bundle.cpu.quote;
  if (!q) return resultOf([fail('azure.quote', 'the Azure evidence has no vTPM quote')], undefined);
  let evidence;
  try {
    // The bundle's bytes, decoded once here (the collector ships them as they came from the vTPM).
    evidence = azureEvidenceOfBytes({ hclReport: bundle.cpu.report, quote: q });
  } catch (err) {
    if (!(err instanceof ParseError)) throw err;
    return resultOf([fail('azure.evidence.parse', err.message)], undefined);
  }
  const aOpts: AzureVerifyOptions = { at: opts.at, nonce: binding };
  const certificates = [...bundle.cpu.certificates, ...(opts.cpuCollateral?.certificates ?? [])];
  if (certificates.length > 0) aOpts.certificates = certificates;
  if (opts.cpuCollateral?.crls) aOpts.crls = opts.cpuCollateral.crls;
  if (opts.snpPolicy) aOpts.policy = opts.snpPolicy;
  if (opts.simulation) aOpts.simulatedRoots = opts.simulation.snpRoots;
  return verifyAzureEvidence(evidence, aOpts);
}
