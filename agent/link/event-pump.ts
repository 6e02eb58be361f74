/**
 * The outbox pump: flow control for events sent to the controller (docs/protocol.md "Flow
 * control" and "Gaps"). Events go out in seq order from a per-connection cursor while the ack
 * window (events and bytes) has room and the socket drains; acks free the window. A hole in the
 * outbox is declared with a signed `dropped` event before what follows it, because the controller
 * accepts only the seq after its last one.
 */
import WebSocket from 'ws';
import type { LinkConnection } from './connection.js';
import type { LinkCounters, ResolvedLinkOptions } from './link-options.js';
import { DEFAULT_WINDOW, DEFAULT_WINDOW_BYTES, type EventMessage, type WelcomeMessage } from './protocol.js';

export class EventPump {
  /** Every seq below it was sent (or declared gone) on this connection; acks are clamped below it. */
  private _cursor = 1;
  /** Flow control (docs/protocol.md "Flow control"): event messages sent and not yet acked. */
  private _window = { events: DEFAULT_WINDOW, bytes: DEFAULT_WINDOW_BYTES };
  /** `settles`: the ack that frees it (its seq; for a dropped event sent ahead, the end of its range). */
  private inFlight: Array<{ settles: number; bytes: number }> = [];
  private inFlightBytes = 0;
  /** `dropped` events already sent ahead of a hole on this connection. */
  private readonly declared = new Set<number>();
  /** A `dropped` event for acked seqs the controller lost is being appended: send nothing meanwhile. */
  private declaring = false;
  private holeWarned = false;
  private pumpScheduled = false;
  private drainPoll: NodeJS.Timeout | undefined;

  constructor(
    private readonly o: ResolvedLinkOptions,
    private readonly counters: LinkCounters,
    private readonly conn: LinkConnection,
  ) {}

  get cursor(): number {
    return this._cursor;
  }
  get window(): { events: number; bytes: number } {
    return { ...this._window };
  }
  get inFlightCount(): number {
    return this.inFlight.length;
  }

  /**
   * The controller's welcome sets where this connection starts sending and its window. Returns the
   * seq the pump resumes from.
   */
  resume(w: WelcomeMessage): number {
    const box = this.o.outbox;
    let from = box.resumeFrom;
    if (w.resumeFrom !== undefined) {
      if (w.resumeFrom <= box.lastSeq + 1) {
        from = w.resumeFrom;
        // The controller already has everything below its resumeFrom.
        if (w.resumeFrom - 1 > box.lastAcked) void box.ack(w.resumeFrom - 1).catch(() => undefined);
      } else {
        this.o.log.warn(
          { controller: w.resumeFrom, agent: box.resumeFrom },
          'controller resumeFrom is ahead of this agent (state reset?); resending what we hold',
        );
      }
    }
    this._cursor = from;
    this._window = { events: w.window ?? DEFAULT_WINDOW, bytes: w.windowBytes ?? DEFAULT_WINDOW_BYTES };
    this.inFlight = [];
    this.inFlightBytes = 0;
    this.declared.clear();
    this.holeWarned = false;
    return from;
  }

  /** The connection closed: its drain poll timer is already cleared. */
  onDown(): void {
    this.drainPoll = undefined;
  }

  /** An ack from the controller. */
  onAck(seq: number): void {
    // Never more than we sent on this link: a controller cannot make us forget unsent events.
    const upTo = Math.min(seq, this._cursor - 1);
    this.settle(upTo);
    void this.o.outbox.ack(upTo).catch((err: Error) => this.o.log.error({ err: err.message }, 'outbox ack failed'));
    this.schedulePump();
  }

  /** Coalesce wake-ups (outbox appends, acks) into one pump per microtask. */
  schedulePump(): void {
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
  pump(): void {
    const ws = this.conn.ws;
    if (!ws || this.conn.state !== 'up' || ws.readyState !== WebSocket.OPEN || this.conn.closingReason) return;
    const box = this.o.outbox;
    for (;;) {
      if (this.declaring) return;
      const next = box.next(this._cursor);
      if (!next) return;
      let e: EventMessage = next;
      let declares: number | undefined;
      if (next.seq > this._cursor) {
        const d = box.declarationFor(this._cursor);
        if (d) {
          const to = (d.data as { to: number }).to;
          if (this.declared.has(d.seq)) {
            this._cursor = to + 1;
            continue;
          }
          e = d;
          declares = to;
        } else if (this._cursor <= box.lastAcked) {
          this.declareAcked(this._cursor, Math.min(box.lastAcked, next.seq - 1));
          return;
        } else if (!this.holeWarned) {
          // Not expected (every drop is declared); the controller holds what follows until it is.
          this.holeWarned = true;
          this.o.log.warn({ from: this._cursor, to: next.seq - 1 }, 'controller link: events missing from the outbox without a dropped event');
        }
      }
      const text = JSON.stringify(e);
      const bytes = Buffer.byteLength(text);
      if (this.inFlight.length >= this._window.events || (this.inFlight.length > 0 && this.inFlightBytes + bytes > this._window.bytes)) return;
      if (ws.bufferedAmount > this.o.highWatermarkBytes) {
        if (!this.drainPoll) {
          this.drainPoll = this.conn.connTimer(
            () => {
              this.drainPoll = undefined;
              this.pump();
            },
            50,
            'drain',
          );
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
        this._cursor = declares + 1;
      } else this._cursor = e.seq + 1;
    }
  }

  /**
   * The controller wants seqs this agent already had acknowledged and no longer holds (its state was
   * reset or restored from a backup): say so with a signed `dropped` event, sent ahead like any drop.
   */
  private declareAcked(from: number, to: number): void {
    this.declaring = true;
    this.o.log.warn({ from, to }, 'controller link: the controller no longer has events it acknowledged; declaring them with a signed dropped event');
    this.o.outbox.append('dropped', { from, to, count: to - from + 1, reason: 'acknowledged earlier; no longer held by the agent' }).then(
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
}
