/**
 * The reference controller's server: one HTTP(S) listener carrying
 *   - the agent link (WebSocket upgrade on /v1/link, subprotocol cvm-agent.v1), authenticated by
 *     bearer token and/or TLS client certificate BEFORE the upgrade (401 otherwise);
 *   - the fleet JSON API (GET /v1/agents, GET /v1/agents/{id}) and JWKS (/.well-known/jwks.json);
 *   - the fleet web page (GET /) under a strict Content-Security-Policy;
 *   - GET /metrics (Prometheus, ./metrics.ts) and GET /healthz (200 while it can serve agents).
 * Thin: authorize, translate, delegate to LinkSession / AgentRegistry.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';
import type { Logger } from 'pino';
import { MAX_MESSAGE_BYTES, PROTOCOL } from '../link/protocol.js';
import { createHash } from 'node:crypto';
import { bearerToken, certificateAgentIds, checkBearer, type Credential } from './auth.js';
import { AgentRegistry, type AgentRecord } from './registry.js';
import type { ControllerStore } from './store/controller-store.js';
import { openStore } from './store/open-store.js';
import { LinkSession } from './session.js';
import { CollateralStore } from '../collateral/store.js';
import { TokenSigner } from './signer.js';
import { AGENT_ID, tokenDigest, type ResolvedController } from './config.js';
import type { HeldBudget } from './event-stream.js';
import type { SimulationTrustSource } from './appraise.js';
import type { PublicJwk } from '../formats/nonce-binding.js';
import { CSP, FLEET_CSS, FLEET_HTML, FLEET_JS } from './web/page.js';
import { packageVersion } from '../util/package-version.js';
import { DeviceError } from '../errors.js';
import { ControllerMetrics } from './controller-metrics.js';

export const LINK_PATH = '/v1/link';
export const CONTROLLER_BUILD = `cvm-agent-controller/${packageVersion()}`;

export interface ControllerOptions {
  log: Logger;
  /** Clock (tests move it to expire challenges). */
  now?: () => Date;
  heartbeatSec?: number;
  /** Overrides listen.host/port (the CLI's --listen). */
  listen?: { host: string; port: number };
}

const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
  'x-frame-options': 'DENY',
};

/**
 * `simulation.trust: true` only: the simulated roots in `dir`, with simulation/ loaded by dynamic
 * import at the first appraisal that uses them, so a production controller never evaluates it.
 */
function lazySimulationRoots(dir: string): SimulationTrustSource {
  let roots: Promise<SimulationTrustSource> | undefined;
  return {
    async trust(at, needs) {
      roots ??= import('../simulation/controller-trust.js').then(({ SimulationRoots }) => new SimulationRoots(dir));
      return (await roots).trust(at, needs);
    },
  };
}

export class Controller {
  readonly registry: AgentRegistry;
  private readonly sessions = new Map<string, LinkSession>();
  private readonly anonymous = new Set<LinkSession>();
  /** Waiting for an agent id's live session to go (see SessionDeps.released). */
  private readonly releaseWaiters = new Map<string, Set<() => void>>();
  /** Sessions that were an agent's live session (registry.setConnected counted them). */
  private readonly counted = new WeakSet<LinkSession>();
  private readonly wss: WebSocketServer;
  private server!: Server;
  private closing = false;
  private readonly upgraded = new Set<Duplex>();
  /** Bytes of events held by all links together (limits.heldBytesTotal). */
  readonly heldBudget: HeldBudget;
  readonly metrics: ControllerMetrics;

  private constructor(
    private readonly resolved: ResolvedController,
    readonly signer: TokenSigner,
    private readonly opts: ControllerOptions,
    store: ControllerStore,
  ) {
    this.registry = new AgentRegistry(store);
    this.heldBudget = { used: 0, max: resolved.config.limits.heldBytesTotal };
    this.metrics = new ControllerMetrics({ agentsConnected: () => this.registry.connectedCount() });
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: MAX_MESSAGE_BYTES,
      perMessageDeflate: false,
      handleProtocols: (protocols) => (protocols.has(PROTOCOL) ? PROTOCOL : false),
    });
  }

  static async start(resolved: ResolvedController, opts: ControllerOptions): Promise<Controller> {
    const signer = await TokenSigner.create(resolved.signingKeyPem, resolved.publishedKeyPems);
    const store = await openStore(resolved.config, opts.log, (opts.listen ?? resolved.config.listen).port);
    const c = new Controller(resolved, signer, opts, store);
    try {
      await c.registry.load((file, why) => opts.log.warn({ file }, `ignoring unreadable agent state: ${why}`));
      await c.listen();
      c.renewLeases();
      c.pruneStore();
    } catch (err) {
      await store.close().catch(() => undefined);
      throw err;
    }
    return c;
  }

  private now(): Date {
    return (this.opts.now ?? (() => new Date()))();
  }

  private async listen(): Promise<void> {
    const cfg = this.resolved.config;
    const tls = this.resolved.tls;
    const handler = (req: IncomingMessage, res: ServerResponse) => this.onRequest(req, res);
    this.server = tls
      ? createHttpsServer(
          {
            cert: tls.cert,
            key: tls.key,
            minVersion: 'TLSv1.2',
            ...(tls.ca ? { ca: tls.ca, requestCert: true, rejectUnauthorized: tls.requireClientCert } : {}),
          },
          handler,
        )
      : createHttpServer(handler);
    this.server.headersTimeout = 10_000;
    this.server.requestTimeout = 30_000;
    this.server.on('upgrade', (req, socket, head) => this.onUpgrade(req, socket, head));
    const { host, port } = this.opts.listen ?? cfg.listen;
    await new Promise<void>((resolve, reject) => {
      const failed = (err: NodeJS.ErrnoException) => reject(listenError(err, host, port));
      this.server.once('error', failed);
      this.server.listen(port, host, () => {
        this.server.off('error', failed);
        resolve();
      });
    });
  }

  address(): { host: string; port: number; url: string; wsUrl: string } {
    const a = this.server.address() as AddressInfo;
    const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
    const tls = this.resolved.tls !== undefined;
    return {
      host: a.address,
      port: a.port,
      url: `${tls ? 'https' : 'http'}://${host}:${a.port}`,
      wsUrl: `${tls ? 'wss' : 'ws'}://${host}:${a.port}${LINK_PATH}`,
    };
  }

  /** Challenge a connected agent now (tests, operators). */
  challengeNow(agentId: string) {
    return this.sessions.get(agentId)?.challenge(this.now());
  }

  private leaseTimer: NodeJS.Timeout | undefined;

  /**
   * A shared store: renew the leases of this replica's live sessions every third of their lifetime;
   * a session whose lease another replica took (a takeover the identity rules allowed) is closed.
   */
  private renewLeases(): void {
    const leases = this.registry.store.leases;
    if (!leases) return;
    let running = false;
    this.leaseTimer = setInterval(
      () => {
        if (running || this.closing) return;
        running = true;
        const live = [...this.sessions].filter(([, s]) => !s.isClosed);
        leases
          .renew(
            this.registry.store.replicaId,
            live.map(([agentId, s]) => ({ agentId, sessionId: s.id })),
          )
          .then((lost) => {
            for (const agentId of lost) {
              const s = this.sessions.get(agentId);
              if (!s || s.isClosed || !live.some(([, x]) => x === s)) continue;
              this.opts.log.info({ agentId }, 'agent taken over by a session on another replica');
              s.close(1008, 'superseded by a newer connection of the same agent (on another controller replica)');
            }
          })
          .catch((err: Error) => this.opts.log.warn({ err: err.message }, 'session leases not renewed (the store is unreachable)'))
          .finally(() => {
            running = false;
          });
      },
      Math.max(100, Math.floor(leases.ttlMs / 3)),
    );
    this.leaseTimer.unref();
  }

  private pruneTimer: NodeJS.Timeout | undefined;

  /**
   * A store with a retention prune (PostgreSQL): prune every store.retention.pruneIntervalSec, first
   * shortly after the start (spread over the interval's first tenth, so replicas started together do
   * not all try at once; the advisory lock lets one prune anyway).
   */
  private pruneStore(): void {
    const store = this.registry.store;
    if (!store.prune) return;
    const r = this.resolved.config.retention;
    let running = false;
    const run = () => {
      if (running || this.closing) return;
      running = true;
      const t0 = Date.now();
      store.prune!(r)
        .then((n) => {
          if (n === undefined) this.opts.log.debug('store prune skipped (another replica is pruning)');
          else this.opts.log.info({ deleted: n, ms: Date.now() - t0 }, 'store pruned to its retention');
        })
        .catch((err: Error) => this.opts.log.warn({ err: err.message }, 'store prune failed (retried at the next interval)'))
        .finally(() => {
          running = false;
        });
    };
    const every = r.pruneIntervalSec * 1000;
    const first = setTimeout(
      () => {
        run();
        this.pruneTimer = setInterval(run, every);
        this.pruneTimer.unref();
      },
      Math.floor(Math.random() * every * 0.1),
    );
    first.unref();
    this.pruneTimer = first;
  }

  async close(): Promise<void> {
    this.closing = true;
    if (this.leaseTimer) clearInterval(this.leaseTimer);
    if (this.pruneTimer) clearTimeout(this.pruneTimer);
    const sessions = [...this.sessions.values(), ...this.anonymous];
    const leased = [...this.sessions];
    for (const s of sessions) s.close(1001, 'controller shutting down');
    // Let in-flight handlers finish their state write (bounded), then refuse any later write.
    await Promise.race([Promise.all(sessions.map((s) => s.drained())), new Promise((r) => setTimeout(r, 2000).unref())]);
    // Peers that did not finish the close handshake, and upgrades caught half-way, are cut now.
    for (const ws of this.wss.clients) ws.terminate();
    for (const socket of this.upgraded) socket.destroy();
    this.wss.close();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections?.();
    });
    // Free this replica's leases (after the last state writes): its agents may come back on another
    // replica at once instead of waiting for the leases to expire.
    const leases = this.registry.store.leases;
    if (leases) await Promise.allSettled(leased.map(([agentId, s]) => leases.release(agentId, s.id)));
    await this.registry.close();
  }

  // ---- agent link

  private reject(socket: Duplex, status: number, reason: string, peer: string): void {
    this.opts.log.warn({ peer, status }, `link upgrade refused: ${reason}`);
    const text = { 400: 'Bad Request', 401: 'Unauthorized', 404: 'Not Found', 503: 'Service Unavailable' }[status] ?? 'Error';
    const extra = status === 401 ? 'WWW-Authenticate: Bearer realm="cvm-agent"\r\n' : '';
    socket.end(
      `HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: text/plain\r\n${extra}Content-Length: ${Buffer.byteLength(reason) + 1}\r\n\r\n${reason}\n`,
    );
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => undefined);
    if (this.closing) return this.reject(socket, 503, 'the controller is shutting down', `${req.socket.remoteAddress ?? '?'}`);
    // Tracked until closed: an upgrade still in progress at shutdown must not keep the server open.
    this.upgraded.add(socket);
    socket.once('close', () => this.upgraded.delete(socket));
    const peer = `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? '?'}`;
    const path = (req.url ?? '').split('?')[0];
    if (path !== LINK_PATH) return this.reject(socket, 404, `the agent link is at ${LINK_PATH}`, peer);
    // Authentication first, so an unauthenticated peer learns nothing else.
    const tlsSocket = req.socket as Partial<TLSSocket>;
    const hasClientCert = this.resolved.tls?.ca !== undefined && tlsSocket.authorized === true;
    if (
      this.resolved.tls?.ca &&
      typeof tlsSocket.getPeerCertificate === 'function' &&
      !tlsSocket.authorized &&
      Object.keys(tlsSocket.getPeerCertificate() ?? {}).length > 0
    ) {
      return this.reject(socket, 401, 'client certificate not issued by tls.clientCa', peer);
    }
    const credential: Credential = {};
    // A client certificate from tls.clientCa names the agent ids it may use (CN, DNS subjectAltNames).
    if (hasClientCert) credential.certAgentIds = certificateAgentIds(tlsSocket.getPeerCertificate?.());
    if (this.resolved.tokens.length > 0) {
      const auth = checkBearer(req.headers.authorization, this.resolved.tokens);
      if (!auth.ok) return this.reject(socket, 401, auth.reason, peer);
      if (auth.agentId !== undefined) credential.tokenAgentId = auth.agentId;
    } else if (!hasClientCert) {
      return this.reject(socket, 401, 'no agent credentials are configured (agents.tokens or tls.clientCa with requireClientCert)', peer);
    }
    const offered = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((s) => s.trim());
    if (!offered.includes(PROTOCOL)) return this.reject(socket, 400, `Sec-WebSocket-Protocol must offer ${PROTOCOL}`, peer);
    if (this.sessions.size + this.anonymous.size >= this.resolved.config.limits.maxConnections) {
      return this.reject(socket, 503, 'too many agent connections', peer);
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      const session = new LinkSession(ws, this.sessionDeps(), credential, peer, credentialLabel(req, hasClientCert));
      this.anonymous.add(session);
      ws.on('close', () => this.anonymous.delete(session));
    });
  }

  private deps: ReturnType<Controller['buildDeps']> | undefined;
  private sessionDeps() {
    this.deps ??= this.buildDeps();
    return this.deps;
  }

  private buildDeps() {
    const cfg = this.resolved.config;
    return {
      registry: this.registry,
      signer: this.signer,
      appraisal: {
        ...(this.resolved.snpPolicy ? { snpPolicy: this.resolved.snpPolicy } : {}),
        ...(this.resolved.gpuPolicy ? { gpuPolicy: this.resolved.gpuPolicy } : {}),
        ...(cfg.simulation.trust && cfg.simulation.dir ? { simulation: lazySimulationRoots(cfg.simulation.dir) } : {}),
        ...(cfg.collateral
          ? { collateral: { store: new CollateralStore(cfg.collateral.dir), online: cfg.collateral.online, timeoutMs: cfg.collateral.timeoutMs } }
          : {}),
        policyId: `cvm-agent-controller/${cfg.policy.snp || cfg.policy.gpu ? 'configured' : 'default'}`,
        build: CONTROLLER_BUILD,
      },
      secrets: this.resolved.secrets,
      releaseSecretsOn: cfg.releaseSecretsOn,
      tokenTtlSec: cfg.tokenTtlSec,
      challengeTtlSec: cfg.challengeTtlSec,
      challengeIntervalSec: cfg.challengeIntervalSec,
      heartbeatSec: this.opts.heartbeatSec ?? 30,
      limits: cfg.limits,
      heldBudget: this.heldBudget,
      metrics: this.metrics,
      log: this.opts.log,
      now: () => this.now(),
      boundIds: new Set(this.resolved.tokens.flatMap((t) => (t.agentId === undefined ? [] : [t.agentId]))),
      tokenKeys: this.signer.jwks() as { keys: PublicJwk[] },
      admit: (agentId: string, session: LinkSession) => this.admit(agentId, session),
      promote: (agentId: string, session: LinkSession) => this.take(agentId, session),
      released: (agentId: string, ms: number) => this.released(agentId, ms),
      hasLocal: (agentId: string) => {
        const live = this.sessions.get(agentId);
        return live !== undefined && !live.isClosed;
      },
      release: (agentId: string, session: LinkSession) => {
        // A superseded session still counts as connected until its own close (its state write may be under way).
        if (this.counted.delete(session)) this.registry.setConnected(agentId, false);
        // Its lease (if it still holds it) is free at once: the agent may come back on any replica
        // (at shutdown, close() frees them all before the store closes).
        if (!this.closing)
          this.registry.store.leases
            ?.release(agentId, session.id)
            .catch((err: Error) => this.opts.log.warn({ agentId, err: err.message }, 'lease not released (it expires)'));
        if (this.sessions.get(agentId) !== session) return; // a contender or a refused link: the live one stays
        this.sessions.delete(agentId);
        const waiters = this.releaseWaiters.get(agentId);
        this.releaseWaiters.delete(agentId);
        for (const w of waiters ?? []) w();
      },
    };
  }

  /**
   * A second session for an agent id replaces the first only when it proves the same identity: its
   * credential is bound to the id like the first one's, and, when the first session is attested, it
   * has attested a key for the agent in its own session (then it is promoted). Otherwise it is refused,
   * and the first keeps running: an id said under a fleet token cannot evict anybody.
   */
  private admit(agentId: string, session: LinkSession): 'claimed' | 'contender' | 'refused' {
    const old = this.sessions.get(agentId);
    if (old === session) return 'claimed';
    if (old && !old.isClosed) {
      if (!(old.boundToId && session.boundToId)) return 'refused';
      if (old.attested) return 'contender';
    }
    this.take(agentId, session);
    return 'claimed';
  }

  private take(agentId: string, session: LinkSession): void {
    const old = this.sessions.get(agentId);
    this.anonymous.delete(session);
    this.sessions.set(agentId, session);
    // Counted once per session that was ever live, uncounted when it closes (see release).
    if (!this.counted.has(session)) {
      this.counted.add(session);
      this.registry.setConnected(agentId, true);
    }
    if (old && old !== session) {
      this.anonymous.add(old); // until its close completes, still counted and closed at shutdown
      old.close(1008, 'superseded by a newer connection of the same agent');
    }
  }

  private released(agentId: string, ms: number): Promise<void> {
    const live = this.sessions.get(agentId);
    if (!live || live.isClosed) return Promise.resolve();
    return new Promise((resolve) => {
      const set = this.releaseWaiters.get(agentId) ?? new Set<() => void>();
      this.releaseWaiters.set(agentId, set);
      const done = () => {
        clearTimeout(t);
        set.delete(done);
        resolve();
      };
      const t = setTimeout(done, ms);
      t.unref(); // never what keeps a stopping controller alive
      set.add(done);
    });
  }

  // ---- HTTP: fleet API and page

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    try {
      this.route(req, res);
    } catch (err) {
      this.opts.log.error({ err: (err as Error).message }, 'HTTP handler failed');
      if (!res.headersSent) this.problem(res, 500, 'internal error');
      else res.destroy();
    }
  }

  private send(res: ServerResponse, status: number, type: string, body: string, extra: Record<string, string> = {}): void {
    res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), ...SECURITY_HEADERS, ...extra });
    res.end(res.req.method === 'HEAD' ? undefined : body);
  }

  private json(res: ServerResponse, status: number, doc: unknown): void {
    this.send(res, status, 'application/json', `${JSON.stringify(doc, null, 1)}\n`);
  }

  private problem(res: ServerResponse, status: number, title: string, detail?: string): void {
    this.send(res, status, 'application/problem+json', `${JSON.stringify({ type: 'about:blank', title, status, ...(detail ? { detail } : {}) })}\n`);
  }

  /**
   * Why the controller cannot do its job now, if it cannot: it is shutting down, or the latest write
   * of agent state failed (stateDir full or gone: verdicts and events are not persisted, so events
   * are not acknowledged and agents' outboxes fill). Serving HTTP alone does not make it healthy.
   */
  healthReasons(): string[] {
    const reasons: string[] = [];
    if (this.closing) reasons.push('shutting down');
    const w = this.registry.lastWriteFailure;
    if (w) reasons.push(`the latest agent state write failed (agent ${w.agentId}, ${w.at}): ${w.error}`);
    return reasons;
  }

  private route(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (req.method !== 'GET' && req.method !== 'HEAD') return this.problem(res, 405, 'method not allowed', 'the fleet API is read-only (GET)');
    if (path === '/healthz') {
      const reasons = this.healthReasons();
      return this.json(res, reasons.length === 0 ? 200 : 503, { status: reasons.length === 0 ? 'ok' : 'failing', reasons });
    }
    if (path === '/metrics') {
      void this.metrics.render().then(
        (m) => this.send(res, 200, m.contentType, m.body),
        (err: Error) => {
          this.opts.log.error({ err: err.message }, 'metrics rendering failed');
          this.problem(res, 500, 'internal error');
        },
      );
      return;
    }
    const page = { 'content-security-policy': CSP };
    if (path === '/' || path === '/index.html') return this.send(res, 200, 'text/html; charset=utf-8', FLEET_HTML, page);
    if (path === '/assets/fleet.js') return this.send(res, 200, 'text/javascript; charset=utf-8', FLEET_JS, page);
    if (path === '/assets/fleet.css') return this.send(res, 200, 'text/css; charset=utf-8', FLEET_CSS, page);
    if (path === '/.well-known/jwks.json') return this.json(res, 200, this.signer.jwks());
    if (path === '/v1/agents') {
      if (!this.registry.store.shared) return this.json(res, 200, { agents: this.registry.summaries() });
      // A shared store: the whole fleet, whichever replica answers.
      void (this.registry.store.leases?.liveAgents() ?? Promise.resolve(new Set<string>()))
        .then((live) => this.registry.storedSummaries(live))
        .then(
          (agents) => this.json(res, 200, { agents }),
          (err: Error) => {
            this.opts.log.error({ err: err.message }, 'fleet listing failed');
            this.problem(res, 503, 'store unavailable', 'the agent store could not be read; retry');
          },
        );
      return;
    }
    const m = /^\/v1\/agents\/([^/]+)$/.exec(path);
    if (m) {
      let id: string;
      try {
        id = decodeURIComponent(m[1]!);
      } catch {
        return this.problem(res, 400, 'bad agent id');
      }
      if (!AGENT_ID.test(id)) return this.problem(res, 404, 'no such agent', `no agent "${id.slice(0, 128)}" has connected`);
      if (this.registry.store.shared && !this.registry.isConnected(id)) {
        // Another replica's agent (or none): as stored.
        void Promise.all([this.registry.store.loadAgent(id), this.registry.store.leases?.liveAgents()]).then(
          ([r, live]) =>
            r ? this.agentDetail(res, r, live?.has(id) ?? false) : this.problem(res, 404, 'no such agent', `no agent "${id.slice(0, 128)}" has connected`),
          (err: Error) => {
            this.opts.log.error({ err: err.message }, 'agent lookup failed');
            this.problem(res, 503, 'store unavailable', 'the agent store could not be read; retry');
          },
        );
        return;
      }
      if (!this.registry.has(id)) return this.problem(res, 404, 'no such agent', `no agent "${id.slice(0, 128)}" has connected`);
      return this.agentDetail(res, this.registry.get(id));
    }
    return this.problem(res, 404, 'not found');
  }

  private agentDetail(res: ServerResponse, r: AgentRecord, connected?: boolean): void {
    this.json(res, 200, {
      ...this.registry.summary(r, connected),
      version: r.version ?? null,
      inventory: r.inventory ?? null,
      gapRanges: r.gaps,
      alarmList: r.alarms ?? [],
      attestedKeys: r.attestedKeys.map((k) => ({ jkt: k.jkt, at: k.at })),
      lastVerdict: r.lastVerdict ?? null,
      recentEvents: r.recentEvents,
    });
  }
}

/**
 * A stable, non-secret name for the credential a link authenticated with (limits.agentsPerCredential):
 * the bearer token by a hash of its digest, else the client certificate by its fingerprint.
 */
export function credentialLabel(req: IncomingMessage, hasClientCert: boolean): string {
  const token = bearerToken(req.headers.authorization);
  if (token !== undefined) return tokenCredentialLabel(token);
  const cert = hasClientCert ? (req.socket as Partial<TLSSocket>).getPeerCertificate?.() : undefined;
  if (cert?.fingerprint256) return `cert:${cert.fingerprint256.replaceAll(':', '').toLowerCase()}`;
  return 'anonymous';
}

/** A bearer token's label: a hash of its SHA-256 digest (the digest itself is what the config holds). */
export function tokenCredentialLabel(token: string): string {
  return `token:${createHash('sha256').update(tokenDigest(token)).digest('hex').slice(0, 32)}`;
}

/** A port that cannot be bound is an operator's problem with one fix: say which, in one line (exit 4). */
function listenError(err: NodeJS.ErrnoException, host: string, port: number): DeviceError {
  const where = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  const why =
    err.code === 'EADDRINUSE'
      ? 'the address is already in use (another controller running?); stop it or choose another with --listen or listen.port'
      : err.code === 'EACCES'
        ? 'permission denied (ports below 1024 need CAP_NET_BIND_SERVICE); choose another with --listen or listen.port'
        : err.code === 'EADDRNOTAVAIL'
          ? 'no local interface has this address; check listen.host'
          : err.message;
  return new DeviceError('ERR_LISTEN', `cannot listen on ${where}: ${why}`, { errno: err.code }, { cause: err });
}
