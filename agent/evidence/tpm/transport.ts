/**
 * Byte transports to a TPM: the kernel resource manager (/dev/tpmrm0: write one command, read one
 * response) and swtpm's server socket (TCP or Unix; raw TPM commands, framed by the header size).
 * One command at a time per transport: callers are serialised by an internal queue.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { DeviceError, UsageError } from '../../errors.js';
import { HEADER_SIZE, MAX_MESSAGE_SIZE } from '../../formats/tpm/constants.js';

export interface TpmTransport {
  /** Send one marshalled command and resolve with the complete response bytes. */
  send(command: Buffer): Promise<Buffer>;
  close(): Promise<void>;
  /** Where it talks to, for messages. */
  readonly description: string;
}

/** Serialise async operations: the TPM handles one command at a time per connection. */
class Queue {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.tail.then(fn, fn);
    this.tail = next.catch(() => undefined);
    return next;
  }
}

export const DEFAULT_TPM_DEVICE = '/dev/tpmrm0';

/** /dev/tpmrm0 (or /dev/tpm0): the kernel TPM driver answers each write with exactly one response read. */
export class DeviceTransport implements TpmTransport {
  private readonly queue = new Queue();
  private constructor(
    private readonly fh: FileHandle,
    readonly description: string,
  ) {}

  static async open(path = DEFAULT_TPM_DEVICE): Promise<DeviceTransport> {
    try {
      return new DeviceTransport(await open(path, 'r+'), path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const hint =
        code === 'ENOENT'
          ? 'no TPM device (not a vTPM VM, or the tpm_tis/tpm_crb driver is not loaded)'
          : code === 'EACCES' || code === 'EPERM'
            ? 'permission denied (run as root or add the user to the tss group)'
            : (err as Error).message;
      throw new DeviceError('ERR_TPM_UNAVAILABLE', `cannot open ${path}: ${hint}`, { path, errno: code }, { cause: err });
    }
  }

  send(command: Buffer): Promise<Buffer> {
    return this.queue.run(async () => {
      try {
        const { bytesWritten } = await this.fh.write(command, 0, command.length, null);
        if (bytesWritten !== command.length) throw new DeviceError('ERR_TPM_IO', `short write (${bytesWritten} of ${command.length} bytes)`);
        const buf = Buffer.alloc(MAX_MESSAGE_SIZE);
        const { bytesRead } = await this.fh.read(buf, 0, buf.length, null);
        return buf.subarray(0, bytesRead);
      } catch (err) {
        throw new DeviceError('ERR_TPM_IO', `TPM I/O on ${this.description} failed: ${(err as Error).message}`, { path: this.description }, { cause: err });
      }
    });
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}

export type SocketAddress = { host: string; port: number } | { path: string };

/** swtpm `socket --server type=tcp|unixio`: raw TPM 2.0 command stream. */
export class SocketTransport implements TpmTransport {
  private readonly queue = new Queue();
  private buffered = Buffer.alloc(0);
  private waiter: { resolve: (b: Buffer) => void; reject: (e: Error) => void } | undefined;
  private closedError: Error | undefined;

  private constructor(
    private readonly socket: Socket,
    readonly description: string,
    private readonly timeoutMs: number,
  ) {
    socket.on('data', (chunk: Buffer) => {
      this.buffered = Buffer.concat([this.buffered, chunk]);
      this.deliver();
    });
    const onEnd = (err?: Error) => {
      this.closedError = new DeviceError('ERR_TPM_IO', `TPM socket ${description} closed${err ? `: ${err.message}` : ''}`);
      this.waiter?.reject(this.closedError);
      this.waiter = undefined;
    };
    socket.on('error', onEnd);
    socket.on('close', () => onEnd());
  }

  static connect(address: SocketAddress, timeoutMs = 60_000): Promise<SocketTransport> {
    const description = 'path' in address ? `unix:${address.path}` : `${address.host}:${address.port}`;
    return new Promise((resolve, reject) => {
      const socket = 'path' in address ? connect({ path: address.path }) : connect({ host: address.host, port: address.port });
      const fail = (err: Error) =>
        reject(new DeviceError('ERR_TPM_UNAVAILABLE', `cannot connect to the TPM at ${description}: ${err.message}`, { address: description }, { cause: err }));
      socket.once('error', fail);
      socket.once('connect', () => {
        socket.off('error', fail);
        socket.setNoDelay(true);
        resolve(new SocketTransport(socket, description, timeoutMs));
      });
    });
  }

  /** Hand over one complete response once its header-declared size has arrived. */
  private deliver(): void {
    if (!this.waiter || this.buffered.length < HEADER_SIZE) return;
    const size = this.buffered.readUInt32BE(2);
    if (size < HEADER_SIZE || size > MAX_MESSAGE_SIZE) {
      this.waiter.reject(new DeviceError('ERR_TPM_IO', `TPM socket ${this.description}: response size ${size} out of range`));
      this.waiter = undefined;
      this.socket.destroy();
      return;
    }
    if (this.buffered.length < size) return;
    const response = this.buffered.subarray(0, size);
    this.buffered = this.buffered.subarray(size);
    const w = this.waiter;
    this.waiter = undefined;
    w.resolve(Buffer.from(response));
  }

  send(command: Buffer): Promise<Buffer> {
    return this.queue.run(
      () =>
        new Promise<Buffer>((resolve, reject) => {
          if (this.closedError) return reject(this.closedError);
          const timer = setTimeout(() => {
            this.waiter = undefined;
            reject(new DeviceError('ERR_TPM_TIMEOUT', `TPM at ${this.description} did not answer within ${this.timeoutMs} ms`));
            this.socket.destroy();
          }, this.timeoutMs);
          this.waiter = {
            resolve: (b) => {
              clearTimeout(timer);
              resolve(b);
            },
            reject: (e) => {
              clearTimeout(timer);
              reject(e);
            },
          };
          this.socket.write(command);
          this.deliver();
        }),
    );
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.socket.destroyed) return resolve();
      this.socket.once('close', () => resolve());
      this.socket.end();
      setTimeout(() => {
        this.socket.destroy();
      }, 1000).unref();
    });
  }
}

export type TransportSpec = { kind: 'device'; path: string } | { kind: 'socket'; address: SocketAddress };

/**
 * Parse a CLI/config TPM location: a device path ("/dev/tpmrm0"), "HOST:PORT" (swtpm TCP) or
 * "unix:PATH" (swtpm Unix socket).
 */
export function parseTransportSpec(text: string, kind: 'device' | 'swtpm'): TransportSpec {
  if (kind === 'device') {
    if (!text.startsWith('/')) throw new UsageError(`--tpm expects an absolute device path such as ${DEFAULT_TPM_DEVICE}, got "${text}"`);
    return { kind: 'device', path: text };
  }
  if (text.startsWith('unix:')) {
    const path = text.slice(5);
    if (path.length === 0) throw new UsageError('--swtpm unix: needs a socket path');
    return { kind: 'socket', address: { path } };
  }
  const m = /^(.+):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port < 1 || port > 65535) throw new UsageError(`--swtpm expects HOST:PORT or unix:PATH, got "${text}"`);
  return { kind: 'socket', address: { host: m[1]!.replace(/^\[(.*)\]$/, '$1'), port } };
}

export async function openTransport(spec: TransportSpec): Promise<TpmTransport> {
  return spec.kind === 'device' ? DeviceTransport.open(spec.path) : SocketTransport.connect(spec.address);
}
