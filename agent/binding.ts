/**
 * One fresh nonce binds the CPU report, every GPU report and the agent key (DESIGN.md "Binding"):
 *   gpuNonce   = SHA-256(JCS({nonce, teePubKey}))                                  (32 bytes, NVML's nonce size)
 *   reportData = SHA-512(JCS({nonce, teePubKey, gpus: [SHA-384(report_i) hex, in GPU index order]}))  (64 bytes)
 * The nonce is carried as lowercase hex. A verifier recomputes both from the evidence bundle.
 */
import { createHash } from 'node:crypto';
import { canonicalize } from './util/jcs.js';
import { bytesToHex } from './util/bytes.js';

export interface PublicJwk {
  kty: string;
  crv?: string;
  x?: string;
  y?: string;
  [key: string]: unknown;
}

/** Only the public members of an EC key, in case a caller hands in a private JWK. */
function publicMembers(jwk: PublicJwk): PublicJwk {
  const { kty, crv, x, y } = jwk;
  return { kty, crv, x, y };
}

export function gpuNonce(nonce: Uint8Array, teePubKey: PublicJwk): Buffer {
  const doc = { nonce: bytesToHex(nonce), teePubKey: publicMembers(teePubKey) };
  return createHash('sha256').update(canonicalize(doc)).digest();
}

export function cpuReportData(nonce: Uint8Array, teePubKey: PublicJwk, gpuReports: readonly Uint8Array[]): Buffer {
  const doc = {
    nonce: bytesToHex(nonce),
    teePubKey: publicMembers(teePubKey),
    gpus: gpuReports.map((r) => createHash('sha384').update(r).digest('hex')),
  };
  return createHash('sha512').update(canonicalize(doc)).digest();
}
