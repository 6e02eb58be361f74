/**
 * Golden-measurement comparison (nvtrust verifier.py Verifier; attestation-sdk src/gpu/verify.cpp):
 * - golden set = active measurements of the driver RIM and the VBIOS RIM; an index active in both is
 *   a conflict (nvtrust InvalidMeasurementIndexError / vbios_index_no_conflict);
 * - RIM index i (0-based) is compared with SPDM measurement block Index i+1;
 * - a golden index passes if the runtime value has the RIM's size and equals one of its alternatives;
 * - NVDEC0 (opaque field 11): 0x55 = disabled → RIM index 35 is skipped; 0xAA = enabled → compared;
 *   any other value is an error (the C++ SDK's rule; nvtrust's Python compares bytes to an Enum and never skips).
 * Pure: maps and RIM models in, checks (and mismatch records) out.
 */
import { bytesToHex } from '../../../util/bytes.js';
import { fail, pass, type Check } from '../../../formats/checks.js';
import type { Rim, RimMeasurement } from './rim-types.js';

/** NVDEC0 status values in opaque field 11 (OPAQUE_DATA_TYPES NVDEC0_STATUS). */
export const NVDEC0_ENABLED = 0xaa;
export const NVDEC0_DISABLED = 0x55;
/** The RIM index that depends on NVDEC0 (nvtrust verifier.py). */
export const NVDEC0_RIM_INDEX = 35;

export interface CompareOptions {
  /** Opaque field 11 byte. Undefined = not reported: index 35 is then compared like any other. */
  nvdec0Status?: number;
}

/** One failed golden measurement, shaped like the C++ SDK's x-nvidia-mismatch-measurement-records. */
export interface MeasurementMismatch {
  /** RIM index (0-based); the report block is index + 1. */
  index: number;
  source: 'driver' | 'vbios';
  name: string;
  /** Hex alternatives from the RIM. */
  expected: string[];
  expectedSize: number | undefined;
  /** Hex runtime value, or undefined when the report has no such block. */
  actual: string | undefined;
  actualSize: number | undefined;
}

export interface MeasurementComparison {
  /** Golden indices compared (after the NVDEC0 skip). */
  compared: number;
  skipped: number[];
  conflicts: number[];
  mismatches: MeasurementMismatch[];
  checks: Check[];
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}

interface GoldenSet {
  /** The active measurements by RIM index, ascending; an index active in both RIMs is the driver's. */
  golden: { index: number; m: RimMeasurement; source: 'driver' | 'vbios' }[];
  /** Indices active in both RIMs. */
  conflicts: number[];
}

/*
 * The golden set depends on the RIMs alone, and a verified RIM is one shared object for as long as
 * the RIM cache holds it (rim-cache.ts), so the set is derived once per pair of RIM objects.
 */
const goldenByDriver = new WeakMap<Rim, WeakMap<Rim, GoldenSet>>();
const goldenNoDriver = new WeakMap<Rim, GoldenSet>();

function goldenSet(driverRim: Rim | undefined, vbiosRim: Rim): GoldenSet {
  let byVbios = goldenNoDriver;
  if (driverRim) {
    byVbios = goldenByDriver.get(driverRim) ?? new WeakMap<Rim, GoldenSet>();
    goldenByDriver.set(driverRim, byVbios);
  }
  const hit = byVbios.get(vbiosRim);
  if (hit) return hit;
  const golden = new Map<number, { m: RimMeasurement; source: 'driver' | 'vbios' }>();
  const conflicts: number[] = [];
  const rims: (readonly [Rim, 'driver' | 'vbios'])[] = driverRim ? [[driverRim, 'driver']] : [];
  rims.push([vbiosRim, 'vbios']);
  for (const [rim, source] of rims) {
    for (const m of rim.measurements) {
      if (!m.active) continue;
      if (golden.has(m.index)) conflicts.push(m.index);
      else golden.set(m.index, { m, source });
    }
  }
  const set: GoldenSet = { golden: [...golden].sort((a, b) => a[0] - b[0]).map(([index, g]) => ({ index, ...g })), conflicts };
  byVbios.set(vbiosRim, set);
  return set;
}

/**
 * Compare runtime measurements with both RIMs. `reportMeasurements` is keyed by the SPDM block Index
 * as it appears in the report (1-based); the value is the block's measurement value (the digest).
 */
export function compareMeasurementsDetailed(
  reportMeasurements: ReadonlyMap<number, Uint8Array>,
  /** Undefined for a driver-less device (an NVSwitch: only its VBIOS/firmware RIM, nv_switch_verifier/nvswitch_admin.py). */
  driverRim: Rim | undefined,
  vbiosRim: Rim,
  opts: CompareOptions = {},
): MeasurementComparison {
  const checks: Check[] = [];
  const { golden, conflicts } = goldenSet(driverRim, vbiosRim);
  if (driverRim)
    checks.push(
      conflicts.length === 0
        ? pass(
            'rim.measurements.index-conflict',
            `driver RIM ${driverRim.colloquialVersion} and VBIOS RIM ${vbiosRim.colloquialVersion} activate disjoint indices`,
          )
        : fail(
            'rim.measurements.index-conflict',
            `RIM indices ${conflicts.join(', ')} are active in both the driver and the VBIOS RIM; the golden set is ambiguous`,
          ),
    );

  const nv = opts.nvdec0Status;
  let skipNvdec0 = false;
  if (nv !== undefined) {
    if (nv === NVDEC0_DISABLED) skipNvdec0 = true;
    else if (nv !== NVDEC0_ENABLED) {
      checks.push(fail('rim.measurements.nvdec0', `NVDEC0 status 0x${nv.toString(16).padStart(2, '0')} is neither 0xAA (enabled) nor 0x55 (disabled)`));
    }
  }

  const mismatches: MeasurementMismatch[] = [];
  const skipped: number[] = [];
  let compared = 0;
  for (const { index, m, source } of golden) {
    if (skipNvdec0 && index === NVDEC0_RIM_INDEX) {
      skipped.push(index);
      continue;
    }
    compared++;
    const actual = reportMeasurements.get(index + 1);
    const sizeOk = actual !== undefined && (m.size === undefined || m.size === actual.length);
    if (sizeOk && m.alternatives.some((alt) => equalBytes(alt, actual))) continue;
    mismatches.push({
      index,
      source,
      name: m.name,
      expected: m.alternatives.map((a) => bytesToHex(a)),
      expectedSize: m.size,
      actual: actual === undefined ? undefined : bytesToHex(actual),
      actualSize: actual?.length,
    });
  }
  if (golden.length > reportMeasurements.size) {
    checks.push(fail('rim.measurements.count', `the RIMs have ${golden.length} active measurements but the report has only ${reportMeasurements.size} blocks`));
  }
  for (const mm of mismatches) {
    const what = mm.actual === undefined ? 'the report has no measurement block ' + String(mm.index + 1) : `runtime ${mm.actual} (${mm.actualSize} bytes)`;
    checks.push(
      fail(
        `rim.measurement.${mm.index}`,
        `${mm.source} RIM index ${mm.index} (${mm.name}, report block ${mm.index + 1}): ${what} matches none of the ${mm.expected.length} golden value(s) [${mm.expected.join(', ')}]${mm.expectedSize !== undefined ? ` of ${mm.expectedSize} bytes` : ''}`,
      ),
    );
  }
  const skipNote = skipped.length > 0 ? `; index ${NVDEC0_RIM_INDEX} skipped because NVDEC0 is disabled (0x55)` : '';
  checks.push(
    mismatches.length === 0
      ? pass('rim.measurements', `all ${compared} active golden measurements match the report${skipNote}`)
      : fail(
          'rim.measurements',
          `${mismatches.length} of ${compared} golden measurements do not match: RIM indices ${mismatches.map((x) => `${x.index} (${x.source})`).join(', ')}${skipNote}`,
        ),
  );
  return { compared, skipped, conflicts: [...conflicts], mismatches, checks };
}

/** The named checks only: rim.measurements.index-conflict, rim.measurements, rim.measurement.<i> per mismatch. */
export function compareMeasurements(reportMeasurements: ReadonlyMap<number, Uint8Array>, driverRim: Rim, vbiosRim: Rim, opts: CompareOptions = {}): Check[] {
  return compareMeasurementsDetailed(reportMeasurements, driverRim, vbiosRim, opts).checks;
}
