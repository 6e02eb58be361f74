/** One GPU evidence record with one mapper from collected evidence (bundle, gpu ready, verifier input). */
import { describe, expect, it } from 'vitest';
import { gpuRecordOf } from '../../../agent/evidence/gpu-nvml.js';
import type { GpuEvidence } from '../../../agent/evidence/gpu-nvml.js';

describe('gpuRecordOf', () => {
  it("keeps the signed evidence and NVML's consistency facts, and nothing else of the collector's", () => {
    const g: GpuEvidence = {
      index: 3,
      uuid: 'GPU-1',
      name: 'H100',
      architecture: 'hopper',
      driverVersion: '550.90.07',
      vbiosVersion: '96.00.5e.00.01',
      nonce: Buffer.alloc(32, 1),
      report: Buffer.from('report'),
      certChainPem: 'PEM',
      cc: { environment: 'prod', ccEnabled: true, devToolsMode: false, multiGpuMode: 'none', readyState: true },
    };
    expect(gpuRecordOf(g)).toEqual({
      index: 3,
      arch: 'hopper',
      report: Buffer.from('report'),
      certChainPem: 'PEM',
      nvml: { driverVersion: '550.90.07', vbiosVersion: '96.00.5e.00.01', cc: { ccEnabled: true, devToolsMode: false, environment: 'prod' } },
    });
  });
});
