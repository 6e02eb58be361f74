/**
 * Who makes the ECDSA P-384 signatures of simulated evidence (SHA-384, r||s as IEEE P1363, the form
 * SNP firmware and the GPU's SPDM responder both produce): a batch of (bytes, key) in, signatures out,
 * in order. By default on libuv's thread pool (the callback form of crypto.sign); the daemon hands in
 * its verification worker instead (attest/verify-thread.ts `sign`), which runs below the main thread's
 * priority, so signing never competes with the API for a core.
 */
import { sign, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';

export interface SignJob {
  data: Uint8Array;
  key: KeyObject;
}

export type ReportSigner = (jobs: readonly SignJob[]) => Promise<Buffer[]>;

const signAsync = promisify(sign);

export const threadPoolSigner: ReportSigner = (jobs) => Promise.all(jobs.map((j) => signAsync('sha384', j.data, { key: j.key, dsaEncoding: 'ieee-p1363' })));
