/**
 * An agent's public key (teePubKey, an EC P-384 public JWK) as a WebCrypto verification key, for the
 * proofs of possession (./proof.ts) and the signed events (./events.ts) a controller checks.
 *
 * Imported from its SubjectPublicKeyInfo (RFC 5480 §2: id-ecPublicKey, secp384r1, the uncompressed
 * point 04 || x || y), which OpenSSL decodes with the point checked to be on the curve; on P-384
 * (cofactor 1) that is the whole public-key validation (SEC 1 v2 §3.2.2.1). A JWK import goes through
 * OpenSSL's EC_KEY_set_public_key_affine_coordinates, whose EC_KEY_check_key also multiplies the point
 * by the group order: 0.6-1 ms, about the cost of the signature check it precedes (SPKI: 0.15-0.3 ms).
 * Memoised by the exact coordinates (the key they define), LRU-bounded: an agent that re-attests on
 * its link reuses its key instead of importing it again.
 */
import { webcrypto } from 'node:crypto';
import { ParseError } from '../errors.js';
import { BoundedCache } from '../util/bounded-cache.js';
import type { PublicJwk } from '../formats/nonce-binding.js';

/** DER of SEQUENCE { SEQUENCE { id-ecPublicKey, secp384r1 }, BIT STRING (97 bytes, no unused bits) }, up to the point. */
const P384_SPKI_PREFIX = Buffer.from('3076301006072a8648ce3d020106052b81040022036200', 'hex');
const COORDINATE_BYTES = 48;

/** One imported key holds about 3 KiB of native memory (OpenSSL's EC key and group). */
const KEY_BYTES = 3 * 1024;
const keys = new BoundedCache<webcrypto.CryptoKey>({ maxEntries: 4096, maxBytes: 4096 * (KEY_BYTES + 256) });

function coordinate(v: unknown, name: string): Buffer {
  const b = typeof v === 'string' ? Buffer.from(v, 'base64url') : undefined;
  // Exactly the field size (RFC 7518 §6.2.1.2) and canonical base64url (Buffer's decoder skips bad characters).
  if (!b || b.length !== COORDINATE_BYTES || b.toString('base64url') !== v) {
    throw new ParseError(`the key's "${name}" must be the ${COORDINATE_BYTES}-byte P-384 coordinate in base64url`);
  }
  return b;
}

/** The verification key of an EC P-384 public JWK; rejects (ParseError or WebCrypto's error) for anything else or a point off the curve. */
export async function agentVerifyKey(jwk: PublicJwk): Promise<webcrypto.CryptoKey> {
  if (jwk.kty !== 'EC' || jwk.crv !== 'P-384') throw new ParseError('the key must be an EC P-384 public JWK');
  const x = coordinate(jwk.x, 'x');
  const y = coordinate(jwk.y, 'y');
  const id = `${jwk.x as string}.${jwk.y as string}`;
  const hit = keys.get(id);
  if (hit) return hit;
  const spki = Buffer.concat([P384_SPKI_PREFIX, Buffer.from([0x04]), x, y]);
  const key = await webcrypto.subtle.importKey('spki', spki, { name: 'ECDSA', namedCurve: 'P-384' }, false, ['verify']);
  keys.set(id, key, KEY_BYTES + id.length);
  return key;
}
