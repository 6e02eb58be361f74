/**
 * Memoised RIM verification. verifyRim is pure and depends on the time `at` only through certificate
 * validity, so a result computed while every certificate involved (KeyInfo + anchors) was valid is
 * reused for any later `at` that is still inside all their validity windows. Anything else is
 * recomputed. Keyed by SHA-256 of the XML and of each extra trust anchor.
 */
import { createHash } from 'node:crypto';
import { ParseError } from '../../errors.js';
import { nvidiaRimRoot } from '../../roots/nvidia-rim.js';
import { verifyRim, type Rim } from './rim/index.js';
import { certificateValidity } from '../../formats/x509/certificate.js';
import type { Check } from '../../formats/checks.js';
import { BoundedCache } from '../../util/bounded-cache.js';

export interface RimVerification {
  checks: Check[];
  rim: Rim | undefined;
  /** Set when the XML itself could not be read. */
  parseError?: string;
}

interface Entry extends RimVerification {
  from: number;
  until: number;
}

// Bounded in bytes too: an entry keeps the modelled RIM, counted as twice its XML.
const cache = new BoundedCache<Entry>({ maxEntries: 256, maxBytes: 32 * 1024 * 1024 });

function windowOf(ders: readonly Uint8Array[]): { from: number; until: number } | undefined {
  let from = -Infinity;
  let until = Infinity;
  try {
    for (const der of ders) {
      const v = certificateValidity(der);
      from = Math.max(from, v.notBefore.getTime());
      until = Math.min(until, v.notAfter.getTime());
    }
  } catch {
    return undefined;
  }
  return { from, until };
}

/**
 * SHA-256 of a RIM's text, memoised by the text itself: a Map keyed by the string compares whole
 * strings, so a lookup can never return another text's digest (and V8 hashes a string object once,
 * so the daemon's same string costs one pointer comparison instead of hashing ~40 KB twice per GPU).
 * A few RIM versions per fleet: 256 texts or 32 MiB (the text is counted as the key).
 */
const xmlDigests = new BoundedCache<string>({ maxEntries: 256, maxBytes: 32 * 1024 * 1024 });

export function rimTextDigest(xml: string): string {
  let d = xmlDigests.get(xml);
  if (d === undefined) {
    d = createHash('sha256').update(xml, 'utf8').digest('hex');
    xmlDigests.set(xml, d, 64);
  }
  return d;
}

/**
 * SHA-256 of an extra trust anchor's DER, memoised per Buffer object. Buffers are mutable, so a hit
 * is trusted only while the bytes still equal the private copy taken when it was hashed.
 */
const rootDigests = new WeakMap<Buffer, { copy: Buffer; digest: Buffer }>();

export function rootDigest(der: Buffer): Buffer {
  const hit = rootDigests.get(der);
  if (hit && hit.copy.equals(der)) return hit.digest;
  const digest = createHash('sha256').update(der).digest();
  rootDigests.set(der, { copy: Buffer.from(der), digest });
  return digest;
}

export function verifyRimCached(xml: string, at: Date, extraRoots: readonly Buffer[] = []): RimVerification {
  // SHA-256(xml), then the SHA-256 of each extra root's DER (exact inputs, no sampling).
  let key = rimTextDigest(xml);
  for (const r of extraRoots) key += `:${rootDigest(r).toString('hex')}`;
  const t = at.getTime();
  const hit = cache.get(key);
  if (hit && hit.from <= t && t <= hit.until) return hit;

  let result: RimVerification;
  try {
    result = verifyRim(xml, { at, extraRoots });
  } catch (err) {
    if (!(err instanceof ParseError)) throw err;
    return { checks: [], rim: undefined, parseError: err.message };
  }
  const win = result.rim ? windowOf([...result.rim.signerCerts, nvidiaRimRoot().der, ...extraRoots]) : undefined;
  if (win && win.from <= t && t <= win.until) {
    cache.set(key, { ...result, ...win }, 2 * xml.length);
  }
  return result;
}
