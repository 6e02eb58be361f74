/**
 * One link's incoming event stream on the controller (docs/protocol.md "Flow control" and "Gaps"):
 *
 *  - Strict order: only `seq == lastSeq + 1` is stored. A later seq is HELD (bounded in bytes per
 *    link and over all links) until the seqs before it arrive or are declared gone by a signed
 *    `dropped` event; a replayed later seq can therefore never push genuine earlier events aside.
 *  - At or below lastSeq: a duplicate is acked again; a DIFFERENT event under a stored seq (checked
 *    against the hash kept per recent seq) is a conflict: logged, counted and recorded as an alarm
 *    in the agent's record, answered with error `event-conflict`, never taken as an ack.
 *  - Keys: an event is verified with the attested key its JWS `kid` names. One signed by a key that
 *    was never attested waits while that key might still be attested, i.e. until this link's own
 *    key has been attested by evidence on this link: then the older key can no longer be (agent
 *    keys live in memory only; a process that died before attesting took its key along), and the
 *    event becomes a recorded gap "unverifiable: signing key never attested" so the stream moves on.
 *  - Held events are kept only by bytes the agent's ack window allows (welcome.windowBytes); an
 *    agent that sends more than its window broke flow control and the link is closed (1008); when
 *    all links together hold `heldBytesTotal`, a new hold closes the link with 1013 (try again
 *    later). Acks for what was stored go out before either close (the session flushes first).
 *  - A stream that is not live (a contender session, not yet the agent's live one) only holds, within
 *    the same bounds: one stream per agent stores at a time. Once live it drains what it held.
 */
import type { Logger } from 'pino';
import { checkEventSignature, eventKeyId } from '../link/events.js';
import { CLOSE, type EventMessage } from '../link/protocol.js';
import { eventHash, type AgentRecord, type AgentRegistry } from './registry.js';
import { ParseError } from '../errors.js';

/** Held bytes over all links (one object shared by the controller's sessions). */
export interface HeldBudget {
  used: number;
  readonly max: number;
}

export interface StreamOutcome {
  /** The record changed (write it before acking). */
  changed: boolean;
  /** Something was stored, declared or recognised as a duplicate: send an ack. */
  ack: boolean;
  /** Errors to send to the agent (not fatal for the link). */
  problems: Array<{ code: string; message: string }>;
  /** The link must close (after the session flushed and acked what was stored). */
  close?: { code: number; reason: string };
}

interface Held {
  ev: EventMessage;
  bytes: number;
  hash: string;
  /** The signature was checked under an attested key. */
  verified: boolean;
}

type Check = { ok: true } | { wait: true } | { unverifiable: true } | { bad: string };

export const UNVERIFIABLE = 'signing key never attested';

export interface EventStreamOptions {
  agentId: string;
  /** Thumbprint of the key this link's hello announced. */
  sessionKid: string;
  registry: AgentRegistry;
  /** Per link: welcome.window (events) and welcome.windowBytes. */
  maxHeld: number;
  maxHeldBytes: number;
  budget: HeldBudget;
  log: Logger;
  /** False for a contender session: hold, store nothing, until `live` is set (default true). */
  live?: boolean;
  /** An event was stored (metrics). */
  onStored?: () => void;
}

export class EventStream {
  private readonly held = new Map<number, Held>();
  private heldBytes = 0;
  /** This link's own key was attested by evidence on this link (see the file comment). */
  keyAttestedHere = false;
  /** Stores (the link is the agent's live session); see the file comment. */
  live: boolean;

  constructor(private readonly o: EventStreamOptions) {
    this.live = o.live ?? true;
  }

  get heldCount(): number {
    return this.held.size;
  }
  get bytesHeld(): number {
    return this.heldBytes;
  }

  private outcome(): StreamOutcome {
    return { changed: false, ack: false, problems: [] };
  }

  /** An event message from the agent; `bytes` is its size on the wire. */
  async receive(ev: EventMessage, bytes: number, now: Date): Promise<StreamOutcome> {
    const { registry, agentId } = this.o;
    const out = this.outcome();
    const rec = registry.get(agentId);
    let hash: string;
    try {
      hash = eventHash(ev);
    } catch (err) {
      if (!(err instanceof ParseError)) throw err;
      // Fields with no RFC 8785 form (a lone surrogate) cannot have been signed: refuse the event, keep the link.
      out.problems.push({ code: 'bad-event-signature', message: `event ${ev.seq} rejected: ${err.message}` });
      return out;
    }
    if (ev.seq <= rec.lastSeq) {
      // Not live: another link owns the stream (and its alarms); acks are cumulative, so the ack sent
      // when this link goes live covers this seq.
      if (this.live) await this.old(rec, ev, now, out);
      return out;
    }
    const already = this.held.get(ev.seq);
    if (already) {
      // Sent twice on one link (e.g. a dropped event sent ahead, then in its place): keep the first.
      if (already.hash !== hash)
        out.problems.push({ code: 'event-conflict', message: `event ${ev.seq}: a different event with this seq is already waiting; the first is kept` });
      return this.drain(now, out);
    }
    if (this.held.size >= this.o.maxHeld || this.heldBytes + bytes > this.o.maxHeldBytes) {
      out.close = {
        code: CLOSE.POLICY,
        reason: `more than ${this.o.maxHeld} events or ${this.o.maxHeldBytes} bytes unacknowledged: respect welcome.window/windowBytes`,
      };
      return out;
    }
    if (this.o.budget.used + bytes > this.o.budget.max) {
      out.close = { code: CLOSE.TRY_AGAIN_LATER, reason: 'the controller holds too many events from all agents now; retry later' };
      return out;
    }
    this.held.set(ev.seq, { ev, bytes, hash, verified: false });
    this.heldBytes += bytes;
    this.o.budget.used += bytes;
    return this.drain(now, out);
  }

  /** A seq at or below lastSeq: a duplicate, or a conflict with what was stored. */
  private async old(rec: AgentRecord, ev: EventMessage, now: Date, out: StreamOutcome): Promise<void> {
    const { registry, agentId } = this.o;
    const what = registry.recordEvent(agentId, { seq: ev.seq, at: ev.at, kind: ev.kind, data: ev.data }, now);
    this.o.log.debug({ agentId, seq: ev.seq, kind: ev.kind, what }, 'event');
    if (what !== 'conflict') {
      // Ack again: the agent resends what it thinks we may have missed (a lost ack).
      out.ack = true;
      return;
    }
    const check = await this.check(rec, ev);
    const signed = 'ok' in check ? 'signed by an attested key of this agent' : 'bad' in check ? `signature invalid (${check.bad})` : 'signing key not attested';
    const message = `event ${ev.seq} conflicts with the event stored under that seq (${signed}); not acknowledged`;
    registry.alarm(agentId, { at: now.toISOString(), seq: ev.seq, code: 'event-conflict', message });
    out.changed = true;
    out.problems.push({ code: 'event-conflict', message });
    this.o.log.error({ agentId, seq: ev.seq, kid: eventKeyId(ev) }, `ALARM: ${message}`);
  }

  private async check(rec: AgentRecord, ev: EventMessage): Promise<Check> {
    const kid = eventKeyId(ev);
    if (kid === undefined) return { bad: 'the signature has no readable kid' };
    const key = rec.attestedKeys.find((k) => k.jkt === kid);
    if (key) {
      const r = await checkEventSignature(ev, key.jwk);
      return r.ok ? { ok: true } : { bad: r.reason };
    }
    if (this.keyAttestedHere && kid !== this.o.sessionKid) return { unverifiable: true };
    return { wait: true };
  }

  private async checkHeld(rec: AgentRecord, h: Held): Promise<Check> {
    if (h.verified) return { ok: true };
    const c = await this.check(rec, h.ev);
    if ('ok' in c) h.verified = true;
    return c;
  }

  private take(seq: number): Held | undefined {
    const h = this.held.get(seq);
    if (!h) return undefined;
    this.held.delete(seq);
    this.heldBytes -= h.bytes;
    this.o.budget.used -= h.bytes;
    return h;
  }

  /** A held `dropped` event that declares `seq` gone (from <= seq <= to < its own seq), reaching furthest. */
  private declarationFor(seq: number): Held | undefined {
    let best: Held | undefined;
    for (const h of this.held.values()) {
      if (h.ev.kind !== 'dropped') continue;
      const { from, to } = h.ev.data as { from?: unknown; to?: unknown };
      if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to)) continue;
      if ((from as number) > seq || (to as number) < seq || (to as number) >= h.ev.seq) continue;
      if (!best || (to as number) > (best.ev.data as { to: number }).to) best = h;
    }
    return best;
  }

  /**
   * Store what is next in order, as far as it goes: the held event at lastSeq + 1, or a held
   * declaration covering it. Called after each event and after each verdict (a key may have been
   * attested).
   */
  async drain(now: Date, out: StreamOutcome = this.outcome()): Promise<StreamOutcome> {
    if (!this.live) return out;
    const { registry, agentId, log } = this.o;
    for (;;) {
      const rec = registry.get(agentId);
      const next = rec.lastSeq + 1;
      const h = this.held.get(next);
      if (h) {
        const c = await this.checkHeld(rec, h);
        if ('wait' in c) break;
        // Another link of this agent (one being superseded) may have moved on meanwhile: look again.
        if (registry.get(agentId).lastSeq + 1 !== next) continue;
        this.take(next);
        if ('bad' in c) {
          out.problems.push({ code: 'bad-event-signature', message: `event ${next} rejected: ${c.bad}` });
          continue;
        }
        if ('unverifiable' in c) {
          registry.declareGap(agentId, next, 'unverifiable', UNVERIFIABLE, h.hash);
          log.warn({ agentId, seq: next, kid: eventKeyId(h.ev) }, `event ${next} recorded as a gap: unverifiable, ${UNVERIFIABLE}`);
        } else {
          const what = registry.recordEvent(agentId, { seq: h.ev.seq, at: h.ev.at, kind: h.ev.kind, data: h.ev.data }, now);
          log.debug({ agentId, seq: h.ev.seq, kind: h.ev.kind, what }, 'event');
          if (what === 'stored') this.o.onStored?.();
        }
        out.changed = true;
        out.ack = true;
        continue;
      }
      const d = this.declarationFor(next);
      if (!d) break;
      const c = await this.checkHeld(rec, d);
      if ('wait' in c) break;
      if (registry.get(agentId).lastSeq + 1 !== next) continue;
      const to = (d.ev.data as { to: number }).to;
      if ('bad' in c) {
        this.take(d.ev.seq);
        out.problems.push({ code: 'bad-event-signature', message: `event ${d.ev.seq} rejected: ${c.bad}` });
        continue;
      }
      // The agent counts the declaration as settled once we ack past its range, and sends the
      // dropped event again in its own place: do not keep this copy (it would outgrow the window).
      this.take(d.ev.seq);
      if ('unverifiable' in c) {
        registry.declareGap(agentId, to, 'unverifiable', `declared dropped by event ${d.ev.seq}, whose ${UNVERIFIABLE}`);
      } else {
        const reason = (d.ev.data as { reason?: unknown }).reason;
        registry.declareGap(agentId, to, 'dropped-by-agent', typeof reason === 'string' ? reason.slice(0, 200) : undefined);
      }
      log.info({ agentId, from: next, to, by: d.ev.seq }, 'events declared dropped by the agent');
      out.changed = true;
      out.ack = true;
    }
    // Anything held at or below lastSeq now lies in a declared gap (or was stored meanwhile): gone.
    const last = registry.get(agentId).lastSeq;
    for (const seq of [...this.held.keys()]) if (seq <= last) this.take(seq);
    return out;
  }

  /** The link closed: give the held bytes back to the shared budget (the agent resends them). */
  release(): void {
    for (const seq of [...this.held.keys()]) this.take(seq);
  }
}
