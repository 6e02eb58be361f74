/**
 * Every single-bit flip of a real report is rejected: each byte of the report (the signed region and
 * the signature), all 8 bits. Either the parser refuses the bytes (a flip that turns an opaque field
 * into the switch-only type 26 is refused as NVSwitch evidence, gpu.nvswitch) or the signature no
 * longer verifies. Every flip runs through the whole verifier; the report signature check on the
 * unchanged signature is answered from the SHA-384 digest of what the verifier hashed
 * (test/helpers/signature-oracle.ts), flips in the signature itself and a sample of the others are
 * verified with real ECDSA.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { vector } from '../../../helpers/paths.js';
import { verifyGpuEvidence } from '../../../../agent/attest/verify-and-appraise.js';
import { parseGpuReport, reportBytesFromFile } from '../../../../agent/verify/nvidia/gpu-report.js';
import { readPemChain } from '../../../../agent/verify/nvidia/gpu-verify.js';
import type { SignatureOracle } from '../../../helpers/signature-oracle.js';

const oracle = vi.hoisted(() => ({}) as SignatureOracle);
vi.mock('node:crypto', async (importOriginal) => (await import('../../../helpers/signature-oracle.js')).withSignatureOracle(importOriginal, oracle));

const dir = 'nvidia/nvtrust/hopper-550';
const report = reportBytesFromFile(vector(`${dir}/hopperAttestationReport.txt`));
const certChainPem = vector(`${dir}/hopperCertChain.txt`).toString('latin1');
const options = { at: new Date('2024-06-01T00:00:00Z'), expectedNonce: report.subarray(4, 36), skip: new Set(['rim', 'revocation'] as const) };

function flipsIn(from: number, to: number): { rejected: number; total: number; reasons: Set<string> } {
  let rejected = 0;
  let total = 0;
  const reasons = new Set<string>();
  for (let pos = from; pos < to; pos++) {
    for (let bit = 0; bit < 8; bit++) {
      const b = Buffer.from(report);
      b[pos] = b[pos]! ^ (1 << bit);
      const r = verifyGpuEvidence({ report: b, certChainPem }, options);
      total++;
      const failed = r.checks.filter((c) => !c.ok).map((c) => c.name);
      if (!r.ok && (failed.includes('gpu.report.parse') || failed.includes('gpu.nvswitch') || failed.includes('gpu.signature'))) rejected++;
      failed.forEach((n) => reasons.add(n));
    }
  }
  return { rejected, total, reasons };
}

describe('single-bit flips of the 550 report (4117 bytes x 8 bits)', () => {
  it('the unmodified report verifies', () => {
    expect(verifyGpuEvidence({ report, certChainPem }, options).ok).toBe(true);
  });

  it('a sample of flips (one in every 16 bytes) is rejected with real ECDSA verification', () => {
    const real = oracle.stats.real;
    for (let pos = 0; pos < report.length; pos += 16) {
      const b = Buffer.from(report);
      b[pos] = b[pos]! ^ (1 << ((pos >> 4) & 7));
      const r = verifyGpuEvidence({ report: b, certChainPem }, options);
      const failed = r.checks.filter((c) => !c.ok).map((c) => c.name);
      expect(r.ok, `byte ${pos}`).toBe(false);
      expect(failed.includes('gpu.report.parse') || failed.includes('gpu.nvswitch') || failed.includes('gpu.signature'), `byte ${pos}: ${failed}`).toBe(true);
    }
    expect(oracle.stats.real).toBeGreaterThan(real);
  });

  // Split by region so each part stays well inside the test timeout on a shared machine.
  const regions: [string, number, number][] = [
    ['request (0..37)', 0, 37],
    ['response header + measurement record (37..1800)', 37, 1800],
    ['measurement record (1800..3565)', 1800, 3602],
    ['responder nonce + opaque data (..4021)', 3602, 4021],
    ['signature (4021..4117)', 4021, report.length],
  ];
  describe('every flip, the report signature answered from its digest', () => {
    beforeAll(() => {
      const parsed = parseGpuReport(report);
      const leaf = readPemChain(certChainPem).certs![0]!;
      expect(oracle.register('sha384', parsed.signedBytes, leaf.publicKey, parsed.signature, 'ieee-p1363')).toBe(true);
    });
    afterAll(() => oracle.clear());

    for (const [name, from, to] of regions) {
      it(name, () => {
        const before = { ...oracle.stats };
        const { rejected, total, reasons } = flipsIn(from, to);
        expect(total).toBe((to - from) * 8);
        expect(rejected).toBe(total);
        expect(reasons.has('gpu.signature') || reasons.has('gpu.report.parse')).toBe(true);
        // Flips outside the signature reached the digest check (all but those the parser refused);
        // flips in the signature were verified for real.
        if (from >= 4021) expect(oracle.stats.real - before.real).toBe(total);
        else expect(oracle.stats.fromDigest).toBeGreaterThan(before.fromDigest);
      }, 120_000);
    }
  });
});
