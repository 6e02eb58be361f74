/**
 * Property: verifyGpuEvidence never throws for hostile evidence (mutated reports, mutated/garbage chains,
 * hostile RIM text, garbage OCSP); it always returns named checks, and a mutated report never passes.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { FC_RUNS, vector } from '../../../helpers/paths.js';
import { verifyGpuEvidence } from '../../../../agent/attest/verify-and-appraise.js';
import { reportBytesFromFile } from '../../../../agent/verify/nvidia/gpu-report.js';

const dir = 'nvidia/nvtrust/hopper-545-complete';
const report = reportBytesFromFile(vector(`${dir}/attestationReport.txt`));
const pem = vector(`${dir}/gpuAkCertChain.txt`).toString('latin1');
const at = new Date('2024-06-01T00:00:00Z');
const expectedNonce = report.subarray(4, 36);

describe('verifyGpuEvidence on hostile evidence', () => {
  it('mutated reports: a result with named checks, never ok, never an exception', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ pos: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 4 }),
        fc.option(fc.nat(), { nil: undefined }),
        (edits, cut) => {
          let b = Buffer.from(report);
          for (const e of edits) b[e.pos % b.length] = e.byte;
          if (b.equals(report)) return; // edits that rewrote the same bytes
          if (cut !== undefined) b = b.subarray(0, cut % (b.length + 1));
          const r = verifyGpuEvidence({ report: b, certChainPem: pem }, { at, expectedNonce, skip: new Set(['rim']) });
          expect(r.checks.length).toBeGreaterThan(0);
          expect(r.ok).toBe(false);
        },
      ),
      { numRuns: FC_RUNS },
    );
  });

  it('arbitrary chain text, RIM text and OCSP bytes: a result, never an exception', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ maxLength: 300 }),
          fc.nat().map((n) => pem.slice(0, n % pem.length)),
        ),
        fc.string({ maxLength: 200 }),
        fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 2 }),
        (chain, rimText, ocsp) => {
          const r = verifyGpuEvidence({ report, certChainPem: chain }, { at, expectedNonce, rims: { driver: rimText, vbios: rimText }, ocsp });
          expect(r.ok).toBe(false);
          expect(r.checks.some((c) => c.name === 'gpu.rim.driver' && !c.ok)).toBe(true);
        },
      ),
      { numRuns: FC_RUNS },
    );
  });
});
