/**
 * A systemd-notify receiver the test owns: a python3 AF_UNIX SOCK_DGRAM socket (Node has no Unix
 * datagram sockets) that prints each datagram as one JSON line. Tests read the messages back.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';

const RECEIVER = `
import socket, sys, json, os
path = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
print(json.dumps("LISTENING"), flush=True)
while True:
    data = s.recv(65536)
    print(json.dumps(data.decode("utf-8", "replace")), flush=True)
`;

export class NotifyReceiver {
  readonly messages: string[] = [];
  private waiters: { pred: (m: string) => boolean; resolve: (m: string) => void }[] = [];
  private constructor(
    readonly path: string,
    private readonly child: ChildProcess,
  ) {}

  static async start(path: string): Promise<NotifyReceiver> {
    const child = spawn('python3', ['-c', RECEIVER, path], { stdio: ['ignore', 'pipe', 'inherit'] });
    const r = new NotifyReceiver(path, child);
    const lines = createInterface({ input: child.stdout! });
    const ready = new Promise<void>((resolve) => {
      lines.on('line', (line) => {
        const msg = JSON.parse(line) as string;
        if (msg === 'LISTENING') return resolve();
        r.messages.push(msg);
        r.waiters = r.waiters.filter((w) => (w.pred(msg) ? (w.resolve(msg), false) : true));
      });
    });
    await Promise.race([
      ready,
      once(child, 'exit').then(() => {
        throw new Error('notify receiver exited');
      }),
    ]);
    return r;
  }

  /** Resolves with the first message (already received or future) matching pred. */
  waitFor(pred: (m: string) => boolean, timeoutMs = 20_000): Promise<string> {
    const hit = this.messages.find(pred);
    if (hit) return Promise.resolve(hit);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no notify message matched within ${timeoutMs} ms; got ${JSON.stringify(this.messages)}`)), timeoutMs);
      this.waiters.push({
        pred,
        resolve: (m) => {
          clearTimeout(t);
          resolve(m);
        },
      });
    });
  }

  stop(): void {
    this.child.kill('SIGKILL');
  }
}
