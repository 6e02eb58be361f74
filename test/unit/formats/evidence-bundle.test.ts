/**
 * parseBundle's base64 fields (agent/formats/evidence-bundle.ts): the canonical fast path accepts and
 * decodes exactly what the pattern ^[A-Za-z0-9+/]*={0,2}$ does, canonical or not.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ParseError } from '../../../agent/errors.js';
import { bundleToJson, parseBundle, type EvidenceBundle } from '../../../agent/formats/evidence-bundle.js';

const base: EvidenceBundle = {
  version: 1,
  agentId: 'vm-1',
  nonce: Buffer.alloc(32, 7),
  teePubKey: { kty: 'EC', crv: 'P-384', x: 'eA', y: 'eQ' },
  simulated: true,
  cpu: { kind: 'snp', source: 'simulated', report: Buffer.alloc(4), certificates: [] },
  gpus: [],
};
const PATTERN = /^[A-Za-z0-9+/]*={0,2}$/;

/** parseBundle with `text` as cpu.report: the decoded bytes, or 'refused'. */
function report(text: string): Buffer | 'refused' {
  const doc = bundleToJson(base) as { cpu: Record<string, unknown> };
  doc.cpu.report = text;
  try {
    return parseBundle(doc).cpu.report;
  } catch (err) {
    expect(err).toBeInstanceOf(ParseError);
    expect((err as Error).message).toContain('cpu.report must be base64');
    return 'refused';
  }
}

describe('parseBundle base64 fields', () => {
  it('accepts and decodes exactly what the base64 pattern accepts', () => {
    const chars = fc.constantFrom(...'ABCxyz019+/=-_ \n.=='.split(''));
    const text = fc.oneof(
      fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b).toString('base64')),
      fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b).toString('base64').replace(/=+$/, '')),
      fc.array(chars, { maxLength: 24 }).map((a) => a.join('')),
      fc.string({ maxLength: 24 }),
    );
    fc.assert(
      fc.property(text, (t) => {
        const got = report(t);
        if (PATTERN.test(t)) expect(got).toEqual(Buffer.from(t, 'base64'));
        else expect(got).toBe('refused');
      }),
      { numRuns: 2000 },
    );
  });

  it('round-trips what bundleToJson writes', () => {
    const bytes = Buffer.from([0, 1, 2, 250, 251, 252, 253]);
    expect(report(bytes.toString('base64'))).toEqual(bytes);
    expect(report('')).toEqual(Buffer.alloc(0));
    expect(report('AAE=x')).toBe('refused');
    expect(report('AAE==')).toEqual(Buffer.from('AAE==', 'base64'));
  });
});
