/**
 * The daemon (`cvm-agent run`): config -> evidence sources -> attestation cycle + schedule -> local API ->
 * sd_notify. Start-up validates everything first (agent/daemon/preflight.ts, the same checks as
 * `config check` and SIGHUP) and either comes up completely or undoes what it started and fails.
 * Reload on SIGHUP is atomic: the new config, policy and schedule are all built before anything is
 * swapped, so an invalid file changes nothing and the old schedule keeps running. SIGTERM drains and
 * exits 0 within 5 s. Paths come from systemd's $STATE_DIRECTORY / $RUNTIME_DIRECTORY /
 * $CACHE_DIRECTORY when the config leaves them at their defaults.
 *
 * Trust: every cycle, controller verdict, token expiry and staleness deadline feeds the
 * consequences engine (consequences.ts); health and status (health.ts, status.ts) are computed from
 * the same state, and the GPU ready state shown is the one last read from the driver.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createApiServer, RawJson, type ApiService } from '../api/api-server.js';
import { listenUnix } from '../api/listen.js';
import { createMetricsListener, listenTcp } from '../api/metrics-listener.js';
import { isLoopback, parseListenAddress } from '../config/listen-address.js';
import type { AuthorizationTable } from '../api/authz.js';
import { EventHub } from '../api/events-stream.js';
import { AttestationCycle, readReadyState, type CycleResult, type ReadyStateRead } from '../attest/attestation-cycle.js';
import type { PublicJwk } from '../formats/nonce-binding.js';
import type { Config } from '../config/schema.js';
import { loadValidatedConfig } from './preflight.js';
/** Kept importable from here: the id the daemon binds into evidence (agent/daemon/preflight.ts). */
export { agentIdFrom } from './preflight.js';
import { ConfigError, CvmError } from '../errors.js';
import { createLogger, type Logger } from '../util/log.js';
import { Scheduler } from './schedule.js';
import { ResultHistory } from '../state/history.js';
import { TrustLog } from '../state/trust-log.js';
import { openSources, type Offload, type Sources } from './sources.js';
import { VERIFY_WORKER_IDLE_STOP_MS, VerifyThread } from '../attest/verify-thread.js';
import { switchTamperHook, verifyWorkerHooks } from './test-hooks.js';
import { VERSION } from '../util/agent-version.js';
import { describeStatus } from './status.js';
import { AgentMetrics } from './agent-metrics.js';
import { collectInventory, currentInventory } from './inventory.js';
import { createAgentKey, type AgentKey } from '../link/agent-key.js';
import { DaemonLink, cycleEventData, type VerdictNote } from './link.js';
import { CollateralSummarizer, type CollateralSummary } from './collateral-summary.js';
import { applyGpuReadyState } from '../attest/apply-gpu-ready.js';
import { Consequences, parseConsequenceState, type ConsequencePolicy, type ConsequenceState, type TrustTransition, type Trigger } from './consequences.js';
import { readBoundedText } from '../util/bounded-read.js';
import { join } from 'node:path';
import { writeFileAtomic } from '../util/atomic-file.js';

/** <state.dir>/consequences.json: triggers in force, actions applied, units acted on. */
export const CONSEQUENCES_FILE = 'consequences.json';
import { evaluateHealth, failureReasons, trustView, type Health, type VerdictState } from './health.js';
import { systemctlUnits, type UnitControl } from './unit-control.js';
import { releaseFreedMemory } from '../native/system.js';
import { failureLines } from '../formats/checks.js';

export { applySystemdDirectories } from './preflight.js';

export interface DaemonOptions {
  configPath?: string;
  env?: NodeJS.ProcessEnv;
  logger?: Logger;
  /** Injected for tests: the native addon functions (sd_notify, SO_PEERCRED). */
  notify?: (fields: Record<string, string | number>) => boolean;
  peerCredentials?: (socket: import('node:net').Socket) => { pid: number; uid: number; gid: number } | undefined;
}

export function consequencePolicy(config: Config): ConsequencePolicy {
  const c = config.consequences;
  return {
    triggers: {
      cycleFailed: c.cycleFailed,
      controllerContraindicated: c.controllerContraindicated,
      tokenExpired: c.tokenExpired,
      attestationStale: c.attestationStale,
    } as ConsequencePolicy['triggers'],
    units: { stop: c.units.stop, start: c.units.start },
  };
}

const passing = (status: string) => status === 'affirming' || status === 'warning';
/** setTimeout's limit (about 24.8 days); longer waits are re-armed. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export type GpuReadyView = ReadyStateRead & { source: 'cycle' | 'consequence' };

/** A cycle whose verification was stopped with the daemon (its devices carry ERR_STOPPING). */
function cutShortByStop(r: CycleResult): boolean {
  return Object.values(r.ear.submods).some((s) => s['cvm.error']?.code === 'ERR_STOPPING');
}

/**
 * A cycle's log level: info when it lets the VM count as attested; warn for a verdict that does not
 * (CONTRAINDICATED, or a warning the policy does not accept): the evidence was judged, and the
 * judgement is the news; error when there is no verdict (status none: a device or step failed).
 */
export function cycleLogLevel(r: Pick<CycleResult, 'ok' | 'status'>): 'info' | 'warn' | 'error' {
  if (r.ok) return 'info';
  return r.status === 'none' ? 'error' : 'warn';
}

export class Daemon {
  config!: Config;
  /** Bound into every attestation next to the nonce and the agent key (agent/formats/nonce-binding.ts). */
  agentId!: string;
  readonly log: Logger;
  private readonly env: NodeJS.ProcessEnv;
  private sources!: Sources;
  /** Where verifyBundle runs: a worker thread, so a cycle never blocks the API (attest/verify-thread.ts). */
  private verifyThread: VerifyThread | undefined;
  private cycle!: AttestationCycle;
  private scheduler!: Scheduler;
  private history!: ResultHistory;
  private trustLog!: TrustLog;
  private server: Server | undefined;
  /** The metrics.listen TCP listener, when configured. */
  private metricsServer: Server | undefined;
  private metricsBound: { host: string; port: number } | undefined;
  /** Shared with the API server; reloads replace its contents in place. */
  private readonly authz: AuthorizationTable = {};
  private watchdog: NodeJS.Timeout | undefined;
  private stopping: Promise<void> | undefined;
  readonly metrics = new AgentMetrics();
  readonly startedAt = new Date();
  private key!: AgentKey;
  private link!: DaemonLink;
  private collateral!: CollateralSummarizer;
  private lastCollateral: CollateralSummary | undefined;
  consequences!: Consequences;
  events!: EventHub;
  private maxAgeSec = 0;
  private lastSuccessAt: Date | undefined;
  private verdict: VerdictState | undefined;
  private gpuReadyRead: GpuReadyView | undefined;
  private staleTimer: NodeJS.Timeout | undefined;
  private tokenTimer: NodeJS.Timeout | undefined;
  socketActivated = false;
  /** Where the API listens: the configured path, or the socket systemd handed over. */
  apiSocket = '';

  constructor(private readonly opts: DaemonOptions = {}) {
    this.env = opts.env ?? process.env;
    this.log = opts.logger ?? createLogger('info');
  }

  /** The agent key's public JWK (docs/protocol.md "Identity binding"): the private key never leaves the process. */
  get teePubKey(): PublicJwk {
    return this.key.publicJwk;
  }

  private notify(fields: Record<string, string | number>): void {
    try {
      this.opts.notify?.(fields);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'sd_notify failed');
    }
  }

  /** Comes up completely or not at all: on any error what was started is stopped before it rethrows. */
  async start(): Promise<void> {
    const v = await loadValidatedConfig(this.opts.configPath, this.env);
    this.config = v.config;
    this.maxAgeSec = v.maxAgeSec;
    this.log.level = this.config.log.level;
    this.log.info({ config: v.path, found: v.found }, v.found ? 'configuration loaded' : 'no configuration file, using defaults');
    Object.assign(this.authz, v.authz);
    this.agentId = v.agentId;
    try {
      await this.startValidated(v.policy);
    } catch (err) {
      await this.abortStart();
      throw err;
    }
  }

  private async startValidated(policy: Sources['policy']): Promise<void> {
    const hooks = verifyWorkerHooks(this.env);
    this.verifyThread = new VerifyThread({
      timeoutMs: this.config.schedule.stepTimeoutSec * 1000,
      idleStopMs: VERIFY_WORKER_IDLE_STOP_MS,
      ...(hooks ? { hooks } : {}),
      onRestart: (reason) => this.log.warn({ reason }, 'verification worker stopped; the next verification starts a new one'),
      // The worker's thread freed its memory at exit; glibc would keep it resident (about 4 MB) until reused.
      onIdleExit: () => releaseFreedMemory(),
    });
    // Loads the verifiers in its own thread while this one opens the sources.
    this.verifyThread.warm();
    const switchTamper = switchTamperHook(this.env, this.log);
    this.sources = await openSources(this.config, policy, this.offload, switchTamper ? { switchTamper } : {});
    this.log.info(
      {
        tee: this.sources.kind,
        cpuSource: this.sources.cpu.source,
        gpus: Boolean(this.sources.gpus),
        ...(this.sources.switches ? { switches: this.sources.switches.count } : {}),
        simulated: this.sources.simulated,
        policy: policy.id,
      },
      this.sources.simulated ? 'SIMULATED TEE: evidence is signed by test roots and trusted only because tee is "simulated"' : 'evidence sources ready',
    );
    this.key = await createAgentKey();
    this.collateral = new CollateralSummarizer(this.config.collateral.dir, this.config.collateral.online);
    this.history = new ResultHistory({
      stateDir: this.config.state.dir,
      size: this.config.state.historySize,
      onEvent: (e) => this.log.warn({ event: e }, 'history'),
    });
    await this.history.load();
    this.trustLog = new TrustLog(this.config.state.dir, undefined, (msg) => this.log.warn(msg));
    await this.trustLog.load();
    this.events = new EventHub({
      maxSubscribers: this.config.api.events.maxSubscribers,
      maxBufferedBytes: this.config.api.events.maxBufferedBytes,
      heartbeatMs: this.config.api.events.heartbeatSec * 1000,
      snapshot: () => this.trustSnapshot(),
      onSubscribers: (n) => this.metrics.setEventSubscribers(n),
      onDropped: () => {
        this.metrics.countDroppedSubscriber();
        this.log.warn('an event subscriber did not keep up and was disconnected');
      },
    });
    this.consequences = new Consequences(consequencePolicy(this.config), {
      dropSecrets: () => {
        const n = this.link?.secrets.size ?? 0;
        this.link?.secrets.clear();
        return n;
      },
      ...(this.sources.gpus && this.config.gpus.setReadyState ? { gpu: this.gpuDriver() } : {}),
      regateGpus: (clearedAt) => this.regateGpus(clearedAt),
      units: this.unitControl(),
      record: (t) => this.onTransition(t),
      persist: (state) => this.persistConsequences(state),
    });
    await this.restoreConsequences();
    this.cycle = this.newAttestationCycle();
    this.link = await DaemonLink.open({
      config: this.config,
      agentId: this.agentId,
      key: this.key,
      version: VERSION,
      log: this.log,
      env: this.env,
      attest: (reason, nonce) => this.attest(reason, nonce),
      inventory: () => currentInventory({ agentVersion: VERSION }) as unknown as Record<string, unknown>,
      onVerdict: (verdict) => this.onVerdict(verdict),
    });
    // Built (and its cron checked) before the socket exists, so nothing can fail after clients connect.
    const scheduler = this.newScheduler(this.config, this.config.schedule.attestAtStart);

    const service = this.apiService();
    this.server = createApiServer(service, {
      authorization: this.authz,
      maxRequestBytes: this.config.api.maxRequestBytes,
      requestTimeoutMs: this.config.api.requestTimeoutMs,
      ...(this.opts.peerCredentials ? { peerCredentials: this.opts.peerCredentials } : {}),
      onAccess: (e) => this.log.debug({ access: e }, 'api request'),
      onError: (err, path) => this.log.error({ path, err: (err as Error)?.stack ?? String(err) }, 'API request failed'),
    });
    const listening = await listenUnix(this.server, { path: this.config.api.socket, env: this.env }).catch((err: NodeJS.ErrnoException) => {
      if (err instanceof CvmError) throw err;
      throw new ConfigError(`api.socket: cannot listen on ${this.config.api.socket}: ${err.code ?? err.message}`, { cause: err });
    });
    this.socketActivated = listening.activated;
    this.apiSocket = listening.path;
    this.log.info({ socket: listening.path, activated: listening.activated }, 'local API listening');
    await this.startMetricsListener();

    this.scheduler = scheduler;
    this.scheduler.start();
    this.link.start();
    this.startWatchdog();
    this.armStaleTimer();
    this.metrics.setTrusted(false);
    // Unknown until first read from the driver, not a guessed 0.
    if (this.sources.gpus) this.metrics.setGpuReady(null);
    // Whatever was carried over from before a restart and is no longer needed is undone now.
    void this.consequences.reconcileNow();
    this.notify({ READY: 1, STATUS: this.statusLine(), MAINPID: process.pid });
  }

  /** metrics.listen: GET /metrics over TCP for Prometheus, nothing else (agent/api/metrics-listener.ts). */
  private async startMetricsListener(): Promise<void> {
    const text = this.config.metrics.listen;
    if (text === undefined) return;
    const addr = parseListenAddress(text);
    if ('error' in addr) throw new ConfigError(`metrics.listen: ${addr.error}`);
    this.metricsServer = createMetricsListener({
      render: () => this.metrics.render(),
      onError: (err) => this.log.error({ err: (err as Error)?.message ?? String(err) }, 'metrics listener failed'),
    });
    this.metricsBound = await listenTcp(this.metricsServer, addr.host, addr.port).catch((err: NodeJS.ErrnoException) => {
      throw new ConfigError(`metrics.listen: cannot listen on ${text}: ${err.code ?? err.message}`, { cause: err });
    });
    if (isLoopback(addr.host)) this.log.info({ listen: text, port: this.metricsBound.port }, 'metrics listening');
    else
      this.log.warn(
        { listen: text, port: this.metricsBound.port },
        'metrics listening on a non-loopback address: anyone who can reach it can read /metrics (no authentication); restrict it with a firewall',
      );
  }

  /** Where metrics.listen is bound (its port when the config said 0); undefined when off. */
  metricsAddress(): { host: string; port: number } | undefined {
    return this.metricsBound;
  }

  private async closeMetricsListener(): Promise<void> {
    const server = this.metricsServer;
    this.metricsServer = undefined;
    this.metricsBound = undefined;
    if (!server?.listening) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  /** verifyBundle and simulated signing in the verification worker (stopped when idle, restarted when it fails). */
  private readonly offload: Offload = {
    verifyWith: (bundle, opts) => this.worker().verify(bundle, opts),
    signer: (jobs) => this.worker().sign(jobs),
  };

  private worker(): VerifyThread {
    if (!this.verifyThread) throw new CvmError('ERR_VERIFY_WORKER', 'the verification worker is not started');
    return this.verifyThread;
  }

  /** Undo a partial start so a failed start never leaves a half-working process behind. */
  private async abortStart(): Promise<void> {
    this.clearTimers();
    await this.verifyThread?.close();
    await this.scheduler?.stop().catch(() => undefined);
    await this.link?.stop().catch(() => undefined);
    this.events?.close();
    await this.closeMetricsListener();
    const server = this.server;
    if (server?.listening) {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    }
    this.server = undefined;
  }

  private clearTimers(): void {
    if (this.watchdog) clearInterval(this.watchdog);
    if (this.staleTimer) clearTimeout(this.staleTimer);
    if (this.tokenTimer) clearTimeout(this.tokenTimer);
    this.watchdog = this.staleTimer = this.tokenTimer = undefined;
  }

  /** The GPUs' ready state for consequences; every read is what status shows from then on. */
  private gpuDriver() {
    const gpus = this.sources.gpus!;
    return {
      getReadyState: async () => {
        const r = await readReadyState(gpus, this.config.schedule.stepTimeoutSec * 1000);
        this.noteGpuReady({ ...r, source: 'consequence' });
        if (r.ready === null) throw new CvmError('ERR_GPU_READY', r.error ?? 'the ready state could not be read');
        return r.ready;
      },
      setReadyState: (ready: boolean) => gpus.setReadyState(ready),
    };
  }

  private consequencesFile(): string {
    return join(this.config.state.dir, CONSEQUENCES_FILE);
  }

  /** One write at a time, each atomic: the file always holds a complete state. */
  private persistConsequences(state: ConsequenceState): void {
    const body = `${JSON.stringify(state)}\n`;
    this.persisting = this.persisting
      .then(() => writeFileAtomic(this.consequencesFile(), body, 0o600))
      .catch((err: Error) => this.log.error({ err: err.message }, 'could not persist the consequences state'));
  }
  private persisting: Promise<void> = Promise.resolve();

  /** Lost trust survives a restart: restore the triggers, actions and units from before it. */
  private async restoreConsequences(): Promise<void> {
    let text: string;
    try {
      text = await readBoundedText(this.consequencesFile(), 'consequences');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
        this.log.error({ err: (err as Error).message }, 'consequences state unreadable: starting without it');
      return;
    }
    let state: ConsequenceState;
    try {
      state = parseConsequenceState(JSON.parse(text));
    } catch (err) {
      this.log.error({ err: (err as Error).message, file: this.consequencesFile() }, 'consequences state invalid: starting without it');
      return;
    }
    // Controller triggers can only clear with a controller; without one configured they would hold forever.
    const keep = (t: Trigger) => Boolean(this.config.controller.url) || (t !== 'controllerContraindicated' && t !== 'tokenExpired');
    this.consequences.restore(state, keep);
    const active = this.consequences.list();
    for (const t of active) this.metrics.setTriggerActive(t.trigger, true);
    if (active.length || state.stoppedUnits.length || state.startedUnits.length) {
      this.log.warn(
        { triggers: active.map((t) => t.trigger), stoppedUnits: state.stoppedUnits, startedUnits: state.startedUnits },
        'trust state carried over from before the restart',
      );
    }
  }

  private unitControl(): UnitControl {
    // Reads the config at each call, so a reload's systemctl path and timeout apply.
    return {
      run: (verb, unit) =>
        systemctlUnits({ systemctl: this.config.consequences.systemctl, timeoutMs: this.config.consequences.units.timeoutSec * 1000 }).run(verb, unit),
    };
  }

  private noteGpuReady(r: GpuReadyView): void {
    this.gpuReadyRead = r;
    this.metrics.setGpuReady(r.ready);
    this.stateVersion++;
  }

  /** Recovery of clear-gpu-ready: only on a full cycle that started after the clear and passed. */
  private async regateGpus(clearedAt: Date): Promise<{ set: boolean; reason: string }> {
    const last = this.cycle.last();
    const gpus = this.sources.gpus;
    if (!gpus) return { set: false, reason: 'no GPUs' };
    if (!last || !last.ok || Date.parse(last.startedAt) < clearedAt.getTime()) {
      return { set: false, reason: 'the GPU ready state stays cleared until a full attestation cycle passes; the next passing cycle sets it' };
    }
    const verdicts = Object.entries(last.ear.submods)
      .filter(([id]) => id.startsWith('gpu'))
      .map(([id, s]) => ({ index: Number(id.slice(3)), ok: passing(s['ear.status']) }));
    const outcome = verdicts.length === 0 ? { set: false, reason: 'no GPU in the last cycle' } : await applyGpuReadyState(gpus, verdicts, verdicts.length);
    this.noteGpuReady({ ...(await readReadyState(gpus, this.config.schedule.stepTimeoutSec * 1000)), source: 'consequence' });
    return { set: outcome.set, reason: outcome.set ? `GPU ready state set again after cycle ${last.id} passed` : outcome.reason };
  }

  private newAttestationCycle(): AttestationCycle {
    return new AttestationCycle({
      teePubKey: this.teePubKey,
      agentId: this.agentId,
      cpu: this.sources.cpu,
      ...(this.sources.gpus ? { gpus: this.sources.gpus } : {}),
      ...(this.sources.switches ? { switches: this.sources.switches } : {}),
      // Through `this.sources`, so a reload's new policy applies to the next cycle without a new attestation cycle.
      verify: (bundle, at) => this.sources.verify(bundle, at),
      setReadyState: this.config.gpus.setReadyState,
      // While a consequence keeps the ready state cleared, a passing cycle does not set it; recovery does.
      readyHold: () => {
        const h = this.consequences.holds('clear-gpu-ready');
        return h ? `held cleared while ${h.trigger} is active (${h.detail})` : undefined;
      },
      stepTimeoutMs: this.config.schedule.stepTimeoutSec * 1000,
      build: VERSION,
    });
  }

  /** `atStart` only for the first scheduler: a reload must not trigger an extra cycle. Throws on a bad cron. */
  private newScheduler(config: Config, atStart: boolean): Scheduler {
    return new Scheduler({
      cron: config.schedule.cron,
      jitterSec: config.schedule.jitterSec,
      attestAtStart: atStart,
      retry: config.schedule.retry,
      run: async (reason) => (await this.attest(reason)).ok,
      onError: (err) => this.log.error({ err: (err as Error).message }, 'scheduled attestation threw'),
    });
  }

  /** Run (or join) a cycle, record it, log one line, update status and metrics. */
  async attest(reason: CycleResult['reason'], nonce?: Uint8Array): Promise<CycleResult> {
    const result = await this.cycle.run(nonce ? { reason, nonce } : { reason });
    if (this.stopping && cutShortByStop(result)) {
      // Cut short because the daemon stops, not because the evidence failed: neither recorded nor a consequence.
      this.log.info({ cycle: result.id, reason }, 'attestation cut short: the daemon is stopping');
      return result;
    }
    if (!this.recorded.has(result.id)) {
      this.recorded.add(result.id);
      if (this.recorded.size > 64) this.recorded.delete(this.recorded.values().next().value!);
      this.onCycle(result);
    }
    return result;
  }
  private recorded = new Set<string>();
  private stateVersion = 0;
  private statusCache: { version: number; at: number; body: RawJson } | undefined;

  private onCycle(r: CycleResult): void {
    this.stateVersion++;
    const outcome = r.status === 'none' ? 'error' : r.status;
    const devices = Object.fromEntries(Object.entries(r.ear.submods).map(([id, s]) => [id, s['cvm.error'] ? 'error' : s['ear.status']]));
    const failed = Object.values(r.ear.submods).flatMap((s) => failureLines(s['cvm.checks']));
    const line = {
      cycle: r.id,
      reason: r.reason,
      status: outcome,
      simulated: r.simulated,
      devices,
      durationMs: r.durationMs,
      gpuReady: r.gpuReady.set,
      ...(r.gpuReadyRead ? { gpuReadyRead: r.gpuReadyRead.ready } : {}),
      ...(failed.length ? { failed } : {}),
      ...(r.error ? { error: r.error } : {}),
    };
    this.log[cycleLogLevel(r)](line, `attestation ${outcome}${r.simulated ? ' (SIMULATED)' : ''}`);
    this.metrics.recordCycle(r.ear, r.durationMs / 1000, r.ok);
    if (r.gpuReadyRead) this.noteGpuReady({ ...r.gpuReadyRead, source: 'cycle' });
    this.history
      .append({
        startedAt: r.startedAt,
        finishedAt: r.finishedAt,
        reason: r.reason,
        status: r.status,
        ear: r.ear,
        ...(r.error ? { error: { code: 'ERR_CYCLE', message: r.error.slice(0, 8000) } } : {}),
      })
      .catch((err: Error) => this.log.error({ err: err.message }, 'could not persist the attestation result'));
    if (r.ok) {
      this.lastSuccessAt = new Date(r.finishedAt);
      void this.consequences.clear('cycleFailed', `cycle ${r.id} (${r.reason}) passed: ${r.status}`);
      void this.consequences.clear('attestationStale', `cycle ${r.id} passed at ${r.finishedAt}`);
    } else {
      void this.consequences.activate(
        'cycleFailed',
        `cycle ${r.id} (${r.reason}) at ${r.finishedAt}: ${failureReasons(r).slice(0, 4).join('; ') || r.error || r.status}`,
      );
    }
    this.armStaleTimer();
    this.metrics.setLinkUp(this.link.status().state === 'up');
    this.metrics.setTrusted(this.trust().trusted);
    void this.link.onCycle(r, this.healthNow().status);
    this.events.publish('attestation', { ...cycleEventData(r), status: outcome, devices });
    this.publishState();
    this.notify({ STATUS: this.statusLine() });
  }

  /**
   * The controller's authenticated verdict (agent/link/verdict.ts; a rejected one never arrives here):
   * contraindicated (or none), or one that does not attest this agent's key, triggers; an affirming or
   * warning verdict for this key clears.
   */
  private onVerdict(v: VerdictNote): void {
    this.verdict = { status: v.status, challengeId: v.challengeId, receivedAt: new Date().toISOString(), expiresAt: v.expiresAt.toISOString() };
    if (passing(v.status) && v.keyBound)
      void this.consequences.clear('controllerContraindicated', `controller verdict ${v.status.toUpperCase()} for challenge ${v.challengeId}`);
    else if (!v.keyBound)
      void this.consequences.activate(
        'controllerContraindicated',
        `controller verdict ${v.status.toUpperCase()} for challenge ${v.challengeId} does not attest this agent's key; no token is served and the controller withholds secrets`,
      );
    else
      void this.consequences.activate(
        'controllerContraindicated',
        `controller verdict ${v.status.toUpperCase()} for challenge ${v.challengeId}; the controller withholds secrets`,
      );
    // Only a token this agent serves counts as a new token (a verdict without cnf.jkt is not served).
    if (v.keyBound) void this.consequences.clear('tokenExpired', `a new controller token arrived (valid until ${this.verdict.expiresAt})`);
    // Secrets released while drop-secrets is already in force (another trigger still holds) are dropped at
    // once; when this verdict itself triggered, the queued action drops them and says so.
    const hold = this.consequences.holds('drop-secrets');
    if (hold && this.consequences.inForce()['drop-secrets'] && this.link.secrets.size > 0) {
      const n = this.link.secrets.size;
      this.link.secrets.clear();
      this.log.warn({ trigger: hold.trigger, secrets: n }, 'secrets released while trust is lost were dropped');
    }
    if (v.keyBound) this.armTokenTimer(v.expiresAt);
    this.stateVersion++;
    this.metrics.setTrusted(this.trust().trusted);
    this.publishState();
    this.notify({ STATUS: this.statusLine() });
  }

  private armTokenTimer(expiresAt: Date): void {
    if (this.tokenTimer) clearTimeout(this.tokenTimer);
    const fire = () => {
      const left = expiresAt.getTime() - Date.now();
      if (left > 0) {
        this.tokenTimer = setTimeout(fire, Math.min(left, MAX_TIMER_MS));
        this.tokenTimer.unref();
        return;
      }
      if (this.verdict && Date.parse(this.verdict.expiresAt) === expiresAt.getTime()) {
        void this.consequences.activate('tokenExpired', `the controller token expired at ${this.verdict.expiresAt} and no new verdict arrived`);
        this.stateVersion++;
        this.metrics.setTrusted(this.trust().trusted);
        this.publishState();
      }
    };
    this.tokenTimer = setTimeout(fire, Math.min(Math.max(0, expiresAt.getTime() - Date.now()), MAX_TIMER_MS));
    this.tokenTimer.unref();
  }

  /** Staleness: a timer at (last success, or start) + maxAgeSec; a passing cycle re-arms it. */
  private armStaleTimer(): void {
    if (this.staleTimer) clearTimeout(this.staleTimer);
    this.staleTimer = undefined;
    if (!this.maxAgeSec || this.stopping) return;
    const base = this.lastSuccessAt ?? this.startedAt;
    const deadline = base.getTime() + this.maxAgeSec * 1000;
    const fire = () => {
      const left = deadline - Date.now();
      if (left > 0) {
        this.staleTimer = setTimeout(fire, Math.min(left, MAX_TIMER_MS));
        this.staleTimer.unref();
        return;
      }
      void this.consequences.activate(
        'attestationStale',
        this.lastSuccessAt
          ? `no successful attestation since ${this.lastSuccessAt.toISOString()} (bound ${this.maxAgeSec} s)`
          : `no successful attestation within ${this.maxAgeSec} s of the start`,
      );
      this.stateVersion++;
      this.metrics.setTrusted(false);
      this.publishState();
    };
    this.staleTimer = setTimeout(fire, Math.min(Math.max(0, deadline - Date.now()), MAX_TIMER_MS));
    this.staleTimer.unref();
  }

  /** Log, count, persist and publish every trigger, recovery and action. */
  private onTransition(t: TrustTransition): void {
    const fields = { trust: t.kind, trigger: t.trigger, ...(t.action ? { action: t.action, phase: t.phase, outcome: t.outcome } : {}), detail: t.detail };
    if (t.kind === 'trigger') {
      this.log.warn(fields, `trust lost: ${t.trigger}`);
      this.metrics.setTriggerActive(t.trigger, true);
    } else if (t.kind === 'recovery') {
      this.log.info(fields, `trust restored: ${t.trigger}`);
      this.metrics.setTriggerActive(t.trigger, false);
    } else {
      this.metrics.countTrustAction(t.trigger, t.action!, t.phase!, t.outcome!);
      const msg = `consequence ${t.phase === 'undo' ? 'undone' : 'applied'}: ${t.action} (${t.outcome})`;
      if (t.outcome === 'failed') this.log.error(fields, msg);
      else if (t.phase === 'apply') this.log.warn(fields, msg);
      else this.log.info(fields, msg);
    }
    this.trustLog.append(t).catch((err: Error) => this.log.error({ err: err.message }, 'could not persist the trust history'));
    this.stateVersion++;
    this.metrics.setTrusted(this.trust().trusted);
    this.events.publish('trust', t);
    this.publishState();
  }

  private publishState(): void {
    this.events?.publish('state', this.trustSnapshot());
  }

  /** Health from the current state; collateral from the last summary (refreshed at most once a minute). */
  healthNow(now = new Date()): Health {
    return evaluateHealth({
      now,
      startedAt: this.startedAt,
      last: this.cycle?.last(),
      lastSuccessAt: this.lastSuccessAt,
      maxAgeSec: this.maxAgeSec,
      verdict: this.verdict,
      collateral: this.lastCollateral,
      active: this.consequences?.list() ?? [],
    });
  }

  private async healthFresh(): Promise<Health> {
    if (!this.sources.simulated) this.lastCollateral = await this.collateral.get();
    return this.healthNow();
  }

  trust() {
    return trustView(this.cycle?.last(), this.consequences?.list() ?? [], this.healthNow());
  }

  /** What /v1/events sends first and on every change, and what status shows under "trust". */
  trustSnapshot() {
    const health = this.healthNow();
    const t = trustView(this.cycle?.last(), this.consequences.list(), health);
    const holds = (a: Parameters<Consequences['holds']>[0]) => this.consequences.holds(a);
    const units = this.consequences.unitsActedOn();
    return {
      at: new Date().toISOString(),
      trusted: t.trusted,
      summary: t.summary,
      reasons: t.reasons,
      health,
      triggers: this.consequences.list(),
      enforcement: {
        secrets: holds('drop-secrets') ? `withheld (${holds('drop-secrets')!.trigger})` : 'served to allow-listed callers',
        token: holds('withhold-token') ? `withheld (${holds('withhold-token')!.trigger})` : 'served while valid',
        gpuReady: holds('clear-gpu-ready') ? `held cleared (${holds('clear-gpu-ready')!.trigger})` : 'gated by the attestation cycle',
        units:
          units.stopped.length || units.started.length
            ? `stopped: ${units.stopped.join(', ') || 'none'}; started: ${units.started.join(', ') || 'none'}`
            : 'untouched',
      },
      gpuReady: this.gpuReadyRead ?? null,
      controllerVerdict: this.verdict ?? null,
      staleAfterSec: this.maxAgeSec,
      lastSuccessAt: this.lastSuccessAt?.toISOString() ?? null,
    };
  }

  statusLine(): string {
    const last = this.cycle?.last();
    const sim = this.sources?.simulated ? 'SIMULATED ' : '';
    if (!last) return `${sim}starting: no attestation yet`;
    const next = this.scheduler?.nextRun();
    const trust = this.consequences ? this.trust() : undefined;
    return `${sim}${last.status === 'none' ? 'error' : last.status} at ${last.finishedAt}${next ? `; next ${next.reason} ${next.at.toISOString()}` : ''}${trust && !trust.trusted ? `; ${trust.summary}` : ''}`;
  }

  private startWatchdog(): void {
    const usec = Number(this.env.WATCHDOG_USEC ?? '0');
    const pid = this.env.WATCHDOG_PID ? Number(this.env.WATCHDOG_PID) : process.pid;
    if (!usec || pid !== process.pid) return;
    // A main-thread timer, so a blocked event loop trips the watchdog (systemd.service(5) WatchdogSec=).
    this.watchdog = setInterval(() => this.notify({ WATCHDOG: 1 }), Math.max(500, Math.floor(usec / 2000)));
    this.watchdog.unref();
  }

  /**
   * SIGHUP: validate everything and build the new schedule first, then swap; an invalid file (or one
   * whose cron node-cron rejects) changes nothing, and the running schedule keeps running.
   */
  async reload(): Promise<boolean> {
    this.notify({ RELOADING: 1, STATUS: 'reloading configuration' });
    try {
      const v = await loadValidatedConfig(this.opts.configPath, this.env);
      const next = v.config;
      const restartNeeded = (
        [
          'api.socket',
          'tee',
          'state.dir',
          'simulation.dir',
          'simulation.gpus',
          'simulation.nvml',
          'simulation.ppcie',
          'gpus.setReadyState',
          'schedule.stepTimeoutSec',
          'controller.url',
          'controller.agentId',
          'controller.tokenKey',
          'controller.insecure',
          'metrics.listen',
        ] as const
      ).filter((k) => {
        const [a, b] = k.split('.') as [keyof Config, string | undefined];
        const x = b ? (this.config[a] as Record<string, unknown>)[b] : this.config[a];
        const y = b ? (next[a] as Record<string, unknown>)[b] : next[a];
        return JSON.stringify(x) !== JSON.stringify(y);
      });
      const sources = {
        ...this.sources,
        policy: v.policy,
        verify: (await openSources({ ...next, tee: this.config.tee, simulation: this.config.simulation }, v.policy, this.offload)).verify,
      };
      const scheduler = this.newScheduler(next, false);
      // Everything validated and built: apply.
      this.config = {
        ...next,
        api: { ...next.api, socket: this.config.api.socket },
        tee: this.config.tee,
        state: { ...next.state, dir: this.config.state.dir },
        simulation: this.config.simulation,
        gpus: { ...next.gpus, setReadyState: this.config.gpus.setReadyState },
        metrics: this.config.metrics,
      };
      for (const k of Object.keys(this.authz)) delete this.authz[k as keyof AuthorizationTable];
      Object.assign(this.authz, v.authz);
      this.sources = sources;
      this.log.level = this.config.log.level;
      await this.scheduler.stop();
      this.scheduler = scheduler;
      this.scheduler.start();
      this.maxAgeSec = v.maxAgeSec;
      this.armStaleTimer();
      this.events.configure({
        maxSubscribers: next.api.events.maxSubscribers,
        maxBufferedBytes: next.api.events.maxBufferedBytes,
        heartbeatMs: next.api.events.heartbeatSec * 1000,
      });
      void this.consequences.setPolicy(consequencePolicy(this.config));
      if (restartNeeded.length) this.log.warn({ keys: restartNeeded }, 'these keys changed but take effect only after a restart');
      this.stateVersion++;
      this.log.info({ policy: v.policy.id }, 'configuration reloaded');
      this.notify({ READY: 1, STATUS: this.statusLine() });
      return true;
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'reload rejected: keeping the running configuration');
      this.notify({ READY: 1, STATUS: `${this.statusLine()} (last reload rejected)` });
      return false;
    }
  }

  /** SIGTERM: stop accepting, stop the schedule, let a running cycle finish (bounded), exit. */
  stop(deadlineMs = 4000): Promise<void> {
    this.stopping ??= (async () => {
      this.notify({ STOPPING: 1, STATUS: 'stopping' });
      this.log.info('stopping');
      this.clearTimers();
      await this.scheduler?.stop();
      await this.link?.stop().catch(() => undefined);
      await this.closeMetricsListener();
      // Event streams never end on their own: end them so the server can close.
      this.events?.close();
      const closed = new Promise<void>((resolve) => {
        if (!this.server) return resolve();
        this.server.close(() => resolve());
        this.server.closeIdleConnections();
      });
      const deadline = new Promise<void>((resolve) => setTimeout(resolve, deadlineMs).unref());
      // A cycle that is verifying may finish (and be recorded) within the deadline; past it, it is cut short.
      await Promise.race([Promise.all([closed, this.history?.flushed(), this.trustLog?.flushed(), this.persisting, this.verifyThread?.idle()]), deadline]);
      this.server?.closeAllConnections();
      await this.verifyThread?.close();
      this.log.info('stopped');
      await new Promise<void>((resolve) => this.log.flush(() => resolve()));
    })();
    return this.stopping;
  }

  /** Why a request for a secret or the token is refused now, or undefined. */
  private withheld(action: 'drop-secrets' | 'withhold-token', what: string): void {
    const h = this.consequences.holds(action);
    if (h) throw new CvmError('ERR_TRUST_LOST', `${what} withheld: trust is lost (${h.trigger} since ${h.since}: ${h.detail})`);
  }

  private apiService(): ApiService {
    return {
      health: () => this.healthFresh(),
      status: async () => {
        // Serialized once per state change (cycle, reload, trust transition) and at most once a second (uptime).
        const now = Date.now();
        if (!this.statusCache || this.statusCache.version !== this.stateVersion || now - this.statusCache.at > 1000) {
          if (!this.sources.simulated) this.lastCollateral = await this.collateral.get();
          const body = Buffer.from(JSON.stringify(await describeStatus(this)));
          this.statusCache = { version: this.stateVersion, at: now, body: new RawJson(body) };
        }
        return this.statusCache.body;
      },
      attest: async (nonce) => {
        const r = await this.attest('api', nonce);
        return {
          ear: r.ear,
          bundle: r.bundle,
          ok: r.ok,
          status: r.status,
          simulated: r.simulated,
          nonce: r.nonce,
          gpuReady: r.gpuReady,
          ...(r.gpuReadyRead ? { gpuReadyRead: r.gpuReadyRead } : {}),
        };
      },
      evidence: async (nonce) => {
        const r = await this.attest('api', nonce);
        if (!r.bundle) throw new ConfigError(`evidence collection failed: ${r.error ?? 'unknown error'}`);
        return r.bundle;
      },
      token: async () => {
        this.withheld('withhold-token', 'the controller token is');
        return this.link.currentToken();
      },
      noTokenReason: () => this.link.noTokenReason(),
      secret: async (name) => {
        this.withheld('drop-secrets', 'secrets are');
        return this.link.secrets.get(name);
      },
      events: (req: IncomingMessage, res: ServerResponse) => this.events.handle(req, res),
      metrics: async () => {
        this.metrics.setLinkUp(this.link.status().state === 'up');
        const c = await this.collateral.get();
        if (!this.sources.simulated) this.lastCollateral = c;
        for (const [kind, n] of Object.entries(c.kinds)) this.metrics.setCollateralStale(kind, n.stale + n.expired > 0);
        this.metrics.setTrusted(this.trust().trusted);
        return this.metrics.render();
      },
    };
  }

  /** For status: the pieces describeStatus reads. */
  view() {
    return {
      version: VERSION,
      startedAt: this.startedAt,
      sources: this.sources,
      config: this.config,
      last: this.cycle.last(),
      running: this.cycle.isRunning(),
      next: this.scheduler.nextRun(),
      failures: this.scheduler.consecutiveFailures(),
      history: this.history.recent(10),
      trustHistory: this.trustLog.list(10),
      trust: this.trustSnapshot(),
      gpuReadyRead: this.gpuReadyRead,
      teePubKey: this.teePubKey,
      socketActivated: this.socketActivated,
      apiSocket: this.apiSocket,
      link: this.link.status(),
      collateral: this.sources.simulated ? undefined : this.collateral.get(),
      inventory: (async () => collectInventory({ agentVersion: VERSION }))(),
    };
  }

  /** Test hook: resolves when every requested trust transition has been carried out. */
  settled(): Promise<void> {
    return this.consequences.settled();
  }
}

export type { Trigger };
