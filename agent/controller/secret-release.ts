/**
 * Secret release: decide whether an appraisal earns the agent its secrets, and seal each allowed
 * secret as a compact JWE (ECDH-ES+A256KW, A256GCM) to the teePubKey taken from the VERIFIED bundle,
 * so only the process holding the attested key can open it (docs/protocol.md "Verdict and secret authentication").
 *
 * Rule (docs/controller.md "Secret release"): every device of the agent must be `affirming`
 * (releaseSecretsOn: affirming, the default) or at least `warning` (releaseSecretsOn: warning).
 * A contraindicated or `none` device, or no device at all, never releases anything.
 */
import { CompactEncrypt, importJWK, type JWK } from 'jose';
import type { TrustStatus } from '../formats/checks.js';
import type { PublicJwk } from '../formats/nonce-binding.js';
import type { ReleaseRule } from './config.js';
import { secretDigest } from '../link/verdict.js';

export const SECRET_ALG = 'ECDH-ES+A256KW';
export const SECRET_ENC = 'A256GCM';

export interface ReleaseDecision {
  release: boolean;
  reason: string;
}

export function releaseDecision(devices: readonly { id: string; status: TrustStatus }[], rule: ReleaseRule): ReleaseDecision {
  if (devices.length === 0) return { release: false, reason: 'no device was appraised' };
  const allowed: TrustStatus[] = rule === 'affirming' ? ['affirming'] : ['affirming', 'warning'];
  const blocking = devices.filter((d) => !allowed.includes(d.status));
  if (blocking.length > 0) {
    return {
      release: false,
      reason: `secrets withheld: ${blocking.map((d) => `${d.id} is ${d.status}`).join(', ')} (releaseSecretsOn: ${rule} requires ${allowed.join(' or ')})`,
    };
  }
  return { release: true, reason: `every device is ${allowed.join(' or ')}` };
}

export interface ConfiguredSecret {
  name: string;
  value: Buffer;
  agents?: string[];
}

/**
 * The secrets configured for this agent id (no allow-list = every attested agent). A secret with an
 * allow-list goes only to a session whose credential proves the id (`credentialBound`: a token bound
 * to it, or a client certificate naming it): an id said in hello under a fleet token proves nothing.
 */
export function secretsFor(agentId: string, secrets: readonly ConfiguredSecret[], credentialBound: boolean): ConfiguredSecret[] {
  return secrets.filter((s) => s.agents === undefined || (credentialBound && s.agents.includes(agentId)));
}

/** The token claim that authenticates the released JWEs to the agent (agent/link/verdict.ts). */
export function secretDigests(sealed: readonly { name: string; jwe: string }[]): Record<string, string> {
  return Object.fromEntries(sealed.map((s) => [s.name, secretDigest(s.jwe)]));
}

export async function sealSecrets(secrets: readonly ConfiguredSecret[], teePubKey: PublicJwk): Promise<{ name: string; jwe: string }[]> {
  // Nothing to seal: skip the key import (about 7% of a verdict's CPU when no secrets are configured).
  if (secrets.length === 0) return [];
  const { kty, crv, x, y } = teePubKey; // public members only
  const key = await importJWK({ kty, crv, x, y } as JWK, SECRET_ALG);
  return Promise.all(
    secrets.map(async (s) => ({
      name: s.name,
      jwe: await new CompactEncrypt(s.value).setProtectedHeader({ alg: SECRET_ALG, enc: SECRET_ENC, cty: 'application/octet-stream' }).encrypt(key),
    })),
  );
}
