/**
 * Inbound messages from the controller: rate-limited, decoded and schema-checked (./protocol.ts),
 * then routed. The controller is authenticated, but what it sends is still hostile input: nothing
 * can throw out of here (a handler bug becomes a logged disconnect), malformed messages are counted
 * and end the connection past a limit, and nothing but `welcome` (or `error`) is accepted before
 * the welcome.
 */
import type WebSocket from 'ws';
import type { ChallengeHandler } from './challenge-handler.js';
import type { LinkConnection } from './connection.js';
import type { EventPump } from './event-pump.js';
import type { LinkCounters, ResolvedLinkOptions } from './link-options.js';
import { CLOSE, type ControllerMessage, decodeMessage, SUPPORTED_VERSIONS, type WelcomeMessage } from './protocol.js';

export class InboundDispatcher {
  /** Inbound flood limit: a token bucket (LinkOptions.inboundRate), refilled with time. */
  private tokens = 0;
  private tokensAt = 0;
  /** Malformed messages on this connection. */
  private malformed = 0;

  constructor(
    private readonly o: ResolvedLinkOptions,
    private readonly counters: LinkCounters,
    private readonly conn: LinkConnection,
    private readonly challenges: ChallengeHandler,
    private readonly pump: EventPump,
  ) {}

  /** A new connection attempt: its malformed budget starts again. */
  reset(): void {
    this.malformed = 0;
  }

  /** The socket opened: a full bucket. */
  onOpen(): void {
    this.tokens = this.o.inboundRate.burst;
    this.tokensAt = this.o.now();
  }

  private takeToken(): boolean {
    const now = this.o.now();
    const { perSec, burst } = this.o.inboundRate;
    this.tokens = Math.min(burst, this.tokens + ((now - this.tokensAt) / 1000) * perSec);
    this.tokensAt = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  onMessage(ws: WebSocket, data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean): void {
    if (this.conn.ws !== ws || this.conn.closingReason) return;
    if (!this.takeToken()) {
      this.conn.disconnect(ws, CLOSE.POLICY, `controller exceeded ${this.o.inboundRate.perSec} messages/s (burst ${this.o.inboundRate.burst})`);
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
      if (++this.malformed > this.o.maxMalformed)
        this.conn.disconnect(ws, CLOSE.PROTOCOL_ERROR, `controller sent more than ${this.o.maxMalformed} malformed messages`);
      return;
    }
    try {
      this.dispatch(ws, decoded.message);
    } catch (err) {
      // A bug in a handler must not take the agent down; the link restarts instead.
      this.o.log.error({ err: (err as Error).message }, 'controller link: handler failed');
      this.conn.disconnect(ws, CLOSE.PROTOCOL_ERROR, `internal error handling ${decoded.message.type}`);
    }
  }

  private dispatch(ws: WebSocket, m: ControllerMessage): void {
    if (!this.conn.welcome && m.type !== 'welcome' && m.type !== 'error') {
      this.conn.disconnect(ws, CLOSE.PROTOCOL_ERROR, `controller sent "${m.type}" before welcome`);
      return;
    }
    switch (m.type) {
      case 'welcome':
        return this.onWelcome(ws, m);
      case 'challenge':
        return void this.challenges.onChallenge(ws, m);
      case 'attest':
        return void this.challenges.onAttest();
      case 'verdict':
        return void this.challenges.onVerdict(ws, m);
      case 'ack':
        return this.pump.onAck(m.seq);
      case 'error':
        this.o.log.warn({ code: m.code, message: m.message, challengeId: m.challengeId }, 'controller reported an error');
        return;
    }
  }

  /** The handshake's end: check the version, then bring up each part of the link in turn. */
  private onWelcome(ws: WebSocket, w: WelcomeMessage): void {
    if (this.conn.welcome) {
      this.conn.disconnect(ws, CLOSE.PROTOCOL_ERROR, 'controller sent a second welcome');
      return;
    }
    if (w.protocol < SUPPORTED_VERSIONS.min || w.protocol > SUPPORTED_VERSIONS.max) {
      this.conn.disconnect(
        ws,
        CLOSE.VERSION_MISMATCH,
        `controller chose protocol ${w.protocol}; this agent speaks ${SUPPORTED_VERSIONS.min}..${SUPPORTED_VERSIONS.max}`,
      );
      return;
    }
    this.conn.acceptWelcome(w);
    this.challenges.takeWelcomeKeys(w);
    this.conn.markUp(ws, w.heartbeatSec);
    const from = this.pump.resume(w);
    this.o.log.info({ protocol: w.protocol, heartbeatSec: w.heartbeatSec, resumeFrom: from, window: this.pump.window }, 'controller link up');
    try {
      this.o.handlers.onWelcome?.(w);
    } catch (err) {
      this.o.log.error({ err: (err as Error).message }, 'onWelcome handler failed');
    }
    this.pump.pump();
  }
}
