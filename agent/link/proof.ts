/**
 * Proof of possession for an evidence message (docs/protocol.md "Identity binding"). Evidence alone
 * does not show who sends it: a local socket peer can have a victim VM's agent produce a bundle for any
 * nonce (GET /v1/evidence) and present it on a link of its own. So every `evidence` message carries a
 * compact JWS by the agent key over the session-unique challenge it answers:
 *   header  {alg: "ES384", typ: "cvm-evidence-proof+jws", kid: RFC 7638 thumbprint of the agent key}
 *   payload JCS({agentId, challengeId, nonce})      (nonce: the challenge nonce, lowercase hex)
 * The controller issued that challenge on this connection only, so a valid proof under the bundle's
 * teePubKey shows that the session holds the attested key now.
 */
import { CompactSign, compactVerify, decodeProtectedHeader } from 'jose';
import { canonicalize } from '../util/jcs.js';
import { ecJwkThumbprint } from '../util/jwk-thumbprint.js';
import { agentVerifyKey } from './agent-verify-key.js';
import type { PublicJwk } from '../formats/nonce-binding.js';
import type { AgentKey } from './agent-key.js';

export const EVIDENCE_PROOF_TYP = 'cvm-evidence-proof+jws';

export interface ProofBody {
  agentId: string;
  challengeId: string;
  /** The challenge nonce, lowercase hex. */
  nonce: string;
}

/** The exact bytes that are signed. */
export function proofSigningInput(b: ProofBody): Uint8Array {
  return new TextEncoder().encode(canonicalize({ agentId: b.agentId, challengeId: b.challengeId, nonce: b.nonce }));
}

export async function signEvidenceProof(body: ProofBody, key: AgentKey): Promise<string> {
  return new CompactSign(proofSigningInput(body)).setProtectedHeader({ alg: 'ES384', typ: EVIDENCE_PROOF_TYP, kid: key.kid }).sign(key.signingKey);
}

export type ProofCheck = { ok: true } | { ok: false; reason: string };

/** Controller side: is `proof` a signature by `jwk` over exactly `expected`? Never throws. */
export async function checkEvidenceProof(proof: string, jwk: PublicJwk, expected: ProofBody): Promise<ProofCheck> {
  try {
    if (jwk.kty !== 'EC' || jwk.crv !== 'P-384') return { ok: false, reason: 'the key must be an EC P-384 public JWK' };
    const header = decodeProtectedHeader(proof);
    if (header.alg !== 'ES384') return { ok: false, reason: `proof alg ${String(header.alg)} is not ES384` };
    if (header.typ !== EVIDENCE_PROOF_TYP) return { ok: false, reason: `proof typ must be ${EVIDENCE_PROOF_TYP}` };
    const pub = { kty: 'EC', crv: 'P-384', x: jwk.x, y: jwk.y };
    if (header.kid !== ecJwkThumbprint(pub)) {
      return { ok: false, reason: 'proof kid is not the thumbprint of the session key' };
    }
    const { payload } = await compactVerify(proof, await agentVerifyKey(pub), { algorithms: ['ES384'] });
    if (Buffer.compare(Buffer.from(payload), Buffer.from(proofSigningInput(expected))) !== 0) {
      return { ok: false, reason: 'the proof was made for another agent id, challenge or nonce' };
    }
    return { ok: true };
  } catch (err) {
    return { ok: false, reason: `proof signature invalid: ${err instanceof Error ? err.message : 'unknown error'}` };
  }
}
