/**
 * The built-in simulated TEE (README.md "Security model"): a software SNP CPU and N software H100s whose
 * test roots are created on first use in one directory (snp-sim-state.json, gpu-sim-identity.json).
 * This module is the ONLY place that turns those test roots into verifier trust (`simulationTrust`),
 * reached only when simulation is explicitly enabled (`tee: simulated`, `cvm-agent demo`, a
 * controller with `simulation.trust: true`); every result then carries simulated = true.
 */
import { certsFromTable, type CpuSource } from '../attest/cpu-sources.js';
import type { CpuEvidence } from '../formats/evidence-bundle.js';
import { loadOrCreateSimGpuIdentity, simulatedRims, simulatedRoots, SimulatedGpuSource, type SimGpuIdentity } from './gpu-sim.js';
import { SimulatedSnpDevice } from './snp-sim.js';
import { simulatedOcspResponses } from './ocsp-sim.js';
import { DEFAULT_GPU_POLICY, type GpuPolicy } from '../appraise/gpu-policy.js';
import type { BundleVerifyOptions } from '../attest/verify-bundle.js';
import type { GpuDriverFacts } from '../evidence/gpu-nvml.js';
import type { ReportSigner } from './report-signer.js';

export type SimulationVerifyOptions = Required<Pick<BundleVerifyOptions, 'simulation' | 'gpuCollateral' | 'cpuCollateral' | 'gpuPolicy'>>;

/**
 * Verifier options that trust the simulated roots, with the collateral a simulated chain needs: a CRL
 * signed by the simulated ARK, the simulated RIMs, and OCSP answers signed by the simulated CAs (so
 * revocation is checked, not skipped). Signed collateral is reused while valid.
 */
export function simulationTrust(snp: SimulatedSnpDevice, identity: SimGpuIdentity | undefined): (at: Date) => SimulationVerifyOptions {
  const rims = identity ? simulatedRims(identity) : undefined;
  // Simulated GPUs report NVML's "sim" CC environment; accept it only here.
  const gpuPolicy: GpuPolicy = { ...DEFAULT_GPU_POLICY, environments: ['sim'] };
  let signed: { from: number; crl: Buffer; ocsp: Buffer[] } | undefined;
  // One roots object for every call: the verifier memoises the parsed roots per input object.
  const snpRoots = [snp.roots()];
  return (at) => {
    const t = at.getTime();
    if (!signed || t - signed.from > 12 * 3600_000 || t < signed.from) {
      signed = { from: t, crl: snp.crl(at), ocsp: identity ? simulatedOcspResponses(identity, at) : [] };
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
  verifyOptions(at: Date): SimulationVerifyOptions;
}

/**
 * Open (creating on first use) the simulated CPU and `gpuCount` GPUs in `dir`. With `driver`, the
 * GPUs' presence, CC mode and ready state come from that driver (NVML) instead of memory; with
 * `signer`, reports are signed there (report-signer.ts) instead of on the thread pool.
 */
export async function openSimulation(dir: string, gpuCount: number, opts: { driver?: GpuDriverFacts; signer?: ReportSigner } = {}): Promise<Simulation> {
  const cpu = await SimulatedCpuSource.open(dir);
  const identity = gpuCount > 0 ? await loadOrCreateSimGpuIdentity(dir, gpuCount) : undefined;
  const gpus = identity ? new SimulatedGpuSource(identity, gpuCount, undefined, opts.driver) : undefined;
  if (opts.signer) {
    cpu.device.signer = opts.signer;
    if (gpus) gpus.signer = opts.signer;
  }
  return { cpu, gpus, verifyOptions: simulationTrust(cpu.device, identity) };
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
