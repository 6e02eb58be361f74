/** The one nonce-hex parser accepts exactly what each of the regular expressions it replaced accepted. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GPU_NONCE_BYTES, NONCE_HEX_PATTERN, nonceFromHex, WIRE_NONCE } from '../../../agent/util/nonce-hex.js';

// The rules as they were written out at each call site before they shared one parser.
const legacy = {
  api: (t: string) => (/^[0-9a-fA-F]{16,128}$/.test(t) && t.length % 2 === 0 ? Buffer.from(t, 'hex') : undefined),
  bundle: (t: string) => (/^([0-9a-f]{2}){8,64}$/.test(t) ? Buffer.from(t, 'hex') : undefined),
  gpuEvidenceJson: (t: string) => (/^(0x)?[0-9a-fA-F]{64}$/.test(t) ? Buffer.from(t.replace(/^0x/, ''), 'hex') : undefined),
  gpuFlag: (t: string) => (/^[0-9a-fA-F]{64}$/.test(t) ? Buffer.from(t, 'hex') : undefined),
  verifyGpuFlag: (t: string) => {
    const s = t.trim().replace(/^0x/i, '');
    return /^[0-9a-fA-F]{64}$/.test(s) ? Buffer.from(s, 'hex') : undefined;
  },
};
const rules = {
  api: WIRE_NONCE,
  bundle: { ...WIRE_NONCE, lowercase: true },
  gpuEvidenceJson: { minBytes: GPU_NONCE_BYTES, maxBytes: GPU_NONCE_BYTES, prefix: 'lower' as const },
  gpuFlag: { minBytes: GPU_NONCE_BYTES, maxBytes: GPU_NONCE_BYTES },
  verifyGpuFlag: { minBytes: GPU_NONCE_BYTES, maxBytes: GPU_NONCE_BYTES, trim: true, prefix: 'any-case' as const },
};

const hexish = fc.oneof(
  fc.stringMatching(/^(0[xX])?[0-9a-fA-F]{0,140}$/),
  fc.stringMatching(/^\s{0,2}(0[xX])?[0-9a-fA-FgG \t]{60,70}\s{0,2}$/),
  fc.uint8Array({ minLength: 0, maxLength: 70 }).map((b) => Buffer.from(b).toString('hex')),
  fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => `0x${Buffer.from(b).toString('hex').toUpperCase()}`),
  fc.string({ maxLength: 140 }),
);

describe('nonceFromHex', () => {
  for (const name of Object.keys(legacy) as (keyof typeof legacy)[]) {
    it(`accepts and decodes exactly what the ${name} rule did`, () => {
      fc.assert(
        fc.property(hexish, (t) => {
          const want = legacy[name](t);
          const got = nonceFromHex(t, rules[name]);
          expect(got?.toString('hex')).toBe(want?.toString('hex'));
        }),
        { numRuns: 2000 },
      );
    });
  }

  it('edge cases: sizes at the bounds, odd length, non-strings', () => {
    expect(nonceFromHex('00'.repeat(8), WIRE_NONCE)).toHaveLength(8);
    expect(nonceFromHex('00'.repeat(7), WIRE_NONCE)).toBeUndefined();
    expect(nonceFromHex('00'.repeat(64), WIRE_NONCE)).toHaveLength(64);
    expect(nonceFromHex('00'.repeat(65), WIRE_NONCE)).toBeUndefined();
    expect(nonceFromHex('0'.repeat(17), WIRE_NONCE)).toBeUndefined();
    expect(nonceFromHex(42, WIRE_NONCE)).toBeUndefined();
    expect(nonceFromHex(undefined, WIRE_NONCE)).toBeUndefined();
  });

  it('the link schema pattern is the bundle rule', () => {
    expect(NONCE_HEX_PATTERN).toBe('^([0-9a-f]{2}){8,64}$');
  });
});
