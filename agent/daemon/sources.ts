/**
 * From config to evidence sources: the CPU source (`tee`), the GPU source (`gpus.enabled`), and the
 * verifier closure (collateral gathered here, verifyBundle run by `verifyWith`). Simulation trust is
 * created here, and only for `tee: simulated`.
 */
import { AzureVtpmSource, detectCpuSource, SevGuestSource, TsmSource, type CpuSource } from '../attest/cpu-sources.js';
import { createVerifier, type VerifierConfig } from '../attest/verifier.js';
import type { EvidenceBundle } from '../formats/evidence-bundle.js';
import type { BundleResult } from '../attest/verify-bundle.js';
import { NvmlGpuSource, nvmlDriverFacts, type GpuDriverFacts, type GpuSource } from '../evidence/gpu-nvml.js';
import { nvmlInfo, setNvmlLibrary } from '../native/nvml.js';
import { defaultPolicy, loadPolicyFile, type AppraisalPolicy } from '../appraise/policy.js';
import type { Config } from '../config/schema.js';
import { DeviceError } from '../errors.js';
import { existsSync } from 'node:fs';
import { CollateralStore } from '../collateral/store.js';
import type { SwitchBundleEntry } from '../formats/evidence-bundle.js';
import type { SwitchTamper } from '../simulation/switch-sim.js';
import type { ReportSigner } from '../simulation/report-signer.js';

export interface Sources {
  kind: 'snp' | 'tsm' | 'azure' | 'simulated';
  cpu: CpuSource;
  gpus: GpuSource | undefined;
  /** The NVSwitches of a protected-PCIe system; only the simulated HGX system (`simulation.ppcie`) has them today. */
  switches?: { count: number; collect(nonce: Uint8Array): Promise<SwitchBundleEntry[]> };
  simulated: boolean;
  policy: AppraisalPolicy;
  verify: (bundle: EvidenceBundle, at: Date) => BundleResult | Promise<BundleResult>;
}

export async function loadPolicy(config: Config): Promise<AppraisalPolicy> {
  const base = config.policy.file ? await loadPolicyFile(config.policy.file) : defaultPolicy();
  if (config.policy.allowDebug) base.snp = { ...base.snp, allowDebug: true };
  // In the guest NVML always reports the CC state: require it (offline verifiers may not have it).
  base.gpu = { ...base.gpu, requireCcState: true };
  return base;
}

/** Where the CPU work of a cycle runs, when not in this thread (the daemon: its verification worker, attest/verify-thread.ts). */
export interface Offload {
  /** Runs verifyBundle once the options are formed. */
  verifyWith?: VerifierConfig['verifyWith'];
  /** Signs simulated reports (tee: simulated only). */
  signer?: ReportSigner;
}

/** `hooks`: test faults from agent/daemon/test-hooks.ts (honoured only under CVM_AGENT_TEST_HOOKS=1), simulated TEE only. */
export async function openSources(
  config: Config,
  policy: AppraisalPolicy,
  offload: Offload = {},
  hooks: { switchTamper?: SwitchTamper } = {},
): Promise<Sources> {
  const { verifyWith } = offload;
  if (config.devices.nvmlLibrary) setNvmlLibrary(config.devices.nvmlLibrary);
  if (config.tee === 'simulated') {
    let driver: GpuDriverFacts | undefined;
    if (config.simulation.nvml && config.gpus.enabled !== 'off' && config.simulation.gpus > 0) {
      driver = nvmlDriverFacts;
      // Only to say which driver answers; an unavailable library is a per-cycle device error, not a start error.
      await nvmlInfo().catch(() => undefined);
    }
    // Loaded only in simulation mode: production start-up never evaluates the simulated TEE.
    const { openSimulation } = await import('../simulation/open.js');
    const sim = await openSimulation(config.simulation.dir, config.simulation.gpus, {
      ...(driver ? { driver } : {}),
      ...(config.simulation.ppcie ? { ppcie: true } : {}),
      ...(hooks.switchTamper ? { switchTamper: hooks.switchTamper } : {}),
      ...(offload.signer ? { signer: offload.signer } : {}),
    });
    const gpus = config.gpus.enabled === 'off' ? undefined : sim.gpus;
    const switches = gpus && sim.switches ? { count: sim.switches.system.switches.length, collect: sim.switches.collect } : undefined;
    // Simulated GPUs are in the "sim" environment; the simulation's own gpuPolicy is not used.
    const verifier = createVerifier({
      snpPolicy: policy.snp,
      gpuPolicy: { ...policy.gpu, environments: ['sim'] },
      policyId: `${policy.id}+simulated`,
      ...(verifyWith ? { verifyWith } : {}),
    });
    return {
      kind: 'simulated',
      cpu: sim.cpu,
      gpus,
      ...(switches ? { switches } : {}),
      simulated: true,
      policy,
      verify: (bundle, at) => {
        const { gpuPolicy: _simPolicy, ...trust } = sim.verifyOptions(at);
        return verifier(bundle, at, trust);
      },
    };
  }
  let cpu: CpuSource | undefined;
  let kind: Sources['kind'];
  switch (config.tee) {
    case 'snp':
      cpu = new SevGuestSource(config.devices.sevGuest);
      kind = 'snp';
      break;
    case 'tsm':
      cpu = new TsmSource(config.devices.tsmRoot);
      kind = 'tsm';
      break;
    case 'azure':
      cpu = AzureVtpmSource.forDevice(config.devices.tpm);
      kind = 'azure';
      break;
    default: {
      cpu = detectCpuSource(config.devices);
      kind = cpu instanceof TsmSource ? 'tsm' : 'snp';
      if (!cpu && existsSync(config.devices.tpm)) {
        cpu = AzureVtpmSource.forDevice(config.devices.tpm);
        kind = 'azure';
      }
      if (!cpu)
        throw new DeviceError(
          'ERR_NO_TEE',
          `no confidential-computing interface found (${config.devices.sevGuest}, ${config.devices.tsmRoot}, ${config.devices.tpm}); set "tee: simulated" to run the built-in simulated TEE`,
        );
    }
  }
  let gpus: GpuSource | undefined;
  if (config.gpus.enabled !== 'off') {
    const info = await nvmlInfo().catch(() => ({ available: false as const, reason: 'NVML not available' }));
    if (info.available && info.deviceCount > 0) gpus = new NvmlGpuSource();
    else if (config.gpus.enabled === 'on')
      throw new DeviceError('ERR_NO_GPU', `gpus.enabled is "on" but ${info.available ? 'NVML lists no GPU' : info.reason}`);
  }
  const verifyOpts: VerifierConfig = { snpPolicy: policy.snp, gpuPolicy: policy.gpu, policyId: policy.id, ...(verifyWith ? { verifyWith } : {}) };
  return { kind, cpu, gpus, simulated: false, policy, verify: collateralVerifier(config.collateral, verifyOpts) };
}

/**
 * The real (non-simulated) verifier: collateral from the cache at config.collateral.dir (fetched only
 * when collateral.online is true), then verifyBundle. One store for the life of the daemon.
 */
export function collateralVerifier(
  collateral: Config['collateral'],
  verifyOpts: Omit<VerifierConfig, 'collateral'>,
): (bundle: EvidenceBundle, at: Date) => Promise<BundleResult> {
  const verifier = createVerifier({
    ...verifyOpts,
    collateral: { store: new CollateralStore(collateral.dir), online: collateral.online, timeoutMs: collateral.timeoutMs },
  });
  return (bundle, at) => verifier(bundle, at);
}
