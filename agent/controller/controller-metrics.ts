/**
 * The reference controller's Prometheus metrics (GET /metrics on its listener), on a registry owned
 * by the instance. Labels are bounded: `status` is an EAR tier. Besides these: cvm_controller_build_info
 * and the standard process_* / nodejs_* metrics (util/process-metrics.ts).
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { TrustStatus } from '../formats/checks.js';
import { registerBuildInfo, registerDefaultMetrics } from '../util/process-metrics.js';
import { buildCommit } from '../util/build-info.js';
import { packageRoot } from '../native/addon-loader.js';

const STATUSES: readonly TrustStatus[] = ['affirming', 'warning', 'contraindicated', 'none'];

/** Appraising a bundle with several GPUs (and fetching collateral online) takes seconds; 10 ms to 2 min. */
export const VERIFICATION_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

export interface ControllerMetricsOptions {
  /** Agents with a live session now (read at every scrape). */
  agentsConnected: () => number;
  /** The standard process_* and nodejs_* metrics; default true. */
  defaultMetrics?: boolean;
}

/** The commit for the build_info labels (the same as `cvm-agent --version`); "unknown" if the package root is not found. */
function runningCommit(): string {
  try {
    return buildCommit(packageRoot());
  } catch {
    return 'unknown';
  }
}

export class ControllerMetrics {
  readonly registry = new Registry();
  private readonly verdicts: Counter<'status'>;
  private readonly verification: Histogram;
  private readonly eventsStored: Counter;
  private readonly secretsReleased: Counter;

  constructor(opts: ControllerMetricsOptions) {
    const registers = [this.registry];
    new Gauge({
      name: 'cvm_controller_agents_connected',
      help: 'Agents with a live link session now.',
      registers,
      collect() {
        this.set(opts.agentsConnected());
      },
    });
    this.verdicts = new Counter({
      name: 'cvm_controller_verdicts_total',
      help: 'Verdicts signed and sent to agents, by EAR status.',
      labelNames: ['status'],
      registers,
    });
    this.verification = new Histogram({
      name: 'cvm_controller_verification_duration_seconds',
      help: 'Time to verify and appraise one evidence bundle (signatures, chains, collateral, policy).',
      buckets: VERIFICATION_BUCKETS,
      registers,
    });
    this.eventsStored = new Counter({
      name: 'cvm_controller_events_stored_total',
      help: 'Agent events verified and stored in order (duplicates and gaps not counted).',
      registers,
    });
    this.secretsReleased = new Counter({
      name: 'cvm_controller_secrets_released_total',
      help: 'Secrets sealed to an attested agent key and sent with a verdict (one per secret).',
      registers,
    });
    // Explicit zeros: a scrape right after start shows every series.
    for (const status of STATUSES) this.verdicts.inc({ status }, 0);
    registerBuildInfo(this.registry, 'cvm_controller', 'controller', runningCommit());
    if (opts.defaultMetrics ?? true) registerDefaultMetrics(this.registry);
  }

  /** One verdict sent: its status, how long verification took, how many secrets went with it. */
  recordVerdict(status: TrustStatus, verificationSec: number, secrets: number): void {
    this.verdicts.inc({ status: STATUSES.includes(status) ? status : 'none' });
    if (Number.isFinite(verificationSec) && verificationSec >= 0) this.verification.observe(verificationSec);
    if (secrets > 0) this.secretsReleased.inc(secrets);
  }

  countEventStored(): void {
    this.eventsStored.inc();
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
