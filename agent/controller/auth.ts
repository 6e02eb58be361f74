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

/**
 * What authenticated a link, as far as agent identity goes. A bearer token may be bound to one agent
 * id (agents.tokens[].agentId); a client certificate from tls.clientCa names agent ids in its subject
 * CN and its DNS subjectAltNames. An unbound (fleet) token names no id: its holder is "an agent of the
 * fleet", and the id it says in hello is a label, not an identity.
 */
export interface Credential {
  tokenAgentId?: string;
  /** Present when a client certificate from tls.clientCa authenticated the connection. */
  certAgentIds?: string[];
}

export type CredentialCheck = { ok: true; bound: boolean } | { ok: false; reason: string };

/** May a session with this credential use `agentId`, and does the credential prove that id (bound)? */
export function credentialFor(cred: Credential, agentId: string): CredentialCheck {
  if (cred.tokenAgentId !== undefined && cred.tokenAgentId !== agentId) {
    return { ok: false, reason: `this bearer token is bound to another agent id than "${agentId}"` };
  }
  if (cred.certAgentIds !== undefined && !cred.certAgentIds.includes(agentId)) {
    return {
      ok: false,
      reason: `the client certificate does not name agent id "${agentId}" (it names ${cred.certAgentIds.map((n) => `"${n.slice(0, 64)}"`).join(', ') || 'none'} in its CN and DNS subjectAltNames)`,
    };
  }
  return { ok: true, bound: cred.tokenAgentId === agentId || (cred.certAgentIds?.includes(agentId) ?? false) };
}

/** The agent ids a client certificate names: subject CN and DNS subjectAltNames (RFC 5280 §4.2.1.6). */
export function certificateAgentIds(cert: { subject?: Record<string, unknown> | null; subjectaltname?: string } | undefined): string[] {
  if (!cert) return [];
  const ids: string[] = [];
  const cn = cert.subject?.CN;
  for (const v of Array.isArray(cn) ? cn : [cn]) if (typeof v === 'string') ids.push(v);
  for (const part of (cert.subjectaltname ?? '').split(', ')) if (part.startsWith('DNS:')) ids.push(part.slice(4));
  return [...new Set(ids)];
}
