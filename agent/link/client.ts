/**
 * ControllerLink: the agent's WebSocket connection to its controller (DESIGN.md "Controller link";
 * ws practice from reference/node-daemon.md §4). One `WebSocket` per attempt (instances are single
 * use); every timer is cleared on close; reconnects use capped exponential backoff with full jitter.
 *
 * Trust model: the controller is authenticated (bearer token and/or client certificate from us,
 * pinned CA / SPKI from it), but its messages are still treated as hostile input: size-limited by
 * ws `maxPayload`, schema-checked, rate-limited. Nothing it sends can throw out of a listener: the
 * worst outcome is a logged disconnect and a reconnect with backoff. A verdict changes state only
 * once it is authenticated (./verdict.ts): it answers a challenge this agent answered on this
 * connection (once), its token verifies under a trusted controller token key, and every secret is
 * listed in the token. `ws://` is refused unless the caller opts in with `insecure: true`.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { checkServerIdentity as tlsCheckServerIdentity, type ConnectionOptions, type PeerCertificate } from 'node:tls';
import WebSocket from 'ws';
import type { JWK } from 'jose';
import { ConfigError, CvmError } from '../errors.js';
import { readBoundedText } from '../util/bounded-read.js';
import type { IncomingMessage } from 'node:http';
import type { AgentKey } from './agent-key.js';
import { backoffDelay, DEFAULT_BACKOFF, type BackoffOptions } from './backoff.js';
import type { Outbox } from './outbox.js';
import {
  CLOSE, DEFAULT_WINDOW, DEFAULT_WINDOW_BYTES, MAX_MESSAGE_BYTES, PROTOCOL, SUPPORTED_VERSIONS, decodeMessage, encodeMessage,
  type AgentMessage, type EventMessage, type ChallengeMessage, type ControllerMessage, type VerdictMessage, type WelcomeMessage,
} from './protocol.js';
import { storeSecrets, type SecretStore } from './secrets.js';
import { signEvidenceProof } from './proof.js';
import { publicTokenKeys, VerdictError, verifyVerdict, type VerifiedVerdict } from './verdict.js';

/** Challenges answered on one connection and still waiting for their verdict; the oldest is forgotten beyond this. */
const MAX_ANSWERED = 16;

export type LinkState = 'connecting' | 'up' | 'down' | 'stopped';

export interface LinkStatus {
  state: LinkState;
  url: string;
  /** The last thing that went wrong, for status/metrics (never contains the token). */
  lastError?: string;
  /** ms until the next connection attempt, when one is scheduled. */
  reconnectIn?: number;
  attempt: number;
  connectedSince?: string;
  protocol?: number;
  heartbeatSec?: number;
  attestIntervalSec?: number;
  /** Next event seq to send on this connection. */
  sendCursor: number;
  lastAckedSeq: number;
  /** Event messages sent on this connection and not yet acknowledged, and the window that bounds them. */
  inFlight: number;
  window: { events: number; bytes: number };
  bufferedAmount: number;
  counters: { connects: number; disconnects: number; malformed: number; unknown: number; eventsSent: number; challenges: number };
}

export interface ChallengeAnswer {
  /** bundleToJson(bundle) of evidence bound to the challenge nonce. */
  bundle: Record<string, unknown>;
  /** The agent's EAR for that evidence. */
  localResult: Record<string, unknown>;
}

export interface LinkHandlers {
  /** Run an attestation cycle bound to `nonce` (the daemon's job) and return its evidence. */
  onChallenge(nonce: Buffer, id: string, expiresAt: Date): Promise<ChallengeAnswer>;
  /** The controller asks for a cycle now; results travel as events. */
  onAttestRequest(): Promise<void>;
  /**
   * An authenticated verdict arrived (see ./verdict.ts for what was checked); secrets (if any) are
   * already decrypted into the SecretStore under these names. `verified.keyBound` is false for a
   * verdict that attests nothing about this agent's key (e.g. contraindicated): its token must not be served.
   */
  onVerdict(verdict: VerdictMessage, secretNames: string[], verified: VerifiedVerdict): void | Promise<void>;
  onWelcome?(welcome: WelcomeMessage): void;
}

/** pino-compatible subset: (fields, message). */
export interface LinkLogger {
  debug(fields: object, msg: string): void;
  info(fields: object, msg: string): void;
  warn(fields: object, msg: string): void;
  error(fields: object, msg: string): void;
}

const silent: LinkLogger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

export interface LinkTlsOptions {
  /** Controller CA(s), PEM: replaces the system roots, so only this CA is trusted. */
  ca?: string | Buffer | Array<string | Buffer>;
  /** Client certificate and key (PEM) for mutual TLS. */
  cert?: string | Buffer;
  key?: string | Buffer;
  servername?: string;
  /** Optional SPKI pins: base64 SHA-256 of the controller certificate's SubjectPublicKeyInfo. */
  pinnedSpkiSha256?: string[];
}

export interface LinkOptions {
  /** wss://, or ws:// only together with `insecure: true` */
  url: string;
  /** Allow an unencrypted, unauthenticated ws:// URL (loopback tests and demos); a warning is logged at every start. */
  insecure?: boolean;
  /**
   * Public keys (EC P-384 JWKs) the controller signs verdict tokens with (controller.tokenKey). Without
   * them only a `welcome.tokenKeys` JWKS received over wss:// with a pinned CA or SPKI is trusted.
   */
  tokenKeys?: JWK[];
  agentId: string;
  agentVersion: string;
  key: AgentKey;
  outbox: Outbox;
  handlers: LinkHandlers;
  inventory?: () => Record<string, unknown>;
  capabilities?: string[];
  /** File holding the bearer token; read at every connect so rotation needs no restart. */
  tokenFile?: string;
  tls?: LinkTlsOptions;
  /** WebSocket opening handshake limit (ws handshakeTimeout), and the wait for `welcome`. */
  handshakeTimeoutMs?: number;
  backoff?: BackoffOptions;
  /** Reset the backoff attempt counter after the link stayed up this long. */
  resetAfterMs?: number;
  /** Heartbeat before the controller's welcome sets one. */
  heartbeatSec?: number;
  /** Stop sending events while ws.bufferedAmount exceeds this. */
  highWatermarkBytes?: number;
  /** Inbound flood limit: a token bucket of `burst` messages refilled at `perSec`. */
  inboundRate?: { perSec: number; burst: number };
  /** Malformed messages tolerated per connection before disconnecting. */
  maxMalformed?: number;
  /** Challenges handled at once; more are answered with error "busy". */
  maxConcurrentChallenges?: number;
  secretStore?: SecretStore;
  log?: LinkLogger;
  random?: () => number;
  now?: () => number;
}

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

export class ControllerLink {
  private readonly o: Required<Omit<LinkOptions, 'tokenFile' | 'tls' | 'secretStore' | 'inventory' | 'tokenKeys'>> & Pick<LinkOptions, 'tokenFile' | 'tls' | 'secretStore' | 'inventory' | 'tokenKeys'>;
  /** Challenge id -> nonce of the challenges answered on the current connection, awaiting a verdict. */
  private answered = new Map<string, Buffer>();
  /** welcome.tokenKeys, kept only when the channel authenticates the controller (wss:// + pinned CA/SPKI). */
  private welcomeTokenKeys: JWK[] | undefined;
  private ws: WebSocket | undefined;
  private state: LinkState = 'down';
  private lastError: string | undefined;
  private attempt = 0;
  private reconnectAt: number | undefined;
  private connectedSince: number | undefined;
  private welcome: WelcomeMessage | undefined;
  /** Every seq below it was sent (or declared gone) on this connection; acks are clamped below it. */
  private cursor = 1;
  /** Flow control (docs/protocol.md "Flow control"): event messages sent and not yet acked. */
  private window = { events: DEFAULT_WINDOW, bytes: DEFAULT_WINDOW_BYTES };
  /** `settles`: the ack that frees it (its seq; for a dropped event sent ahead, the end of its range). */
  private inFlight: Array<{ settles: number; bytes: number }> = [];
  private inFlightBytes = 0;
  /** `dropped` events already sent ahead of a hole on this connection. */
  private readonly declared = new Set<number>();
  /** A `dropped` event for acked seqs the controller lost is being appended: send nothing meanwhile. */
  private declaring = false;
  private holeWarned = false;
  private connTimers = new Set<NodeJS.Timeout>();
  private reconnectTimer: NodeJS.Timeout | undefined;
  private lastPong = 0;
  private tokens = 0;
  private tokensAt = 0;
  private malformed = 0;
  private activeChallenges = 0;
  private attestRunning = false;
  private pumpScheduled = false;
  private penalty = 0;
  private unsubscribe: (() => void) | undefined;
  private closedWaiters: Array<() => void> = [];
  private readonly counters = { connects: 0, disconnects: 0, malformed: 0, unknown: 0, eventsSent: 0, challenges: 0 };

  constructor(opts: LinkOptions) {
    if (!/^wss?:\/\//i.test(opts.url)) throw new ConfigError(`controller url must be ws:// or wss:// (got ${opts.url})`);
    if (/^ws:\/\//i.test(opts.url) && opts.insecure !== true) {
      throw new ConfigError(`controller url ${opts.url} is ws://: unencrypted, and anything on the path could read evidence and inject messages; use wss:// (or set controller.insecure: true, for loopback tests and demos only)`);
    }
    if (!opts.tokenKeys?.length && !ControllerLink.channelAuthenticates(opts)) {
      throw new ConfigError('controller verdicts could not be authenticated: set controller.tokenKey (the controller\'s public token key), or use wss:// with controller.caFile so the key can come in welcome');
    }
    this.o = {
      capabilities: ['evidence-bundle-v1', 'events', 'secrets-jwe'],
      handshakeTimeoutMs: 10_000,
      backoff: DEFAULT_BACKOFF,
      resetAfterMs: 60_000,
      heartbeatSec: 30,
      highWatermarkBytes: 1024 * 1024,
      inboundRate: { perSec: 200, burst: 1000 },
      maxMalformed: 5,
      maxConcurrentChallenges: 2,
      log: silent,
      random: Math.random,
      now: Date.now,
      insecure: false,
      ...opts,
    };
  }

  /** wss:// with a pinned CA or SPKI pins: what the controller sends in welcome comes from the controller. */
  private static channelAuthenticates(opts: Pick<LinkOptions, 'url' | 'tls'>): boolean {
    return /^wss:\/\//i.test(opts.url) && (opts.tls?.ca !== undefined || (opts.tls?.pinnedSpkiSha256?.length ?? 0) > 0);
  }

  status(): LinkStatus {
    const now = this.o.now();
    const s: LinkStatus = {
      state: this.state,
      url: this.o.url,
      attempt: this.attempt,
      sendCursor: this.cursor,
      lastAckedSeq: this.o.outbox.lastAcked,
      inFlight: this.inFlight.length,
      window: { ...this.window },
      bufferedAmount: this.ws?.bufferedAmount ?? 0,
      counters: { ...this.counters },
    };
    if (this.lastError !== undefined) s.lastError = this.lastError;
    if (this.reconnectAt !== undefined) s.reconnectIn = Math.max(0, this.reconnectAt - now);
    if (this.connectedSince !== undefined) s.connectedSince = new Date(this.connectedSince).toISOString();
    if (this.welcome) {
      s.protocol = this.welcome.protocol;
      s.heartbeatSec = this.welcome.heartbeatSec;
      if (this.welcome.attestIntervalSec !== undefined) s.attestIntervalSec = this.welcome.attestIntervalSec;
    }
    return s;
  }

  start(): void {
    if (this.state === 'stopped') throw new CvmError('ERR_LINK_STOPPED', 'a stopped ControllerLink cannot be restarted; create a new one');
    if (this.ws || this.reconnectTimer) return;
    if (/^ws:\/\//i.test(this.o.url)) {
      this.o.log.warn({ url: this.o.url }, 'controller link is NOT encrypted or authenticated (ws://, controller.insecure: true): use it on loopback only; verdicts are still checked against the pinned controller.tokenKey');
    }
    this.unsubscribe ??= this.o.outbox.subscribe(() => this.schedulePump());
    void this.connect();
  }

  /** Close the link for good (SIGTERM); resolves once the socket is closed. */
  async stop(): Promise<void> {
    this.state = 'stopped';
    this.unsubscribe?.();
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    this.reconnectAt = undefined;
    const ws = this.ws;
    if (!ws) return;
    const closed = new Promise<void>((resolve) => this.closedWaiters.push(resolve));
    if (ws.readyState === WebSocket.OPEN) ws.close(CLOSE.GOING_AWAY, 'agent stopping');
    else ws.terminate();
    // close() waits for the peer's close frame; do not let a silent peer hold shutdown.
    const t = setTimeout(() => ws.terminate(), 2000);
    await closed;
    clearTimeout(t);
  }

  // ---- connection lifecycle -------------------------------------------------------------------

  private async connect(): Promise<void> {
    this.reconnectTimer = undefined;
    this.reconnectAt = undefined;
    if (this.state === 'stopped') return;
    this.state = 'connecting';
    this.welcome = undefined;
    this.answered.clear();
    this.welcomeTokenKeys = undefined;
    this.malformed = 0;
    this.penalty = 0;
    const headers: Record<string, string> = {};
    if (this.o.tokenFile) {
      try {
        // Re-read at every connect (a rotated credential applies at once), within the token file cap.
        const token = (await readBoundedText(this.o.tokenFile, 'token')).trim();
        if (!token || /[\r\n]/.test(token)) throw new ConfigError('the token file is empty or has more than one line');
        headers.Authorization = `Bearer ${token}`;
      } catch (err) {
        this.lastError = `cannot read the bearer token file ${this.o.tokenFile}: ${(err as Error).message}`;
        this.o.log.error({ err: this.lastError }, 'controller link: no credentials');
        this.state = 'down';
        this.scheduleReconnect();
        return;
      }
    }
    if (this.state !== 'connecting') return; // stopped while reading the token
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
      ws = new WebSocket(this.o.url, [PROTOCOL], options as WebSocket.ClientOptions);
    } catch (err) {
      this.lastError = `cannot connect: ${(err as Error).message}`;
      this.state = 'down';
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    this.counters.connects++;
    // 'error' first: an unhandled 'error' would crash the process. ws always follows it with 'close'.
    ws.on('error', (err) => {
      if (this.ws !== ws) return;
      // Keep a more specific reason (HTTP status, pong timeout, flood) if we already have one.
      if (!this.closingReason) this.lastError = err.message;
      this.o.log.warn({ err: err.message }, 'controller link error');
    });
    ws.on('unexpected-response', (_req, res: IncomingMessage) => {
      const status = res.statusCode ?? 0;
      this.closingReason = `controller refused the connection: HTTP ${status}${res.statusMessage ? ` ${res.statusMessage}` : ''}`;
      this.lastError = this.closingReason;
      // Wrong or expired credentials will not fix themselves within a second: back off harder.
      if (status === 401 || status === 403) this.penalty = 3;
      res.resume();
      this.o.log.error({ status }, 'controller link: handshake refused');
      ws.terminate();
    });
    ws.on('open', () => this.onOpen(ws));
    ws.on('message', (data, isBinary) => this.onMessage(ws, data as Buffer | ArrayBuffer | Buffer[], isBinary));
    ws.on('pong', () => {
      this.lastPong = this.o.now();
    });
    ws.on('close', (code, reason) => this.onClose(ws, code, reason.toString('utf8').slice(0, 200)));
  }

  private closingReason: string | undefined;

  private onOpen(ws: WebSocket): void {
    if (this.ws !== ws) return;
    this.closingReason = undefined;
    if (ws.protocol !== PROTOCOL) {
      this.disconnect(ws, CLOSE.PROTOCOL_ERROR, `controller selected subprotocol "${ws.protocol}", expected ${PROTOCOL}`);
      return;
    }
    this.lastPong = this.o.now();
    this.tokens = this.o.inboundRate.burst;
    this.tokensAt = this.o.now();
    this.startHeartbeat(ws, this.o.heartbeatSec);
    this.welcomeTimer = this.connTimer(() => this.disconnect(ws, CLOSE.HANDSHAKE_TIMEOUT, `no welcome within ${this.o.handshakeTimeoutMs} ms`), this.o.handshakeTimeoutMs, 'welcome');
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

  private onClose(ws: WebSocket, code: number, reason: string): void {
    if (this.ws !== ws) return;
    this.ws = undefined;
    for (const t of this.connTimers) clearTimeout(t);
    this.connTimers.clear();
    this.heartbeat = undefined;
    this.drainPoll = undefined;
    this.welcomeTimer = undefined;
    const wasUp = this.state === 'up';
    if (this.closingReason) this.lastError = this.closingReason;
    else if (code !== CLOSE.NORMAL || wasUp) {
      if (code !== 1006 || !this.lastError) this.lastError = `connection closed (code ${code}${reason ? `: ${reason}` : ''})`;
    }
    // Neither a version mismatch nor a refused identity (4003) fixes itself within a second: back off harder.
    if (code === CLOSE.VERSION_MISMATCH || code === CLOSE.FORBIDDEN) this.penalty = Math.max(this.penalty, 3);
    this.closingReason = undefined;
    this.connectedSince = undefined;
    this.welcome = undefined;
    // A verdict is accepted only on the connection whose challenge it answers.
    this.answered.clear();
    this.welcomeTokenKeys = undefined;
    this.counters.disconnects++;
    for (const w of this.closedWaiters.splice(0)) w();
    if (this.state === 'stopped') return;
    this.state = 'down';
    this.o.log.warn({ code, reason, lastError: this.lastError }, 'controller link down');
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.state === 'stopped' || this.reconnectTimer) return;
    const delay = backoffDelay(this.attempt + this.penalty, this.o.backoff, this.o.random);
    this.attempt++;
    this.reconnectAt = this.o.now() + delay;
    // Not unref'd: a daemon whose only work is the link must not exit while waiting to reconnect.
    this.reconnectTimer = setTimeout(() => void this.connect(), delay);
  }

  /** Close with a reason we keep as lastError; terminate if the peer does not finish the close handshake. */
  private disconnect(ws: WebSocket, code: number, reason: string): void {
    if (this.ws !== ws || this.closingReason) return;
    this.closingReason = reason;
    this.lastError = reason;
    this.o.log.warn({ code, reason }, 'controller link: disconnecting');
    if (ws.readyState === WebSocket.OPEN) {
      ws.close(code, reason.slice(0, 120));
      this.connTimer(() => ws.terminate(), 2000, 'close');
    } else ws.terminate();
  }

  private connTimer(fn: () => void, ms: number, _what: string): NodeJS.Timeout {
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
      if (this.ws !== ws || ws.readyState !== WebSocket.OPEN) return;
      if (this.o.now() - this.lastPong > 2 * ms) {
        this.closingReason = `controller did not answer pings for ${2 * heartbeatSec} s`;
        this.lastError = this.closingReason;
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
  private heartbeat: NodeJS.Timeout | undefined;
  private welcomeTimer: NodeJS.Timeout | undefined;

  // ---- inbound --------------------------------------------------------------------------------

  private takeToken(): boolean {
    const now = this.o.now();
    const { perSec, burst } = this.o.inboundRate;
    this.tokens = Math.min(burst, this.tokens + ((now - this.tokensAt) / 1000) * perSec);
    this.tokensAt = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  private onMessage(ws: WebSocket, data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean): void {
    if (this.ws !== ws || this.closingReason) return;
    if (!this.takeToken()) {
      this.disconnect(ws, CLOSE.POLICY, `controller exceeded ${this.o.inboundRate.perSec} messages/s (burst ${this.o.inboundRate.burst})`);
      return;
    }
    const decoded = isBinary ? ({ ok: false, error: 'binary frames are not part of the protocol' } as const) : decodeMessage(data, 'controller->agent');
    if (!decoded.ok) {
      if ('unknown' in decoded && decoded.unknown) {
        this.counters.unknown++;
        this.o.log.info({ type: decoded.type }, 'controller link: ignoring unknown message type');
        return;
      }
      this.counters.malformed++;
      this.o.log.warn({ error: decoded.error }, 'controller link: malformed message ignored');
      if (++this.malformed > this.o.maxMalformed) this.disconnect(ws, CLOSE.PROTOCOL_ERROR, `controller sent more than ${this.o.maxMalformed} malformed messages`);
      return;
    }
    try {
      this.dispatch(ws, decoded.message);
    } catch (err) {
      // A bug in a handler must not take the agent down; the link restarts instead.
      this.o.log.error({ err: (err as Error).message }, 'controller link: handler failed');
      this.disconnect(ws, CLOSE.PROTOCOL_ERROR, `internal error handling ${decoded.message.type}`);
    }
  }

  private dispatch(ws: WebSocket, m: ControllerMessage): void {
    if (!this.welcome && m.type !== 'welcome' && m.type !== 'error') {
      this.disconnect(ws, CLOSE.PROTOCOL_ERROR, `controller sent "${m.type}" before welcome`);
      return;
    }
    switch (m.type) {
      case 'welcome':
        return this.onWelcome(ws, m);
      case 'challenge':
        return void this.onChallenge(ws, m);
      case 'attest':
        return void this.onAttest();
      case 'verdict':
        return void this.onVerdict(ws, m);
      case 'ack': {
        // Never more than we sent on this link: a controller cannot make us forget unsent events.
        const upTo = Math.min(m.seq, this.cursor - 1);
        this.settle(upTo);
        void this.o.outbox.ack(upTo).catch((err: Error) => this.o.log.error({ err: err.message }, 'outbox ack failed'));
        this.schedulePump();
        return;
      }
      case 'error':
        this.o.log.warn({ code: m.code, message: m.message, challengeId: m.challengeId }, 'controller reported an error');
        return;
    }
  }

  private onWelcome(ws: WebSocket, w: WelcomeMessage): void {
    if (this.welcome) {
      this.disconnect(ws, CLOSE.PROTOCOL_ERROR, 'controller sent a second welcome');
      return;
    }
    if (w.protocol < SUPPORTED_VERSIONS.min || w.protocol > SUPPORTED_VERSIONS.max) {
      this.disconnect(ws, CLOSE.VERSION_MISMATCH, `controller chose protocol ${w.protocol}; this agent speaks ${SUPPORTED_VERSIONS.min}..${SUPPORTED_VERSIONS.max}`);
      return;
    }
    if (this.welcomeTimer) {
      clearTimeout(this.welcomeTimer);
      this.connTimers.delete(this.welcomeTimer);
      this.welcomeTimer = undefined;
    }
    this.welcome = w;
    if (w.tokenKeys) {
      if (ControllerLink.channelAuthenticates(this.o)) {
        try {
          this.welcomeTokenKeys = publicTokenKeys(w.tokenKeys, 'welcome.tokenKeys');
        } catch (err) {
          this.o.log.warn({ err: (err as Error).message }, 'controller link: ignoring unusable welcome.tokenKeys');
        }
      } else {
        // Anything on an unauthenticated path could have written them; the pinned tokenKeys decide.
        this.o.log.debug({}, 'controller link: ignoring welcome.tokenKeys: the channel does not authenticate the controller (no pinned CA or SPKI)');
      }
    }
    this.state = 'up';
    this.lastError = undefined;
    this.connectedSince = this.o.now();
    this.startHeartbeat(ws, w.heartbeatSec);
    // Reset the backoff only once the link proved stable (a flapping controller keeps backing off).
    this.connTimer(() => {
      this.attempt = 0;
    }, this.o.resetAfterMs, 'reset-backoff');
    const box = this.o.outbox;
    let from = box.resumeFrom;
    if (w.resumeFrom !== undefined) {
      if (w.resumeFrom <= box.lastSeq + 1) {
        from = w.resumeFrom;
        // The controller already has everything below its resumeFrom.
        if (w.resumeFrom - 1 > box.lastAcked) void box.ack(w.resumeFrom - 1).catch(() => undefined);
      } else {
        this.o.log.warn({ controller: w.resumeFrom, agent: box.resumeFrom }, 'controller resumeFrom is ahead of this agent (state reset?); resending what we hold');
      }
    }
    this.cursor = from;
    this.window = { events: w.window ?? DEFAULT_WINDOW, bytes: w.windowBytes ?? DEFAULT_WINDOW_BYTES };
    this.inFlight = [];
    this.inFlightBytes = 0;
    this.declared.clear();
    this.holeWarned = false;
    this.o.log.info({ protocol: w.protocol, heartbeatSec: w.heartbeatSec, resumeFrom: from, window: this.window }, 'controller link up');
    try {
      this.o.handlers.onWelcome?.(w);
    } catch (err) {
      this.o.log.error({ err: (err as Error).message }, 'onWelcome handler failed');
    }
    this.pump();
  }

  private async onChallenge(ws: WebSocket, c: ChallengeMessage): Promise<void> {
    this.counters.challenges++;
    const expiresAt = new Date(c.expiresAt);
    if (!(expiresAt.getTime() > this.o.now())) {
      this.sendIfCurrent(ws, { type: 'error', code: 'challenge-expired', message: `challenge ${c.id} expired at ${c.expiresAt}`, challengeId: c.id });
      return;
    }
    if (this.activeChallenges >= this.o.maxConcurrentChallenges) {
      this.sendIfCurrent(ws, { type: 'error', code: 'busy', message: `already answering ${this.activeChallenges} challenges`, challengeId: c.id });
      return;
    }
    this.activeChallenges++;
    try {
      const answer = await this.o.handlers.onChallenge(Buffer.from(c.nonce, 'hex'), c.id, expiresAt);
      if (this.o.now() > expiresAt.getTime()) {
        this.sendIfCurrent(ws, { type: 'error', code: 'challenge-expired', message: `evidence for ${c.id} was ready after ${c.expiresAt}`, challengeId: c.id });
        return;
      }
      const proof = await signEvidenceProof({ agentId: this.o.agentId, challengeId: c.id, nonce: c.nonce }, this.o.key);
      if (this.sendIfCurrent(ws, { type: 'evidence', challengeId: c.id, bundle: answer.bundle, localResult: answer.localResult, proof })) {
        this.answered.delete(c.id);
        this.answered.set(c.id, Buffer.from(c.nonce, 'hex'));
        while (this.answered.size > MAX_ANSWERED) this.answered.delete(this.answered.keys().next().value as string);
      }
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.o.log.error({ challengeId: c.id, err: message }, 'attestation for a controller challenge failed');
      this.sendIfCurrent(ws, { type: 'error', code: 'attestation-failed', message: message.slice(0, 4000), challengeId: c.id });
    } finally {
      this.activeChallenges--;
    }
  }

  private async onAttest(): Promise<void> {
    if (this.attestRunning) return; // one request at a time; the running cycle answers it
    this.attestRunning = true;
    try {
      await this.o.handlers.onAttestRequest();
    } catch (err) {
      this.o.log.error({ err: (err as Error).message }, 'controller-requested attestation failed');
    } finally {
      this.attestRunning = false;
    }
  }

  private async onVerdict(ws: WebSocket, v: VerdictMessage): Promise<void> {
    // Taken synchronously, before any await: a second verdict for the same challenge finds nothing.
    const nonce = this.answered.get(v.challengeId);
    this.answered.delete(v.challengeId);
    try {
      if (!nonce) throw new VerdictError(`verdict for challenge ${v.challengeId}, which this agent did not answer on this connection (unsolicited or replayed)`);
      const keys = this.o.tokenKeys?.length ? this.o.tokenKeys : (this.welcomeTokenKeys ?? []);
      const verified = await verifyVerdict(v, keys, { agentId: this.o.agentId, nonce, keyThumbprint: this.o.key.kid, now: new Date(this.o.now()) });
      let names: string[] = [];
      if (v.secrets && v.secrets.length > 0) {
        if (!this.o.secretStore) throw new CvmError('ERR_SECRET', 'secrets released but this agent has no secret store');
        names = await storeSecrets(v.secrets, this.o.key, this.o.secretStore, { challengeId: v.challengeId, at: new Date(this.o.now()) });
      }
      await this.o.handlers.onVerdict(v, names, verified);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.o.log.error({ challengeId: v.challengeId, err: message }, 'verdict could not be applied');
      this.sendIfCurrent(ws, { type: 'error', code: 'verdict-rejected', message: message.slice(0, 4000), challengeId: v.challengeId });
    }
  }

  // ---- outbound -------------------------------------------------------------------------------

  private send(ws: WebSocket, m: AgentMessage): boolean {
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

  private sendIfCurrent(ws: WebSocket, m: AgentMessage): boolean {
    return this.ws === ws && ws.readyState === WebSocket.OPEN && !this.closingReason && this.send(ws, m);
  }

  private schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    queueMicrotask(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  /** An ack frees every in-flight event it covers. */
  private settle(upTo: number): void {
    if (!this.inFlight.some((f) => f.settles <= upTo)) return;
    this.inFlight = this.inFlight.filter((f) => {
      if (f.settles > upTo) return true;
      this.inFlightBytes -= f.bytes;
      return false;
    });
  }

  /**
   * Send outbox events from the cursor, in seq order, while the window has room and the socket
   * drains (poll when over the watermark); more is sent as acks arrive. A hole below the next held
   * event (events dropped by the bound, or acked earlier and lost by the controller) is declared
   * first: the controller accepts only the seq after its last one (docs/protocol.md "Gaps").
   */
  private pump(): void {
    const ws = this.ws;
    if (!ws || this.state !== 'up' || ws.readyState !== WebSocket.OPEN || this.closingReason) return;
    const box = this.o.outbox;
    for (;;) {
      if (this.declaring) return;
      const next = box.next(this.cursor);
      if (!next) return;
      let e: EventMessage = next;
      let declares: number | undefined;
      if (next.seq > this.cursor) {
        const d = box.declarationFor(this.cursor);
        if (d) {
          const to = (d.data as { to: number }).to;
          if (this.declared.has(d.seq)) {
            this.cursor = to + 1;
            continue;
          }
          e = d;
          declares = to;
        } else if (this.cursor <= box.lastAcked) {
          this.declareAcked(this.cursor, Math.min(box.lastAcked, next.seq - 1));
          return;
        } else if (!this.holeWarned) {
          // Not expected (every drop is declared); the controller holds what follows until it is.
          this.holeWarned = true;
          this.o.log.warn({ from: this.cursor, to: next.seq - 1 }, 'controller link: events missing from the outbox without a dropped event');
        }
      }
      const text = JSON.stringify(e);
      const bytes = Buffer.byteLength(text);
      if (this.inFlight.length >= this.window.events || (this.inFlight.length > 0 && this.inFlightBytes + bytes > this.window.bytes)) return;
      if (ws.bufferedAmount > this.o.highWatermarkBytes) {
        if (!this.drainPoll) {
          this.drainPoll = this.connTimer(() => {
            this.drainPoll = undefined;
            this.pump();
          }, 50, 'drain');
        }
        return;
      }
      ws.send(text);
      // A declaration sent ahead is done once the controller acks past its range (it then drops
      // its copy and stores the dropped event when it comes again in its own place).
      this.inFlight.push({ settles: declares ?? e.seq, bytes });
      this.inFlightBytes += bytes;
      this.counters.eventsSent++;
      if (declares !== undefined) {
        // The dropped event itself is sent again in its own place (the controller stores it there).
        this.declared.add(e.seq);
        this.cursor = declares + 1;
      } else this.cursor = e.seq + 1;
    }
  }

  /**
   * The controller wants seqs this agent already had acknowledged and no longer holds (its state was
   * reset or restored from a backup): say so with a signed `dropped` event, sent ahead like any drop.
   */
  private declareAcked(from: number, to: number): void {
    this.declaring = true;
    this.o.log.warn({ from, to }, 'controller link: the controller no longer has events it acknowledged; declaring them with a signed dropped event');
    this.o.outbox
      .append('dropped', { from, to, count: to - from + 1, reason: 'acknowledged earlier; no longer held by the agent' })
      .then(
        () => {
          this.declaring = false;
          this.schedulePump();
        },
        (err: Error) => {
          // Retried at the next append, ack or reconnect (not in a loop against a failing disk).
          this.declaring = false;
          this.o.log.error({ err: err.message }, 'controller link: could not append the dropped event');
        },
      );
  }
  private drainPoll: NodeJS.Timeout | undefined;
}

function safeInventory(f: (() => Record<string, unknown>) | undefined): Record<string, unknown> {
  try {
    return f?.() ?? {};
  } catch {
    return {};
  }
}
