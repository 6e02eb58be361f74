/**
 * ControllerLink: the agent's WebSocket connection to its controller (docs/protocol.md).
 * This file assembles the link from one part per concern and keeps its public API:
 * - ./connection.ts: connection lifecycle (one socket per attempt, hello/welcome wait, heartbeat,
 *   reconnect with backoff);
 * - ./dispatch.ts: inbound messages (rate limit, decode, route; welcome brings the link up);
 * - ./challenge-handler.ts: challenges, attestation requests, verdicts and their secrets;
 * - ./event-pump.ts: the outbox pump (ack window, flow control, declared holes).
 *
 * Trust model: the controller is authenticated (bearer token and/or client certificate from us,
 * pinned CA / SPKI from it), but its messages are still treated as hostile input: size-limited by
 * ws `maxPayload`, schema-checked, rate-limited. Nothing it sends can throw out of a listener: the
 * worst outcome is a logged disconnect and a reconnect with backoff. A verdict changes state only
 * once it is authenticated (./verdict.ts): it answers a challenge this agent answered on this
 * connection (once), its token verifies under a trusted controller token key, and every secret is
 * listed in the token. `ws://` is refused unless the caller opts in with `insecure: true`.
 */
import { ConfigError, CvmError } from '../errors.js';
import { DEFAULT_BACKOFF } from './backoff.js';
import { ChallengeHandler } from './challenge-handler.js';
import { LinkConnection } from './connection.js';
import { InboundDispatcher } from './dispatch.js';
import { EventPump } from './event-pump.js';
import { channelAuthenticates, type LinkCounters, type LinkLogger, type LinkOptions, type LinkStatus, type ResolvedLinkOptions } from './link-options.js';

export { makeServerIdentityCheck } from './connection.js';
export type { ChallengeAnswer, LinkHandlers, LinkLogger, LinkOptions, LinkState, LinkStatus, LinkTlsOptions } from './link-options.js';

const silent: LinkLogger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

export class ControllerLink {
  private readonly o: ResolvedLinkOptions;
  private readonly counters: LinkCounters = { connects: 0, disconnects: 0, malformed: 0, unknown: 0, eventsSent: 0, challenges: 0 };
  private readonly conn: LinkConnection;
  private readonly challenges: ChallengeHandler;
  private readonly pump: EventPump;
  private readonly inbound: InboundDispatcher;
  private unsubscribe: (() => void) | undefined;

  constructor(opts: LinkOptions) {
    for (const url of [opts.url, ...(opts.urls ?? [])]) {
      if (!/^wss?:\/\//i.test(url)) throw new ConfigError(`controller url must be ws:// or wss:// (got ${url})`);
      if (/^ws:\/\//i.test(url) && opts.insecure !== true) {
        throw new ConfigError(
          `controller url ${url} is ws://: unencrypted, and anything on the path could read evidence and inject messages; use wss:// (or set controller.insecure: true, for loopback tests and demos only)`,
        );
      }
    }
    if (!opts.tokenKeys?.length && !channelAuthenticates(opts)) {
      throw new ConfigError(
        "controller verdicts could not be authenticated: set controller.tokenKey (the controller's public token key), or use wss:// with controller.caFile so the key can come in welcome",
      );
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
    // The parts share this one options object and counters; the connection reaches the others
    // only through these hooks, so none of them imports this file.
    this.conn = new LinkConnection(this.o, this.counters, {
      onConnecting: () => {
        this.challenges.reset();
        this.inbound.reset();
      },
      onOpen: () => this.inbound.onOpen(),
      onMessage: (ws, data, isBinary) => this.inbound.onMessage(ws, data, isBinary),
      onDown: () => {
        this.pump.onDown();
        this.challenges.reset();
      },
    });
    this.challenges = new ChallengeHandler(this.o, this.counters, this.conn);
    this.pump = new EventPump(this.o, this.counters, this.conn);
    this.inbound = new InboundDispatcher(this.o, this.counters, this.conn, this.challenges, this.pump);
  }

  status(): LinkStatus {
    const now = this.o.now();
    const c = this.conn;
    const s: LinkStatus = {
      state: c.state,
      url: c.url,
      attempt: c.attempt,
      sendCursor: this.pump.cursor,
      lastAckedSeq: this.o.outbox.lastAcked,
      inFlight: this.pump.inFlightCount,
      window: this.pump.window,
      bufferedAmount: c.ws?.bufferedAmount ?? 0,
      counters: { ...this.counters },
    };
    if (c.lastError !== undefined) s.lastError = c.lastError;
    if (c.reconnectAt !== undefined) s.reconnectIn = Math.max(0, c.reconnectAt - now);
    if (c.connectedSince !== undefined) s.connectedSince = new Date(c.connectedSince).toISOString();
    if (c.welcome) {
      s.protocol = c.welcome.protocol;
      s.heartbeatSec = c.welcome.heartbeatSec;
      if (c.welcome.attestIntervalSec !== undefined) s.attestIntervalSec = c.welcome.attestIntervalSec;
    }
    return s;
  }

  start(): void {
    if (this.conn.state === 'stopped') throw new CvmError('ERR_LINK_STOPPED', 'a stopped ControllerLink cannot be restarted; create a new one');
    if (this.conn.active) return;
    if ([this.o.url, ...(this.o.urls ?? [])].some((u) => /^ws:\/\//i.test(u))) {
      this.o.log.warn(
        { url: this.o.url },
        'controller link is NOT encrypted or authenticated (ws://, controller.insecure: true): use it on loopback only; verdicts are still checked against the pinned controller.tokenKey',
      );
    }
    this.unsubscribe ??= this.o.outbox.subscribe(() => this.pump.schedulePump());
    void this.conn.connect();
  }

  /** Close the link for good (SIGTERM); resolves once the socket is closed. */
  async stop(): Promise<void> {
    this.unsubscribe?.();
    await this.conn.stop();
  }
}
