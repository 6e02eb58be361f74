import { describe, expect, it } from 'vitest';
import type { Check } from '../../../../../agent/formats/checks.js';
import { parseGpuReport, reportBytesFromFile } from '../../../../../agent/verify/nvidia/gpu-report.js';
import { checkRimVersion, compareMeasurements, compareMeasurementsDetailed, parseRim, type Rim } from '../../../../../agent/verify/nvidia/rim/index.js';
import { vector } from '../../../../helpers/paths.js';

// Report measurement blocks come from engineer E's SPDM parser (agent/verify/nvidia/gpu-report.ts):
// a Map from the 1-based SPDM block Index to the block's value.
const report = (rel: string) => parseGpuReport(reportBytesFromFile(vector(`nvidia/${rel}`)));
const rim = (rel: string): Rim => parseRim(vector(`nvidia/${rel}`).toString('utf8'));
const byName = (checks: Check[]) => Object.fromEntries(checks.map((c) => [c.name, c]));

const R545 = report('nvtrust/hopper-545-complete/attestationReport.txt');
const DRIVER_545 = rim('nvtrust/hopper-545-complete/Driver_RIM_test_no_gpu.swidtag');
const VBIOS_545 = rim('nvtrust/hopper-545-complete/1010_0200_882_96005E0001_test_no_gpu.swidtag');
const R535 = report('attestation-sdk/hopper-535/hopperAttestationReport.txt');
const VBIOS_PROD = rim('nvtrust/rims-vbios-samples/1010_0200_882_96005E0001_PROD.swidtag');
const VBIOS_MISMATCH = rim('attestation-sdk/negative/NV_GPU_VBIOS_1010_0200_882_96005E0001_measurement_mismatch.xml');
const DRIVER_535_MISMATCH = rim('attestation-sdk/negative/NV_GPU_DRIVER_GH100_535.86.09_measurement_mismatch.xml');

function withBlock(m: Map<number, Uint8Array>, index1: number, value: Uint8Array | undefined): Map<number, Uint8Array> {
  const copy = new Map(m);
  if (value === undefined) copy.delete(index1);
  else copy.set(index1, value);
  return copy;
}

describe('the one complete positive set: 545 report against both 545 RIMs', () => {
  it('reports NVDEC0 disabled (0x55), as index.json says', () => {
    expect(R545.opaque.nvdec0Status).toBe(0x55);
    expect(R545.measurements.size).toBe(64);
  });

  it('all active golden measurements match; index 35 is skipped because NVDEC0 is disabled', () => {
    const r = compareMeasurementsDetailed(R545.measurements, DRIVER_545, VBIOS_545, { nvdec0Status: R545.opaque.nvdec0Status });
    expect(r.checks.every((c) => c.ok)).toBe(true);
    expect(r.skipped).toEqual([35]);
    expect(r.compared).toBe(32);
    expect(r.mismatches).toEqual([]);
    expect(byName(r.checks)['rim.measurements']!.detail).toMatch(/all 32 .* index 35 skipped/);
  });

  it('matches either way: with NVDEC0 enabled or not reported, all 33 compare equal', () => {
    for (const nvdec0Status of [0xaa, undefined]) {
      const r = compareMeasurementsDetailed(R545.measurements, DRIVER_545, VBIOS_545, nvdec0Status === undefined ? {} : { nvdec0Status });
      expect(r.compared).toBe(33);
      expect(r.checks.every((c) => c.ok)).toBe(true);
    }
  });

  it('a changed runtime block is named with index, source, alternatives and the actual value', () => {
    const changed = Buffer.from(R545.measurements.get(23)!);
    changed[0]! ^= 1;
    const r = compareMeasurementsDetailed(withBlock(R545.measurements, 23, changed), DRIVER_545, VBIOS_545, { nvdec0Status: 0x55 });
    expect(r.mismatches).toHaveLength(1);
    expect(r.mismatches[0]).toMatchObject({ index: 22, source: 'driver', actual: changed.toString('hex'), actualSize: 48, expectedSize: 48 });
    expect(r.mismatches[0]!.expected).toEqual(DRIVER_545.measurements[22]!.alternatives.map((a) => a.toString('hex')));
    const c = byName(r.checks);
    expect(c['rim.measurement.22']).toMatchObject({ ok: false });
    expect(c['rim.measurement.22']!.detail).toContain(changed.toString('hex'));
    expect(c['rim.measurement.22']!.detail).toContain('report block 23');
    expect(c['rim.measurements']!.ok).toBe(false);
  });

  it('NVDEC0: a changed block 36 (RIM index 35) passes only when NVDEC0 is disabled', () => {
    const changed = Buffer.alloc(48, 0xee);
    const m = withBlock(R545.measurements, 36, changed);
    expect(compareMeasurements(m, DRIVER_545, VBIOS_545, { nvdec0Status: 0x55 }).every((c) => c.ok)).toBe(true);
    expect(byName(compareMeasurements(m, DRIVER_545, VBIOS_545, { nvdec0Status: 0xaa }))['rim.measurement.35']).toMatchObject({ ok: false });
    expect(byName(compareMeasurements(m, DRIVER_545, VBIOS_545))['rim.measurement.35']).toMatchObject({ ok: false });
  });

  it('an NVDEC0 status other than 0xAA/0x55 is an error', () => {
    const c = byName(compareMeasurements(R545.measurements, DRIVER_545, VBIOS_545, { nvdec0Status: 0x12 }));
    expect(c['rim.measurements.nvdec0']).toMatchObject({ ok: false });
    expect(c['rim.measurements.nvdec0']!.detail).toMatch(/0x12/);
  });

  it('a missing block or a block of the wrong size fails', () => {
    const missing = byName(compareMeasurements(withBlock(R545.measurements, 8, undefined), DRIVER_545, VBIOS_545, { nvdec0Status: 0x55 }));
    expect(missing['rim.measurement.7']!.detail).toMatch(/no measurement block 8/);
    const short = R545.measurements.get(8)!.subarray(0, 32);
    const sized = byName(compareMeasurements(withBlock(R545.measurements, 8, short), DRIVER_545, VBIOS_545, { nvdec0Status: 0x55 }));
    expect(sized['rim.measurement.7']).toMatchObject({ ok: false });
  });

  it('fails when the RIMs have more active measurements than the report has blocks', () => {
    const few = new Map([...R545.measurements].filter(([i]) => i <= 20));
    const c = byName(compareMeasurements(few, DRIVER_545, VBIOS_545, { nvdec0Status: 0x55 }));
    expect(c['rim.measurements.count']).toMatchObject({ ok: false });
  });

  it('an index active in both RIMs is a conflict', () => {
    const c = byName(compareMeasurements(R545.measurements, DRIVER_545, DRIVER_545, { nvdec0Status: 0x55 }));
    expect(c['rim.measurements.index-conflict']).toMatchObject({ ok: false });
    expect(c['rim.measurements.index-conflict']!.detail).toMatch(/7, 21, 22/);
  });

  it('the golden set derived once per RIM pair gives each call its own result (the order of the pair counts)', () => {
    const first = compareMeasurementsDetailed(R545.measurements, DRIVER_545, DRIVER_545, { nvdec0Status: 0x55 });
    first.conflicts.length = 0;
    expect(compareMeasurementsDetailed(R545.measurements, DRIVER_545, DRIVER_545, { nvdec0Status: 0x55 }).conflicts.length).toBeGreaterThan(0);
    expect(compareMeasurementsDetailed(R545.measurements, DRIVER_545, VBIOS_545, { nvdec0Status: 0x55 }).conflicts).toEqual([]);
    const swapped = compareMeasurementsDetailed(R545.measurements, DRIVER_545, VBIOS_MISMATCH, { nvdec0Status: 0x55 });
    const again = compareMeasurementsDetailed(R545.measurements, DRIVER_545, VBIOS_545, { nvdec0Status: 0x55 });
    expect(swapped.mismatches.every((m) => m.source === 'vbios')).toBe(true);
    expect(swapped.mismatches.length).toBeGreaterThan(0);
    expect(again.mismatches).toEqual([]);
  });
});

describe('535 report (attestation-sdk/hopper-535)', () => {
  it('its VBIOS part matches the genuine 1010_0200_882_96005E0001_PROD RIM', () => {
    const r = compareMeasurementsDetailed(R535.measurements, DRIVER_535_MISMATCH, VBIOS_PROD, { nvdec0Status: R535.opaque.nvdec0Status });
    expect(r.mismatches.filter((m) => m.source === 'vbios')).toEqual([]);
  });

  it('NV_GPU_VBIOS_1010_0200_882_96005E0001_measurement_mismatch.xml mismatches at RIM index 9', () => {
    const r = compareMeasurementsDetailed(R535.measurements, DRIVER_535_MISMATCH, VBIOS_MISMATCH, { nvdec0Status: R535.opaque.nvdec0Status });
    const vbios = r.mismatches.filter((m) => m.source === 'vbios');
    expect(vbios.map((m) => m.index)).toEqual([9]);
    expect(vbios[0]!.actual).toBe(Buffer.from(R535.measurements.get(10)!).toString('hex'));
    expect(byName(r.checks)['rim.measurement.9']).toMatchObject({ ok: false });
  });

  it('NV_GPU_DRIVER_GH100_535.86.09_measurement_mismatch.xml fails the driver measurements of the 535 report', () => {
    const r = compareMeasurementsDetailed(R535.measurements, DRIVER_535_MISMATCH, VBIOS_PROD, { nvdec0Status: R535.opaque.nvdec0Status });
    expect(r.mismatches.length).toBeGreaterThan(0);
    expect(r.mismatches.every((m) => m.source === 'driver')).toBe(true);
    expect(byName(r.checks)['rim.measurements']).toMatchObject({ ok: false });
  });

  it('the 545 driver RIM does not describe the 535 report', () => {
    const r = compareMeasurementsDetailed(R535.measurements, DRIVER_545, VBIOS_PROD, { nvdec0Status: R535.opaque.nvdec0Status });
    expect(r.mismatches.length).toBeGreaterThan(0);
  });
});

describe('RIM version match', () => {
  it('the 545 RIMs are for the 545 report; the 545 driver RIM is not for the 535 report', () => {
    expect(checkRimVersion(DRIVER_545, 'driver', R545.opaque.driverVersion!)).toMatchObject({ name: 'rim.driver.version', ok: true });
    expect(checkRimVersion(VBIOS_545, 'vbios', R545.opaque.vbiosVersion!.toLowerCase())).toMatchObject({ name: 'rim.vbios.version', ok: true });
    const c = checkRimVersion(DRIVER_545, 'driver', R535.opaque.driverVersion!);
    expect(c.ok).toBe(false);
    expect(c.detail).toMatch(/545.00 but the report says 535.86.09/);
  });
});
