/**
 * Simulation trust for the controller (docs/controller.md "Simulation"): only when `simulation.trust: true`,
 * the controller reads the simulated test roots from `simulation.dir` (the directory the simulated
 * agent uses: snp-sim-state.json, gpu-sim-identity.json and, for a simulated HGX system,
 * switch-sim-identity.json) and hands them to the verifiers, which
 * then mark every result SIMULATED. The controller never creates these roots and never takes roots
 * from the agent's messages. The controller reaches this module by dynamic import, only when
 * `simulation.trust` is used for an appraisal; the roots are read lazily (the demo may start the
 * controller before the agent created its roots) and cached once found.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { CvmError } from '../errors.js';
import { SNP_SIM_FILE, SimulatedSnpDevice } from './snp-sim.js';
import { loadSimGpuIdentity, SIM_FILE as GPU_SIM_FILE, type SimGpuIdentity } from './gpu-sim.js';
import { simulationTrust, type SimulationVerifyOptions } from './open.js';
import { loadOrCreateSimPpcieSystem, SWITCH_SIM_FILE, type SimPpcieSystem } from './switch-sim.js';

/** What the bundle being appraised has: GPUs, NVSwitches. */
export interface SimulationNeeds {
  gpus: boolean;
  switches: boolean;
}

/** Simulated roots plus the collateral a simulated chain needs (CRL, RIMs, OCSP) and the "sim" GPU environment. */
export type SimulationTrust = SimulationVerifyOptions;

const exists = (p: string) =>
  stat(p).then(
    () => true,
    () => false,
  );

export class SimulationRoots {
  private snp: SimulatedSnpDevice | undefined;
  private gpu: SimGpuIdentity | undefined;
  private switches: SimPpcieSystem | undefined;
  private options: ((at: Date) => SimulationTrust) | undefined;
  /** The load under way (see trust); later loads wait for it. */
  private loading: Promise<void> | undefined;

  constructor(readonly dir: string) {}

  /**
   * The trust material for one appraisal at time `at`; throws with an actionable message when missing.
   * The GPU and switch roots are looked for only when the bundle has GPUs / switches (`needs`) and
   * until found, so an appraisal does not stat the directory once the roots it needs are loaded.
   */
  async trust(at: Date, needs: SimulationNeeds): Promise<SimulationTrust> {
    if (!this.snp || ((needs.gpus || needs.switches) && !this.gpu) || (needs.switches && !this.switches)) {
      // One load at a time: concurrent first appraisals (a restarted replica's agents all at once)
      // wait for it instead of each reading every simulated key again.
      const mine = (this.loading ?? Promise.resolve()).then(() => this.load(needs));
      this.loading = mine.catch(() => undefined);
      await mine;
    }
    if (needs.gpus && !this.gpu) throw new CvmError('ERR_SIMULATION', `no simulated GPU roots in ${this.dir} (${GPU_SIM_FILE}); the bundle has GPUs`);
    this.options ??= simulationTrust(this.snp!, this.gpu, this.switches);
    return this.options(at);
  }

  private async load(needs: SimulationNeeds): Promise<void> {
    if (!this.snp) {
      // Checked first so SimulatedSnpDevice.open() never creates roots here.
      if (!(await exists(join(this.dir, SNP_SIM_FILE)))) {
        throw new CvmError(
          'ERR_SIMULATION',
          `no simulated SNP roots in ${this.dir} (${SNP_SIM_FILE}); start the simulated agent with simulation.dir pointing there first`,
        );
      }
      this.snp = await SimulatedSnpDevice.open(this.dir);
    }
    // The switches' roots hang off the GPU identity (their CA is created beside it).
    if ((needs.gpus || needs.switches) && !this.gpu && (await exists(join(this.dir, GPU_SIM_FILE)))) {
      this.gpu = await loadSimGpuIdentity(this.dir);
      this.options = undefined;
    }
    // The switch CA and chains (a simulated HGX system), for their RIM and OCSP answers; never created here.
    if (needs.switches && this.gpu && !this.switches && (await exists(join(this.dir, SWITCH_SIM_FILE)))) {
      this.switches = await loadOrCreateSimPpcieSystem(this.gpu, false);
      if (this.switches) this.options = undefined;
    }
  }
}
