/**
 * Signed link events (docs/protocol.md "Events"): {seq, at, kind, data, sig}. The signature is a
 * compact JWS (ES384, agent key) whose payload is the RFC 8785 canonical JSON of {seq, at, kind, data},
 * so a verifier needs nothing but the event and the public JWK; re-serialising the event (any key
 * order, any whitespace) cannot break it. The protected header carries `kid` (the JWK thumbprint) so a
 * controller can pick the right key for events written before an agent restart (the key is per process;
 * persisted events keep their original signature: re-signing old on-disk events with a new key would
 * launder anything written to that disk in between).
 */
import { CompactSign, compactVerify, decodeProtectedHeader } from 'jose';
import { canonicalize } from '../util/jcs.js';
import { ecJwkThumbprint } from '../util/jwk-thumbprint.js';
import { agentVerifyKey } from './agent-verify-key.js';
import type { PublicJwk } from '../formats/nonce-binding.js';
import type { AgentKey } from './agent-key.js';
import type { EventKind, EventMessage } from './protocol.js';

export const EVENT_JWS_TYP = 'cvm-event+jws';

export interface EventBody {
  seq: number;
  at: string;
  kind: EventKind;
  data: Record<string, unknown>;
}

/** The exact bytes that are signed. */
export function eventSigningInput(e: EventBody): Uint8Array {
  return new TextEncoder().encode(canonicalize({ seq: e.seq, at: e.at, kind: e.kind, data: e.data }));
}

export async function signEvent(body: EventBody, key: AgentKey): Promise<EventMessage> {
  const sig = await new CompactSign(eventSigningInput(body)).setProtectedHeader({ alg: 'ES384', typ: EVENT_JWS_TYP, kid: key.kid }).sign(key.signingKey);
  return { type: 'event', seq: body.seq, at: body.at, kind: body.kind, data: body.data, sig };
}

/** The `kid` of an event's signature (which agent key signed it), or undefined if unreadable. */
export function eventKeyId(event: Pick<EventMessage, 'sig'>): string | undefined {
  try {
    const kid = decodeProtectedHeader(event.sig).kid;
    return typeof kid === 'string' ? kid : undefined;
  } catch {
    return undefined;
  }
}

export type EventSignatureCheck = { ok: true } | { ok: false; reason: string };

/**
 * Controller side: does `sig` cover exactly this event's {seq, at, kind, data} under `jwk`?
 * Never throws; the reason names what failed.
 */
export async function checkEventSignature(event: EventMessage, jwk: PublicJwk): Promise<EventSignatureCheck> {
  try {
    if (jwk.kty !== 'EC' || jwk.crv !== 'P-384' || 'd' in jwk) return { ok: false, reason: 'the key must be an EC P-384 public JWK' };
    const header = decodeProtectedHeader(event.sig);
    if (header.alg !== 'ES384') return { ok: false, reason: `signature alg ${String(header.alg)} is not ES384` };
    if (header.typ !== EVENT_JWS_TYP) return { ok: false, reason: `signature typ must be ${EVENT_JWS_TYP}` };
    const pub = { kty: 'EC', crv: 'P-384', x: jwk.x, y: jwk.y };
    if (header.kid !== undefined && header.kid !== ecJwkThumbprint(pub)) {
      return { ok: false, reason: 'signature kid does not match the key (signed by another agent key)' };
    }
    const key = await agentVerifyKey(pub);
    const { payload } = await compactVerify(event.sig, key, { algorithms: ['ES384'] });
    const expected = eventSigningInput(event);
    if (Buffer.compare(Buffer.from(payload), Buffer.from(expected)) !== 0) return { ok: false, reason: 'signed payload differs from the event fields' };
    return { ok: true };
  } catch (err) {
    return { ok: false, reason: `signature invalid: ${err instanceof Error ? err.message : 'unknown error'}` };
  }
}

export async function verifyEventSignature(event: EventMessage, jwk: PublicJwk): Promise<boolean> {
  return (await checkEventSignature(event, jwk)).ok;
}

/** Size of an event as stored and sent (for the outbox byte bound). */
export function eventBytes(event: EventMessage): number {
  return Buffer.byteLength(JSON.stringify(event));
}
