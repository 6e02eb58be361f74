/**
 * The daemon (`cvm-agent run`): config -> evidence sources -> attestor + schedule -> local API ->
 * sd_notify. Reload on SIGHUP is atomic (an invalid file keeps the running config); SIGTERM drains
 * and exits 0 within 5 s. Paths come from systemd's $STATE_DIRECTORY / $RUNTIME_DIRECTORY /
 * $CACHE_DIRECTORY when the config leaves them at their defaults.
 */
import { readBoundedTextSync } from '../util/bounded-read.js';
import type { Server } from 'node:http';
import { join } from 'node:path';
import { createApiServer, RawJson, type ApiService } from '../api/server.js';
import { listenUnix } from '../api/listen.js';
import { parseIdDatabase, resolveTable, type AuthorizationTable } from '../api/authz.js';
import { Attestor, type CycleResult } from '../attest/attestor.js';
import type { PublicJwk } from '../binding.js';
import { DEFAULTS, type Config } from '../config/schema.js';
import { loadConfigFile } from '../config/load.js';
import { ConfigError } from '../errors.js';
import { createLogger, type Logger } from '../log.js';
import { Scheduler } from '../schedule.js';
import { ResultHistory } from '../state/history.js';
import { loadPolicy, openSources, type Sources } from './sources.js';
import { VERSION } from '../cli/version.js';
import { describeStatus, healthOf } from './status.js';
import { AgentMetrics } from '../metrics.js';
import { collectInventory, currentInventory } from '../inventory.js';
import { createAgentKey, type AgentKey } from '../link/agent-key.js';
import { DaemonLink } from './link.js';
import { CollateralSummarizer } from './collateral-summary.js';

export interface DaemonOptions {
  configPath?: string;
  env?: NodeJS.ProcessEnv;
  logger?: Logger;
  /** Injected for tests: the native addon functions (sd_notify, SO_PEERCRED). */
  notify?: (fields: Record<string, string | number>) => boolean;
  peerCredentials?: (socket: import('node:net').Socket) => { pid: number; uid: number; gid: number } | undefined;
}

/** systemd's directories override the built-in defaults, never an explicit config value. */
export function applySystemdDirectories(config: Config, env: NodeJS.ProcessEnv): Config {
  const first = (v: string | undefined) => v?.split(':')[0];
  const c = structuredClone(config);
  if (c.state.dir === DEFAULTS.state.dir && first(env.STATE_DIRECTORY)) c.state.dir = first(env.STATE_DIRECTORY)!;
  if (c.collateral.dir === DEFAULTS.collateral.dir && first(env.CACHE_DIRECTORY)) c.collateral.dir = first(env.CACHE_DIRECTORY)!;
  if (c.api.socket === DEFAULTS.api.socket && first(env.RUNTIME_DIRECTORY)) c.api.socket = join(first(env.RUNTIME_DIRECTORY)!, 'api.sock');
  if (c.simulation.dir === DEFAULTS.simulation.dir && first(env.STATE_DIRECTORY)) c.simulation.dir = join(first(env.STATE_DIRECTORY)!, 'simulation');
  return c;
}

function readIdDb(path: string): Map<string, number> {
  try {
    return parseIdDatabase(readBoundedTextSync(path, 'idDatabase'));
  } catch {
    return new Map();
  }
}

export function authorizationFrom(config: Config): AuthorizationTable {
  const { table, errors } = resolveTable(config.api.authorization, readIdDb('/etc/passwd'), readIdDb('/etc/group'));
  if (errors.length > 0) throw new ConfigError(`config: ${errors.join('; ')}`);
  return table;
}

export class Daemon {
  config!: Config;
  readonly log: Logger;
  private readonly env: NodeJS.ProcessEnv;
  private sources!: Sources;
  private attestor!: Attestor;
  private scheduler!: Scheduler;
  private history!: ResultHistory;
  private server: Server | undefined;
  /** Shared with the API server; reloads replace its contents in place. */
  private readonly authz: AuthorizationTable = {};
  private watchdog: NodeJS.Timeout | undefined;
  private stopping: Promise<void> | undefined;
  readonly metrics = new AgentMetrics();
  readonly startedAt = new Date();
  private key!: AgentKey;
  private link!: DaemonLink;
  private collateral!: CollateralSummarizer;
  socketActivated = false;

  constructor(private readonly opts: DaemonOptions = {}) {
    this.env = opts.env ?? process.env;
    this.log = opts.logger ?? createLogger('info');
  }

  /** The agent key's public JWK (DESIGN.md "Binding" 1): the private key never leaves the process. */
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

  async start(): Promise<void> {
    const { config, path, found } = await loadConfigFile(this.opts.configPath);
    this.config = applySystemdDirectories(config, this.env);
    this.log.level = this.config.log.level;
    this.log.info({ config: path, found }, found ? 'configuration loaded' : 'no configuration file, using defaults');
    Object.assign(this.authz, authorizationFrom(this.config));
    const policy = await loadPolicy(this.config);
    this.sources = await openSources(this.config, policy);
    this.log.info({ tee: this.sources.kind, cpuSource: this.sources.cpu.source, gpus: Boolean(this.sources.gpus), simulated: this.sources.simulated, policy: policy.id }, this.sources.simulated ? 'SIMULATED TEE: evidence is signed by test roots and trusted only because tee is "simulated"' : 'evidence sources ready');
    this.key = await createAgentKey();
    this.collateral = new CollateralSummarizer(this.config.collateral.dir, this.config.collateral.online);
    this.history = new ResultHistory({ stateDir: this.config.state.dir, size: this.config.state.historySize, onEvent: (e) => this.log.warn({ event: e }, 'history') });
    await this.history.load();
    this.attestor = this.newAttestor();
    this.link = await DaemonLink.open({
      config: this.config,
      key: this.key,
      version: VERSION,
      log: this.log,
      env: this.env,
      attest: (reason, nonce) => this.attest(reason, nonce),
      inventory: () => currentInventory({ agentVersion: VERSION }) as unknown as Record<string, unknown>,
    });

    const service = this.apiService();
    this.server = createApiServer(service, {
      authorization: this.authz,
      maxRequestBytes: this.config.api.maxRequestBytes,
      requestTimeoutMs: this.config.api.requestTimeoutMs,
      ...(this.opts.peerCredentials ? { peerCredentials: this.opts.peerCredentials } : {}),
      onAccess: (e) => this.log.debug({ access: e }, 'api request'),
      onError: (err, path) => this.log.error({ path, err: (err as Error)?.stack ?? String(err) }, 'API request failed'),
    });
    const listening = await listenUnix(this.server, { path: this.config.api.socket, env: this.env });
    this.socketActivated = listening.activated;
    this.log.info({ socket: listening.path, activated: listening.activated }, 'local API listening');

    this.scheduler = this.newScheduler();
    this.scheduler.start();
    this.link.start();
    this.startWatchdog();
    this.notify({ READY: 1, STATUS: this.statusLine(), MAINPID: process.pid });
  }

  private newAttestor(): Attestor {
    return new Attestor({
      teePubKey: this.teePubKey,
      cpu: this.sources.cpu,
      ...(this.sources.gpus ? { gpus: this.sources.gpus } : {}),
      // Through `this.sources`, so a reload's new policy applies to the next cycle without a new attestor.
      verify: (bundle, at) => this.sources.verify(bundle, at),
      setReadyState: this.config.gpus.setReadyState,
      stepTimeoutMs: this.config.schedule.stepTimeoutSec * 1000,
      build: VERSION,
    });
  }

  /** `atStart` only for the first scheduler: a reload must not trigger an extra cycle. */
  private newScheduler(atStart = this.config.schedule.attestAtStart): Scheduler {
    return new Scheduler({
      cron: this.config.schedule.cron,
      jitterSec: this.config.schedule.jitterSec,
      attestAtStart: atStart,
      retry: this.config.schedule.retry,
      run: async (reason) => (await this.attest(reason)).ok,
      onError: (err) => this.log.error({ err: (err as Error).message }, 'scheduled attestation threw'),
    });
  }

  /** Run (or join) a cycle, record it, log one line, update status and metrics. */
  async attest(reason: CycleResult['reason'], nonce?: Uint8Array): Promise<CycleResult> {
    const result = await this.attestor.run(nonce ? { reason, nonce } : { reason });
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
    const devices = Object.fromEntries(Object.entries(r.ear.submods).map(([id, s]) => [id, s['ear.status']]));
    const failed = Object.values(r.ear.submods).flatMap((s) => s['cvm.checks'].filter((c) => !c.ok).map((c) => `${c.name}: ${c.detail}`));
    const line = { cycle: r.id, reason: r.reason, status: r.status, simulated: r.simulated, devices, durationMs: r.durationMs, gpuReady: r.gpuReady.set, ...(failed.length ? { failed } : {}), ...(r.error ? { error: r.error } : {}) };
    if (r.ok) this.log.info(line, `attestation ${r.status}${r.simulated ? ' (SIMULATED)' : ''}`);
    else this.log.error(line, `attestation ${r.status}${r.simulated ? ' (SIMULATED)' : ''}`);
    this.metrics.recordCycle(r.ear, r.durationMs / 1000, r.ok);
    this.metrics.setGpuReady(r.gpuReady.set);
    this.history
      .append({ startedAt: r.startedAt, finishedAt: r.finishedAt, reason: r.reason, status: r.status, ear: r.ear, ...(r.error ? { error: { code: 'ERR_CYCLE', message: r.error } } : {}) })
      .catch((err: Error) => this.log.error({ err: err.message }, 'could not persist the attestation result'));
    this.metrics.setLinkUp(this.link.status().state === 'up');
    void this.link.onCycle(r, healthOf(r, this.startedAt).status);
    this.notify({ STATUS: this.statusLine() });
  }

  statusLine(): string {
    const last = this.attestor?.last();
    const sim = this.sources?.simulated ? 'SIMULATED ' : '';
    if (!last) return `${sim}starting: no attestation yet`;
    const next = this.scheduler?.nextRun();
    return `${sim}${last.status} at ${last.finishedAt}${next ? `; next ${next.reason} ${next.at.toISOString()}` : ''}`;
  }

  private startWatchdog(): void {
    const usec = Number(this.env.WATCHDOG_USEC ?? '0');
    const pid = this.env.WATCHDOG_PID ? Number(this.env.WATCHDOG_PID) : process.pid;
    if (!usec || pid !== process.pid) return;
    // A main-thread timer, so a blocked event loop trips the watchdog (node-daemon.md §2.1).
    this.watchdog = setInterval(() => this.notify({ WATCHDOG: 1 }), Math.max(500, Math.floor(usec / 2000)));
    this.watchdog.unref();
  }

  /** SIGHUP: validate everything first, then swap atomically; an invalid file changes nothing. */
  async reload(): Promise<boolean> {
    this.notify({ RELOADING: 1, STATUS: 'reloading configuration' });
    try {
      const { config } = await loadConfigFile(this.opts.configPath);
      const next = applySystemdDirectories(config, this.env);
      const authz = authorizationFrom(next);
      const policy = await loadPolicy(next);
      const restartNeeded = (['api.socket', 'tee', 'state.dir', 'simulation.dir', 'simulation.gpus', 'gpus.setReadyState', 'schedule.stepTimeoutSec', 'controller.url'] as const).filter((k) => {
        const [a, b] = k.split('.') as [keyof Config, string | undefined];
        const x = b ? (this.config[a] as Record<string, unknown>)[b] : this.config[a];
        const y = b ? (next[a] as Record<string, unknown>)[b] : next[a];
        return JSON.stringify(x) !== JSON.stringify(y);
      });
      const sources = { ...this.sources, policy, verify: (await openSources({ ...next, tee: this.config.tee, simulation: this.config.simulation }, policy)).verify };
      // Everything validated: apply.
      this.config = { ...next, api: { ...next.api, socket: this.config.api.socket }, tee: this.config.tee, state: { ...next.state, dir: this.config.state.dir }, simulation: this.config.simulation };
      for (const k of Object.keys(this.authz)) delete this.authz[k as keyof AuthorizationTable];
      Object.assign(this.authz, authz);
      this.sources = sources;
      this.log.level = this.config.log.level;
      await this.scheduler.stop();
      this.scheduler = this.newScheduler(false);
      this.scheduler.start();
      if (restartNeeded.length) this.log.warn({ keys: restartNeeded }, 'these keys changed but take effect only after a restart');
      this.stateVersion++;
      this.log.info({ policy: policy.id }, 'configuration reloaded');
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
      if (this.watchdog) clearInterval(this.watchdog);
      await this.scheduler?.stop();
      await this.link?.stop().catch(() => undefined);
      const closed = new Promise<void>((resolve) => {
        if (!this.server) return resolve();
        this.server.close(() => resolve());
        this.server.closeIdleConnections();
      });
      const deadline = new Promise<void>((resolve) => setTimeout(resolve, deadlineMs).unref());
      await Promise.race([Promise.all([closed, this.history?.flushed()]), deadline]);
      this.server?.closeAllConnections();
      this.log.info('stopped');
      await new Promise<void>((resolve) => this.log.flush(() => resolve()));
    })();
    return this.stopping;
  }

  private apiService(): ApiService {
    return {
      health: async () => healthOf(this.attestor.last(), this.startedAt),
      status: async () => {
        // Serialized once per state change (cycle, reload) and at most once a second (uptime).
        const now = Date.now();
        if (!this.statusCache || this.statusCache.version !== this.stateVersion || now - this.statusCache.at > 1000) {
          const body = Buffer.from(JSON.stringify(await describeStatus(this)));
          this.statusCache = { version: this.stateVersion, at: now, body: new RawJson(body) };
        }
        return this.statusCache.body;
      },
      attest: async (nonce) => {
        const r = await this.attest('api', nonce);
        return { ear: r.ear, bundle: r.bundle, ok: r.ok, status: r.status, simulated: r.simulated, nonce: r.nonce, gpuReady: r.gpuReady };
      },
      evidence: async (nonce) => {
        const r = await this.attest('api', nonce);
        if (!r.bundle) throw new ConfigError(`evidence collection failed: ${r.error ?? 'unknown error'}`);
        return r.bundle;
      },
      token: async () => this.link.currentToken(),
      secret: async (name) => this.link.secrets.get(name),
      metrics: async () => {
        this.metrics.setLinkUp(this.link.status().state === 'up');
        const c = await this.collateral.get();
        for (const [kind, n] of Object.entries(c.kinds)) this.metrics.setCollateralStale(kind, n.stale + n.expired > 0);
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
      last: this.attestor.last(),
      running: this.attestor.isRunning(),
      next: this.scheduler.nextRun(),
      failures: this.scheduler.consecutiveFailures(),
      history: this.history.list(10),
      teePubKey: this.teePubKey,
      socketActivated: this.socketActivated,
      link: this.link.status(),
      collateral: this.sources.simulated ? undefined : this.collateral.get(),
      inventory: (async () => collectInventory({ agentVersion: VERSION }))(),
    };
  }
}
