/**
 * Prometheus metrics for GET /metrics (on the API socket, and on metrics.listen when configured), on a
 * registry owned by this agent instance (never prom-client's global default, so tests and embedders
 * get independent, predictable output). Besides the cvm_* series: cvm_agent_build_info and the
 * standard process_* / nodejs_* metrics under their usual names (util/process-metrics.ts).
 *
 * Label values are bounded: `result` and `status` are EAR tiers (plus "error"), `device` is an EAR
 * submod name (cpu0, gpu0..gpuN), `kind` a collateral kind; anything else is dropped rather than
 * turned into a new series.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Ear } from '../appraise/ear.js';
import type { TrustStatus } from '../formats/checks.js';
import { registerBuildInfo, registerDefaultMetrics } from '../util/process-metrics.js';
import { buildCommit } from '../util/build-info.js';
import { packageRoot } from '../native/addon-loader.js';

export const STATUSES: readonly TrustStatus[] = ['affirming', 'warning', 'contraindicated', 'none'];
/** Per device: an EAR tier, or "error" when the device or its library was unavailable (cvm.error). */
export type DeviceState = TrustStatus | 'error';
export const DEVICE_STATES: readonly DeviceState[] = [...STATUSES, 'error'];
/** Trust-loss triggers and actions (agent/daemon/consequences.ts): fixed sets, so bounded labels. */
export const TRIGGER_LABELS = ['cycleFailed', 'controllerContraindicated', 'tokenExpired', 'attestationStale'] as const;
/** A cycle's result: the overall EAR tier, or "error" when it ended without an EAR. */
export type CycleResult = TrustStatus | 'error';

const LABEL_VALUE = /^[A-Za-z0-9._-]{1,64}$/;

/** Attestation with several GPUs takes seconds; the buckets cover 100 ms to 5 minutes. */
export const CYCLE_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300];

export interface AgentMetricsOptions {
  /** The standard process_* and nodejs_* metrics (CPU, memory, event loop, GC, fds); default true. */
  defaultMetrics?: boolean;
  /** Clock for cvm_last_success_timestamp_seconds (tests). */
  now?: () => number;
}

/** The commit for the build_info labels (the same as `cvm-agent --version`); "unknown" if the package root is not found. */
function runningCommit(): string {
  try {
    return buildCommit(packageRoot());
  } catch {
    return 'unknown';
  }
}

export class AgentMetrics {
  readonly registry = new Registry();
  private readonly now: () => number;
  private readonly cycleDuration: Histogram<'result'>;
  private readonly cycles: Counter<'result'>;
  private readonly deviceStatus: Gauge<'device' | 'status'>;
  private readonly lastSuccess: Gauge;
  private readonly gpuReady: Gauge;
  private readonly linkUp: Gauge;
  private readonly collateralStale: Gauge<'kind'>;
  private readonly simulated: Gauge;
  private readonly trusted: Gauge;
  private readonly triggerActive: Gauge<'trigger'>;
  private readonly trustActions: Counter<'trigger' | 'action' | 'phase' | 'outcome'>;
  private readonly eventSubscribers: Gauge;
  private readonly eventsDropped: Counter;
  private readonly devices = new Set<string>();

  constructor(opts: AgentMetricsOptions = {}) {
    this.now = opts.now ?? Date.now;
    const registers = [this.registry];
    this.cycleDuration = new Histogram({
      name: 'cvm_attestation_cycle_duration_seconds',
      help: 'Duration of attestation cycles (binding, evidence, verification, appraisal), by result.',
      labelNames: ['result'],
      buckets: CYCLE_BUCKETS,
      registers,
    });
    this.cycles = new Counter({
      name: 'cvm_attestation_cycles_total',
      help: 'Attestation cycles run, by result (EAR tier or error).',
      labelNames: ['result'],
      registers,
    });
    this.deviceStatus = new Gauge({
      name: 'cvm_device_status',
      help: 'Status per device from the latest cycle (an EAR tier, or error when the device or its library was unavailable): 1 for the current status, 0 for the others.',
      labelNames: ['device', 'status'],
      registers,
    });
    this.lastSuccess = new Gauge({
      name: 'cvm_last_success_timestamp_seconds',
      help: 'Unix time of the last cycle that ended affirming (0: never).',
      registers,
    });
    this.gpuReady = new Gauge({
      name: 'cvm_gpu_ready_state',
      help: 'GPU ready state as last read from the driver (1 accepting work, 0 not, NaN unreadable).',
      registers,
    });
    this.linkUp = new Gauge({ name: 'cvm_controller_link_up', help: 'WebSocket link to the controller established (1) or not (0).', registers });
    this.collateralStale = new Gauge({
      name: 'cvm_collateral_stale',
      help: 'Collateral past its refresh time (1) or fresh (0), by kind.',
      labelNames: ['kind'],
      registers,
    });
    this.simulated = new Gauge({ name: 'cvm_simulated', help: 'The latest result came from SIMULATED evidence (1) or real hardware (0).', registers });
    this.trusted = new Gauge({
      name: 'cvm_trusted',
      help: 'The VM counts as trusted now: the last cycle passed and no trust-loss trigger is active (1) or not (0).',
      registers,
    });
    this.triggerActive = new Gauge({
      name: 'cvm_trust_trigger_active',
      help: 'Trust-loss trigger in force (1) or not (0).',
      labelNames: ['trigger'],
      registers,
    });
    this.trustActions = new Counter({
      name: 'cvm_trust_actions_total',
      help: 'Consequence actions taken (phase apply) or undone on recovery (phase undo), by trigger, action and outcome (done, failed, skipped).',
      labelNames: ['trigger', 'action', 'phase', 'outcome'],
      registers,
    });
    this.eventSubscribers = new Gauge({ name: 'cvm_events_subscribers', help: 'Clients holding GET /v1/events open.', registers });
    this.eventsDropped = new Counter({
      name: 'cvm_events_dropped_clients_total',
      help: 'Event subscribers disconnected because they did not keep up (buffer bound reached).',
      registers,
    });
    // Explicit zeros: a scrape right after start shows every series, not an absent one.
    for (const g of [this.lastSuccess, this.gpuReady, this.linkUp, this.simulated, this.trusted, this.eventSubscribers]) g.set(0);
    for (const trigger of TRIGGER_LABELS) this.triggerActive.set({ trigger }, 0);
    for (const result of [...STATUSES, 'error'] as const) this.cycles.inc({ result }, 0);
    registerBuildInfo(this.registry, 'cvm_agent', 'agent', runningCommit());
    if (opts.defaultMetrics ?? true) registerDefaultMetrics(this.registry);
  }

  /**
   * One finished cycle. `ok` means the cycle's verdict lets the VM count as attested (the
   * orchestrator's decision, e.g. affirming or an accepted warning); it moves the last-success time.
   * Without an EAR the cycle counts as "error" and every known device drops to status "none":
   * a failed cycle proves nothing about the devices.
   */
  recordCycle(ear: Ear | null, durationSec: number, ok: boolean): void {
    // Overall "none" means a device could not be appraised at all: that is an error, not a verdict.
    const result: CycleResult = ear && ear['ear.status'] !== 'none' ? ear['ear.status'] : 'error';
    this.cycles.inc({ result });
    if (Number.isFinite(durationSec) && durationSec >= 0) this.cycleDuration.observe({ result }, durationSec);
    if (ok) this.lastSuccess.set(Math.floor(this.now() / 1000));

    const current = new Map<string, DeviceState>();
    if (ear) {
      for (const [device, submod] of Object.entries(ear.submods)) {
        if (LABEL_VALUE.test(device)) current.set(device, submod['cvm.error'] ? 'error' : submod['ear.status']);
      }
      this.simulated.set(Object.values(ear.submods).some((s) => s['cvm.simulated'] === true) ? 1 : 0);
    } else {
      for (const device of this.devices) current.set(device, 'none');
    }
    // Devices that vanished from the EAR (a GPU gone) lose their series instead of showing stale values.
    for (const device of this.devices) {
      if (!current.has(device)) for (const status of DEVICE_STATES) this.deviceStatus.remove({ device, status });
    }
    this.devices.clear();
    for (const [device, status] of current) {
      this.devices.add(device);
      for (const s of DEVICE_STATES) this.deviceStatus.set({ device, status: s }, s === status ? 1 : 0);
    }
  }

  /** The ready state as read from the driver; null (unreadable) is NaN, never a guess. */
  setGpuReady(ready: boolean | null): void {
    this.gpuReady.set(ready === null ? Number.NaN : ready ? 1 : 0);
  }

  setTrusted(trusted: boolean): void {
    this.trusted.set(trusted ? 1 : 0);
  }

  setTriggerActive(trigger: string, active: boolean): void {
    if ((TRIGGER_LABELS as readonly string[]).includes(trigger)) this.triggerActive.set({ trigger }, active ? 1 : 0);
  }

  countTrustAction(trigger: string, action: string, phase: 'apply' | 'undo', outcome: 'done' | 'failed' | 'skipped'): void {
    if (LABEL_VALUE.test(trigger) && LABEL_VALUE.test(action)) this.trustActions.inc({ trigger, action, phase, outcome });
  }

  setEventSubscribers(n: number): void {
    this.eventSubscribers.set(n);
  }

  countDroppedSubscriber(): void {
    this.eventsDropped.inc();
  }

  setLinkUp(up: boolean): void {
    this.linkUp.set(up ? 1 : 0);
  }

  /** kind: "vcek", "crl", "rim", "ocsp", ...; an unusable label value is ignored. */
  setCollateralStale(kind: string, stale: boolean): void {
    if (LABEL_VALUE.test(kind)) this.collateralStale.set({ kind }, stale ? 1 : 0);
  }

  /** The Prometheus text exposition for GET /metrics. */
  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
