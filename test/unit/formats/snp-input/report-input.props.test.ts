/**
 * Bit-flip and truncation sweeps on every new SNP input vector: decodeSnpReportInput returns or throws
 * a ParseError, never anything else; a binary container truncated below one report is refused; a bit
 * flipped inside the report region of a binary container changes exactly that bit of the report.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { FC_RUNS, vector } from '../../../helpers/paths.js';
import { onlyTypedErrors } from '../../../helpers/props.js';
import { ParseError } from '../../../../agent/errors.js';
import { decodeSnpReportInput } from '../../../../agent/formats/snp-input/report-input.js';

const RUNS = Math.min(FC_RUNS, 2000);
const binary = ['snp/synthetic_constellation_report-1204.bin', 'snp/synthetic_gosevguest_attest-extended.bin', 'snp/trustee_az-snp-vtpm_hcl-report.bin'];
const text = ['snp/trustee_e2e_coco-snp-evidence.json', 'snp/synthetic_gosevguest_attestation.textproto'];
const decode = (b: Buffer) => onlyTypedErrors(() => decodeSnpReportInput(b), ParseError);

describe.each(binary)('%s', (file) => {
  const v = vector(file);
  const at = v.readUInt32LE(0) === 0x414c4348 ? 0x20 : 0;

  it('every truncation: ParseError or a decode; below one report never a decode of a raw form', () => {
    for (let n = 0; n <= v.length; n++) {
      const cut = v.subarray(0, n);
      expect(decode(cut)).toBe(true);
      if (at === 0 && n < 1184) expect(() => decodeSnpReportInput(cut)).toThrow(ParseError);
    }
  });

  it('every single-bit flip inside the report lands in the decoded report', () => {
    for (let i = 0; i < 1184; i += 7) {
      const b = Buffer.from(v);
      b[at + i]! ^= 1 << (i % 8);
      let r;
      try {
        r = decodeSnpReportInput(b);
      } catch (err) {
        expect(err).toBeInstanceOf(ParseError); // an HCL report whose header or claims no longer parse
        continue;
      }
      expect(r.report[i]).toBe(v[at + i]! ^ (1 << (i % 8)));
    }
  });

  it('random bit flips anywhere (fast-check): ParseError or a decode', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(v.length - 1), fc.nat(7)), { minLength: 1, maxLength: 4 }), (flips) => {
        const b = Buffer.from(v);
        for (const [i, bit] of flips) b[i]! ^= 1 << bit;
        return decode(b);
      }),
      { numRuns: RUNS },
    );
  });
});

describe.each(text)('%s', (file) => {
  const v = vector(file);

  it('truncations (every 37th length and the last 64): ParseError, or (textproto cut in the optional product block) the same report', () => {
    const whole = decodeSnpReportInput(v).report;
    for (let n = 0; n < v.length; n++) {
      if (n % 37 !== 0 && n < v.length - 64) continue;
      let r;
      try {
        r = decodeSnpReportInput(v.subarray(0, n));
      } catch (err) {
        expect(err).toBeInstanceOf(ParseError);
        continue;
      }
      expect(file.endsWith('.textproto')).toBe(true);
      expect(r.report.equals(whole)).toBe(true);
    }
  });

  it('random bit flips (fast-check): ParseError or a decode', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(v.length - 1), fc.nat(7)), { minLength: 1, maxLength: 4 }), (flips) => {
        const b = Buffer.from(v);
        for (const [i, bit] of flips) b[i]! ^= 1 << bit;
        return decode(b);
      }),
      { numRuns: RUNS },
    );
  });
});
