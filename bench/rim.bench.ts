/**
 * RIM verification cost: XML parse + C14N 1.1 + SHA-384 digest + ecdsa-sha384 + 3-link chain, for
 * one genuine driver RIM, against a crypto floor measured in the same run (the same hash, the same
 * signature verify and the same chain signature verifies, without XML work).
 * Reference point: ~18 ms for both RIMs in a Python + cryptography verifier with pure-Python C14N
 * (measured offline; NVIDIA publishes no timing). Cold rows: every memo cache (certificates, chain
 * links) dropped before each call, as the floor caches nothing either.
 */
import { X509Certificate, createHash, verify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseXml } from '../agent/util/xml.js';
import { canonicalizeDocument } from '../agent/util/xml-c14n.js';
import { parseRim, verifyRim } from '../agent/verify/nvidia/rim/index.js';
import { medianMs, type BenchRow } from './lib.js';
import { clearAllCaches } from '../agent/util/bounded-cache.js';

export default async function rimBench(): Promise<BenchRow[]> {
  const dir = join(import.meta.dirname, '..', 'test', 'vectors', 'nvidia', 'nvtrust', 'hopper-545-complete');
  const driver = readFileSync(join(dir, 'Driver_RIM_test_no_gpu.swidtag'), 'utf8');
  const vbios = readFileSync(join(dir, '1010_0200_882_96005E0001_test_no_gpu.swidtag'), 'utf8');
  const at = new Date('2024-06-01T00:00:00Z');
  const certs = parseRim(driver).signerCerts.map((d) => new X509Certificate(d));
  const sig = Buffer.alloc(96, 1);
  const floor = () => {
    createHash('sha384').update(driver).digest();
    verify('sha384', Buffer.from(driver.slice(0, 900)), { key: certs[0]!.publicKey, dsaEncoding: 'ieee-p1363' }, sig);
    for (let i = 0; i + 1 < certs.length; i++) certs[i]!.verify(certs[i + 1]!.publicKey);
  };
  const floorMs = await medianMs(floor, { runs: 31, inner: 20 });
  const oneMs = await medianMs(() => verifyRim(driver, { at }), { runs: 31, inner: 10, before: clearAllCaches });
  const bothMs = await medianMs(
    () => {
      verifyRim(driver, { at });
      verifyRim(vbios, { at });
    },
    { runs: 21, inner: 5, before: clearAllCaches },
  );
  const c14nMs = await medianMs(() => canonicalizeDocument(parseXml(driver)), { runs: 31, inner: 20 });
  return [
    {
      name: 'rim: verify one driver RIM (parse+c14n+digest+sig+chain), cold',
      cache: 'cold',
      medianMs: oneMs,
      runs: 31,
      baselineName: 'crypto floor (hash+sig+3 cert verifies)',
      baselineMs: floorMs,
      note: `${driver.length} chars`,
    },
    { name: 'rim: verify driver + VBIOS RIMs, cold', cache: 'cold', medianMs: bothMs, runs: 21, target: '< 18 ms (Python reference verifier)' },
    { name: 'rim: parse + C14N 1.1 only (driver RIM)', medianMs: c14nMs, runs: 31 },
  ];
}
