/**
 * GPU inputs at the edge: every shape of NVIDIA's serialized evidence and the CoCo attester's
 * evidence is detected and named; --report files in hex, base64 or raw. Bit-flip and truncation
 * sweeps on the new vectors: ParseError or a decode, never anything else.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { FC_RUNS, vector } from '../../helpers/paths.js';
import { onlyTypedErrors } from '../../helpers/props.js';
import { ParseError } from '../../../agent/errors.js';
import { decodeGpuEvidenceFile, decodeGpuReportFile } from '../../../agent/formats/gpu-input.js';

const RUNS = Math.min(FC_RUNS, 1000);
const C = 'nvidia/nvtrust/hopper-545-complete';
const report545 = Buffer.from(vector(`${C}/attestationReport.txt`).toString('latin1').trim(), 'hex');

describe('decodeGpuEvidenceFile', () => {
  it('bare NVIDIA list (attestation-sdk)', () => {
    const r = decodeGpuEvidenceFile(vector('nvidia/attestation-sdk/evidence-json/multi_gpu_hopper.json'));
    expect(r.format).toBe('nvidia-list');
    expect(r.name).toMatch(/^NVIDIA serialized evidence JSON .*, 4 device\(s\)$/);
  });

  it('NRAS-request wrapper: arch and nonce from the top level', () => {
    const bare = decodeGpuEvidenceFile(vector('nvidia/attestation-sdk/evidence-json/hopper_evidence.json')).gpus[0]!;
    const r = decodeGpuEvidenceFile(vector('nvidia/attestation-sdk/evidence-json/synthetic_hopper_evidence_nras-wrapped.json'));
    expect(r.format).toBe('nvidia-wrapped');
    expect(r.gpus[0]).toMatchObject({ index: 0, arch: 'HOPPER' });
    expect(r.gpus[0]!.nonce).toEqual(bare.nonce);
    expect(Buffer.from(r.gpus[0]!.report).equals(Buffer.from(bare.report))).toBe(true);
  });

  it('CoCo device_evidence_list: hex evidence (trustee CoCo CI sample) and base64 evidence', () => {
    const hex = decodeGpuEvidenceFile(vector('nvidia/coco/trustee_hopper_coco_device-evidence.json'));
    expect(hex).toMatchObject({ format: 'coco-nvidia', name: 'Confidential Containers NVIDIA attester evidence ({device_evidence_list}), 1 device(s)' });
    expect(hex.gpus[0]!.report.length).toBe(4130);
    const b64 = decodeGpuEvidenceFile(vector('nvidia/coco/synthetic_hopper545_coco_device-evidence.json'));
    expect(b64.gpus[0]).toMatchObject({ arch: 'Hopper' });
    expect(Buffer.from(b64.gpus[0]!.report).equals(report545)).toBe(true);
    expect(b64.gpus[0]!.certChainPem).toBe(vector(`${C}/gpuAkCertChain.txt`).toString('latin1'));
  });

  it.each([
    ['wrapper without arch anywhere', { evidence_list: [{ certificate: 'AA==', evidence: 'AA==' }] }, /"arch"/],
    ['bad wrapper nonce', { nonce: 'xyz', arch: 'HOPPER', evidence_list: [{ certificate: 'AA==', evidence: 'AA==' }] }, /64 hex digits/],
    ['empty device list', { device_evidence_list: [] }, /empty/],
    ['object of nothing known', { foo: [] }, /device_evidence_list/],
  ])('%s → ParseError', (_n, v, msg) => {
    expect(() => decodeGpuEvidenceFile(Buffer.from(JSON.stringify(v)))).toThrow(msg);
  });
});

describe('decodeGpuReportFile', () => {
  it('hex (any case, whitespace), base64 and raw give the same report, each named', () => {
    const hex = report545.toString('hex');
    expect(decodeGpuReportFile(Buffer.from(hex.toUpperCase().replace(/(.{80})/g, '$1\n')))).toMatchObject({ encoding: 'hex', name: 'GPU report, hex text' });
    expect(decodeGpuReportFile(Buffer.from(hex)).report.equals(report545)).toBe(true);
    const b = decodeGpuReportFile(Buffer.from(report545.toString('base64').replace(/(.{76})/g, '$1\n')));
    expect(b).toMatchObject({ encoding: 'base64', name: 'GPU report, base64 text' });
    expect(b.report.equals(report545)).toBe(true);
    expect(decodeGpuReportFile(report545)).toMatchObject({ encoding: 'binary', name: 'GPU report, raw bytes' });
    expect(() => decodeGpuReportFile(Buffer.from('abc'))).toThrow(/odd number/);
  });
});

describe.each([
  'nvidia/coco/trustee_hopper_coco_device-evidence.json',
  'nvidia/coco/synthetic_hopper545_coco_device-evidence.json',
  'nvidia/attestation-sdk/evidence-json/synthetic_hopper_evidence_nras-wrapped.json',
])('sweeps on %s', (file) => {
  const v = vector(file);
  it('truncations (every 53rd length and the last 32): ParseError', () => {
    for (let n = 0; n < v.length; n++) {
      if (n % 53 !== 0 && n < v.length - 32) continue;
      const cut = v.subarray(0, n);
      // A JSON document cut before its closing bracket is not JSON; only trailing whitespace may go.
      if (v.subarray(n).toString('latin1').trim() === '') continue;
      expect(() => decodeGpuEvidenceFile(cut)).toThrow(ParseError);
    }
  });

  it('random bit flips (fast-check): ParseError or a decode', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(v.length - 1), fc.nat(7)), { minLength: 1, maxLength: 4 }), (flips) => {
        const b = Buffer.from(v);
        for (const [i, bit] of flips) b[i]! ^= 1 << bit;
        return onlyTypedErrors(() => decodeGpuEvidenceFile(b), ParseError);
      }),
      { numRuns: RUNS },
    );
  });
});
