/**
 * Getting a listening Unix socket for the local API, in order of preference:
 * 1. socket activation: systemd hands us fd 3.. (LISTEN_FDS/LISTEN_PID, systemd.socket(5));
 * 2. our own socket, created with umask 0117 so it is born 0660 (no chmod race), after removing a
 *    stale socket file left by a crash (but never one that a live instance still answers on).
 * See systemd.socket(5), sd_listen_fds(3) and docs/systemd.md "Socket activation".
 */
import { connect, type Server } from 'node:net';
import { lstat, unlink, chown, readFile, stat } from 'node:fs/promises';
import { CvmError } from '../errors.js';

export interface ActivationFds {
  fds: number[];
  names: string[];
}

/** Read and consume the socket-activation variables when they are meant for this process. */
export function takeActivationFds(env: NodeJS.ProcessEnv = process.env, pid = process.pid): ActivationFds | undefined {
  const count = Number(env.LISTEN_FDS ?? '0');
  const forPid = Number(env.LISTEN_PID ?? '0');
  if (!Number.isInteger(count) || count <= 0 || forPid !== pid) return undefined;
  const names = (env.LISTEN_FDNAMES ?? '').split(':');
  delete env.LISTEN_FDS;
  delete env.LISTEN_PID;
  delete env.LISTEN_FDNAMES;
  return { fds: Array.from({ length: count }, (_, i) => 3 + i), names };
}

function listenOn(server: Server, target: { fd: number } | string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    const done = () => {
      server.off('error', onError);
      resolve();
    };
    if (typeof target === 'string') server.listen(target, done);
    else server.listen(target, done);
  });
}

function isAlive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** sockaddr_un.sun_path is 108 bytes on Linux (unix(7)), one of them the terminating NUL. */
export const MAX_SOCKET_PATH_BYTES = 107;

/**
 * The path of the Unix socket with this inode, from /proc/net/unix text (proc(5): "Num RefCount
 * Protocol Flags Type St Inode Path"; an abstract socket's path starts with "@"). Pure.
 */
export function unixSocketPath(procNetUnix: string, inode: number): string | undefined {
  for (const line of procNetUnix.split('\n').slice(1)) {
    const m = /^\s*\S+:(?:\s+\S+){5}\s+(\d+)(?: (.*))?$/.exec(line);
    if (m && Number(m[1]) === inode && m[2]) return m[2];
  }
  return undefined;
}

/**
 * What an inherited listening socket is bound to: getsockname(2) by way of the socket's inode (Node
 * reports no address for a server listening on an fd). The configured path would be a guess: the
 * .socket unit's ListenStream= decides where systemd listens.
 */
async function activatedPath(fd: number): Promise<string> {
  try {
    const { ino } = await stat(`/proc/self/fd/${fd}`);
    const path = unixSocketPath(await readFile('/proc/net/unix', 'utf8'), ino);
    if (path) return path;
  } catch {
    // no /proc: say what is known
  }
  return `(socket-activated fd ${fd}; not a Unix socket path)`;
}

export async function listenUnix(server: Server, opts: { path: string; gid?: number; env?: NodeJS.ProcessEnv }): Promise<{ activated: boolean; path: string }> {
  const activation = takeActivationFds(opts.env ?? process.env);
  if (activation) {
    const fd = activation.fds[0]!;
    // Read before listening: connections queued by systemd are served as soon as we listen, and the
    // caller finishes starting right after this returns, with no I/O in between.
    const path = await activatedPath(fd);
    await listenOn(server, { fd });
    return { activated: true, path };
  }
  // Node truncates a longer path silently and would listen somewhere else entirely.
  const bytes = Buffer.byteLength(opts.path);
  if (bytes > MAX_SOCKET_PATH_BYTES) {
    throw new CvmError('ERR_SOCKET_PATH', `socket path ${opts.path} is ${bytes} bytes; a Unix socket path must be at most ${MAX_SOCKET_PATH_BYTES} bytes`);
  }
  try {
    const st = await lstat(opts.path);
    if (!st.isSocket()) throw new CvmError('ERR_SOCKET_PATH', `${opts.path} exists and is not a socket; refusing to replace it`);
    if (await isAlive(opts.path)) throw new CvmError('ERR_SOCKET_IN_USE', `another process is serving ${opts.path}`);
    await unlink(opts.path); // stale: left behind by a crash
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const previous = process.umask(0o117);
  try {
    await listenOn(server, opts.path);
  } finally {
    process.umask(previous);
  }
  if (opts.gid !== undefined) await chown(opts.path, -1, opts.gid);
  return { activated: false, path: opts.path };
}
