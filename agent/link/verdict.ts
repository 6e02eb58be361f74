/**
 * Authenticating a controller verdict on the agent (docs/protocol.md "Verdict and secret
 * authentication"). Nothing from a verdict is stored until:
 *   - it answers a challenge this agent answered on this connection (the link checks that, once);
 *   - its token is a JWT signed ES384 by a controller token key the agent trusts (pinned in
 *     controller.tokenKey, or the welcome's JWKS over TLS with a pinned CA/SPKI), with
 *     `sub` = this agent's id and `eat_nonce` = base64url(that challenge's nonce);
 *   - `cnf.jkt`, when present, is the RFC 7638 thumbprint of this process's agent key (a token without
 *     it attests nothing about this key: it is never stored and releases nothing);
 *   - every secret JWE is listed in the token's `cvm.secrets` claim under its name with the base64url
 *     SHA-256 of the compact JWE, and the claim lists nothing that did not arrive.
 */
import { createHash } from 'node:crypto';
import { errors as joseErrors, exportJWK, importJWK, importSPKI, jwtVerify, type JWK, type JWTPayload } from 'jose';
import { ConfigError, VerdictError } from '../errors.js';
import { InputFileError, readBoundedText } from '../util/bounded-read.js';
import type { VerdictMessage } from './protocol.js';

export const TOKEN_ALGORITHMS = ['ES384'];
/** Token claim: {<secret name>: base64url(SHA-256(compact JWE))} for every secret the verdict carries. */
export const SECRETS_CLAIM = 'cvm.secrets';
/** Tolerated clock difference between the VM and the controller when checking exp/iat. */
export const CLOCK_TOLERANCE_SEC = 60;
const MAX_TOKEN_KEYS = 8;

export function secretDigest(jwe: string): string {
  return createHash('sha256').update(jwe, 'ascii').digest('base64url');
}

export { VerdictError };

/** Public EC P-384 JWKs only: a private key, another curve or another type is refused with the reason. */
export function publicTokenKeys(doc: unknown, source: string): JWK[] {
  const list = typeof doc === 'object' && doc !== null && Array.isArray((doc as { keys?: unknown }).keys) ? (doc as { keys: unknown[] }).keys : [doc];
  if (list.length === 0 || list.length > MAX_TOKEN_KEYS) throw new ConfigError(`${source}: expected 1..${MAX_TOKEN_KEYS} keys, found ${list.length}`);
  return list.map((k, i) => {
    if (typeof k !== 'object' || k === null || Array.isArray(k)) throw new ConfigError(`${source}: key ${i} is not a JWK object`);
    const j = k as Record<string, unknown>;
    if ('d' in j) throw new ConfigError(`${source}: key ${i} is a PRIVATE key; give the controller's public token key (its /.well-known/jwks.json)`);
    if (j.kty !== 'EC' || j.crv !== 'P-384' || typeof j.x !== 'string' || typeof j.y !== 'string') {
      throw new ConfigError(`${source}: key ${i} must be an EC P-384 public key (the controller signs tokens with ES384)`);
    }
    return { kty: 'EC', crv: 'P-384', x: j.x, y: j.y, ...(typeof j.kid === 'string' ? { kid: j.kid } : {}) };
  });
}

/** Read controller.tokenKey: a PEM public key (SPKI), a JWK, or a JWKS (`{keys: [...]}`). */
export async function loadTokenKeys(file: string): Promise<JWK[]> {
  let text: string;
  try {
    text = await readBoundedText(file, 'publicKey');
  } catch (err) {
    if (err instanceof InputFileError) throw new ConfigError(`controller.tokenKey: ${err.message}`, { cause: err });
    throw new ConfigError(`controller.tokenKey: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
  const source = `controller.tokenKey (${file})`;
  if (text.includes('-----BEGIN')) {
    if (/PRIVATE KEY-----/.test(text)) throw new ConfigError(`${source}: is a PRIVATE key; give the controller's public token key`);
    try {
      const key = await importSPKI(text.trim(), 'ES384', { extractable: true });
      return publicTokenKeys(await exportJWK(key), source);
    } catch (err) {
      if (err instanceof ConfigError) throw err;
      throw new ConfigError(`${source}: not an EC P-384 public key in PEM ("BEGIN PUBLIC KEY"): ${(err as Error).message}`, { cause: err });
    }
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new ConfigError(`${source}: neither a PEM public key nor JSON (a JWK or a JWKS)`);
  }
  return publicTokenKeys(doc, source);
}

export interface VerdictExpectation {
  agentId: string;
  /** The nonce of the challenge this verdict answers (the one this agent answered). */
  nonce: Buffer;
  /** RFC 7638 thumbprint of this process's agent key. */
  keyThumbprint: string;
  now: Date;
}

export interface VerifiedVerdict {
  claims: JWTPayload & Record<string, unknown>;
  expiresAt: Date;
  /** cnf.jkt names this agent's key: the controller attested it. False for a verdict that attests nothing. */
  keyBound: boolean;
  status: string;
}

/** Verify a verdict's token and secret envelopes; throws VerdictError with the reason. Stores nothing. */
export async function verifyVerdict(v: VerdictMessage, keys: readonly JWK[], exp: VerdictExpectation): Promise<VerifiedVerdict> {
  if (keys.length === 0) throw new VerdictError('no controller token key is trusted: set controller.tokenKey, or use wss:// with controller.caFile');
  // Every trusted key is tried (at most 8), not only one whose `kid` matches the header: a key pinned
  // from a PEM file has no kid, and a kid is a hint, not an authenticator.
  let payload: JWTPayload | undefined;
  for (const jwk of keys) {
    const { kty, crv, x, y } = jwk;
    try {
      ({ payload } = await jwtVerify(v.token, await importJWK({ kty, crv, x, y }, 'ES384'), {
        algorithms: TOKEN_ALGORITHMS,
        subject: exp.agentId,
        requiredClaims: ['exp', 'iat', 'sub', 'eat_nonce'],
        clockTolerance: CLOCK_TOLERANCE_SEC,
        currentDate: exp.now,
      }));
      break;
    } catch (err) {
      if (err instanceof joseErrors.JWSSignatureVerificationFailed) continue;
      throw new VerdictError(`token rejected: ${(err as Error).message}`, { cause: err });
    }
  }
  if (!payload) throw new VerdictError('token rejected: its signature does not verify under any trusted controller token key');
  const claims = payload as JWTPayload & Record<string, unknown>;
  if (claims.eat_nonce !== exp.nonce.toString('base64url'))
    throw new VerdictError('token rejected: its eat_nonce is not the nonce of the challenge this agent answered');
  const cnf = claims.cnf as { jkt?: unknown } | undefined;
  if (cnf !== undefined && (typeof cnf !== 'object' || cnf === null || cnf.jkt !== exp.keyThumbprint)) {
    throw new VerdictError("token rejected: its cnf.jkt is not the thumbprint of this agent's key");
  }
  const keyBound = cnf !== undefined;
  const secrets = v.secrets ?? [];
  const listed = claims[SECRETS_CLAIM];
  if (listed !== undefined && (typeof listed !== 'object' || listed === null || Array.isArray(listed)))
    throw new VerdictError(`token rejected: ${SECRETS_CLAIM} must be an object`);
  const digests = new Map(Object.entries((listed ?? {}) as Record<string, unknown>));
  if (secrets.length > 0 && !keyBound) throw new VerdictError("secrets rejected: the token does not confirm this agent's key (no cnf.jkt)");
  const seen = new Set<string>();
  for (const s of secrets) {
    if (seen.has(s.name)) throw new VerdictError(`secrets rejected: "${s.name}" arrived twice`);
    seen.add(s.name);
    const d = digests.get(s.name);
    if (typeof d !== 'string' || d !== secretDigest(s.jwe))
      throw new VerdictError(`secrets rejected: "${s.name}" is not authenticated by the token (${SECRETS_CLAIM} has no matching SHA-256 for it)`);
  }
  for (const name of digests.keys())
    if (!seen.has(name)) throw new VerdictError(`secrets rejected: the token lists "${name.slice(0, 128)}", which did not arrive`);
  return { claims, expiresAt: new Date((claims.exp as number) * 1000), keyBound, status: String(claims['ear.status'] ?? 'unknown') };
}
