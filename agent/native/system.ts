/**
 * Typed wrapper over the addon's systemd/socket helpers (native/src/system.c):
 *  - sdNotify: one datagram to $NOTIFY_SOCKET (READY=1, STATUS=..., WATCHDOG=1, STOPPING=1);
 *    Node has no AF_UNIX datagram sockets (reference node-daemon.md §2.1).
 *  - peerCredentials: SO_PEERCRED of an accepted Unix-socket connection (node-daemon.md §3);
 *    treat the pid as advisory (PID reuse), uid/gid as authoritative.
 */
import type { Socket } from 'node:net';
import { DeviceError, UsageError } from '../errors.js';
import { loadNative } from './index.js';

export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}

interface RawSystemAddon {
  sdNotify(message: string, socketPath?: string): boolean;
  peerCredentials(fd: number): PeerCredentials;
}

function addon(): RawSystemAddon {
  const raw = loadNative() as unknown as Partial<RawSystemAddon>;
  if (typeof raw.sdNotify !== 'function' || typeof raw.peerCredentials !== 'function') {
    throw new DeviceError('ERR_NATIVE_UNAVAILABLE', 'the native addon has no system functions (rebuild with "npm run build:native")');
  }
  return raw as RawSystemAddon;
}

function typed(err: unknown, fallbackCode: string): Error {
  const e = err as { code?: unknown; message?: unknown; errno?: unknown };
  const code = typeof e?.code === 'string' ? e.code : fallbackCode;
  const message = typeof e?.message === 'string' ? e.message : String(err);
  if (code === 'ERR_INVALID_ARG') return new UsageError(message, { cause: err });
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

/** Peer credentials of an accepted Unix-socket connection (or a raw fd). */
export function peerCredentials(socket: Socket | number): PeerCredentials {
  // net.Socket exposes its fd only on the internal handle (undocumented, tested on Node 20).
  const fd = typeof socket === 'number' ? socket : (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  if (typeof fd !== 'number' || !Number.isInteger(fd) || fd < 0) {
    throw new DeviceError('ERR_PEERCRED', 'the connection has no usable file descriptor (not a Unix socket, or already closed)');
  }
  try {
    return addon().peerCredentials(fd);
  } catch (err) {
    throw typed(err, 'ERR_PEERCRED');
  }
}
