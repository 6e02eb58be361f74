/**
 * Request/reply over a child process's IPC channel, for the benchmark and scale-test children
 * (protocol-agent-worker.ts, scale-controller-child.ts): each request carries an id, the child
 * answers `{id, ok, result | error}`, and every pending call fails once the child exits.
 */
import type { ChildProcess } from 'node:child_process';

export type RpcReply = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: string };
/** A request as the caller writes it: the id is added by ChildRpc. */
export type Unsent<T> = T extends unknown ? Omit<T, 'id'> : never;

export class ChildRpc<Request> {
  private seq = 0;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  /** "<label> exited (<code or signal>)" once the child is gone. */
  exited: string | undefined;

  constructor(
    readonly child: ChildProcess,
    label: string,
  ) {
    child.on('message', (m: RpcReply) => {
      const w = this.waiting.get(m.id);
      if (!w) return;
      this.waiting.delete(m.id);
      if (m.ok) w.resolve(m.result);
      else w.reject(new Error(m.error));
    });
    child.once('exit', (code, signal) => {
      this.exited = `${label} exited (${code ?? signal})`;
      for (const w of this.waiting.values()) w.reject(new Error(this.exited));
      this.waiting.clear();
    });
  }

  call<T>(req: Unsent<Request>): Promise<T> {
    if (this.exited) return Promise.reject(new Error(this.exited));
    const id = ++this.seq;
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.child.send({ ...req, id });
    });
  }
}
