/**
 * Exhaustive single-bit-flip sweeps over a signed report at the cost of one hash per flip instead of
 * one ECDSA verification.
 *
 * A sweep asks: does the verifier hash every byte it should, so that no flip leaves the signature
 * valid? With the signature and key unchanged, ECDSA (FIPS 186-5 §6.4.2) accepts a digest only if it
 * is the signed one, up to one other value that only the private key can find: a changed digest is a
 * rejection. So for a (key, signature, digest) registered here with its real result, `verify` answers
 * from the digest: the same digest gives the registered result, any other digest gives false. A call
 * with any other key or signature (a flip in the signature itself, a certificate chain) runs the real
 * node:crypto verify. The verifier under test still parses the flipped bytes, picks the signed range
 * and hashes it: a flip outside what it hashes yields the registered digest and is accepted, so the
 * sweep still fails on exactly the bugs it is there to find.
 *
 * Use in a test file (vi.mock is hoisted above the imports, so the oracle must be created by vi.hoisted):
 *
 *     const oracle = vi.hoisted(() => ({}) as SignatureOracle);
 *     vi.mock('node:crypto', (orig) => withSignatureOracle(orig, oracle));
 *
 * then `oracle.register(...)` before a sweep and `oracle.clear()` after it; `oracle.stats` counts
 * the answers from digests and the real verifications, so a test can show the oracle was used.
 */
import type * as Crypto from 'node:crypto';
import type { KeyObject } from 'node:crypto';

type VerifyKey = Parameters<typeof Crypto.verify>[2];

interface Known {
  algorithm: string;
  key: KeyObject;
  dsaEncoding: string | undefined;
  signature: Buffer;
  digest: Buffer;
  result: boolean;
}

export interface SignatureOracle {
  /** Verifies `data` for real once and records the result for its digest. Returns that result. */
  register(algorithm: string, data: Uint8Array, key: KeyObject, signature: Uint8Array, dsaEncoding?: 'der' | 'ieee-p1363'): boolean;
  clear(): void;
  stats: { fromDigest: number; real: number };
}

function keyObjectOf(key: VerifyKey): { key: KeyObject | undefined; dsaEncoding: string | undefined } {
  if (key && typeof key === 'object' && 'key' in key) {
    const k = (key as { key: unknown; dsaEncoding?: string }).key;
    return { key: k && typeof k === 'object' && 'equals' in k ? (k as KeyObject) : undefined, dsaEncoding: (key as { dsaEncoding?: string }).dsaEncoding };
  }
  return { key: key && typeof key === 'object' && 'equals' in key ? (key as KeyObject) : undefined, dsaEncoding: undefined };
}

/** The vi.mock factory body for 'node:crypto': the real module with `verify` answered by `oracle` where it can. */
export async function withSignatureOracle(importOriginal: () => Promise<unknown>, oracle: SignatureOracle): Promise<typeof Crypto> {
  const real = (await importOriginal()) as typeof Crypto;
  let known: Known[] = [];
  const stats = { fromDigest: 0, real: 0 };
  Object.assign(oracle, {
    stats,
    clear: () => {
      known = [];
    },
    register(algorithm: string, data: Uint8Array, key: KeyObject, signature: Uint8Array, dsaEncoding?: 'der' | 'ieee-p1363') {
      const result = real.verify(algorithm, data, dsaEncoding ? { key, dsaEncoding } : key, signature);
      known.push({ algorithm, key, dsaEncoding, signature: Buffer.from(signature), digest: real.createHash(algorithm).update(data).digest(), result });
      return result;
    },
  } satisfies SignatureOracle);
  const verify = ((
    algorithm: string | null | undefined,
    data: NodeJS.ArrayBufferView,
    key: VerifyKey,
    signature: NodeJS.ArrayBufferView,
    callback?: unknown,
  ) => {
    if (callback !== undefined || typeof algorithm !== 'string' || known.length === 0) {
      stats.real++;
      return (real.verify as (...a: unknown[]) => unknown)(algorithm, data, key, signature, callback);
    }
    const k = keyObjectOf(key);
    const sig = Buffer.from(signature.buffer, signature.byteOffset, signature.byteLength);
    for (const n of known) {
      if (n.algorithm !== algorithm || n.dsaEncoding !== k.dsaEncoding || !sig.equals(n.signature) || !k.key || !(k.key === n.key || k.key.equals(n.key)))
        continue;
      stats.fromDigest++;
      const digest = real.createHash(algorithm).update(data).digest();
      return digest.equals(n.digest) ? n.result : false;
    }
    stats.real++;
    return real.verify(algorithm, data, key, signature);
  }) as typeof Crypto.verify;
  return { ...real, default: { ...real, verify }, verify } as typeof Crypto;
}
