/**
 * The event outbox: a bounded, crash-safe on-disk queue of signed events that the controller has not
 * acknowledged yet (docs/protocol.md "Flow control"). It also owns the gap-free `seq` counter.
 *
 * Storage: one JSON-lines file, `<dir>/outbox.jsonl`. Each line is either a signed event or a marker
 * `{"acked":A,"lastSeq":L,"dropped":D}`. New events and acks are appended; when dead lines (acked events, old
 * markers) outnumber live ones, the file is rewritten atomically (temp + fsync + rename) as one marker
 * plus the live events. A torn last line (crash mid-write) is discarded at load.
 *
 * Durability: every event line is fsync'd BEFORE append() resolves, i.e. before the event can be
 * sent. Otherwise a crash could lose seq N after the controller saw it, and the next run would
 * reuse N for different content. Events are rare (status changes, one per attestation cycle), so the
 * fsync costs nothing that matters. Ack markers are appended without their own fsync: losing one
 * only means resending events the controller de-duplicates by seq; the next event's fsync flushes it.
 *
 * Bound: at most `maxEvents` live events and `maxBytes` of them. When an append exceeds either, the
 * OLDEST live events are dropped down to 3/4 of the bounds (so drops come in batches) and a signed
 * `dropped` event {from, to, count} is appended, so the controller sees that the gap is deliberate.
 * A dropped `dropped` event folds its range into the new one.
 * The file is bounded too: it is also rewritten once its dead lines reach maxBytes, so it never holds
 * more than about 3 x maxBytes (fileLimit, the cap it is read with at load).
 */
import { mkdir, open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { CvmError } from '../errors.js';
import { writeFileAtomic } from '../util/atomic-file.js';
import { readBoundedText } from '../util/bounded-read.js';
import type { AgentKey } from './agent-key.js';
import { signEvent } from './events.js';
import { validateMessage, type EventKind, type EventMessage } from './protocol.js';

export const OUTBOX_FILE = 'outbox.jsonl';
/** One event's data, serialized, at most this (an event must always fit in one link message). */
export const MAX_EVENT_DATA_BYTES = 256 * 1024;
/** One event line at most: its data plus the envelope and signature. */
const MAX_LINE_BYTES = MAX_EVENT_DATA_BYTES + 4096;

/**
 * The most outbox.jsonl can hold with these bounds: live events (maxBytes, plus the one that just went
 * over), dead lines (compacted once they reach maxBytes; one ack can add all live bytes at once), a
 * newline per line and marker lines (fewer than max(256, maxEvents) between rewrites), with room to spare.
 */
export function outboxFileLimit(maxEvents: number, maxBytes: number): number {
  return 4 * (maxBytes + MAX_LINE_BYTES) + 128 * (Math.max(256, maxEvents) + 2) + 64 * 1024;
}

export interface OutboxOptions {
  /** Directory for outbox.jsonl (the daemon passes <state.dir>/outbox). Created (0700) if missing. */
  dir: string;
  /** Signs new events (including `dropped`). */
  key: AgentKey;
  maxEvents?: number;
  maxBytes?: number;
  now?: () => Date;
  /** Called with a line of text when something is worth logging (corrupt lines at load, drops). */
  log?: (msg: string, fields?: Record<string, unknown>) => void;
}

interface Live {
  event: EventMessage;
  bytes: number;
}

export class Outbox {
  readonly maxEvents: number;
  readonly maxBytes: number;
  private readonly path: string;
  private readonly key: AgentKey;
  private readonly now: () => Date;
  private readonly log: (msg: string, fields?: Record<string, unknown>) => void;
  private live: Live[] = [];
  private liveBytes = 0;
  private acked = 0;
  /** Highest seq dropped by the bound (its events are gone even though unacknowledged). */
  private droppedThrough = 0;
  private last = 0;
  private deadLines = 0;
  /** Bytes of dead lines (acked events, old markers) in the file since the last rewrite. */
  private deadBytes = 0;
  private fh: FileHandle | undefined;
  /** Serializes every mutation: seq assignment, drops and file writes happen in one order. */
  private queue: Promise<unknown> = Promise.resolve();
  private readonly listeners = new Set<(e: EventMessage) => void>();
  private closed = false;

  private constructor(opts: OutboxOptions) {
    this.path = join(opts.dir, OUTBOX_FILE);
    this.key = opts.key;
    this.maxEvents = opts.maxEvents ?? 10_000;
    this.maxBytes = opts.maxBytes ?? 16 * 1024 * 1024;
    this.now = opts.now ?? (() => new Date());
    this.log = opts.log ?? (() => undefined);
    if (!(this.maxEvents >= 4)) throw new CvmError('ERR_CONFIG', 'outbox: maxEvents must be at least 4');
    if (!(this.maxBytes >= 4 * (MAX_EVENT_DATA_BYTES + 4096)))
      throw new CvmError('ERR_CONFIG', `outbox: maxBytes must be at least ${4 * (MAX_EVENT_DATA_BYTES + 4096)}`);
  }

  /** The cap outbox.jsonl is read with (outboxFileLimit of this outbox's bounds). */
  get fileLimit(): number {
    return outboxFileLimit(this.maxEvents, this.maxBytes);
  }

  static async open(opts: OutboxOptions): Promise<Outbox> {
    const box = new Outbox(opts);
    await mkdir(opts.dir, { recursive: true, mode: 0o700 });
    await box.load();
    return box;
  }

  /** Last acknowledged seq + 1: what hello.resumeFrom says. */
  get resumeFrom(): number {
    return this.acked + 1;
  }
  get lastAcked(): number {
    return this.acked;
  }
  /** Highest seq ever assigned (0 before the first event). */
  get lastSeq(): number {
    return this.last;
  }
  get size(): number {
    return this.live.length;
  }
  get bytes(): number {
    return this.liveBytes;
  }

  /** Get told about each appended event (the link pumps the socket). Returns the unsubscribe function. */
  subscribe(fn: (e: EventMessage) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Sign, persist (fsync'd) and queue one event; resolves once it is durable. */
  append(kind: EventKind, data: Record<string, unknown>): Promise<EventMessage> {
    return this.enqueue(async () => {
      if (this.closed) throw new CvmError('ERR_OUTBOX_CLOSED', 'outbox is closed');
      // Normalize through JSON first (Dates, toJSON, undefined members), so the signed JCS payload and
      // the JSON on the wire describe the same value; BigInt and cycles become a typed error.
      let text: string;
      try {
        text = JSON.stringify(data);
      } catch (err) {
        throw new CvmError('ERR_EVENT_DATA', `event data is not JSON: ${(err as Error).message}`);
      }
      const dataBytes = Buffer.byteLength(text ?? '');
      if (dataBytes > MAX_EVENT_DATA_BYTES) throw new CvmError('ERR_EVENT_TOO_LARGE', `event data is ${dataBytes} bytes; at most ${MAX_EVENT_DATA_BYTES}`);
      const event = await this.write(kind, JSON.parse(text ?? 'null') as Record<string, unknown>);
      if (this.live.length > this.maxEvents || this.liveBytes > this.maxBytes) await this.dropOldest();
      return event;
    });
  }

  /** The controller has stored every event with seq <= `seq`. Acks beyond lastSeq are clamped. */
  ack(seq: number): Promise<void> {
    return this.enqueue(async () => {
      const upTo = Math.min(Math.floor(seq), this.last);
      if (!(upTo > this.acked)) return;
      this.acked = upTo;
      let n = 0;
      while (n < this.live.length && this.live[n]!.event.seq <= upTo) n++;
      for (const l of this.live.splice(0, n)) {
        this.liveBytes -= l.bytes;
        this.deadBytes += l.bytes + 1;
      }
      this.deadLines += n;
      if (!this.closed) {
        // The handle is closed by every compaction: reopen it, or this ack would not reach the file
        // until the next append (and a restarted agent would resend what the controller already has).
        this.fh ??= await open(this.path, 'a', 0o600);
        const marker = `${JSON.stringify(this.marker())}\n`;
        await this.fh.write(marker);
        this.deadLines++;
        this.deadBytes += Buffer.byteLength(marker);
      }
      await this.maybeCompact();
    });
  }

  /** Live events with seq >= `seq`, in order (resend after a reconnect). */
  from(seq: number): EventMessage[] {
    return this.live.slice(this.indexOf(seq)).map((l) => l.event);
  }

  /** The first live event with seq >= `seq`, if any (the link's send cursor). */
  next(seq: number): EventMessage | undefined {
    return this.live[this.indexOf(seq)]?.event;
  }

  /**
   * The live `dropped` event that declares `seq` gone (data.from <= seq <= data.to, written after
   * it), reaching furthest; the link sends it before the events above a hole so the controller,
   * which accepts only the next seq, can move past the hole (docs/protocol.md "Gaps").
   */
  declarationFor(seq: number): EventMessage | undefined {
    let best: EventMessage | undefined;
    for (const { event } of this.live) {
      if (event.kind !== 'dropped' || event.seq <= seq) continue;
      const { from, to } = event.data as { from?: unknown; to?: unknown };
      if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to) || (from as number) > seq || (to as number) < seq || (to as number) >= event.seq) continue;
      if (!best || (to as number) > (best.data as { to: number }).to) best = event;
    }
    return best;
  }

  async close(): Promise<void> {
    await this.enqueue(async () => {
      this.closed = true;
      await this.fh?.sync().catch(() => undefined);
      await this.fh?.close();
      this.fh = undefined;
    });
  }

  private marker(): Marker {
    return { acked: this.acked, lastSeq: this.last, dropped: this.droppedThrough };
  }

  private indexOf(seq: number): number {
    let lo = 0;
    let hi = this.live.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.live[mid]!.event.seq < seq) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private enqueue<T>(op: () => Promise<T>): Promise<T> {
    const run = this.queue.then(op, op);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async write(kind: EventKind, data: Record<string, unknown>): Promise<EventMessage> {
    const event = await signEvent({ seq: this.last + 1, at: this.now().toISOString(), kind, data }, this.key);
    // What we persist must load again and pass the controller's schema (e.g. data must be an object).
    const checked = validateMessage('agent->controller', event);
    if (!checked.ok) throw new CvmError('ERR_EVENT_DATA', `event rejected: ${checked.error}`);
    const line = `${JSON.stringify(event)}\n`;
    if (!this.fh) this.fh = await open(this.path, 'a', 0o600);
    await this.fh.write(line);
    await this.fh.datasync();
    this.last = event.seq;
    const bytes = Buffer.byteLength(line) - 1;
    this.live.push({ event, bytes });
    this.liveBytes += bytes;
    for (const fn of this.listeners) {
      try {
        fn(event);
      } catch {
        // A listener's bug must not break persistence.
      }
    }
    return event;
  }

  private async dropOldest(): Promise<void> {
    const lowEvents = Math.floor((this.maxEvents * 3) / 4);
    const lowBytes = Math.floor((this.maxBytes * 3) / 4);
    const newest = this.live.length - 1;
    let n = 0;
    let bytes = this.liveBytes;
    // Never drop the event just appended: it is why we are here.
    while (n < newest && (this.live.length - n > lowEvents || bytes > lowBytes)) {
      bytes -= this.live[n]!.bytes;
      n++;
    }
    if (n === 0) return;
    const dropped = this.live.splice(0, n);
    this.liveBytes = bytes;
    this.deadLines += n;
    let from = dropped[0]!.event.seq;
    for (const d of dropped) {
      if (d.event.kind === 'dropped' && typeof d.event.data.from === 'number') from = Math.min(from, d.event.data.from);
    }
    const to = dropped[dropped.length - 1]!.event.seq;
    this.droppedThrough = Math.max(this.droppedThrough, to);
    this.log('outbox full: dropped the oldest unacknowledged events', { from, to, count: to - from + 1 });
    await this.write('dropped', { from, to, count: to - from + 1 });
    // Rewrite now: the dropped events must not come back at the next load.
    await this.maybeCompact(true);
  }

  private async maybeCompact(force = false): Promise<void> {
    if (!force && this.deadLines < Math.max(256, this.live.length) && this.deadBytes < this.maxBytes) return;
    await this.fh?.close();
    this.fh = undefined;
    const lines = [JSON.stringify(this.marker()), ...this.live.map((l) => JSON.stringify(l.event))];
    await writeFileAtomic(this.path, `${lines.join('\n')}\n`, 0o600);
    this.deadLines = 0;
    this.deadBytes = 0;
  }

  private async load(): Promise<void> {
    let text: string;
    try {
      // Capped by what this outbox can have written; a bigger file (or a FIFO) is refused, never read
      // whole: the agent cannot start without knowing its last seq (a reused seq would be a conflict).
      text = await readBoundedText(this.path, 'outbox', { maxBytes: this.fileLimit });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw new CvmError('ERR_OUTBOX_IO', `outbox: cannot read ${this.path}: ${(err as Error).message}`, { cause: err });
    }
    const events = new Map<number, EventMessage>();
    let bad = 0;
    const lines = text.split('\n');
    const tornTail = lines[lines.length - 1] !== '';
    for (const line of lines) {
      if (line === '') continue;
      let v: unknown;
      try {
        v = JSON.parse(line);
      } catch {
        bad++;
        continue;
      }
      if (isMarker(v)) {
        this.acked = Math.max(this.acked, v.acked);
        this.droppedThrough = Math.max(this.droppedThrough, v.dropped ?? 0);
        this.last = Math.max(this.last, v.lastSeq, v.acked);
        continue;
      }
      const checked = validateMessage('agent->controller', v);
      if (!checked.ok || checked.message.type !== 'event') {
        bad++;
        continue;
      }
      events.set(checked.message.seq, checked.message);
      this.last = Math.max(this.last, checked.message.seq);
    }
    const floor = Math.max(this.acked, this.droppedThrough);
    const seqs = [...events.keys()].filter((s) => s > floor).sort((a, b) => a - b);
    for (const s of seqs) {
      const event = events.get(s)!;
      const bytes = Buffer.byteLength(JSON.stringify(event));
      this.live.push({ event, bytes });
      this.liveBytes += bytes;
    }
    if (bad > 0) this.log('outbox: skipped unreadable lines at load', { count: bad, torn: tornTail });
    // Rewrite so the next append never glues onto a torn line and dead lines go away.
    if (bad > 0 || tornTail || events.size > seqs.length) await this.maybeCompact(true);
    // Events lost to corruption (not acked, not present) are declared like a drop.
    const missing = missingRanges(floor + 1, this.last, seqs);
    for (const [from, to] of missing) await this.write('dropped', { from, to, count: to - from + 1, reason: 'unreadable in the outbox file' });
  }
}

interface Marker {
  acked: number;
  lastSeq: number;
  dropped?: number;
}

function isMarker(v: unknown): v is Marker {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || 'type' in v) return false;
  const o = v as Record<string, unknown>;
  const count = (x: unknown) => Number.isSafeInteger(x) && (x as number) >= 0;
  return count(o.acked) && count(o.lastSeq) && (o.dropped === undefined || count(o.dropped));
}

/** Contiguous ranges in [from, to] not covered by the sorted `present` list. */
export function missingRanges(from: number, to: number, present: readonly number[]): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let expect = from;
  for (const s of present) {
    if (s > expect) out.push([expect, s - 1]);
    expect = Math.max(expect, s + 1);
  }
  if (expect <= to) out.push([expect, to]);
  return out;
}
