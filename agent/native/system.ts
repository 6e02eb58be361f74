/**
 * Typed wrapper over the addon's systemd and socket helpers (native/src/system.c):
 *  - sdNotify: one datagram to $NOTIFY_SOCKET (READY=1, STATUS=..., WATCHDOG=1, STOPPING=1);
 *    Node has no AF_UNIX datagram sockets (nodejs/node#29339; protocol: sd_notify(3) NOTES).
 *  - peerCredentials: SO_PEERCRED of an accepted Unix-socket connection, plus the peer's
 *    supplementary groups from SO_PEERGROUPS (Linux 4.13+); treat the pid as advisory (PID reuse),
 *    uid/gid/groups as authoritative (the kernel records them at connect()).
 *  - releaseFreedMemory: glibc malloc_trim(0), so memory a finished thread freed leaves the
 *    process's resident set instead of staying in glibc's arenas.
 */
import type { Socket } from 'node:net';
import { constants } from 'node:os';
import { DeviceError, UsageError, isErrorCode, type ErrorCode } from '../errors.js';
import { loadNative } from './addon-loader.js';

export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
  /** Supplementary groups (SO_PEERGROUPS); absent when they could not be read. */
  groups?: number[];
}

interface RawSystemAddon {
  sdNotify(message: string, socketPath?: string): boolean;
  peerCredentials(fd: number): PeerCredentials;
  /** Absent from an addon built before SO_PEERGROUPS support. */
  peerGroups?(fd: number): number[];
  /** Absent from an addon built before it. */
  releaseFreedMemory?(): boolean;
}

function addon(): RawSystemAddon {
  const raw = loadNative() as unknown as Partial<RawSystemAddon>;
  if (typeof raw.sdNotify !== 'function' || typeof raw.peerCredentials !== 'function') {
    throw new DeviceError('ERR_NATIVE_UNAVAILABLE', 'the native addon has no system functions (rebuild with "npm run build:native")');
  }
  return raw as RawSystemAddon;
}

function typed(err: unknown, fallbackCode: ErrorCode): Error {
  const e = err as { code?: unknown; message?: unknown; errno?: unknown };
  const code = isErrorCode(e?.code) ? e.code : fallbackCode;
  const message = typeof e?.message === 'string' ? e.message : String(err);
  if (code === 'ERR_INVALID_ARGUMENT') return new UsageError(message, { cause: err });
  return new DeviceError(code, message, typeof e?.errno === 'number' ? { errno: e.errno } : {}, { cause: err });
}

/**
 * Sends `fields` (joined as KEY=VALUE lines) to the socket named by `env.NOTIFY_SOCKET`.
 * Returns false when not run under systemd (no NOTIFY_SOCKET), true when sent.
 */
export function sdNotify(fields: Record<string, string | number> | string, env: NodeJS.ProcessEnv = process.env): boolean {
  const socketPath = env.NOTIFY_SOCKET;
  if (!socketPath) return false;
  const message = typeof fields === 'string' ? fields : formatNotify(fields);
  try {
    return addon().sdNotify(message, socketPath);
  } catch (err) {
    throw typed(err, 'ERR_SD_NOTIFY');
  }
}

/** KEY=VALUE lines; values must not contain newlines (they would inject extra fields). */
export function formatNotify(fields: Record<string, string | number>): string {
  return Object.entries(fields)
    .map(([k, v]) => {
      const value = String(v);
      if (!/^[A-Z_][A-Z0-9_]*$/.test(k)) throw new UsageError(`sd_notify key "${k}" must be upper-case A-Z, 0-9, _`);
      if (/[\n\0]/.test(value)) throw new UsageError(`sd_notify value for ${k} must not contain newlines or NUL`);
      return `${k}=${value}`;
    })
    .join('\n');
}

function fdOf(socket: Socket | number, code: ErrorCode): number {
  // net.Socket exposes its fd only on the internal handle (undocumented, tested on Node 20).
  const fd = typeof socket === 'number' ? socket : (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  if (typeof fd !== 'number' || !Number.isInteger(fd) || fd < 0) {
    throw new DeviceError(code, 'the connection has no usable file descriptor (not a Unix socket, or already closed)');
  }
  return fd;
}

/**
 * Gives the memory that glibc's allocator holds free back to the kernel (malloc_trim(0),
 * native/src/system.c). Best effort, never throws: false when nothing was released, off glibc, or
 * without a (recent enough) addon. A few milliseconds at most for the daemon's heap.
 */
export function releaseFreedMemory(): boolean {
  try {
    const raw = loadNative() as unknown as Partial<RawSystemAddon>;
    return typeof raw.releaseFreedMemory === 'function' ? raw.releaseFreedMemory() : false;
  } catch {
    return false;
  }
}

/** Peer credentials (SO_PEERCRED) of an accepted Unix-socket connection (or a raw fd); no groups. */
export function peerCredentials(socket: Socket | number): PeerCredentials {
  const fd = fdOf(socket, 'ERR_PEERCRED');
  try {
    return addon().peerCredentials(fd);
  } catch (err) {
    throw typed(err, 'ERR_PEERCRED');
  }
}

/** The peer's supplementary groups (SO_PEERGROUPS). Throws a DeviceError when they cannot be read. */
export function peerGroups(socket: Socket | number): number[] {
  const fd = fdOf(socket, 'ERR_PEERGROUPS');
  const raw = addon();
  if (typeof raw.peerGroups !== 'function') {
    throw new DeviceError('ERR_NATIVE_UNAVAILABLE', 'the native addon predates SO_PEERGROUPS support (rebuild with "npm run build:native")');
  }
  try {
    return raw.peerGroups(fd);
  } catch (err) {
    throw typed(err, 'ERR_PEERGROUPS');
  }
}

/**
 * What the daemon uses per connection: SO_PEERCRED plus SO_PEERGROUPS. Fails closed: without
 * SO_PEERCRED the answer is undefined (restricted endpoints then deny). Without SO_PEERGROUPS (an
 * old addon or a kernel before 4.13) group rules match the primary gid only, which can only deny
 * more, and `onGroupsUnavailable` is called once so the log says why.
 */
export function createPeerCredentialReader(
  onGroupsUnavailable: (reason: string) => void = () => undefined,
  impl: { peerCredentials(socket: Socket): PeerCredentials; peerGroups(socket: Socket): number[] } = { peerCredentials, peerGroups },
): (socket: Socket) => PeerCredentials | undefined {
  let groupsWork = true;
  return (socket) => {
    let cred: PeerCredentials;
    try {
      cred = impl.peerCredentials(socket);
    } catch {
      return undefined;
    }
    if (!groupsWork) return cred;
    try {
      return { ...cred, groups: impl.peerGroups(socket) };
    } catch (err) {
      // EBADF/ENOTCONN concern this connection only; anything else (ENOPROTOOPT, an old addon) is permanent.
      const errno = (err as { details?: { errno?: number } }).details?.errno;
      if (errno !== constants.errno.EBADF && errno !== constants.errno.ENOTCONN) {
        groupsWork = false;
        onGroupsUnavailable((err as Error).message);
      }
      return cred;
    }
  };
}
