/**
 * The controller link protocol, shared by the agent (./client.ts) and the reference controller:
 * constants, message types, version negotiation, and a decoder that never throws.
 * The wire format is documented in docs/protocol.md; the schemas are ./schemas.ts.
 */
import type { PublicJwk } from '../formats/nonce-binding.js';
import { CvmError } from '../errors.js';
import { validate, type Schema } from './json-schema.js';
import { AGENT_SCHEMAS, CONTROLLER_SCHEMAS, EVENT_KINDS } from './schemas.js';

/** WebSocket subprotocol (Sec-WebSocket-Protocol); docs/protocol.md. */
export const PROTOCOL = 'cvm-agent.v1';
/** The message-format version this build speaks; negotiated in hello/welcome. */
export const PROTOCOL_VERSION = 1;
export const SUPPORTED_VERSIONS = { min: 1, max: 1 } as const;
/** Largest message either side accepts; both sides set ws `maxPayload` to it (ws closes with 1009 above). */
export const MAX_MESSAGE_BYTES = 1024 * 1024;

/** WebSocket close codes (4000-4999 are private use, RFC 6455 §7.4.2). */
export const CLOSE = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  /** Malformed message, or a message type not allowed in this state. */
  PROTOCOL_ERROR: 1002,
  /** Flood, or another policy violation. */
  POLICY: 1008,
  TOO_BIG: 1009,
  /** hello and welcome share no protocol version. */
  VERSION_MISMATCH: 4001,
  /** The peer did not complete hello/welcome in time. */
  HANDSHAKE_TIMEOUT: 4002,
  /** The controller is overloaded (IANA WebSocket close code 1013, Try Again Later); reconnect with backoff. */
  TRY_AGAIN_LATER: 1013,
  /** The agent is not allowed (unknown id, revoked). */
  FORBIDDEN: 4003,
} as const;

/**
 * Event window an agent applies when `welcome` announces none (a controller from before flow
 * control): a controller that enforces a burst limit of 60 messages never sees more than this.
 */
export const DEFAULT_WINDOW = 32;
export const DEFAULT_WINDOW_BYTES = 16 * 1024 * 1024;

export type EventKind = (typeof EVENT_KINDS)[number];
export { EVENT_KINDS };

export type VersionOffer = { min: number; max: number } | number[];

// agent -> controller
export interface HelloMessage {
  type: 'hello';
  agentId: string;
  /** Agent software version. */
  version: string;
  protocol: VersionOffer;
  /** The agent key (events are signed with it, secrets are encrypted to it); bound by evidence. */
  teePubKey: PublicJwk;
  inventory: Record<string, unknown>;
  capabilities: string[];
  /** First event seq the agent still holds unacknowledged (last acked + 1). */
  resumeFrom: number;
}
export interface EvidenceMessage {
  type: 'evidence';
  challengeId: string;
  /** bundleToJson(EvidenceBundle): check it with parseBundle(). */
  bundle: Record<string, unknown>;
  /** The agent's EAR (agent/appraise/ear.ts); advisory. */
  localResult: Record<string, unknown>;
  /** Compact JWS by the bundle's teePubKey over JCS({agentId, challengeId, nonce}) (./proof.ts): possession of the key in this session. */
  proof: string;
}
export interface EventMessage {
  type: 'event';
  seq: number;
  /** RFC 3339 time the agent recorded the event. */
  at: string;
  kind: EventKind;
  data: Record<string, unknown>;
  /** Compact JWS (ES384, agent key), payload JCS({seq, at, kind, data}). */
  sig: string;
}
export interface ErrorMessage {
  type: 'error';
  code: string;
  message: string;
  challengeId?: string;
}
export type AgentMessage = HelloMessage | EvidenceMessage | EventMessage | ErrorMessage;

// controller -> agent
export interface WelcomeMessage {
  type: 'welcome';
  protocol: number;
  heartbeatSec: number;
  attestIntervalSec?: number;
  /** The first event seq the controller wants; the agent resends from max(this, its oldest held). */
  resumeFrom?: number;
  /** Flow control: at most this many event messages unacknowledged on the connection. */
  window?: number;
  /** Flow control: at most this many bytes of unacknowledged event messages (one event always fits). */
  windowBytes?: number;
  /** JWKS of the controller's token signing keys; trusted by the agent only over wss:// with a pinned CA or SPKI. */
  tokenKeys?: { keys: PublicJwk[] };
}
export interface ChallengeMessage {
  type: 'challenge';
  id: string;
  /** Lowercase hex, 8..64 bytes. */
  nonce: string;
  expiresAt: string;
}
export interface AttestMessage {
  type: 'attest';
}
export interface SecretEnvelope {
  name: string;
  /** Compact JWE, alg ECDH-ES+A256KW, enc A256GCM, to teePubKey. */
  jwe: string;
}
export interface VerdictMessage {
  type: 'verdict';
  challengeId: string;
  /** EAR as a JWT signed by the controller: sub, eat_nonce, cnf.jkt and cvm.secrets authenticate the verdict (./verdict.ts). */
  token: string;
  secrets?: SecretEnvelope[];
}
export interface AckMessage {
  type: 'ack';
  seq: number;
}
export type ControllerMessage = WelcomeMessage | ChallengeMessage | AttestMessage | VerdictMessage | AckMessage | ErrorMessage;

export type Direction = 'agent->controller' | 'controller->agent';
export type MessageFor<D extends Direction> = D extends 'agent->controller' ? AgentMessage : ControllerMessage;

export type ValidationResult<M> = { ok: true; message: M } | { ok: false; error: string; unknown?: true; type?: string };

function schemasFor(direction: Direction): Record<string, Schema> {
  return direction === 'agent->controller' ? AGENT_SCHEMAS : CONTROLLER_SCHEMAS;
}

/** Schema-check an already-parsed value. Unknown `type` -> {ok:false, unknown:true} (log and ignore). */
export function validateMessage<D extends Direction>(direction: D, value: unknown): ValidationResult<MessageFor<D>> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { ok: false, error: '/: a message must be a JSON object' };
  const type = (value as Record<string, unknown>).type;
  if (typeof type !== 'string') return { ok: false, error: '/type: must be a string' };
  const schemas = schemasFor(direction);
  const schema = Object.hasOwn(schemas, type) ? schemas[type] : undefined;
  if (!schema) return { ok: false, unknown: true, type: type.slice(0, 64), error: `unknown message type "${type.slice(0, 64)}" for ${direction}` };
  const error = validate(schema, value);
  if (error) return { ok: false, type, error: `${type}${error}` };
  return { ok: true, message: value as MessageFor<D> };
}

/** Size check, JSON.parse, schema. Never throws: every failure is a result the caller logs. */
export function decodeMessage<D extends Direction>(raw: Buffer | ArrayBuffer | Buffer[] | string, direction: D): ValidationResult<MessageFor<D>> {
  try {
    let text: string;
    if (typeof raw === 'string') {
      if (raw.length > MAX_MESSAGE_BYTES || Buffer.byteLength(raw, 'utf8') > MAX_MESSAGE_BYTES)
        return { ok: false, error: `message larger than ${MAX_MESSAGE_BYTES} bytes` };
      text = raw;
    } else {
      const buf = Array.isArray(raw) ? Buffer.concat(raw) : Buffer.isBuffer(raw) ? raw : Buffer.from(raw);
      if (buf.length > MAX_MESSAGE_BYTES) return { ok: false, error: `message larger than ${MAX_MESSAGE_BYTES} bytes` };
      // Strict UTF-8: TextDecoder with fatal rejects invalid sequences instead of substituting U+FFFD.
      text = new TextDecoder('utf-8', { fatal: true }).decode(buf);
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      return { ok: false, error: `not JSON: ${(err as Error).message.slice(0, 200)}` };
    }
    return validateMessage(direction, value);
  } catch (err) {
    // Invalid UTF-8, or anything unforeseen: still a result, never an exception on the socket path.
    return { ok: false, error: `undecodable message: ${err instanceof Error ? err.message.slice(0, 200) : 'unknown'}` };
  }
}

/** Serialize a message after checking it against its schema (a bug on our side must not reach the wire). */
export function encodeMessage(direction: Direction, message: AgentMessage | ControllerMessage): string {
  const checked = validateMessage(direction, message);
  if (!checked.ok) throw new CvmError('ERR_LINK_ENCODE', `refusing to send an invalid ${direction} message: ${checked.error}`);
  const text = JSON.stringify(message);
  if (Buffer.byteLength(text) > MAX_MESSAGE_BYTES) throw new CvmError('ERR_LINK_ENCODE', `message larger than ${MAX_MESSAGE_BYTES} bytes`);
  return text;
}

/** The versions an offer covers (a range is expanded, bounded to 1..65535 by the schema). */
function offered(offer: VersionOffer): (v: number) => boolean {
  return Array.isArray(offer) ? (v) => offer.includes(v) : (v) => v >= offer.min && v <= offer.max;
}

/**
 * The highest version both sides speak, or undefined (the controller then closes with 4001
 * VERSION_MISMATCH and a reason naming both ranges).
 */
export function negotiateVersion(offer: VersionOffer, supported: VersionOffer = SUPPORTED_VERSIONS): number | undefined {
  const theirs = offered(offer);
  const ours = Array.isArray(supported) ? [...supported] : range(supported.min, supported.max);
  return ours.filter(theirs).sort((a, b) => b - a)[0];
}

function range(min: number, max: number): number[] {
  const out: number[] = [];
  for (let v = min; v <= max && out.length < 65536; v++) out.push(v);
  return out;
}

export function describeOffer(offer: VersionOffer): string {
  return Array.isArray(offer) ? `[${offer.join(', ')}]` : `${offer.min}..${offer.max}`;
}
