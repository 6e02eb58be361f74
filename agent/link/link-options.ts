/**
 * The ControllerLink's public types and options, in one place so the parts of the link
 * (./connection.ts, ./dispatch.ts, ./challenge-handler.ts, ./event-pump.ts) can share them without
 * importing ./client.ts, which assembles them (and re-exports these for its callers).
 */
import type { JWK } from 'jose';
import type { AgentKey } from './agent-key.js';
import type { BackoffOptions } from './backoff.js';
import type { Outbox } from './outbox.js';
import type { VerdictMessage, WelcomeMessage } from './protocol.js';
import type { SecretStore } from './secret-unwrap.js';
import type { VerifiedVerdict } from './verdict.js';

export type LinkState = 'connecting' | 'up' | 'down' | 'stopped';

/** Counted over the link's life (all connections); shown by status(). */
export interface LinkCounters {
  connects: number;
  disconnects: number;
  malformed: number;
  unknown: number;
  eventsSent: number;
  challenges: number;
}

export interface LinkStatus {
  state: LinkState;
  url: string;
  /** The last thing that went wrong, for status/metrics (never contains the token). */
  lastError?: string;
  /** ms until the next connection attempt, when one is scheduled. */
  reconnectIn?: number;
  attempt: number;
  connectedSince?: string;
  protocol?: number;
  heartbeatSec?: number;
  attestIntervalSec?: number;
  /** Next event seq to send on this connection. */
  sendCursor: number;
  lastAckedSeq: number;
  /** Event messages sent on this connection and not yet acknowledged, and the window that bounds them. */
  inFlight: number;
  window: { events: number; bytes: number };
  bufferedAmount: number;
  counters: LinkCounters;
}

export interface ChallengeAnswer {
  /** bundleToJson(bundle) of evidence bound to the challenge nonce. */
  bundle: Record<string, unknown>;
  /** The agent's EAR for that evidence. */
  localResult: Record<string, unknown>;
}

export interface LinkHandlers {
  /** Run an attestation cycle bound to `nonce` (the daemon's job) and return its evidence. */
  onChallenge(nonce: Buffer, id: string, expiresAt: Date): Promise<ChallengeAnswer>;
  /** The controller asks for a cycle now; results travel as events. */
  onAttestRequest(): Promise<void>;
  /**
   * An authenticated verdict arrived (see ./verdict.ts for what was checked); secrets (if any) are
   * already decrypted into the SecretStore under these names. `verified.keyBound` is false for a
   * verdict that attests nothing about this agent's key (e.g. contraindicated): its token must not be served.
   */
  onVerdict(verdict: VerdictMessage, secretNames: string[], verified: VerifiedVerdict): void | Promise<void>;
  onWelcome?(welcome: WelcomeMessage): void;
}

/** pino-compatible subset: (fields, message). */
export interface LinkLogger {
  debug(fields: object, msg: string): void;
  info(fields: object, msg: string): void;
  warn(fields: object, msg: string): void;
  error(fields: object, msg: string): void;
}

export interface LinkTlsOptions {
  /** Controller CA(s), PEM: replaces the system roots, so only this CA is trusted. */
  ca?: string | Buffer | Array<string | Buffer>;
  /** Client certificate and key (PEM) for mutual TLS. */
  cert?: string | Buffer;
  key?: string | Buffer;
  servername?: string;
  /** Optional SPKI pins: base64 SHA-256 of the controller certificate's SubjectPublicKeyInfo. */
  pinnedSpkiSha256?: string[];
}

export interface LinkOptions {
  /** wss://, or ws:// only together with `insecure: true` */
  url: string;
  /**
   * Further controller URLs (replicas; controller.urls after the first): each failed attempt or
   * dropped link moves to the next, round robin, with the same backoff between attempts.
   */
  urls?: string[];
  /** Allow an unencrypted, unauthenticated ws:// URL (loopback tests and demos); a warning is logged at every start. */
  insecure?: boolean;
  /**
   * Public keys (EC P-384 JWKs) the controller signs verdict tokens with (controller.tokenKey). Without
   * them only a `welcome.tokenKeys` JWKS received over wss:// with a pinned CA or SPKI is trusted.
   */
  tokenKeys?: JWK[];
  agentId: string;
  agentVersion: string;
  key: AgentKey;
  outbox: Outbox;
  handlers: LinkHandlers;
  inventory?: () => Record<string, unknown>;
  capabilities?: string[];
  /** File holding the bearer token; read at every connect so rotation needs no restart. */
  tokenFile?: string;
  tls?: LinkTlsOptions;
  /** WebSocket opening handshake limit (ws handshakeTimeout), and the wait for `welcome`. */
  handshakeTimeoutMs?: number;
  backoff?: BackoffOptions;
  /** Reset the backoff attempt counter after the link stayed up this long. */
  resetAfterMs?: number;
  /** Heartbeat before the controller's welcome sets one. */
  heartbeatSec?: number;
  /** Stop sending events while ws.bufferedAmount exceeds this. */
  highWatermarkBytes?: number;
  /** Inbound flood limit: a token bucket of `burst` messages refilled at `perSec`. */
  inboundRate?: { perSec: number; burst: number };
  /** Malformed messages tolerated per connection before disconnecting. */
  maxMalformed?: number;
  /** Challenges handled at once; more are answered with error "busy". */
  maxConcurrentChallenges?: number;
  secretStore?: SecretStore;
  log?: LinkLogger;
  random?: () => number;
  now?: () => number;
}

type OptionalLinkOptions = 'tokenFile' | 'tls' | 'secretStore' | 'inventory' | 'tokenKeys' | 'urls';

/**
 * LinkOptions with every default filled in. One object is shared by all parts of a link, so a
 * handler swapped on it later (tests do) is seen by all of them.
 */
export type ResolvedLinkOptions = Required<Omit<LinkOptions, OptionalLinkOptions>> & Pick<LinkOptions, OptionalLinkOptions>;

/** wss:// with a pinned CA or SPKI pins: what the controller sends in welcome comes from the controller. */
export function channelAuthenticates(opts: Pick<LinkOptions, 'url' | 'urls' | 'tls'>): boolean {
  return [opts.url, ...(opts.urls ?? [])].every((u) => /^wss:\/\//i.test(u)) && (opts.tls?.ca !== undefined || (opts.tls?.pinnedSpkiSha256?.length ?? 0) > 0);
}
