/**
 * The RFC 7638 JWK thumbprint of an EC public key: base64url(SHA-256) of the JSON object of its
 * required members, {"crv","kty","x","y"} in lexicographic order, without whitespace (RFC 7638 §3.2,
 * §3.3; the members of an EC key, RFC 7518 §6.2.1). The same string jose's calculateJwkThumbprint
 * gives, computed synchronously (a WebCrypto digest is a thread-pool job and a promise per call; the
 * controller takes 3-4 thumbprints per verdict).
 */
import { createHash } from 'node:crypto';
import { ParseError } from '../errors.js';

export function ecJwkThumbprint(jwk: { kty?: unknown; crv?: unknown; x?: unknown; y?: unknown }): string {
  const { crv, kty, x, y } = jwk;
  if (kty !== 'EC') throw new ParseError(`JWK thumbprint: "kty" must be "EC", got ${JSON.stringify(kty) ?? 'nothing'}`);
  for (const [name, v] of [
    ['crv', crv],
    ['x', x],
    ['y', y],
  ] as const) {
    if (typeof v !== 'string' || v.length === 0) throw new ParseError(`JWK thumbprint: "${name}" must be a non-empty string`);
  }
  return createHash('sha256').update(JSON.stringify({ crv, kty, x, y })).digest('base64url');
}
