/**
 * The built-in simulated TEE (README.md "Security model"): a software SNP CPU and N software H100s whose
 * test roots are created on first use in one directory (snp-sim-state.json, gpu-sim-identity.json).
 * This module is the ONLY place that turns those test roots into verifier trust (`simulationTrust`),
 * reached only when simulation is explicitly enabled (`tee: simulated`, `cvm-agent demo`, a
 * controller with `simulation.trust: true`); every result then carries simulated = true.
 */
import { certsFromTable, type CpuSource } from '../attest/cpu-sources.js';
import { CvmError } from '../errors.js';
import type { CpuEvidence } from '../formats/evidence-bundle.js';
import { loadOrCreateSimGpuIdentity, simulatedRims, simulatedRoots, SimulatedGpuSource, type SimGpuIdentity } from './gpu-sim.js';
import { SimulatedSnpDevice } from './snp-sim.js';
import { simulatedOcspResponses } from './ocsp-sim.js';
import { DEFAULT_GPU_POLICY, type GpuPolicy } from '../appraise/gpu-policy.js';
import type { BundleVerifyOptions } from '../attest/verify-bundle.js';
import type { GpuDriverFacts } from '../evidence/gpu-nvml.js';
import type { SwitchBundleEntry } from '../formats/evidence-bundle.js';
import { collectSimulatedSwitches, HGX_GPUS, loadOrCreateSimPpcieSystem, type SimPpcieSystem, type SwitchTamper } from './switch-sim.js';
import type { ReportSigner } from './report-signer.js';

/** How much earlier than the signing time a call may be and still use the signed CRL/OCSP (both are backdated 1 h). */
const REUSE_EARLIER_MS = 30 * 60_000;

export type SimulationVerifyOptions = Required<Pick<BundleVerifyOptions, 'simulation' | 'gpuCollateral' | 'cpuCollateral' | 'gpuPolicy'>>;

/**
 * Verifier options that trust the simulated roots, with the collateral a simulated chain needs: a CRL
 * signed by the simulated ARK, the simulated RIMs, and OCSP answers signed by the simulated CAs (so
 * revocation is checked, not skipped). With the simulated HGX system's switches, their VBIOS RIM and
 * OCSP answers for their chains too. Signed collateral is reused while valid.
 */
export function simulationTrust(
  snp: SimulatedSnpDevice,
  identity: SimGpuIdentity | undefined,
  switches?: SimPpcieSystem,
): (at: Date) => SimulationVerifyOptions {
  const gpuRims = identity ? simulatedRims(identity) : undefined;
  const rims = gpuRims && switches ? { byId: new Map([...gpuRims.byId, ...switches.rims]) } : gpuRims;
  // Simulated GPUs report NVML's "sim" CC environment; accept it only here.
  const gpuPolicy: GpuPolicy = { ...DEFAULT_GPU_POLICY, environments: ['sim'] };
  let signed: { from: number; crl: Buffer; ocsp: Buffer[] } | undefined;
  // One roots object for every call: the verifier memoises the parsed roots per input object.
  const snpRoots = [snp.roots()];
  return (at) => {
    const t = at.getTime();
    // Signed collateral is backdated an hour (thisUpdate), so it also serves a call whose `at` is a
    // little earlier: concurrent appraisals do not each sign the CRL and every OCSP answer again.
    if (!signed || t - signed.from > 12 * 3600_000 || t < signed.from - REUSE_EARLIER_MS) {
      signed = { from: t, crl: snp.crl(at), ocsp: identity ? simulatedOcspResponses(identity, at, switches) : [] };
    }
    return {
      simulation: {
        snpRoots,
        gpuRoots: identity ? simulatedRoots(identity) : { deviceRoot: Buffer.alloc(0), simulated: true },
      },
      cpuCollateral: { crls: [signed.crl] },
      gpuCollateral: { rims: { byId: rims?.byId ?? new Map() }, ocsp: signed.ocsp },
      gpuPolicy,
    };
  };
}

export interface Simulation {
  cpu: SimulatedCpuSource;
  gpus: SimulatedGpuSource | undefined;
  /** The simulated HGX system's NVSwitches (only with the `ppcie` option). */
  switches?: { system: SimPpcieSystem; collect(nonce: Uint8Array): Promise<SwitchBundleEntry[]> };
  verifyOptions(at: Date): SimulationVerifyOptions;
}

/**
 * Open (creating on first use) the simulated CPU and `gpuCount` GPUs in `dir`. With `driver`, the
 * GPUs' presence, CC mode and ready state come from that driver (NVML) instead of memory; with
 * `signer`, reports are signed there (report-signer.ts) instead of on the thread pool. With
 * `ppcie`, the GPUs are an HGX protected-PCIe system (8 GPUs, 4 NVSwitches, switch-sim.ts): every GPU
 * names the 4 switches and each switch the 8 GPUs; the default (no `ppcie`) has no switches. The
 * switches are created on first use in `dir` too (switch-sim-identity.json). `switchTamper` damages one
 * switch's evidence on every collection (end-to-end tests only, agent/daemon/test-hooks.ts).
 */
export async function openSimulation(
  dir: string,
  gpuCount: number,
  opts: { driver?: GpuDriverFacts; signer?: ReportSigner; ppcie?: boolean; switchTamper?: SwitchTamper } = {},
): Promise<Simulation> {
  if (opts.ppcie && gpuCount !== HGX_GPUS)
    throw new CvmError('ERR_INVALID_ARGUMENT', `a simulated HGX PPCIe system has ${HGX_GPUS} GPUs, ${gpuCount} requested`);
  const cpu = await SimulatedCpuSource.open(dir);
  const identity = gpuCount > 0 ? await loadOrCreateSimGpuIdentity(dir, gpuCount) : undefined;
  const gpus = identity ? new SimulatedGpuSource(identity, gpuCount, undefined, opts.driver) : undefined;
  if (opts.signer) {
    cpu.device.signer = opts.signer;
    if (gpus) gpus.signer = opts.signer;
  }
  if (!opts.ppcie || !identity || !gpus) return { cpu, gpus, verifyOptions: simulationTrust(cpu.device, identity) };
  const system = (await loadOrCreateSimPpcieSystem(identity))!;
  gpus.ppcieSwitchPdis = system.switches.map((s) => s.pdi);
  const tamper = opts.switchTamper;
  return {
    cpu,
    gpus,
    // The 4 switch reports are signed in this thread (about 0.5 ms each), as simulation only.
    switches: { system, collect: async (nonce) => collectSimulatedSwitches(system, nonce, tamper) },
    verifyOptions: simulationTrust(cpu.device, identity, system),
  };
}

/** The simulated SNP device as a CPU evidence source (the production sources live in attest/cpu-sources.ts). */
export class SimulatedCpuSource implements CpuSource {
  readonly source = 'simulated' as const;
  readonly simulated = true;
  private constructor(readonly device: SimulatedSnpDevice) {}
  static async open(dir: string): Promise<SimulatedCpuSource> {
    return new SimulatedCpuSource(await SimulatedSnpDevice.open(dir));
  }
  async collect(reportData: Buffer): Promise<CpuEvidence> {
    const r = await this.device.getExtReport(reportData);
    return { kind: 'snp', source: this.source, report: r.report, certificates: certsFromTable(r.certTable) };
  }
}
