/**
 * The NVSwitch (LS10) report parser on the real public switch report (test/vectors/nvidia/
 * attestation-sdk/switch-ls10), against NVIDIA's own parse of that report (attestation-sdk
 * nv-attestation-sdk-cpp/unit-tests/testdata/switch_spdm_parsed_output.txt, values restated here), and
 * under hostile input: truncations, bit flips and random bytes never raise anything but a ParseError.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { FC_RUNS, vector } from '../../../helpers/paths.js';
import { ParseError } from '../../../../agent/errors.js';
import { reportBytesFromFile } from '../../../../agent/verify/nvidia/gpu-report.js';
import { parseSwitchReport } from '../../../../agent/verify/nvidia/switch-report.js';
import { parseSwitchOpaqueData } from '../../../../agent/verify/nvidia/switch-opaque.js';

const report = reportBytesFromFile(vector('nvidia/attestation-sdk/switch-ls10/switchAttestationReport.txt'));

function parsesOrParseError(bytes: Uint8Array): void {
  try {
    parseSwitchReport(bytes);
  } catch (err) {
    if (!(err instanceof ParseError)) throw err;
  }
}

describe('the real LS10 switch report', () => {
  const r = parseSwitchReport(report);
  it('has the SPDM framing NVIDIA parsed (31 blocks, record 1705 bytes, opaque 288 bytes)', () => {
    expect(report.length).toBe(2168);
    expect(r.response.numberOfBlocks).toBe(31);
    expect(r.response.measurementRecordLength).toBe(1705);
    expect(r.response.opaqueLength).toBe(288);
    expect(Buffer.from(r.request.nonce).toString('hex')).toBe('931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb');
    expect(Buffer.from(r.response.nonce).toString('hex')).toBe('f637f42290f5119391c51d861f6257bb1f151b2400dcc4701c23aa0cad6a5567');
    expect(Buffer.from(r.measurements.get(1)!).toString('hex')).toBe(
      '9083ccee6f98b6e900ea3338abde64a9ef6315d87194362d6477f911a92e19e2ef0291a19215af5f46764792ae20e087',
    );
  });

  it('decodes the switch opaque fields as NVIDIA does', () => {
    const o = r.opaque;
    expect(o.fields.map((f) => f.name)).toEqual([
      'VBIOS_VERSION',
      'DEVICE_PDI',
      'MSRSCNT',
      'SWITCH_GPU_PDIS',
      'DISABLED_PORTS',
      'SWITCH_POSITION_ID',
      'SWITCH_LOCK_STATUS',
    ]);
    expect(o.vbiosVersion).toBe('96.10.55.00.01');
    expect(o.devicePdi).toBe('203eb31ad9ed0008');
    expect(o.gpuPdis).toEqual([
      '40b9c6b3d748fd90',
      'e2d85b590e713298',
      'd0f69d028e150aaa',
      '31649cf11c820858',
      'fdb529f1473cb225',
      '1043c14e83599663',
      '6b811687a0a7ee7c',
      '6b811687a0a7ee7c',
    ]);
    expect(o.gpuPorts).toHaveLength(64);
    expect(o.gpuPorts!.slice(0, 4)).toEqual([0, 0, 1, 1]);
    expect(o.gpuPorts!.slice(32, 44)).toEqual([0, 0, 4, 1, 5, 5, 1, 1, 4, 4, 6, 7]);
    expect(o.disabledPorts).toHaveLength(64);
    expect(o.disabledPorts!.slice(0, 28)).toEqual([...Array(12).fill(1), 0, 0, 0, 0, ...Array(8).fill(1), 0, 0, 0, 0]);
    expect(o.positionId).toBe(2);
    expect(o.lockStatus).toBe(1);
    expect(o.msrsCnt!.slice(0, 9)).toEqual([1, 4, 1, 1, 1, 0, 1, 0, 110]);
    expect(o.fwid).toBeUndefined();
  });
});

describe('malformed switch opaque fields are ParseErrors with an offset', () => {
  const tlv = (type: number, value: number[]) => Uint8Array.from([type & 0xff, type >> 8, value.length & 0xff, value.length >> 8, ...value]);
  it.each([
    ['a DEVICE_PDI of 7 bytes', tlv(22, [1, 2, 3, 4, 5, 6, 7]), /DEVICE_PDI: expected 8 bytes/],
    ['SWITCH_GPU_PDIS shorter than 8 PDIs', tlv(26, Array(63).fill(1)), /shorter than 8 PDIs/],
    ['a VBIOS_VERSION that is not five hex pairs', tlv(6, [...Buffer.from('96.10.55')]), /five dot-separated hex pairs/],
    ['a type beyond the switch range (28)', tlv(28, [0]), /unknown field type 28/],
    ['a duplicated DEVICE_PDI', Uint8Array.from([...tlv(22, Array(8).fill(1)), ...tlv(22, Array(8).fill(2))]), /duplicate field DEVICE_PDI/],
  ])('%s', (_what, data, message) => {
    expect(() => parseSwitchOpaqueData(data, 100)).toThrow(ParseError);
    expect(() => parseSwitchOpaqueData(data, 100)).toThrow(message);
  });
});

describe('hostile switch reports never raise an untyped error', () => {
  it('every truncation of the real report is refused with a ParseError', () => {
    for (let len = 0; len < report.length; len++) expect(() => parseSwitchReport(report.subarray(0, len))).toThrow(ParseError);
  });

  it('every single-bit flip of the real report parses or is a ParseError', () => {
    for (let pos = 0; pos < report.length; pos++) {
      for (let bit = 0; bit < 8; bit++) {
        const b = Buffer.from(report);
        b[pos] = b[pos]! ^ (1 << bit);
        parsesOrParseError(b);
      }
    }
  });

  it('random bytes and random splices of the real report (fast-check)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 3000 }), (bytes) => parsesOrParseError(bytes)),
      { numRuns: Math.min(FC_RUNS, 2000) },
    );
    fc.assert(
      fc.property(fc.nat(report.length), fc.uint8Array({ minLength: 1, maxLength: 64 }), (at, junk) => {
        const b = Buffer.from(report);
        Buffer.from(junk).copy(b, at);
        parsesOrParseError(b);
      }),
      { numRuns: FC_RUNS },
    );
  });
});
