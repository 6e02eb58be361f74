/**
 * The controller's result signer: EAR claims as a JWT signed ES384 (jose). The key is an EC P-384
 * PKCS#8 PEM from the config, or generated in memory at start (tokens then stop verifying after a
 * restart; the CLI warns). The public key is published as a JWKS so relying parties can verify,
 * each key with its `kid` (the RFC 7638 thumbprint) that every token's header names. Replicas share
 * the configured key. Rotation (docs/controller.md "Token key rotation"): `publishedKeys` adds keys
 * that are published (JWKS and welcome.tokenKeys) but never sign: the next key before the switch,
 * the previous one after it, until the last token it signed has expired.
 */
import { createPublicKey, randomBytes, webcrypto } from 'node:crypto';
import { exportJWK, generateKeyPair, importPKCS8, type CryptoKey, type JWK } from 'jose';
import { ConfigError, InternalError } from '../errors.js';
import { ecJwkThumbprint } from '../util/jwk-thumbprint.js';
import type { Ear } from '../appraise/ear.js';
import type { PublicJwk } from '../formats/nonce-binding.js';

export const TOKEN_ALG = 'ES384';
export const TOKEN_ISSUER = 'cvm-agent-controller';

export interface SignOptions {
  /** Agent id: the token's subject. */
  subject: string;
  ttlSec: number;
  /** When given, the token is bound to this key (RFC 7800 cnf, jkt = RFC 7638 SHA-256 thumbprint). */
  confirmationKey?: PublicJwk;
  /** Extra private claims (e.g. cvm.secrets); they cannot override the registered ones set here. */
  claims?: Record<string, unknown>;
}

export class TokenSigner {
  private constructor(
    private readonly privateKey: CryptoKey,
    readonly publicJwk: JWK,
    readonly kid: string,
    /** True when the key was generated in memory (no signingKey configured). */
    readonly ephemeral: boolean,
    /** Published, never signing (publishedKeys). */
    readonly published: JWK[] = [],
  ) {}

  static async create(pem?: string, publishedPems: readonly string[] = []): Promise<TokenSigner> {
    let privateKey: CryptoKey;
    let publicJwk: JWK;
    if (pem === undefined) {
      const pair = await generateKeyPair(TOKEN_ALG, { extractable: false });
      privateKey = pair.privateKey;
      publicJwk = await exportJWK(pair.publicKey);
    } else {
      try {
        // Extractable only so that the public half can be derived; the private JWK is never kept or exported.
        const key = await importPKCS8(pem, TOKEN_ALG, { extractable: true });
        const { d: _d, ...pub } = await exportJWK(key);
        if (pub.kty !== 'EC' || pub.crv !== 'P-384') throw new ConfigError(`key is ${pub.kty} ${pub.crv ?? ''}, expected EC P-384`);
        privateKey = await importPKCS8(pem, TOKEN_ALG, { extractable: false });
        publicJwk = pub;
      } catch (err) {
        throw new ConfigError(`signingKey: not an EC P-384 private key in PKCS#8 PEM ("BEGIN PRIVATE KEY"): ${(err as Error).message}`, { cause: err });
      }
    }
    const kid = ecJwkThumbprint(publicJwk);
    const published: JWK[] = [];
    for (const [i, p] of publishedPems.entries()) {
      const jwk = publishedJwk(p, i);
      const k = ecJwkThumbprint(jwk);
      if (k !== kid && !published.some((x) => x.kid === k)) published.push({ ...jwk, alg: TOKEN_ALG, use: 'sig', kid: k });
    }
    return new TokenSigner(privateKey, { ...publicJwk, alg: TOKEN_ALG, use: 'sig', kid }, kid, pem === undefined, published);
  }

  /** The JWKS document served at /.well-known/jwks.json: the signing key first, then the published ones. */
  jwks(): { keys: JWK[] } {
    return { keys: [this.publicJwk, ...this.published] };
  }

  /**
   * Sign an EAR: its iat is kept; exp = iat + ttl; a random jti identifies the token. A compact JWS
   * (RFC 7515 §7.1) over the JWT claims (RFC 7519): BASE64URL(header) "." BASE64URL(claims), signed
   * ES384 by WebCrypto with the non-extractable key (its output is the JWS form, r || s, RFC 7518
   * §3.4). Built here rather than by jose's SignJWT, which deep-copies the claims and base64url-encodes
   * them in JavaScript: for an 8-GPU EAR with claims (~38 KB of JSON) about 0.7 ms of CPU per token.
   */
  async sign(ear: Ear, opts: SignOptions): Promise<{ token: string; expiresAt: Date }> {
    const exp = ear.iat + opts.ttlSec;
    if (!Number.isFinite(exp)) throw new InternalError(`token times must be finite numbers (iat ${ear.iat}, exp ${exp})`);
    // The order jose's SignJWT gives: the claims, then iss, sub, iat (kept in place), exp, jti.
    const claims: Record<string, unknown> = { ...opts.claims, ...ear };
    if (opts.confirmationKey) claims.cnf = { jkt: ecJwkThumbprint(opts.confirmationKey) };
    claims.iss = TOKEN_ISSUER;
    claims.sub = opts.subject;
    claims.iat = ear.iat;
    claims.exp = exp;
    claims.jti = randomBytes(16).toString('base64url');
    const header = { alg: TOKEN_ALG, kid: this.kid, typ: 'JWT' };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const signature = await webcrypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-384' }, this.privateKey, Buffer.from(input, 'ascii'));
    return { token: `${input}.${Buffer.from(signature).toString('base64url')}`, expiresAt: new Date(exp * 1000) };
  }
}

const b64url = (text: string) => Buffer.from(text, 'utf8').toString('base64url');

/** The public half of a publishedKeys entry: an EC P-384 public key (SPKI) or private key PEM. */
function publishedJwk(pem: string, i: number): JWK {
  try {
    const jwk = createPublicKey(pem).export({ format: 'jwk' }) as JWK;
    if (jwk.kty !== 'EC' || jwk.crv !== 'P-384') throw new ConfigError(`key is ${jwk.kty} ${jwk.crv ?? ''}, expected EC P-384`);
    return { kty: jwk.kty, crv: jwk.crv, x: jwk.x!, y: jwk.y! };
  } catch (err) {
    throw new ConfigError(`publishedKeys[${i}]: not an EC P-384 key in PEM ("BEGIN PUBLIC KEY" or "BEGIN PRIVATE KEY"): ${(err as Error).message}`, {
      cause: err,
    });
  }
}
