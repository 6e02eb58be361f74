import { describe, expect, it } from 'vitest';
import { buildEar, dimensionOf, trustVector } from '../../../agent/appraise/ear.js';
import { fail, pass, resultOf, warn } from '../../../agent/formats/checks.js';

describe('EAR', () => {
  it('maps named checks to trust dimensions', () => {
    expect(dimensionOf('snp.signature')).toBe('instance-identity');
    expect(dimensionOf('snp.policy.debug')).toBe('configuration');
    expect(dimensionOf('snp.tcb.vcek-match')).toBe('hardware');
    expect(dimensionOf('gpu.measurements')).toBe('executables');
    expect(dimensionOf('gpu.cc.devtools')).toBe('configuration');
  });

  it('marks a failed signature as a cryptographic failure (99) and a failed policy as contraindicated (96)', () => {
    expect(trustVector([fail('snp.signature', 'bad')])['instance-identity']).toBe(99);
    expect(trustVector([fail('snp.policy.debug', 'debug on')]).configuration).toBe(96);
    expect(trustVector([warn('snp.revocation', 'no CRL'), pass('snp.tcb.vcek-match', 'ok')]).hardware).toBe(32);
  });

  it('takes the worst device status as the overall status and keeps the checks', () => {
    const cpu = resultOf([pass('snp.signature', 'ok')], {});
    const gpu = resultOf([pass('gpu.signature', 'ok'), fail('gpu.nonce', 'nonce differs')], {}, true);
    const ear = buildEar(
      [
        { id: 'cpu0', policyId: 'default', result: cpu },
        { id: 'gpu0', policyId: 'default', result: gpu },
      ],
      { at: new Date('2026-01-01T00:00:00Z'), nonce: Buffer.from([1, 2, 3]), build: 'test' },
    );
    expect(ear['ear.status']).toBe('contraindicated');
    expect(ear.submods.cpu0!['ear.status']).toBe('affirming');
    expect(ear.submods.gpu0!['cvm.simulated']).toBe(true);
    expect(ear.submods.gpu0!['cvm.checks'].find((c) => c.name === 'gpu.nonce')?.ok).toBe(false);
    expect(ear.iat).toBe(1767225600);
    expect(ear.eat_nonce).toBe('AQID');
  });

  it('says none when nothing was appraised', () => {
    expect(buildEar([], { at: new Date(0), build: 'x' })['ear.status']).toBe('none');
  });
});
