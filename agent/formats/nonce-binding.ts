/**
 * One fresh nonce binds the agent id, the agent key, the CPU report and every GPU report (docs/architecture.md
 * "One attestation cycle"):
 *   gpuNonce   = SHA-256(JCS({agentId, nonce, teePubKey}))                                 (32 bytes, NVML's nonce size)
 *   reportData = SHA-512(JCS({agentId, nonce, teePubKey, gpus: [SHA-384(report_i) hex, in GPU index order]}))  (64 bytes)
 * NVSwitch (LS10) reports of a protected-PCIe system are requested with the same gpuNonce, and bound the
 * same way under `switches` (SHA-384 hex, in switch index order): the member is present only when
 * there is at least one switch, so a bundle without switches binds exactly as before switches existed.
 * The nonce is carried as lowercase hex. A verifier recomputes both from the evidence bundle and
 * checks the bundle's agentId against the id it expects (the controller: the session's agent id), so
 * evidence produced for one agent id cannot be presented under another.
 */
import { createHash } from 'node:crypto';
import { canonicalize } from '../util/jcs.js';
import { bytesToHex } from '../util/bytes.js';

export interface PublicJwk {
  kty: string;
  crv?: string;
  x?: string;
  y?: string;
  [key: string]: unknown;
}

/**
 * Agent ids: 1..128 of letters, digits, ".", "_", ":", "@", "-" (never "." or ".."): they become file
 * names in the controller's stateDir and are bound into evidence.
 */
export const AGENT_ID = /^(?!\.{1,2}$)[A-Za-z0-9._:@-]{1,128}$/;

/** Only the public members of an EC key, in case a caller hands in a private JWK. */
function publicMembers(jwk: PublicJwk): PublicJwk {
  const { kty, crv, x, y } = jwk;
  return { kty, crv, x, y };
}

export function gpuNonce(nonce: Uint8Array, teePubKey: PublicJwk, agentId: string): Buffer {
  const doc = { agentId, nonce: bytesToHex(nonce), teePubKey: publicMembers(teePubKey) };
  return createHash('sha256').update(canonicalize(doc)).digest();
}

const sha384Hex = (r: Uint8Array) => createHash('sha384').update(r).digest('hex');

export function cpuReportData(
  nonce: Uint8Array,
  teePubKey: PublicJwk,
  agentId: string,
  gpuReports: readonly Uint8Array[],
  switchReports: readonly Uint8Array[] = [],
): Buffer {
  const doc = {
    agentId,
    nonce: bytesToHex(nonce),
    teePubKey: publicMembers(teePubKey),
    gpus: gpuReports.map(sha384Hex),
    ...(switchReports.length > 0 ? { switches: switchReports.map(sha384Hex) } : {}),
  };
  return createHash('sha512').update(canonicalize(doc)).digest();
}
