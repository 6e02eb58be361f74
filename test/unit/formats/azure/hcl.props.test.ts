/**
 * fast-check properties: the HCL report parser (and the runtime-claims JSON parser behind it) never
 * throws anything but ParseError on arbitrary bytes, mutated real reports, or arbitrary JSON claims.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { FC_RUNS, vector } from '../../../helpers/paths.js';
import { onlyTypedErrors } from '../../../helpers/props.js';
import { ParseError } from '../../../../agent/errors.js';
import { buildHclReport, parseHclReport } from '../../../../agent/formats/azure/hcl.js';
import { parseAzureEvidence } from '../../../../agent/formats/azure/evidence-formats.js';

const real = vector('snp/trustee_az-snp-vtpm_hcl-report.bin');
/** Mutations concentrated on the header, IGVM request data and the claims JSON. */
const mutatedReal = fc
  .tuple(
    fc.array(
      fc.tuple(
        fc.oneof(fc.nat(0x1f), fc.integer({ min: 0x4c0, max: 0x4d3 }), fc.integer({ min: 0x4d4, max: 0x4d4 + 1200 }), fc.nat(real.length - 1)),
        fc.integer({ min: 0, max: 255 }),
      ),
      { minLength: 1, maxLength: 4 },
    ),
    fc.integer({ min: 0, max: real.length }),
  )
  .map(([edits, cut]) => {
    const b = Buffer.from(real);
    for (const [at, v] of edits) if (at < b.length) b[at] = v;
    return b.subarray(0, cut);
  });

describe('parseHclReport never throws untyped errors', () => {
  it('arbitrary bytes (with and without the HCLA magic)', () => {
    const withMagic = fc.uint8Array({ minLength: 0, maxLength: 2600 }).map((b) => Buffer.concat([Buffer.from('HCLA\x01\x00\x00\x00', 'latin1'), b]));
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 2600 }), withMagic), (bytes) => onlyTypedErrors(() => parseHclReport(bytes))),
      { numRuns: FC_RUNS },
    );
  });
  it('mutated real report', () => {
    fc.assert(
      fc.property(mutatedReal, (bytes) => onlyTypedErrors(() => parseHclReport(bytes))),
      { numRuns: FC_RUNS },
    );
  });
  it('arbitrary JSON as runtime claims: parses or ParseError', () => {
    const claims = fc.oneof(
      fc.json({ maxDepth: 4 }),
      fc
        .record({
          keys: fc.array(
            fc.dictionary(
              fc.constantFrom('kid', 'kty', 'n', 'e', 'crv', 'x', 'y', 'key_ops', '__proto__'),
              fc.oneof(fc.string(), fc.constantFrom('RSA', 'EC', 'HCLAkPub', 'AQAB', 'P-256'), fc.integer()),
            ),
            { maxLength: 4 },
          ),
          'user-data': fc.oneof(fc.string(), fc.constant('00'.repeat(64))),
        })
        .map((o) => JSON.stringify(o)),
    );
    fc.assert(
      fc.property(claims, (text) => onlyTypedErrors(() => parseHclReport(buildHclReport(Buffer.alloc(1184), Buffer.from(text), { size: 2048 })))),
      { numRuns: FC_RUNS },
    );
  });
  it('the harness can see failures: a real report parses, a truncated one is a ParseError', () => {
    expect(parseHclReport(real).version).toBe(1);
    expect(() => parseHclReport(real.subarray(0, 1300))).toThrow(ParseError);
  });
});

describe('parseAzureEvidence never throws untyped errors', () => {
  it('arbitrary JSON values', () => {
    const shaped = fc.record({
      version: fc.oneof(fc.constant(1), fc.constant(2), fc.integer()),
      tpm_quote: fc.dictionary(fc.constantFrom('message', 'signature', 'pcrs'), fc.oneof(fc.string(), fc.array(fc.string(), { maxLength: 3 }), fc.integer())),
      hcl_report: fc.string(),
      vcek: fc.oneof(fc.string(), fc.integer()),
    });
    fc.assert(
      fc.property(
        fc.oneof(
          fc.json({ maxDepth: 3 }),
          shaped.map((o) => JSON.stringify(o)),
        ),
        (text) => onlyTypedErrors(() => parseAzureEvidence(text)),
      ),
      { numRuns: FC_RUNS },
    );
  });
});
