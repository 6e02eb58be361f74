/**
 * SEV-SNP verification cost vs the raw crypto floor, measured in the same run on the same data
 * (real trustee Milan report + VCEK): the floor is one ECDSA P-384 verify of the report plus the two
 * RSA-PSS chain verifies (VCEK under ASK, ASK under ARK) with node:crypto on pre-imported keys.
 * Cold: every memo cache dropped before each call, against that full floor. Warm: the VCEK and the
 * chain links are memoised, so the floor is the report's ECDSA P-384 verify alone.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { constants, createPublicKey, verify } from 'node:crypto';
import { medianMs, type BenchRow } from './lib.js';
import { clearAllCaches } from '../agent/util/bounded-cache.js';
import { verifySnpAttestation } from '../agent/attest/verify-and-appraise.js';
import { parseCertificate } from '../agent/formats/x509/certificate.js';
import { reportSignatureP1363 } from '../agent/verify/snp/report-signature.js';
import { pinnedAmdRoots } from '../agent/roots/amd.js';

const vectors = join(dirname(fileURLToPath(import.meta.url)), '..', 'test', 'vectors', 'snp');

export default async function (): Promise<BenchRow[]> {
  const report = readFileSync(join(vectors, 'trustee_snp_test-report.bin'));
  const vcekDer = readFileSync(join(vectors, 'trustee_snp_test-vcek.der'));
  const at = new Date('2025-06-01T00:00:00Z');

  // Floor inputs, prepared outside the timed region.
  const roots = pinnedAmdRoots('Milan');
  const vcek = parseCertificate(vcekDer);
  const ask = parseCertificate(roots.ask.der);
  const vcekKey = createPublicKey({ key: Buffer.from(vcek.spki), format: 'der', type: 'spki' });
  const askKey = roots.ask.publicKey;
  const arkKey = roots.ark.publicKey;
  const signed = report.subarray(0, 0x2a0);
  const sig = reportSignatureP1363(report);
  const pss = { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 48 };
  const floor = () => {
    const a = verify('sha384', signed, { key: vcekKey, dsaEncoding: 'ieee-p1363' }, sig);
    const b = verify('sha384', vcek.tbs, { key: askKey, ...pss }, vcek.signature);
    const c = verify('sha384', ask.tbs, { key: arkKey, ...pss }, ask.signature);
    if (!(a && b && c)) throw new Error('floor: verification failed');
  };
  const full = () => {
    const res = verifySnpAttestation({ report, certificates: [vcekDer] }, { at });
    if (!res.ok)
      throw new Error(
        `full verify failed: ${res.checks
          .filter((c) => !c.ok)
          .map((c) => c.name)
          .join(', ')}`,
      );
  };
  const reportOnly = () => {
    if (!verify('sha384', signed, { key: vcekKey, dsaEncoding: 'ieee-p1363' }, sig)) throw new Error('floor: verification failed');
  };
  floor();
  full();
  const floorMs = await medianMs(floor, { runs: 41, inner: 20 });
  const coldMs = await medianMs(full, { runs: 41, inner: 20, before: clearAllCaches });
  const warmFloorMs = await medianMs(reportOnly, { runs: 41, inner: 20 });
  const warmMs = await medianMs(full, { runs: 41, inner: 20 });
  return [
    {
      name: 'snp: verifySnpAttestation (parse, chain, CRL-less, all checks), cold',
      cache: 'cold',
      medianMs: coldMs,
      runs: 41,
      baselineName: 'floor: 1 ECDSA P-384 + 2 RSA-PSS-4096',
      baselineMs: floorMs,
      target: '<= 1.3x',
      note: 'real trustee Milan report + VCEK; floor on pre-imported keys',
    },
    {
      name: 'snp: verifySnpAttestation (parse, chain, CRL-less, all checks), warm',
      cache: 'warm',
      medianMs: warmMs,
      runs: 41,
      baselineName: 'floor: 1 ECDSA P-384 (report)',
      baselineMs: warmFloorMs,
      target: '<= 1.3x',
      note: 'VCEK parse and chain links memoised',
    },
  ];
}
