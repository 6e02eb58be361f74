/**
 * Property tests: the SNP ABI parsers never throw anything but ParseError, on arbitrary bytes and on
 * mutated real inputs, and the report serializer is the exact inverse of the parser.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ParseError } from '../../../../agent/errors.js';
import { SNP_REPORT_SIZE, parseAmdCertExtensions, parseCertTable, parseSnpReport, serializeSnpReport } from '../../../../agent/formats/snp-abi/index.js';
import { FC_RUNS, vector } from '../../../helpers/paths.js';
import { onlyTypedErrors } from '../../../helpers/props.js';

const snp = (name: string) => vector(`snp/${name}`);

/** true if fn returns, or throws a ParseError; any other throwable fails the property. */
const returnsOrParseError = (fn: () => unknown): boolean => onlyTypedErrors(fn, ParseError);

/** A real input with 1..8 bytes overwritten and optionally truncated. */
const mutated = (seed: Buffer) =>
  fc
    .record({
      edits: fc.array(fc.tuple(fc.nat(seed.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }),
      cut: fc.option(fc.nat(seed.length), { nil: undefined }),
    })
    .map(({ edits, cut }) => {
      const b = Buffer.from(seed);
      for (const [at, v] of edits) b[at] = v;
      return cut === undefined ? b : b.subarray(0, cut);
    });

const anyBytes = fc.oneof(fc.uint8Array({ maxLength: 2048 }), fc.uint8Array({ minLength: SNP_REPORT_SIZE, maxLength: SNP_REPORT_SIZE }));

const reports = [
  snp('gosevguest_attestation.bin'),
  snp('trustee_snp_test-report.bin'),
  snp('trustee_snp_test-vlek-report.bin'),
  Buffer.from(snp('virtee_report_milan.hex').toString('utf8'), 'hex'),
  snp('msteeav_turin_attestation_report.bin'),
];
const tables = [
  snp('synthetic_certtable_gcp_milan_rfc4122.bin'),
  snp('synthetic_certtable_gcp_milan_mixedendian_guid.bin'),
  snp('synthetic_certtable_gcp_milan_rfc4122_pagepadded.bin'),
];
const certs = [snp('gosevguest_vcek.der'), snp('virtee_vcek_turin.der'), snp('trustee_snp_test-vlek.der'), snp('trustee_snp_test-vcek-invalid-new.der')];

describe('parseSnpReport properties', () => {
  it('arbitrary bytes: returns or throws ParseError', () => {
    fc.assert(
      fc.property(anyBytes, (b) => returnsOrParseError(() => parseSnpReport(b))),
      { numRuns: FC_RUNS },
    );
  });

  it('any 1184-byte buffer with version 2..5 parses and round-trips exactly', () => {
    const arb = fc.tuple(fc.uint8Array({ minLength: SNP_REPORT_SIZE, maxLength: SNP_REPORT_SIZE }), fc.integer({ min: 2, max: 5 })).map(([b, v]) => {
      const buf = Buffer.from(b);
      buf.writeUInt32LE(v, 0);
      return buf;
    });
    fc.assert(
      fc.property(arb, (b) => {
        const r = parseSnpReport(b);
        return r.version === b.readUInt32LE(0) && serializeSnpReport(r).equals(b);
      }),
      { numRuns: FC_RUNS },
    );
  });

  it('mutated real reports: returns (and round-trips) or throws ParseError', () => {
    fc.assert(
      fc.property(fc.constantFrom(...reports).chain(mutated), (b) =>
        returnsOrParseError(() => {
          const r = parseSnpReport(b);
          expect(serializeSnpReport(r).equals(b)).toBe(true);
        }),
      ),
      { numRuns: FC_RUNS },
    );
  });
});

describe('parseCertTable properties', () => {
  it('arbitrary bytes: returns or throws ParseError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (b) => returnsOrParseError(() => parseCertTable(b))),
      { numRuns: FC_RUNS },
    );
  });

  it('arbitrary headers over a data area: every returned entry lies inside the buffer', () => {
    const entry = fc.tuple(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.nat(300), fc.nat(300));
    const arb = fc.tuple(fc.array(entry, { maxLength: 5 }), fc.nat(200)).map(([entries, tail]) => {
      const b = Buffer.alloc((entries.length + 1) * 24 + tail, 0xab);
      entries.forEach(([g, off, len], i) => {
        b.set(g, i * 24);
        b.writeUInt32LE(off, i * 24 + 16);
        b.writeUInt32LE(len, i * 24 + 20);
      });
      b.fill(0, entries.length * 24, (entries.length + 1) * 24);
      return b;
    });
    fc.assert(
      fc.property(arb, (b) =>
        returnsOrParseError(() => {
          const total = parseCertTable(b).reduce((n, e) => n + e.data.length, 0);
          expect(total).toBeLessThanOrEqual(b.length);
        }),
      ),
      { numRuns: FC_RUNS },
    );
  });

  it('mutated real tables: returns or throws ParseError', () => {
    // Concentrate edits on the 0x60-byte header, where all the structure is.
    const headerMutated = fc.constantFrom(...tables).chain((seed) =>
      fc.array(fc.tuple(fc.nat(0x5f), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }).map((edits) => {
        const b = Buffer.from(seed);
        for (const [at, v] of edits) b[at] = v;
        return b;
      }),
    );
    fc.assert(
      fc.property(fc.oneof(headerMutated, fc.constantFrom(...tables).chain(mutated)), (b) => returnsOrParseError(() => parseCertTable(b))),
      {
        numRuns: FC_RUNS,
      },
    );
  });
});

describe('parseAmdCertExtensions properties', () => {
  it('arbitrary bytes: returns or throws ParseError', () => {
    const derish = fc.uint8Array({ maxLength: 256 }).map((b) => {
      const out = Buffer.from(b);
      if (out.length > 2) out[0] = 0x30; // look like a SEQUENCE more often
      return out;
    });
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 256 }), derish), (b) => returnsOrParseError(() => parseAmdCertExtensions(b))),
      {
        numRuns: FC_RUNS,
      },
    );
  });

  it('mutated real VCEK/VLEK certificates: returns or throws ParseError', () => {
    fc.assert(
      fc.property(fc.constantFrom(...certs).chain(mutated), (b) => returnsOrParseError(() => parseAmdCertExtensions(b))),
      {
        numRuns: FC_RUNS,
      },
    );
  });
});
