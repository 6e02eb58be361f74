/**
 * Properties: the SPDM report parser and the opaque-data parser return a result or throw ParseError,
 * never anything else, for arbitrary bytes and for mutations of real reports.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { FC_RUNS, vector } from '../../../helpers/paths.js';
import { parseGpuReport, reportBytesFromFile } from '../../../../agent/verify/nvidia/gpu-report.js';
import { parseOpaqueData } from '../../../../agent/verify/nvidia/opaque.js';
import { parseSpdmRequest } from '../../../../agent/verify/nvidia/spdm.js';
import { ParseError } from '../../../../agent/errors.js';

const real = [
  'nvidia/nvtrust/hopper-545-complete/attestationReport.txt',
  'nvidia/nvtrust/hopper-550/hopperAttestationReport.txt',
  'nvidia/attestation-sdk/hopper-580-golden-parse/hopperAttestationReport.txt',
].map((p) => reportBytesFromFile(vector(p)));

/** Runs fn; returns 'ok' or 'parse-error'; any other exception fails the property. */
function outcome(fn: () => unknown): 'ok' | 'parse-error' {
  try {
    fn();
    return 'ok';
  } catch (err) {
    if (err instanceof ParseError) return 'parse-error';
    throw err;
  }
}

const mutation = fc.record({
  which: fc.nat({ max: real.length - 1 }),
  edits: fc.array(fc.record({ pos: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 8 }),
  cut: fc.option(fc.nat(), { nil: undefined }),
  extra: fc.uint8Array({ maxLength: 8 }),
});

describe('SPDM report parser never throws anything but ParseError', () => {
  it('arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 4200 }), (bytes) => {
        outcome(() => parseGpuReport(bytes));
      }),
      { numRuns: FC_RUNS },
    );
  });

  it('arbitrary bytes behind a valid request header', () => {
    const header = real[0]!.subarray(0, 37 + 8);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 4200 }), (tail) => {
        outcome(() => parseGpuReport(Buffer.concat([header, tail])));
      }),
      { numRuns: FC_RUNS },
    );
  });

  it('mutated real reports (byte edits, truncation, appended bytes)', () => {
    let parsed = 0;
    fc.assert(
      fc.property(mutation, ({ which, edits, cut, extra }) => {
        let b = Buffer.from(real[which]!);
        for (const e of edits) b[e.pos % b.length] = e.byte;
        if (cut !== undefined) b = b.subarray(0, cut % (b.length + 1));
        if (extra.length > 0) b = Buffer.concat([b, extra]);
        if (outcome(() => parseGpuReport(b)) === 'ok') parsed++;
      }),
      { numRuns: FC_RUNS },
    );
    // Edits inside measurement values and the signature still parse: the property saw both outcomes.
    expect(parsed).toBeGreaterThan(0);
  });

  it('request parser on arbitrary 37-byte inputs', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 37, maxLength: 37 }), (b) => {
        outcome(() => parseSpdmRequest(b));
      }),
      { numRuns: FC_RUNS },
    );
  });
});

describe('opaque parser never throws anything but ParseError', () => {
  it('arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
        outcome(() => parseOpaqueData(bytes));
      }),
      { numRuns: FC_RUNS },
    );
  });

  it('well-framed TLVs with arbitrary types and values', () => {
    const tlv = fc.record({ type: fc.integer({ min: 0, max: 40 }), value: fc.uint8Array({ maxLength: 300 }) });
    let parsed = 0;
    fc.assert(
      fc.property(fc.array(tlv, { maxLength: 20 }), (tlvs) => {
        const parts = tlvs.map(({ type, value }) => {
          const h = Buffer.alloc(4);
          h.writeUInt16LE(type, 0);
          h.writeUInt16LE(value.length, 2);
          return Buffer.concat([h, value]);
        });
        if (outcome(() => parseOpaqueData(Buffer.concat(parts))) === 'ok') parsed++;
      }),
      { numRuns: FC_RUNS },
    );
    expect(parsed).toBeGreaterThan(0);
  });

  it('mutated real opaque data', () => {
    const opaque = parseGpuReport(real[2]!).response.opaqueData;
    fc.assert(
      fc.property(fc.array(fc.record({ pos: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 6 }), (edits) => {
        const b = Buffer.from(opaque);
        for (const e of edits) b[e.pos % b.length] = e.byte;
        outcome(() => parseOpaqueData(b));
      }),
      { numRuns: FC_RUNS },
    );
  });
});
