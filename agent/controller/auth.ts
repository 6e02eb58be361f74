/**
 * Bearer-token check for the agent link, done on the HTTP upgrade request BEFORE the WebSocket
 * exists. Only SHA-256 digests of tokens are held; the presented token is hashed and compared with
 * every configured digest in constant time (no early exit, so timing does not reveal which entry or
 * how many bytes matched). Tokens are never logged.
 */
import { timingSafeEqual } from 'node:crypto';
import { tokenDigest } from './config.js';

export interface TokenDigest {
  agentId?: string;
  sha256: Buffer;
}

export interface AuthOk {
  ok: true;
  /** The agent id this token is bound to, when the config binds one. */
  agentId?: string;
}
export interface AuthRefused {
  ok: false;
  reason: string;
}

/** Parse "Authorization: Bearer <token>" (RFC 6750 §2.1); anything else is refused. */
export function bearerToken(header: string | string[] | undefined): string | undefined {
  if (typeof header !== 'string') return undefined;
  const m = /^Bearer ([A-Za-z0-9\-._~+/]+=*)$/.exec(header.trim());
  return m?.[1];
}

export function checkBearer(header: string | string[] | undefined, accepted: readonly TokenDigest[]): AuthOk | AuthRefused {
  const token = bearerToken(header);
  if (token === undefined) return { ok: false, reason: 'missing or malformed Authorization: Bearer header' };
  const digest = tokenDigest(token);
  let match: TokenDigest | undefined;
  for (const entry of accepted) {
    // Compare against every entry even after a match.
    if (timingSafeEqual(digest, entry.sha256) && match === undefined) match = entry;
  }
  if (!match) return { ok: false, reason: 'bearer token not accepted' };
  return match.agentId === undefined ? { ok: true } : { ok: true, agentId: match.agentId };
}
