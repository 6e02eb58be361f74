/**
 * SPDM / opaque-data parser against NVIDIA's own golden parse (attestation-sdk spdm_parsed_output.json)
 * and the independently computed expectations in test/vectors/nvidia/index.json.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { vector } from '../../../helpers/paths.js';
import { parseGpuReport, reportBytesFromFile } from '../../../../agent/verify/nvidia/gpu-report.js';
import { parseSpdmRequest, parseSpdmResponse } from '../../../../agent/verify/nvidia/spdm.js';
import { formatVbiosVersion, OPAQUE_FIELD_NAMES } from '../../../../agent/verify/nvidia/opaque.js';
import { bytesToHex } from '../../../../agent/util/bytes.js';
import { ParseError } from '../../../../agent/errors.js';

const GOLDEN_DIR = 'nvidia/attestation-sdk/hopper-580-golden-parse';
const hex0x = (b: Uint8Array) => `0x${bytesToHex(b)}`;
const byte0x = (n: number) => `0x${n.toString(16).padStart(2, '0')}`;

interface IndexEntry {
  parsed?: {
    total_len: number;
    request: { spdm_version: string; code: string; param1: string; param2: string; nonce: string; slot_id: number };
    response: {
      spdm_version: string;
      code: string;
      num_blocks: number;
      meas_record_len: number;
      responder_nonce: string;
      opaque_len: number;
      opaque_offset_in_report: number;
      signature_offset_in_report: number;
      signature_len: number;
    };
    opaque: {
      driver_version: string;
      vbios_version: string;
      project: string;
      project_sku: string;
      chip_sku: string;
      chip_sku_mod: string;
      board_id: number;
      nvdec0_status: string;
      protected_pcie_status: string | null;
      fwid: string | null;
      opaque_data_version: number | null;
      feature_flag: number | null;
      chip_info: string | null;
      opaque_field_ids_in_order: number[];
    };
    measurements_nonzero_indices_1based: number[];
  };
  entries?: { driver_version: string; vbios_version: string; report_len: number; nonce: string }[];
}
const index = JSON.parse(vector('nvidia/index.json').toString('utf8')) as { files: Record<string, IndexEntry> };

describe('golden parse (NVIDIA attestation-sdk spdm_parsed_output.json)', () => {
  const report = parseGpuReport(reportBytesFromFile(vector(`${GOLDEN_DIR}/hopperAttestationReport.txt`)));

  it('request matches spdm_req_parsed_output.json field by field', () => {
    const golden = JSON.parse(vector(`${GOLDEN_DIR}/spdm_req_parsed_output.json`).toString('utf8')) as Record<string, string>;
    const r = report.request;
    expect(byte0x(r.spdmVersion)).toBe(golden.SPDMVersion);
    expect(byte0x(r.requestResponseCode)).toBe(golden.RequestResponseCode);
    expect(byte0x(r.param1)).toBe(golden.Param1);
    expect(byte0x(r.param2)).toBe(golden.Param2);
    expect(hex0x(r.nonce)).toBe(golden.Nonce);
    expect(byte0x(r.slotIdParam)).toBe(golden.SlotIDParam);
    expect(Object.keys(golden).sort()).toEqual(['Nonce', 'Param1', 'Param2', 'RequestResponseCode', 'SPDMVersion', 'SlotIDParam']);
  });

  it('response header, signature and every measurement block match', () => {
    type GoldenBlock = { DMTFSpecMeasurementValueType: number; DMTFSpecMeasurementValueSize: number; DMTFSpecMeasurementValue: string };
    const golden = JSON.parse(vector(`${GOLDEN_DIR}/spdm_parsed_output.json`).toString('utf8')) as {
      SPDMVersion: string;
      RequestResponseCode: string;
      Param1: string;
      Param2: string;
      NumberOfBlocks: number;
      MeasurementRecordLength: number;
      Nonce: string;
      OpaqueLength: number;
      Signature: string;
      MeasurementRecord: { NumberOfBlocks: number; MeasurementBlocks: Record<string, GoldenBlock> };
      OpaqueData: { OpaqueDataField: Record<string, string | number[]> };
    };
    const r = report.response;
    expect(byte0x(r.spdmVersion)).toBe(golden.SPDMVersion);
    expect(byte0x(r.requestResponseCode)).toBe(golden.RequestResponseCode);
    expect(byte0x(r.param1)).toBe(golden.Param1);
    expect(byte0x(r.param2)).toBe(golden.Param2);
    expect(r.numberOfBlocks).toBe(golden.NumberOfBlocks);
    expect(r.blocks.length).toBe(golden.MeasurementRecord.NumberOfBlocks);
    expect(r.measurementRecordLength).toBe(golden.MeasurementRecordLength);
    expect(hex0x(r.nonce)).toBe(golden.Nonce);
    expect(r.opaqueLength).toBe(golden.OpaqueLength);
    expect(hex0x(r.signature)).toBe(golden.Signature);

    const goldenBlocks = golden.MeasurementRecord.MeasurementBlocks;
    expect(Object.keys(goldenBlocks).length).toBe(64);
    for (const block of r.blocks) {
      const g = goldenBlocks[String(block.index)];
      expect(g, `block ${block.index}`).toBeDefined();
      expect(block.valueType).toBe(g!.DMTFSpecMeasurementValueType);
      expect(block.valueSize).toBe(g!.DMTFSpecMeasurementValueSize);
      expect(hex0x(block.value)).toBe(g!.DMTFSpecMeasurementValue);
      expect(block.measurementSpecification).toBe(1);
    }
  });

  it('every opaque field in the golden parse matches by name', () => {
    const golden = JSON.parse(vector(`${GOLDEN_DIR}/spdm_parsed_output.json`).toString('utf8')) as {
      OpaqueData: { OpaqueDataField: Record<string, string | number[]> };
    };
    const byName = new Map(report.opaque.fields.map((f) => [`OPAQUE_FIELD_ID_${f.name}`, f]));
    const entries = Object.entries(golden.OpaqueData.OpaqueDataField);
    expect(entries.length).toBe(14);
    for (const [name, value] of entries) {
      const f = byName.get(name);
      expect(f, name).toBeDefined();
      if (Array.isArray(value)) {
        expect(name).toBe('OPAQUE_FIELD_ID_MSRSCNT');
        expect(report.opaque.msrsCnt).toEqual(value);
      } else {
        expect(hex0x(f!.value), name).toBe(value);
      }
    }
    // Decoded values (index.json, computed independently).
    expect(report.opaque.driverVersion).toBe('580.159.03');
    expect(report.opaque.vbiosVersion).toBe('96.00.74.00.20');
    expect(report.opaque.opaqueDataVersion).toBe(1);
    expect(report.opaque.featureFlag).toBe(0);
  });
});

describe('index.json expectations for every real report', () => {
  const reports = Object.entries(index.files).filter(([, e]) => e.parsed !== undefined);
  it('covers the five report files', () => expect(reports.length).toBe(5));

  for (const [path, entry] of reports) {
    it(path, () => {
      const p = entry.parsed!;
      const bytes = reportBytesFromFile(vector(`nvidia/${path}`));
      expect(bytes.length).toBe(p.total_len);
      const r = parseGpuReport(bytes);
      expect(byte0x(r.request.spdmVersion)).toBe('0x11');
      expect(byte0x(r.request.requestResponseCode)).toBe(p.request.code);
      expect(`0x${r.request.param1.toString(16)}`).toBe(p.request.param1);
      expect(`0x${r.request.param2.toString(16)}`).toBe(p.request.param2);
      expect(bytesToHex(r.request.nonce)).toBe(p.request.nonce);
      expect(r.request.slotIdParam).toBe(p.request.slot_id);
      expect(byte0x(r.response.requestResponseCode)).toBe(p.response.code);
      expect(r.response.numberOfBlocks).toBe(p.response.num_blocks);
      expect(r.response.measurementRecordLength).toBe(p.response.meas_record_len);
      expect(bytesToHex(r.response.nonce)).toBe(p.response.responder_nonce);
      expect(r.response.opaqueLength).toBe(p.response.opaque_len);
      expect(37 + r.response.opaqueOffset).toBe(p.response.opaque_offset_in_report);
      expect(r.signedBytes.length).toBe(p.response.signature_offset_in_report);
      expect(r.signature.length).toBe(p.response.signature_len);

      const o = r.opaque;
      expect(o.driverVersion).toBe(p.opaque.driver_version);
      expect(o.vbiosVersion).toBe(p.opaque.vbios_version);
      expect(o.project).toBe(p.opaque.project);
      expect(o.projectSku).toBe(p.opaque.project_sku);
      expect(o.chipSku).toBe(p.opaque.chip_sku);
      expect(o.chipSkuMod).toBe(p.opaque.chip_sku_mod);
      expect(o.boardId).toBe(p.opaque.board_id);
      expect(o.nvdec0Status?.toString(16)).toBe(p.opaque.nvdec0_status);
      expect(o.protectedPcieStatus?.toString(16) ?? null).toBe(p.opaque.protected_pcie_status);
      expect(o.fwid === undefined ? null : bytesToHex(o.fwid)).toBe(p.opaque.fwid);
      expect(o.opaqueDataVersion ?? null).toBe(p.opaque.opaque_data_version);
      expect(o.featureFlag ?? null).toBe(p.opaque.feature_flag);
      expect(o.chipInfo ?? null).toBe(p.opaque.chip_info);
      expect(o.fields.map((f) => f.type)).toEqual(p.opaque.opaque_field_ids_in_order);
      expect(o.msrsCnt?.length).toBe(64);

      const nonzero = r.response.blocks.filter((b) => b.value.some((x) => x !== 0)).map((b) => b.index);
      expect(nonzero).toEqual(p.measurements_nonzero_indices_1based);
    });
  }
});

describe('field decoding', () => {
  it('formats VBIOS versions as nvtrust format_vbios_version does', () => {
    expect(formatVbiosVersion(Buffer.from('009f009601000000', 'hex'))).toBe('96.00.9F.00.01');
    expect(formatVbiosVersion(Buffer.from('0074009620000000', 'hex'))).toBe('96.00.74.00.20');
    expect(() => formatVbiosVersion(Buffer.alloc(7))).toThrow(ParseError);
  });

  it('formats every 8 bytes as the nvtrust recipe written out does (reverse, hex, h[8:16] + h[6:8], pairs, upper case)', () => {
    const recipe = (raw: Uint8Array) => {
      const h = bytesToHex(Uint8Array.from(raw).reverse());
      return ((h.slice(8, 16) + h.slice(6, 8)).match(/../g) ?? []).join('.').toUpperCase();
    };
    fc.assert(fc.property(fc.uint8Array({ minLength: 8, maxLength: 8 }), (raw) => formatVbiosVersion(raw) === recipe(raw)));
  });

  it('names all 36 field ids', () => {
    for (let i = 1; i <= 36; i++) expect(OPAQUE_FIELD_NAMES[i]).toMatch(/^[A-Z0-9_]+$/);
  });

  it('reads hex text and raw bytes alike', () => {
    const text = vector('nvidia/nvtrust/hopper-550/hopperAttestationReport.txt');
    const raw = reportBytesFromFile(text);
    expect(reportBytesFromFile(raw).equals(raw)).toBe(true);
    expect(raw.length).toBe(4117);
  });
});

describe('rejects malformed reports with ParseError', () => {
  const good = reportBytesFromFile(vector('nvidia/nvtrust/hopper-550/hopperAttestationReport.txt'));
  const mutate = (f: (b: Buffer) => void) => {
    const b = Buffer.from(good);
    f(b);
    return b;
  };

  it.each([
    ['empty', Buffer.alloc(0), /shorter than the SPDM request/],
    ['request only', good.subarray(0, 37), /truncated/],
    ['truncated signature', good.subarray(0, good.length - 1), /Signature needs 96 bytes/],
    ['trailing byte', Buffer.concat([good, Buffer.from([0])]), /trailing bytes/],
    [
      'SPDM 1.2 request',
      mutate((b) => {
        b[0] = 0x12;
      }),
      /unsupported version 0x12/,
    ],
    [
      'not GET_MEASUREMENTS',
      mutate((b) => {
        b[1] = 0xe1;
      }),
      /not GET_MEASUREMENTS/,
    ],
    [
      'no signature requested',
      mutate((b) => {
        b[2] = 0;
      }),
      /signature not requested/,
    ],
    [
      'not MEASUREMENTS',
      mutate((b) => {
        b[38] = 0x61;
      }),
      /not MEASUREMENTS/,
    ],
    [
      'block count mismatch',
      mutate((b) => {
        b[41] = 63;
      }),
      /NumberOfBlocks says 63/,
    ],
    [
      'non-DMTF block',
      mutate((b) => {
        b[45 + 1] = 2;
      }),
      /expected DMTF/,
    ],
    [
      'duplicate index',
      mutate((b) => {
        b[45 + 55] = 1;
      }),
      /duplicate measurement index 1/,
    ],
    [
      'value size mismatch',
      mutate((b) => {
        b[45 + 5] = 47;
      }),
      /value size 47/,
    ],
    [
      'record length too long',
      mutate((b) => {
        b[42] = 0xff;
        b[43] = 0xff;
      }),
      /overruns|needs/,
    ],
    [
      'opaque length too long',
      mutate((b) => {
        b[3597] = 0xff;
        b[3598] = 0xff;
      }),
      /OpaqueData needs/,
    ],
    [
      'unknown opaque type',
      mutate((b) => {
        b[3599] = 99;
      }),
      /unknown field type 99/,
    ],
    ['oversized', Buffer.alloc(0x2001), /exceeds the NVML maximum/],
  ])('%s', (_name, bytes, message) => {
    expect(() => parseGpuReport(bytes)).toThrow(ParseError);
    expect(() => parseGpuReport(bytes)).toThrow(message);
  });

  it('error offsets point into the report', () => {
    try {
      parseGpuReport(
        mutate((b) => {
          b[3599] = 99;
        }),
      );
      expect.unreachable();
    } catch (err) {
      expect((err as ParseError).offset).toBe(3599);
    }
  });

  it('parses request and response independently', () => {
    expect(parseSpdmRequest(good.subarray(0, 37)).nonce.length).toBe(32);
    expect(parseSpdmResponse(good.subarray(37)).blocks.length).toBe(64);
    expect(() => parseSpdmRequest(good.subarray(0, 36))).toThrow(/expected 37 bytes/);
  });
});
