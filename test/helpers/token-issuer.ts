/**
 * A controller token issuer for agent-side link tests: an ES384 key pair whose public JWK the agent
 * pins (LinkOptions.tokenKeys, controller.tokenKey), and helpers that build verdicts exactly as the
 * reference controller does (agent/controller/session.ts) — or wrong in one chosen way, for the
 * hostile-controller tests.
 */
import { randomBytes } from 'node:crypto';
import { CompactEncrypt, exportJWK, generateKeyPair, importJWK, SignJWT, type CryptoKey, type JWK } from 'jose';
import type { PublicJwk } from '../../agent/formats/nonce-binding.js';
import type { VerdictMessage } from '../../agent/link/protocol.js';
import { SECRETS_CLAIM, secretDigest } from '../../agent/link/verdict.js';

export interface VerdictOptions {
  agentId: string;
  challengeId: string;
  /** The challenge nonce, hex. */
  nonce: string;
  /** The agent key's RFC 7638 thumbprint (cnf.jkt); null leaves cnf out. */
  jkt: string | null;
  /** The agent's public key: secrets are sealed to it. */
  teePubKey: PublicJwk;
  secrets?: Record<string, string>;
  status?: string;
  /** Claims to add or override (e.g. a wrong sub). */
  claims?: Record<string, unknown>;
  /** Leave these secrets out of the token's cvm.secrets claim. */
  unlisted?: string[];
  ttlSec?: number;
}

export class TokenIssuer {
  private constructor(
    private readonly privateKey: CryptoKey,
    readonly publicJwk: JWK,
  ) {}

  static async create(): Promise<TokenIssuer> {
    const { privateKey, publicKey } = await generateKeyPair('ES384');
    return new TokenIssuer(privateKey, { ...(await exportJWK(publicKey)), alg: 'ES384', use: 'sig' });
  }

  async sign(claims: Record<string, unknown>, ttlSec = 300): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ iat: now, exp: now + ttlSec, jti: randomBytes(8).toString('base64url'), iss: 'cvm-agent-controller', ...claims })
      .setProtectedHeader({ alg: 'ES384', typ: 'JWT' })
      .sign(this.privateKey);
  }

  async verdict(o: VerdictOptions): Promise<VerdictMessage> {
    const secrets = await Promise.all(Object.entries(o.secrets ?? {}).map(async ([name, value]) => ({ name, jwe: await sealTo(o.teePubKey, value) })));
    const listed = Object.fromEntries(secrets.filter((s) => !o.unlisted?.includes(s.name)).map((s) => [s.name, secretDigest(s.jwe)]));
    const token = await this.sign(
      {
        sub: o.agentId,
        eat_nonce: Buffer.from(o.nonce, 'hex').toString('base64url'),
        'ear.status': o.status ?? 'affirming',
        ...(o.jkt === null ? {} : { cnf: { jkt: o.jkt } }),
        ...(secrets.length > 0 ? { [SECRETS_CLAIM]: listed } : {}),
        ...o.claims,
      },
      o.ttlSec,
    );
    return { type: 'verdict', challengeId: o.challengeId, token, ...(secrets.length > 0 ? { secrets } : {}) };
  }
}

/** A compact JWE (ECDH-ES+A256KW, A256GCM) to `teePubKey`, as the controller seals secrets. */
export async function sealTo(teePubKey: PublicJwk, text: string): Promise<string> {
  const { kty, crv, x, y } = teePubKey;
  const pub = await importJWK({ kty, crv, x, y } as JWK, 'ECDH-ES+A256KW');
  return new CompactEncrypt(new TextEncoder().encode(text)).setProtectedHeader({ alg: 'ECDH-ES+A256KW', enc: 'A256GCM' }).encrypt(pub);
}

let shared: Promise<TokenIssuer> | undefined;
/** One issuer per test process: the key makeHarness pins by default. */
export function defaultIssuer(): Promise<TokenIssuer> {
  shared ??= TokenIssuer.create();
  return shared;
}
