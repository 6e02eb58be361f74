/**
 * NVIDIA serialized evidence JSON parser: real files, and hostile input (sizes, types, encodings) that
 * must end in ParseError only. Also the PEM chain splitter and the FWID extension readers.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { FC_RUNS, vector } from '../../../helpers/paths.js';
import { parseGpuEvidenceJson, MAX_EVIDENCE_ENTRIES } from '../../../../agent/formats/nvidia-evidence-json.js';
import { splitPemCertificates, parsePemChain } from '../../../../agent/verify/nvidia/device-chain.js';
import { diceTcbInfoFwid, hopperFwid, leafFwid } from '../../../../agent/verify/nvidia/fwid.js';
import { integer, octetString, oid, sequence, tlv, utf8String } from '../../../../agent/util/der-writer.js';
import { bytesToHex } from '../../../../agent/util/bytes.js';
import { ParseError } from '../../../../agent/errors.js';

const real = vector('nvidia/attestation-sdk/evidence-json/hopper_evidence.json').toString('utf8');
const entry = (JSON.parse(real) as Record<string, string>[])[0]!;

function onlyParseErrors(fn: () => unknown): void {
  try {
    fn();
  } catch (err) {
    if (!(err instanceof ParseError)) throw err;
  }
}

describe('serialized evidence JSON', () => {
  it('parses the real files: arch, report bytes, PEM chain, nonce', () => {
    const [e] = parseGpuEvidenceJson(real);
    expect(e!.arch).toBe('HOPPER');
    expect(e!.report.length).toBe(4274);
    expect(e!.certChainPem.match(/BEGIN CERTIFICATE/g)?.length).toBe(5);
    expect(e!.nonce?.toString('hex')).toBe('e97b23a1718095a0e9e35edca810768c70a6a5a389b705e753b197912bc11576');
    expect(parseGpuEvidenceJson(vector('nvidia/attestation-sdk/evidence-json/multi_gpu_hopper.json')).map((x) => x.index)).toEqual([0, 1, 2, 3]);
  });

  it.each([
    ['not JSON', '{', /not valid JSON/],
    ['an object', '{"a":1}', /expected an array/],
    ['empty array', '[]', /empty/],
    ['too many entries', JSON.stringify(Array.from({ length: MAX_EVIDENCE_ENTRIES + 1 }, () => entry)), /exceeds/],
    ['entry not an object', '[1]', /expected an object/],
    ['arch missing', JSON.stringify([{ ...entry, arch: undefined }]), /"arch"/],
    ['arch hostile', JSON.stringify([{ ...entry, arch: '../../x' }]), /"arch"/],
    ['evidence a number', JSON.stringify([{ ...entry, evidence: 5 }]), /"evidence": expected a base64 string, got number/],
    ['evidence not base64', JSON.stringify([{ ...entry, evidence: 'a$b=' }]), /not valid base64/],
    ['certificate null', JSON.stringify([{ ...entry, certificate: null }]), /got null/],
    ['evidence too large', JSON.stringify([{ ...entry, evidence: 'A'.repeat(20000) }]), /longer than/],
    ['nonce short', JSON.stringify([{ ...entry, nonce: 'abcd' }]), /64 hex digits/],
    ['huge input', ' '.repeat(8 * 1024 * 1024 + 1), /exceeds/],
  ])('%s → ParseError', (_n, input, message) => {
    expect(() => parseGpuEvidenceJson(input)).toThrow(ParseError);
    expect(() => parseGpuEvidenceJson(input)).toThrow(message);
  });

  it('arbitrary JSON values and strings never throw anything but ParseError', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => onlyParseErrors(() => parseGpuEvidenceJson(JSON.stringify(v)))),
      { numRuns: FC_RUNS },
    );
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (s) => onlyParseErrors(() => parseGpuEvidenceJson(s))),
      { numRuns: FC_RUNS },
    );
  });

  it('entries with arbitrary field values never throw anything but ParseError', () => {
    const field = fc.oneof(
      fc.string({ maxLength: 40 }),
      fc.integer(),
      fc.constant(null),
      fc.base64String({ maxLength: 80 }),
      fc.array(fc.integer(), { maxLength: 3 }),
    );
    fc.assert(
      fc.property(fc.record({ arch: field, certificate: field, evidence: field, nonce: field }, { requiredKeys: [] }), (e) => {
        onlyParseErrors(() => parseGpuEvidenceJson(JSON.stringify([e])));
      }),
      { numRuns: FC_RUNS },
    );
  });
});

describe('PEM chain splitting', () => {
  const pem = vector('nvidia/nvtrust/hopper-550/hopperCertChain.txt').toString('latin1');
  it('splits the real chain, tolerating NUL padding as NVML leaves it', () => {
    expect(splitPemCertificates(`${pem}\0\0\0`).length).toBe(5);
    expect(parsePemChain(pem).map((c) => c.cn)).toEqual([
      'GH100 A01 GSP FMC LF',
      'GH100 A01 GSP BROM',
      'NVIDIA GH100 Provisioner ICA 1',
      'NVIDIA GH100 Identity',
      'NVIDIA Device Identity CA',
    ]);
  });
  it.each([
    ['text between blocks', pem.replace('-----END CERTIFICATE-----\n', '-----END CERTIFICATE-----\nhello\n'), /unexpected text between/],
    ['bad base64', '-----BEGIN CERTIFICATE-----\nab=c\n-----END CERTIFICATE-----', /bad base64/],
    ['not DER', '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----', /certificate 0 in the chain/],
    ['nothing', '', /no PEM certificates/],
  ])('%s → ParseError', (_n, text, message) => {
    expect(() => parsePemChain(text)).toThrow(ParseError);
    expect(() => parsePemChain(text)).toThrow(message);
  });
  it('mutated chains never throw anything but ParseError', () => {
    fc.assert(
      fc.property(fc.nat(), fc.integer({ min: 32, max: 126 }), (pos, ch) => {
        const s = pem.slice(0, pos % pem.length) + String.fromCharCode(ch) + pem.slice((pos % pem.length) + 1);
        onlyParseErrors(() => parsePemChain(s));
      }),
      { numRuns: FC_RUNS },
    );
  });
});

describe('FWID extension readers', () => {
  const fwid = Buffer.alloc(48, 0xab);
  it('Hopper: last {sha384, digest} element', () => {
    const ext = sequence(integer(1), sequence(sequence(oid('1.2.840.10045.2.1'))), sequence(oid('2.16.840.1.101.3.4.2.2'), octetString(fwid)));
    expect(bytesToHex(hopperFwid(ext))).toBe(fwid.toString('hex'));
    expect(leafFwid(new Map([['2.23.133.5.4.1', { value: ext }]]))?.source).toBe('2.23.133.5.4.1');
    expect(() => hopperFwid(sequence(integer(1)))).toThrow(ParseError);
  });
  it('Blackwell: DICE TcbInfo fwids[0].digest', () => {
    const tcb = sequence(tlv(0x80, Buffer.from('NVIDIA')), tlv(0xa6, sequence(oid('2.16.840.1.101.3.4.2.2'), octetString(fwid))));
    expect(bytesToHex(diceTcbInfoFwid(tcb))).toBe(fwid.toString('hex'));
    expect(leafFwid(new Map([['2.23.133.5.4.1.1', { value: tcb }]]))?.source).toBe('2.23.133.5.4.1.1');
    expect(() => diceTcbInfoFwid(sequence(utf8String('x')))).toThrow(/no fwids/);
    expect(leafFwid(new Map())).toBeUndefined();
  });
});
