/**
 * The built-in simulated TEE (DESIGN.md "Simulation"): a software SNP CPU and N software H100s whose
 * test roots are created on first use in `dir`. This module is the ONLY place that turns those test
 * roots into verifier trust, and it is reached only when simulation is explicitly enabled
 * (`tee: simulated`, `cvm-agent demo`); every result then carries simulated = true.
 */
import { join } from 'node:path';
import { SimulatedCpuSource } from './cpu-sources.js';
import { loadOrCreateSimGpuIdentity, simulatedRims, simulatedRoots, SimulatedGpuSource } from '../evidence/simulated/gpu-sim.js';
import { DEFAULT_GPU_POLICY, type GpuPolicy } from '../appraise/gpu-policy.js';
import type { BundleVerifyOptions } from './verify-bundle.js';
import { simulatedOcspResponses } from '../evidence/simulated/ocsp-sim.js';

export interface Simulation {
  cpu: SimulatedCpuSource;
  gpus: SimulatedGpuSource | undefined;
  /** Verifier options that trust the simulated roots (and nothing else extra). */
  verifyOptions(at: Date): Pick<BundleVerifyOptions, 'simulation' | 'gpuCollateral' | 'gpuPolicy' | 'cpuCollateral'>;
}

export async function openSimulation(dir: string, gpuCount: number): Promise<Simulation> {
  const cpu = await SimulatedCpuSource.open(join(dir, 'snp'));
  const identity = gpuCount > 0 ? await loadOrCreateSimGpuIdentity(join(dir, 'gpu'), gpuCount) : undefined;
  const gpus = identity ? new SimulatedGpuSource(identity, gpuCount) : undefined;
  const rims = identity ? simulatedRims(identity) : undefined;
  // Simulated GPUs report NVML's "sim" CC environment; accept it only here.
  const gpuPolicy: GpuPolicy = { ...DEFAULT_GPU_POLICY, environments: ['sim'] };
  // Signed once and reused while valid (they cover a day from an hour before `at`).
  let ocsp: { from: number; responses: Buffer[] } | undefined;
  const ocspFor = (at: Date): Buffer[] => {
    if (!identity) return [];
    if (!ocsp || at.getTime() - ocsp.from > 12 * 3600_000 || at.getTime() < ocsp.from) ocsp = { from: at.getTime(), responses: simulatedOcspResponses(identity, at) };
    return ocsp.responses;
  };
  return {
    cpu,
    gpus,
    verifyOptions(at: Date) {
      const sim = cpu.device.roots();
      return {
        simulation: {
          snpRoots: [sim],
          gpuRoots: identity ? simulatedRoots(identity) : { deviceRoot: Buffer.alloc(0), simulated: true },
        },
        // The simulated ARK signs a fresh CRL, so revocation is really checked in simulation too.
        cpuCollateral: { crls: [cpu.device.crl(at)] },
        // Fresh OCSP "good" answers signed by the simulated CAs: revocation is checked, not skipped.
        gpuCollateral: { rims: { byId: rims?.byId ?? new Map() }, ocsp: ocspFor(at) },
        gpuPolicy,
      };
    },
  };
}
