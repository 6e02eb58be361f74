/**
 * A TCP listen address as written in the config: "HOST:PORT" or "[IPv6]:PORT". The host is always
 * written out (no ":9464" meaning "every interface", as some exporters read it): an address that
 * reaches beyond this machine is something the operator typed. Pure: text in, address or reason out.
 */
import { isIP } from 'node:net';

export interface ListenAddress {
  host: string;
  port: number;
}

/** The shape the schema checks; the port's range is checked by parseListenAddress. */
export const LISTEN_ADDRESS = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]*):\d{1,5}$/;
export const LISTEN_ADDRESS_HINT = 'HOST:PORT with an explicit host, such as "127.0.0.1:9464" or "[::1]:9464"';

export function parseListenAddress(text: string): ListenAddress | { error: string } {
  if (!LISTEN_ADDRESS.test(text)) return { error: `must be ${LISTEN_ADDRESS_HINT}, got "${text.slice(0, 100)}"` };
  const colon = text.lastIndexOf(':');
  const port = Number(text.slice(colon + 1));
  if (port > 65535) return { error: `port ${port} is out of range (0-65535)` };
  const raw = text.slice(0, colon);
  const host = raw.startsWith('[') ? raw.slice(1, -1) : raw;
  if (raw.startsWith('[') && isIP(host) !== 6) return { error: `"${host}" is not an IPv6 address` };
  return { host, port };
}

/**
 * Loopback only: "localhost", 127.0.0.0/8, ::1 and the IPv4-mapped ::ffff:127.x (RFC 1122 §3.2.1.3,
 * RFC 4291 §2.5.3). Any other name may resolve anywhere, so it counts as not loopback.
 */
export function isLoopback(host: string): boolean {
  const h = host.toLowerCase();
  if (h === 'localhost' || h === '::1') return true;
  const v4 = h.startsWith('::ffff:') ? h.slice(7) : h;
  return isIP(v4) === 4 && v4.startsWith('127.');
}
