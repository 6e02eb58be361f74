/** The default signer of simulated evidence (agent/simulation/report-signer.ts): thread pool, order kept, P1363 form. */
import { describe, expect, it } from 'vitest';
import { generateKeyPairSync, verify } from 'node:crypto';
import { threadPoolSigner } from '../../../agent/simulation/report-signer.js';

describe('threadPoolSigner', () => {
  it('signs each job with its own key, SHA-384 ECDSA in IEEE P1363 form, signatures in the order of the jobs', async () => {
    const keys = [0, 1, 2].map(() => generateKeyPairSync('ec', { namedCurve: 'P-384' }));
    const data = keys.map((_, i) => Buffer.from(`report ${i}`));
    const sigs = await threadPoolSigner(keys.map((k, i) => ({ data: data[i]!, key: k.privateKey })));
    expect(sigs.map((s) => s.length)).toEqual([96, 96, 96]);
    sigs.forEach((s, i) => expect(verify('sha384', data[i]!, { key: keys[i]!.publicKey, dsaEncoding: 'ieee-p1363' }, s)).toBe(true));
    // Crossed: signature 0 does not verify under key 1.
    expect(verify('sha384', data[0]!, { key: keys[1]!.publicKey, dsaEncoding: 'ieee-p1363' }, sigs[0]!)).toBe(false);
  });
});
