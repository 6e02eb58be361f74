import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ParseError } from '../../../../../agent/errors.js';
import { driverRimId, parseRim, vbiosRimFileName, vbiosRimId } from '../../../../../agent/verify/nvidia/rim/index.js';
import { FC_RUNS, vector, vectorsDir } from '../../../../helpers/paths.js';

interface Entry {
  rim?: { colloquialVersion: string; resources: number; active: number; x509_in_keyinfo: number };
  parsed?: { opaque: { driver_version: string; vbios_version: string; project: string; project_sku: string; chip_sku: string }; expected_vbios_rim_id: string };
}
const index = JSON.parse(vector('nvidia/index.json').toString('utf8')) as { files: Record<string, Entry> };
const text = (rel: string): string => vector(`nvidia/${rel}`).toString('utf8');
const RIM_FILES = Object.keys(index.files).filter((k) => index.files[k]!.rim);
const REPORTS = Object.keys(index.files).filter((k) => index.files[k]!.parsed?.expected_vbios_rim_id);

describe('parseRim on every RIM vector', () => {
  it('covers all 34 RIM files (24 VBIOS samples, the 545 pair, 550.144.03, the LS10 switch RIM, 6 negatives)', () => expect(RIM_FILES.length).toBe(34));

  it.each(RIM_FILES)('%s matches the independently parsed values in index.json', (rel) => {
    const expected = index.files[rel]!.rim!;
    const rim = parseRim(text(rel));
    expect(rim.colloquialVersion).toBe(expected.colloquialVersion);
    expect(rim.measurements).toHaveLength(expected.resources);
    expect(rim.measurements.filter((m) => m.active)).toHaveLength(expected.active);
    expect(rim.signerCerts).toHaveLength(expected.x509_in_keyinfo);
    for (const m of rim.measurements) for (const a of m.alternatives) expect(a).toHaveLength(48);
  });

  it('reads the fields of the 545 driver RIM', () => {
    const rim = parseRim(text('nvtrust/hopper-545-complete/Driver_RIM_test_no_gpu.swidtag'));
    expect(rim).toMatchObject({
      tagId: 'f0d3a263ab9ef4b93c8fc9727493b61a979814cbf31c07614842a9486b84db8c6cb2c94fb3d5d55992fc482ab495df0d',
      name: 'GH100',
      version: '1.0',
      colloquialVersion: '545.00',
      product: 'GH100',
      edition: 'GPU',
      manufacturer: 'NVIDIA Corporation',
      manufacturerId: '5703',
    });
    const active = rim.measurements.filter((m) => m.active).map((m) => m.index);
    expect(active).toEqual([7, ...Array.from({ length: 20 }, (_, i) => 21 + i)]);
    const m7 = rim.measurements[7]!;
    expect(m7).toMatchObject({ index: 7, name: 'Measurement_7', active: true, size: 48 });
    expect(m7.alternatives.map((a) => a.toString('hex'))).toEqual([
      '0e0ee161b59bf124ce6b6dca6efa7616d28077862c0e57dca7d5efd63d00eeed4851922941e846a38c464cbedbc168d9',
    ]);
  });

  it('VBIOS RIMs activate indices 0-6 and 8-12', () => {
    const rim = parseRim(text('nvtrust/rims-vbios-samples/1010_0200_882_96005E0001_PROD.swidtag'));
    expect(rim.measurements.filter((m) => m.active).map((m) => m.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12]);
  });

  it('550.144.03 carries up to 4 alternatives per measurement', () => {
    const rim = parseRim(text('attestation-sdk/rims/NV_GPU_DRIVER_GH100_550.144.03.xml'));
    expect(Math.max(...rim.measurements.map((m) => m.alternatives.length))).toBe(4);
  });
});

describe('parseRim rejects structurally invalid RIMs with ParseError', () => {
  const xml = text('nvtrust/hopper-545-complete/Driver_RIM_test_no_gpu.swidtag');
  const bad: [string, string, RegExp][] = [
    ['wrong root', xml.replace('<SoftwareIdentity ', '<Other ').replace('</SoftwareIdentity>', '</Other>'), /SWID SoftwareIdentity/],
    ['no tagId', xml.replace(/ tagId="[0-9a-f]+"/, ''), /no tagId/],
    ['no colloquialVersion', xml.replace('colloquialVersion="545.00" ', ''), /colloquialVersion/],
    ['two Meta', xml.replace('<ns0:Payload', '<ns0:Meta colloquialVersion="1"/><ns0:Payload'), /exactly one <Meta>/],
    ['duplicate index', xml.replace('index="1" ', 'index="0" '), /appears twice/],
    ['bad index', xml.replace('index="1" ', 'index="01" '), /not a decimal/],
    ['missing hash', xml.replace(/ ns2:Hash0="0e0ee161[0-9a-f]+"/, ''), /no Hash0/],
    ['short hash', xml.replace('0e0ee161b59bf124', '0e0ee161b59bf12'), /48-byte hex digest/],
    ['extra hash', xml.replace('ns2:Hash0="0e0ee161', 'ns2:Hash1="00" ns2:Hash0="0e0ee161'), /(48-byte|beyond)/],
    ['bad active', xml.replace('active="True"', 'active="yes"'), /True\/False/],
    ['bad base64 cert', xml.replace('<ds:X509Certificate>MII', '<ds:X509Certificate>*MII'), /base64/],
    ['size not 48', xml.replace('size="48"', 'size="32"'), /does not fit SHA-384/],
  ];
  it.each(bad)('%s', (_name, input, re) => {
    expect(input).not.toBe(xml);
    expect(() => parseRim(input)).toThrow(ParseError);
    expect(() => parseRim(input)).toThrow(re);
  });

  it('never throws anything but ParseError on mutated RIMs', () => {
    const small = xml.replace(/\n {8}<ns0:Resource[^>]*index="([1-9]|[1-5][0-9]|6[0-3])"[^>]*\/>/g, '');
    const tokens = ['<', '>', '"', '&', '=', ':', 'ns0:', 'ns2:', 'Hash', '1', 'True', 'index', ' ', '/>', '<!--', '&#x0;'];
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(), fc.constantFrom(...tokens), fc.boolean()), { minLength: 1, maxLength: 4 }), (edits) => {
        let s = small;
        for (const [at, tok, insert] of edits) {
          const i = at % (s.length + 1);
          s = insert ? s.slice(0, i) + tok + s.slice(i) : s.slice(0, i) + s.slice(i + tok.length);
        }
        try {
          parseRim(s);
        } catch (e) {
          if (!(e instanceof ParseError)) throw e;
        }
      }),
      { numRuns: FC_RUNS },
    );
  });
});

describe('RIM ids (nvtrust get_driver_rim_file_id / get_vbios_rim_file_id)', () => {
  it('driver ids for Hopper and Blackwell', () => {
    expect(driverRimId('550.90.07', 'hopper')).toBe('NV_GPU_DRIVER_GH100_550.90.07');
    expect(driverRimId('545.00\0', 'hopper')).toBe('NV_GPU_DRIVER_GH100_545.00');
    expect(driverRimId('575.57.08', 'blackwell', 'GB100\0\0')).toBe('NV_GPU_CC_DRIVER_GB100_575.57.08');
    expect(driverRimId('575.57.08', 'blackwell', 'gb202')).toBe('NV_GPU_CC_DRIVER_GB202_575.57.08');
    expect(driverRimId('575.57.08', 'blackwell')).toBe('NV_GPU_CC_DRIVER_GB100_575.57.08');
  });

  it('the 550.144.03 driver RIM file is named by its id', () => {
    const rim = parseRim(text('attestation-sdk/rims/NV_GPU_DRIVER_GH100_550.144.03.xml'));
    expect(`${driverRimId(rim.colloquialVersion, 'hopper')}.xml`).toBe('NV_GPU_DRIVER_GH100_550.144.03.xml');
  });

  it.each(REPORTS)('VBIOS id from the opaque fields of %s equals index.json expected_vbios_rim_id', (rel) => {
    const p = index.files[rel]!.parsed!;
    expect(vbiosRimId({ project: p.opaque.project, projectSku: p.opaque.project_sku, chipSku: p.opaque.chip_sku, vbiosVersion: p.opaque.vbios_version })).toBe(
      p.expected_vbios_rim_id,
    );
  });

  it('NUL padding is stripped and letters are upper-cased', () => {
    expect(vbiosRimId({ project: 'g520\0\0', projectSku: '0200\0', chipSku: '885\0\0\0', vbiosVersion: '96.00.a5.00.01' })).toBe(
      'NV_GPU_VBIOS_G520_0200_885_9600A50001',
    );
  });

  it('every nvtrust VBIOS sample file name is derived from its own colloquialVersion', () => {
    const dir = 'nvtrust/rims-vbios-samples';
    for (const f of readdirSync(join(vectorsDir, 'nvidia', dir)).filter((n) => n.endsWith('.swidtag'))) {
      const [project, projectSku, chipSku] = f.split('_') as [string, string, string];
      const rim = parseRim(text(`${dir}/${f}`));
      expect(vbiosRimFileName({ project, projectSku, chipSku, vbiosVersion: rim.colloquialVersion })).toBe(f);
    }
  });

  it('refuses components that could escape a URL or a path', () => {
    expect(() => driverRimId('../../etc/passwd', 'hopper')).toThrow(ParseError);
    expect(() => driverRimId('550.90.07?x=1', 'hopper')).toThrow(ParseError);
    expect(() => driverRimId('', 'hopper')).toThrow(ParseError);
    expect(() => driverRimId('550', 'blackwell', 'GB/100')).toThrow(ParseError);
    expect(() => vbiosRimId({ project: '10/10', projectSku: '0200', chipSku: '882', vbiosVersion: '96.00.5E.00.01' })).toThrow(ParseError);
    expect(() => vbiosRimId({ project: '1010', projectSku: '0200', chipSku: '882', vbiosVersion: '96.00.5E.00' })).toThrow(ParseError);
    expect(() => driverRimId('550', 'ampere' as 'hopper')).toThrow(ParseError);
  });
});
