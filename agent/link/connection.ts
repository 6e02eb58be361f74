/**
 * The link's connection lifecycle (docs/protocol.md; ws practice from
 * websockets/ws doc/ws.md and README): one `WebSocket` per attempt (instances are single use), the hello
 * and the wait for `welcome`, ping/pong dead-peer detection, and reconnects with capped exponential
 * backoff and full jitter. Every timer of a connection is cleared on close. What arrives on the
 * socket is handed to ./dispatch.ts; the other parts learn of (re)connects and closes through hooks.
 */
import { createHash, X509Certificate } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { type ConnectionOptions, type PeerCertificate, checkServerIdentity as tlsCheckServerIdentity } from 'node:tls';
import WebSocket from 'ws';
import { ConfigError } from '../errors.js';
import { readBoundedText } from '../util/bounded-read.js';
import { backoffDelay } from './backoff.js';
import type { LinkCounters, LinkState, ResolvedLinkOptions } from './link-options.js';
import { type AgentMessage, CLOSE, encodeMessage, MAX_MESSAGE_BYTES, PROTOCOL, SUPPORTED_VERSIONS, type WelcomeMessage } from './protocol.js';

/** checkServerIdentity with optional SPKI pinning, on top of the normal host name check. */
export function makeServerIdentityCheck(pins: readonly string[] | undefined) {
  return (host: string, cert: PeerCertificate): Error | undefined => {
    const err = tlsCheckServerIdentity(host, cert);
    if (err) return err;
    if (pins && pins.length > 0) {
      // PeerCertificate.pubkey is the bare EC point for EC keys, so take the SPKI from the DER certificate.
      let pin = '';
      try {
        const spki = new X509Certificate(cert.raw).publicKey.export({ type: 'spki', format: 'der' });
        pin = createHash('sha256').update(spki).digest('base64');
      } catch {
        // unreadable certificate: no pin can match
      }
      if (!pins.includes(pin)) return new Error(`controller certificate key is not pinned (SPKI sha256 ${pin || 'unavailable'})`);
    }
    return undefined;
  };
}

/** What the other parts of the link do at the connection's turning points (all synchronous). */
export interface ConnectionHooks {
  /** A new attempt begins: forget everything tied to the previous connection. */
  onConnecting(): void;
  /** The socket opened with our subprotocol, before the hello is sent. */
  onOpen(ws: WebSocket): void;
  onMessage(ws: WebSocket, data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean): void;
  /** The current socket closed (timers are already cleared). */
  onDown(): void;
}

export class LinkConnection {
  private _ws: WebSocket | undefined;
  private _state: LinkState = 'down';
  private _lastError: string | undefined;
  private _attempt = 0;
  private _reconnectAt: number | undefined;
  private _connectedSince: number | undefined;
  private _welcome: WelcomeMessage | undefined;
  /** Set once we decided to close (or learned why the peer will be closed); blocks further sends and messages. */
  private _closingReason: string | undefined;
  private connTimers = new Set<NodeJS.Timeout>();
  private reconnectTimer: NodeJS.Timeout | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private welcomeTimer: NodeJS.Timeout | undefined;
  private lastPong = 0;
  private penalty = 0;
  private closedWaiters: Array<() => void> = [];

  constructor(
    private readonly o: ResolvedLinkOptions,
    private readonly counters: LinkCounters,
    private readonly hooks: ConnectionHooks,
  ) {}

  get ws(): WebSocket | undefined {
    return this._ws;
  }
  get state(): LinkState {
    return this._state;
  }
  get lastError(): string | undefined {
    return this._lastError;
  }
  get attempt(): number {
    return this._attempt;
  }
  get reconnectAt(): number | undefined {
    return this._reconnectAt;
  }
  get connectedSince(): number | undefined {
    return this._connectedSince;
  }
  /** The controller's welcome on this connection; until it arrives the link is not up. */
  get welcome(): WelcomeMessage | undefined {
    return this._welcome;
  }
  get closingReason(): string | undefined {
    return this._closingReason;
  }
  /** Which of the controller URLs the current or next attempt uses (see LinkOptions.urls). */
  private urlIndex = 0;

  /** The URL of the current or next attempt. */
  get url(): string {
    const all = [this.o.url, ...(this.o.urls ?? [])];
    return all[this.urlIndex % all.length]!;
  }

  /** A socket is open or an attempt is scheduled. */
  get active(): boolean {
    return this._ws !== undefined || this.reconnectTimer !== undefined;
  }

  /** Close the link for good (SIGTERM); resolves once the socket is closed. */
  async stop(): Promise<void> {
    this._state = 'stopped';
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    this._reconnectAt = undefined;
    const ws = this._ws;
    if (!ws) return;
    const closed = new Promise<void>((resolve) => this.closedWaiters.push(resolve));
    if (ws.readyState === WebSocket.OPEN) ws.close(CLOSE.GOING_AWAY, 'agent stopping');
    else ws.terminate();
    // close() waits for the peer's close frame; do not let a silent peer hold shutdown.
    const t = setTimeout(() => ws.terminate(), 2000);
    await closed;
    clearTimeout(t);
  }

  async connect(): Promise<void> {
    this.reconnectTimer = undefined;
    this._reconnectAt = undefined;
    if (this._state === 'stopped') return;
    this._state = 'connecting';
    this._welcome = undefined;
    this.hooks.onConnecting();
    this.penalty = 0;
    const headers: Record<string, string> = {};
    if (this.o.tokenFile) {
      try {
        // Re-read at every connect (a rotated credential applies at once), within the token file cap.
        const token = (await readBoundedText(this.o.tokenFile, 'token')).trim();
        if (!token || /[\r\n]/.test(token)) throw new ConfigError('the token file is empty or has more than one line');
        headers.Authorization = `Bearer ${token}`;
      } catch (err) {
        this._lastError = `cannot read the bearer token file ${this.o.tokenFile}: ${(err as Error).message}`;
        this._state = 'down';
        // No credentials will not fix itself: an error, not a warning.
        this.scheduleReconnect('error');
        return;
      }
    }
    if (this._state !== 'connecting') return; // stopped while reading the token
    const tls = this.o.tls ?? {};
    // ws hands these to https.request/tls.connect. @types/ws types checkServerIdentity as returning a
    // boolean, but Node treats any truthy return as the verification error: it must return Error | undefined.
    const options: Omit<WebSocket.ClientOptions, 'checkServerIdentity'> & ConnectionOptions = {
      handshakeTimeout: this.o.handshakeTimeoutMs,
      perMessageDeflate: false,
      maxPayload: MAX_MESSAGE_BYTES,
      followRedirects: false,
      headers,
      rejectUnauthorized: true,
      checkServerIdentity: makeServerIdentityCheck(tls.pinnedSpkiSha256),
    };
    if (tls.ca !== undefined) options.ca = tls.ca;
    if (tls.cert !== undefined) options.cert = tls.cert;
    if (tls.key !== undefined) options.key = tls.key;
    if (tls.servername !== undefined) options.servername = tls.servername;
    let ws: WebSocket;
    try {
      ws = new WebSocket(this.url, [PROTOCOL], options as WebSocket.ClientOptions);
    } catch (err) {
      this._lastError = `cannot connect: ${(err as Error).message}`;
      this._state = 'down';
      this.scheduleReconnect('warn');
      return;
    }
    this._ws = ws;
    this.counters.connects++;
    // 'error' first: an unhandled 'error' would crash the process. ws always follows it with 'close'.
    ws.on('error', (err) => {
      if (this._ws !== ws) return;
      // Keep a more specific reason (HTTP status, pong timeout, flood) if we already have one.
      if (!this._closingReason) this._lastError = err.message;
      // Debug only: the close that follows logs the attempt once, with this reason and the next delay.
      this.o.log.debug({ err: err.message }, 'controller link error');
    });
    ws.on('unexpected-response', (_req, res: IncomingMessage) => {
      const status = res.statusCode ?? 0;
      this._closingReason = `controller refused the connection: HTTP ${status}${res.statusMessage ? ` ${res.statusMessage}` : ''}`;
      this._lastError = this._closingReason;
      // Wrong or expired credentials will not fix themselves within a second: back off harder.
      if (status === 401 || status === 403) this.penalty = 3;
      res.resume();
      this.o.log.debug({ status }, 'controller link: handshake refused');
      ws.terminate();
    });
    ws.on('open', () => this.onOpen(ws));
    ws.on('message', (data, isBinary) => this.hooks.onMessage(ws, data as Buffer | ArrayBuffer | Buffer[], isBinary));
    ws.on('pong', () => {
      this.lastPong = this.o.now();
    });
    ws.on('close', (code, reason) => this.onClose(ws, code, reason.toString('utf8').slice(0, 200)));
  }

  private onOpen(ws: WebSocket): void {
    if (this._ws !== ws) return;
    this._closingReason = undefined;
    if (ws.protocol !== PROTOCOL) {
      this.disconnect(ws, CLOSE.PROTOCOL_ERROR, `controller selected subprotocol "${ws.protocol}", expected ${PROTOCOL}`);
      return;
    }
    this.lastPong = this.o.now();
    this.hooks.onOpen(ws);
    this.startHeartbeat(ws, this.o.heartbeatSec);
    this.welcomeTimer = this.connTimer(
      () => this.disconnect(ws, CLOSE.HANDSHAKE_TIMEOUT, `no welcome within ${this.o.handshakeTimeoutMs} ms`),
      this.o.handshakeTimeoutMs,
      'welcome',
    );
    this.send(ws, {
      type: 'hello',
      agentId: this.o.agentId,
      version: this.o.agentVersion,
      protocol: { ...SUPPORTED_VERSIONS },
      teePubKey: this.o.key.publicJwk,
      inventory: safeInventory(this.o.inventory),
      capabilities: this.o.capabilities,
      resumeFrom: this.o.outbox.resumeFrom,
    });
  }

  /** The controller's welcome was accepted: stop waiting for it. */
  acceptWelcome(w: WelcomeMessage): void {
    if (this.welcomeTimer) {
      clearTimeout(this.welcomeTimer);
      this.connTimers.delete(this.welcomeTimer);
      this.welcomeTimer = undefined;
    }
    this._welcome = w;
  }

  /** The link is up: heartbeat at the controller's rate, and forgive the backoff once it stays up. */
  markUp(ws: WebSocket, heartbeatSec: number): void {
    this._state = 'up';
    this._lastError = undefined;
    this._connectedSince = this.o.now();
    this.startHeartbeat(ws, heartbeatSec);
    // Reset the backoff only once the link proved stable (a flapping controller keeps backing off).
    this.connTimer(
      () => {
        this._attempt = 0;
      },
      this.o.resetAfterMs,
      'reset-backoff',
    );
  }

  private onClose(ws: WebSocket, code: number, reason: string): void {
    if (this._ws !== ws) return;
    this._ws = undefined;
    for (const t of this.connTimers) clearTimeout(t);
    this.connTimers.clear();
    this.heartbeat = undefined;
    this.welcomeTimer = undefined;
    const wasUp = this._state === 'up';
    if (this._closingReason) this._lastError = this._closingReason;
    else if (code !== CLOSE.NORMAL || wasUp) {
      if (code !== 1006 || !this._lastError) this._lastError = `connection closed (code ${code}${reason ? `: ${reason}` : ''})`;
    }
    // Neither a version mismatch nor a refused identity (4003) fixes itself within a second: back off harder.
    if (code === CLOSE.VERSION_MISMATCH || code === CLOSE.FORBIDDEN) this.penalty = Math.max(this.penalty, 3);
    this._closingReason = undefined;
    this._connectedSince = undefined;
    this._welcome = undefined;
    this.hooks.onDown();
    this.counters.disconnects++;
    for (const w of this.closedWaiters.splice(0)) w();
    if (this._state === 'stopped') return;
    this._state = 'down';
    // Refused credentials or identity, or no common version (the causes of a penalty): an error.
    this.scheduleReconnect(this.penalty > 0 ? 'error' : 'warn', { code, ...(reason ? { reason } : {}) });
  }

  /**
   * Waits out the backoff, then connects again. Every failed attempt (and every drop of a link that
   * was up) logs exactly this one line: why, which attempt comes next, and after what delay.
   */
  private scheduleReconnect(level: 'warn' | 'error', fields: { code?: number; reason?: string } = {}): void {
    if (this._state === 'stopped' || this.reconnectTimer) return;
    const delay = backoffDelay(this._attempt + this.penalty, this.o.backoff, this.o.random);
    this._attempt++;
    // Fail over: the next attempt goes to the next controller URL (replicas), after the same backoff.
    if ((this.o.urls?.length ?? 0) > 0) this.urlIndex = (this.urlIndex + 1) % (1 + this.o.urls!.length);
    this._reconnectAt = this.o.now() + delay;
    this.o.log[level](
      {
        ...fields,
        lastError: this._lastError,
        attempt: this._attempt,
        nextDelayMs: delay,
        reconnectAt: new Date(this._reconnectAt).toISOString(),
        ...((this.o.urls?.length ?? 0) > 0 ? { nextUrl: this.url } : {}),
      },
      `controller link down: attempt ${this._attempt} in ${(delay / 1000).toFixed(1)} s`,
    );
    // Not unref'd: a daemon whose only work is the link must not exit while waiting to reconnect.
    this.reconnectTimer = setTimeout(() => void this.connect(), delay);
  }

  /** Close with a reason we keep as lastError; terminate if the peer does not finish the close handshake. */
  disconnect(ws: WebSocket, code: number, reason: string): void {
    if (this._ws !== ws || this._closingReason) return;
    this._closingReason = reason;
    this._lastError = reason;
    // Debug only: the close logs the attempt once, with this reason as lastError.
    this.o.log.debug({ code, reason }, 'controller link: disconnecting');
    if (ws.readyState === WebSocket.OPEN) {
      ws.close(code, reason.slice(0, 120));
      this.connTimer(() => ws.terminate(), 2000, 'close');
    } else ws.terminate();
  }

  /** A timer that belongs to the current connection: cleared when it closes. */
  connTimer(fn: () => void, ms: number, _what: string): NodeJS.Timeout {
    const t = setTimeout(() => {
      this.connTimers.delete(t);
      fn();
    }, ms);
    this.connTimers.add(t);
    return t;
  }

  /** Ping every heartbeatSec; no pong for 2 x heartbeat means the peer is dead: terminate. */
  private startHeartbeat(ws: WebSocket, heartbeatSec: number): void {
    const ms = heartbeatSec * 1000;
    const tick = () => {
      if (this._ws !== ws || ws.readyState !== WebSocket.OPEN) return;
      if (this.o.now() - this.lastPong > 2 * ms) {
        this._closingReason = `controller did not answer pings for ${2 * heartbeatSec} s`;
        this._lastError = this._closingReason;
        ws.terminate();
        return;
      }
      ws.ping();
      this.heartbeat = this.connTimer(tick, ms, 'heartbeat');
    };
    if (this.heartbeat) {
      clearTimeout(this.heartbeat);
      this.connTimers.delete(this.heartbeat);
    }
    this.heartbeat = this.connTimer(tick, ms, 'heartbeat');
  }

  // ---- outbound -------------------------------------------------------------------------------

  send(ws: WebSocket, m: AgentMessage): boolean {
    let text: string;
    try {
      text = encodeMessage('agent->controller', m);
    } catch (err) {
      this.o.log.error({ type: m.type, err: (err as Error).message }, 'controller link: not sending an invalid message');
      return false;
    }
    ws.send(text);
    return true;
  }

  /** Send only on the connection a request came in on, and only while it is open and not closing. */
  sendIfCurrent(ws: WebSocket, m: AgentMessage): boolean {
    return this._ws === ws && ws.readyState === WebSocket.OPEN && !this._closingReason && this.send(ws, m);
  }
}

function safeInventory(f: (() => Record<string, unknown>) | undefined): Record<string, unknown> {
  try {
    return f?.() ?? {};
  } catch {
    return {};
  }
}
