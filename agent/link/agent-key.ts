/**
 * The agent key (docs/protocol.md "Identity binding"): one EC P-384 key pair per process, created at start, never
 * written anywhere. Its public JWK is `teePubKey`, bound into every attestation; the controller
 * verifies event signatures with it (ES384) and encrypts released secrets to it (ECDH-ES+A256KW).
 *
 * WebCrypto ties a CryptoKey to one algorithm, so the same private scalar is imported twice: once
 * for ECDSA signing, once for ECDH key agreement. Both imported keys are non-extractable; the
 * transient PKCS#8 export needed for the double import is zero-filled right after. Using one key for
 * both jobs is what the design asks for (a single attestation-bound key); the uses never share inputs
 * (ECDSA signs SHA-384 digests, ECDH only derives shared secrets through Concat KDF).
 */
import { webcrypto } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK } from 'jose';
import type { PublicJwk } from '../formats/nonce-binding.js';

const subtle = webcrypto.subtle;
type CryptoKey = webcrypto.CryptoKey;

export interface AgentKey {
  /** Public JWK {kty, crv, x, y}: the teePubKey bound by attestation. */
  readonly publicJwk: PublicJwk;
  /** RFC 7638 SHA-256 thumbprint of publicJwk: the `kid` in event signatures. */
  readonly kid: string;
  /** Non-extractable ECDSA P-384 private key (sign). */
  readonly signingKey: CryptoKey;
  /** Non-extractable ECDH P-384 private key (deriveBits), for JWE decryption. */
  readonly agreementKey: CryptoKey;
  /** ECDSA public key (verify), for self-checks. */
  readonly verifyKey: CryptoKey;
}

export async function createAgentKey(): Promise<AgentKey> {
  const pair = (await subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-384' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const pkcs8 = new Uint8Array(await subtle.exportKey('pkcs8', pair.privateKey));
  let signingKey: CryptoKey;
  let agreementKey: CryptoKey;
  try {
    signingKey = await subtle.importKey('pkcs8', pkcs8, { name: 'ECDSA', namedCurve: 'P-384' }, false, ['sign']);
    agreementKey = await subtle.importKey('pkcs8', pkcs8, { name: 'ECDH', namedCurve: 'P-384' }, false, ['deriveBits']);
  } finally {
    pkcs8.fill(0);
  }
  const jwk = await exportJWK(pair.publicKey);
  const publicJwk: PublicJwk = { kty: 'EC', crv: 'P-384', x: jwk.x as string, y: jwk.y as string };
  const kid = await calculateJwkThumbprint(publicJwk as Parameters<typeof calculateJwkThumbprint>[0], 'sha256');
  // The extractable original private key is dropped here; only the non-extractable imports remain.
  return Object.freeze({ publicJwk: Object.freeze(publicJwk), kid, signingKey, agreementKey, verifyKey: pair.publicKey });
}
