/**
 * Issue 12: the memo caches a controller relies on are sized for a 10,000-machine fleet. Each
 * machine re-attests after every other machine did (round robin, the worst order for an LRU): with
 * the fleet-sized limits every re-attestation hits; with the old link limit (4,096) every one missed.
 * Keys have the modules' real shapes and lengths, entries the modules' byte estimates, so the byte
 * caps are exercised too: memory stays bounded past the fleet size.
 */
import { describe, expect, it } from 'vitest';
import { BoundedCache } from '../../../agent/util/bounded-cache.js';
import { LINK_CACHE_LIMITS, LINK_ENTRY_BYTES } from '../../../agent/verify/x509/cert-signature.js';
import { OCSP_SIGNATURE_CACHE_LIMITS } from '../../../agent/verify/nvidia/ocsp-check.js';

const MACHINES = 10_000;
const hex = (n: number, len: number) => n.toString(16).padStart(len, '0');
/** `${child sha256}:${issuer sha256}`, as isIssuedBy keys a link. */
const linkKey = (machine: number, link: number) => `${hex(machine * 64 + link, 64)}:${hex(link, 64)}`;
/** `${base64 SHA-256 of the signed bytes}:${signer sha256}`, as the OCSP signature memo keys a result. */
const ocspKey = (machine: number, gpu: number) => `${Buffer.from(hex(machine * 8 + gpu, 64), 'hex').toString('base64')}:${hex(gpu, 64)}`;

/** Two rounds over the fleet; the hit rate of the second. */
function secondRoundHitRate(limits: { maxEntries: number; maxBytes: number }, perMachine: number, key: (m: number, i: number) => string, bytes: number) {
  const cache = new BoundedCache<boolean>(limits);
  for (let m = 0; m < MACHINES; m++) for (let i = 0; i < perMachine; i++) if (cache.get(key(m, i)) === undefined) cache.set(key(m, i), true, bytes);
  let hits = 0;
  for (let m = 0; m < MACHINES; m++)
    for (let i = 0; i < perMachine; i++) {
      if (cache.get(key(m, i)) !== undefined) hits++;
      else cache.set(key(m, i), true, bytes);
    }
  return { rate: hits / (MACHINES * perMachine), size: cache.size };
}

describe('fleet-sized caches (10,000 machines, 8 GPUs each)', () => {
  it('certificate links (17 distinct per machine): every re-attestation hits; the old 4,096 entries thrashed', () => {
    const now = secondRoundHitRate(LINK_CACHE_LIMITS, 17, linkKey, LINK_ENTRY_BYTES);
    expect(now.rate).toBe(1);
    expect(now.size).toBe(170_000);
    const old = secondRoundHitRate({ maxEntries: 4096, maxBytes: 1024 * 1024 }, 17, linkKey, 8);
    expect(old.rate).toBe(0);
  });

  it('the link cache stays bounded (entries and bytes) past the fleet size', () => {
    const cache = new BoundedCache<boolean>(LINK_CACHE_LIMITS);
    for (let i = 0; i < LINK_CACHE_LIMITS.maxEntries + 10_000; i++) cache.set(linkKey(i, 0), true, LINK_ENTRY_BYTES);
    expect(cache.size).toBeLessThanOrEqual(LINK_CACHE_LIMITS.maxEntries);
    expect(cache.size * (129 + LINK_ENTRY_BYTES)).toBeLessThanOrEqual(LINK_CACHE_LIMITS.maxBytes);
    expect(LINK_CACHE_LIMITS.maxBytes).toBeLessThanOrEqual(64 * 1024 * 1024);
  });

  it('OCSP signature results (8 per-GPU responses per machine): every re-attestation hits', () => {
    expect(secondRoundHitRate(OCSP_SIGNATURE_CACHE_LIMITS, 8, ocspKey, 64).rate).toBe(1);
  });
});
