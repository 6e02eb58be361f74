/**
 * GET /v1/events: server-sent events (HTML Living Standard, "Server-sent events") on the local
 * socket, authorized through the same table as every endpoint ("events"). A workload holds it open
 * and stops itself when trust is lost. Each subscriber first gets a `state` event with the current
 * trust state, then every `state`, `trust` (trigger, recovery, action) and `attestation` event.
 *
 * Bounds: at most maxSubscribers at once (more get 503); each subscriber may have at most
 * maxBufferedBytes unsent (a client that does not read is disconnected, never buffered without
 * limit); a comment line every heartbeat keeps idle connections verifiably alive; the last events are
 * kept (count and bytes bounded) so a client reconnecting with Last-Event-ID misses nothing recent.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { CvmError } from '../errors.js';

export interface EventHubOptions {
  maxSubscribers: number;
  maxBufferedBytes: number;
  heartbeatMs: number;
  /** The current state, sent first to every new subscriber. */
  snapshot: () => unknown;
  onSubscribers?: (n: number) => void;
  onDropped?: () => void;
}

const REPLAY_EVENTS = 64;
const REPLAY_BYTES = 256 * 1024;

interface Frame {
  id: number;
  text: string;
}

export class EventHub {
  private readonly clients = new Set<ServerResponse>();
  private readonly replay: Frame[] = [];
  private replayBytes = 0;
  private seq = 0;
  private heartbeat: NodeJS.Timeout | undefined;
  private closed = false;
  dropped = 0;

  constructor(private opts: EventHubOptions) {}

  /** Limits from a reloaded config; applies to new subscribers and new writes. */
  configure(limits: Pick<EventHubOptions, 'maxSubscribers' | 'maxBufferedBytes' | 'heartbeatMs'>): void {
    const heartbeatChanged = limits.heartbeatMs !== this.opts.heartbeatMs;
    this.opts = { ...this.opts, ...limits };
    if (heartbeatChanged && this.heartbeat) {
      clearInterval(this.heartbeat);
      this.heartbeat = undefined;
      this.startHeartbeat();
    }
  }

  get subscribers(): number {
    return this.clients.size;
  }

  /** Publish to every subscriber; JSON.stringify never emits a raw newline, so one data line suffices. */
  publish(type: string, data: unknown): void {
    if (this.closed) return;
    const id = ++this.seq;
    const text = `id: ${id}\nevent: ${type}\ndata: ${JSON.stringify(data)}\n\n`;
    this.replay.push({ id, text });
    this.replayBytes += text.length;
    while (this.replay.length > REPLAY_EVENTS || this.replayBytes > REPLAY_BYTES) this.replayBytes -= this.replay.shift()!.text.length;
    for (const res of this.clients) this.write(res, text);
  }

  /** The route handler: takes over the response for the life of the subscription. */
  handle(req: IncomingMessage, res: ServerResponse): void {
    if (this.closed) throw new CvmError('ERR_STOPPING', 'the agent is stopping');
    if (this.clients.size >= this.opts.maxSubscribers) {
      throw new CvmError('ERR_BUSY', `${this.clients.size} event subscribers already (api.events.maxSubscribers); retry later`);
    }
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive' });
    // Long-lived by design: no socket idle timeout; the heartbeat shows liveness instead.
    req.socket.setTimeout(0);
    req.socket.setNoDelay?.(true);
    this.clients.add(res);
    this.opts.onSubscribers?.(this.clients.size);
    const forget = () => {
      if (this.clients.delete(res)) this.opts.onSubscribers?.(this.clients.size);
    };
    res.on('close', forget);
    req.on('close', forget);
    this.write(res, `retry: 2000\n\n`);
    const last = Number(req.headers['last-event-id']);
    if (Number.isSafeInteger(last) && last >= 0) for (const f of this.replay) if (f.id > last) this.write(res, f.text);
    this.write(res, `event: state\ndata: ${JSON.stringify(this.opts.snapshot())}\n\n`);
    this.startHeartbeat();
  }

  private startHeartbeat(): void {
    if (this.heartbeat || this.closed) return;
    this.heartbeat = setInterval(() => {
      for (const res of this.clients) this.write(res, ': keepalive\n\n');
    }, this.opts.heartbeatMs);
    this.heartbeat.unref();
  }

  /** A subscriber that has not taken what was already written is cut off: its buffer never grows past the bound. */
  private write(res: ServerResponse, text: string): void {
    if (!this.clients.has(res) || res.destroyed) return;
    if (res.writableLength + Buffer.byteLength(text) > this.opts.maxBufferedBytes) {
      this.clients.delete(res);
      this.dropped++;
      this.opts.onDropped?.();
      this.opts.onSubscribers?.(this.clients.size);
      res.destroy();
      return;
    }
    res.write(text);
  }

  /** Shutdown: a last `stopping` event, then every stream ends so the server can close. */
  close(): void {
    if (this.closed) return;
    this.publish('stopping', { at: new Date().toISOString() });
    this.closed = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    for (const res of this.clients) res.end();
    this.clients.clear();
    this.opts.onSubscribers?.(0);
  }
}
