/**
 * Verify one NVSwitch (LS10) attestation evidence, as the protected-PCIe (PPCIe) HGX systems produce next
 * to GPU evidence: the SPDM report (same framing as a GPU's), its signature with the attestation key,
 * the device chain (5 certificates "LS_10 A01 FSP FMC LF" → "LS_10 A01 FSP BROM" → "NVIDIA LS_10
 * Provisioner ICA 1" → "NVIDIA GH100 Identity" → the pinned NVIDIA Device Identity CA, test/vectors/nvidia/
 * attestation-sdk/switch-ls10), the FWID when the report has one, the nonce, the switch's VBIOS RIM
 * (driver-less: no driver RIM) with every golden measurement, and revocation. The checks follow
 * NVIDIA/nvtrust guest_tools/attestation_sdk/src/nv_attestation_sdk/verifiers/nv_switch_verifier/
 * nvswitch_admin.py attest() and NVIDIA/attestation-sdk nv-attestation-sdk-cpp/src/switch/verify.cpp,
 * reusing the GPU verifier's named steps under `switch.*` names. Pure; never throws for bad evidence.
 * The topology across GPUs and switches is verify/nvidia/ppcie-topology.ts.
 */
import { ParseError } from '../../errors.js';
import { bytesToHex } from '../../util/bytes.js';
import { fail, pass, warn, resultOf, type Check, type VerificationResult } from '../../formats/checks.js';
import type { GpuEvidenceRecord } from '../../formats/gpu-evidence-record.js';
import type { Certificate } from '../../formats/x509/certificate.js';
import { parseSwitchReport, type SwitchReport } from './switch-report.js';
import {
  checkChainRevocation,
  checkDeviceChain,
  checkFwid,
  checkNonce,
  checkReportSignature,
  readPemChain,
  reportClaims,
  rimCheck,
  type GpuReportVerifyOptions,
} from './gpu-verify.js';
import { compareMeasurementsDetailed, type MeasurementMismatch } from './rim/index.js';
import type { GpuClaims } from './gpu-claims.js';

/** The switch verifier takes the GPU verifier's options; `rims.switchBios` names an explicit switch VBIOS RIM. */
export interface SwitchReportVerifyOptions extends Omit<GpuReportVerifyOptions, 'rims'> {
  rims?: { switchBios?: string; byId?: ReadonlyMap<string, string> };
}

/** The claims a switch report gives the way a GPU report does (gpu-claims.ts), and the switch's own. */
export interface SwitchClaims
  extends Pick<
    GpuClaims,
    | 'hwmodel'
    | 'ueid'
    | 'nonce'
    | 'reportSha384'
    | 'vbiosVersion'
    | 'vbiosRimId'
    | 'fwid'
    | 'oemid'
    | 'measres'
    | 'secboot'
    | 'dbgstat'
    | 'mismatchedMeasurements'
    | 'certChainExpiration'
    | 'revocation'
  > {
  arch?: 'ls10';
  /** The switch's own PDI (opaque DEVICE_PDI), hex in report byte order. */
  switchPdi?: string;
  /** The GPU PDIs the switch reports (opaque SWITCH_GPU_PDIS), hex in report byte order. */
  gpuPdis?: string[];
  gpuPorts?: number[];
  disabledPorts?: number[];
  positionId?: number;
  /** Raw SWITCH_LOCK_STATUS (the public sample from a PPCIe system reports 1). */
  lockStatus?: number;
}

/** LS10 switch VBIOS RIM id parts: fixed, as nvtrust nv_switch_verifier/config.py BaseSettings and go-nvtrust use. */
export const LS10_PROJECT = '5612';
export const LS10_PROJECT_SKU = '0002';
export const LS10_CHIP_SKU = '890';

/** `NV_SWITCH_BIOS_5612_0002_890_<version without dots>` (nvswitch_admin_utils.py get_vbios_rim_file_id). */
export function switchBiosRimId(vbiosVersion: string): string {
  if (!/^[0-9A-Fa-f]{2}(\.[0-9A-Fa-f]{2}){4}$/.test(vbiosVersion))
    throw new ParseError(`switch VBIOS version "${vbiosVersion.slice(0, 32)}" is not five hex pairs`);
  return `NV_SWITCH_BIOS_${LS10_PROJECT}_${LS10_PROJECT_SKU}_${LS10_CHIP_SKU}_${vbiosVersion.replace(/\./g, '').toUpperCase()}`;
}

/** The device chain is an LS10 chain: its leaf or BROM certificate is named "LS_10 ..." (or "LS10 ..."). */
export function isLs10Chain(certs: readonly Certificate[]): boolean {
  return certs.slice(0, 2).some((c) => /^LS_?10\b/.test(c.cn));
}

/** Verify one NVSwitch. Malformed input becomes a failed named check. */
export function verifySwitchReport(evidence: GpuEvidenceRecord, options: SwitchReportVerifyOptions): VerificationResult<SwitchClaims> {
  const at = options.at;
  const skip = options.skip ?? new Set();
  const label = evidence.index === undefined ? 'switch' : `switch ${evidence.index}`;

  let report: SwitchReport;
  try {
    report = parseSwitchReport(evidence.report);
  } catch (err) {
    if (!(err instanceof ParseError)) throw err;
    return resultOf<SwitchClaims>([fail('switch.report.parse', `${label}: the switch attestation report is malformed: ${err.message}`)], undefined, false);
  }
  const o = report.opaque;
  const checks: Check[] = [
    pass(
      'switch.report.parse',
      `${label}: SPDM 1.1 GET_MEASUREMENTS/MEASUREMENTS, ${report.response.numberOfBlocks} blocks, ${o.fields.length} opaque fields, ${report.bytes.length} bytes`,
    ),
  ];
  const chain = checkDeviceChain(readPemChain(evidence.certChainPem), options.simulatedRoots, at, label, 'switch');
  checks.push(...chain.checks);
  const certs = chain.certs;
  const leaf = certs?.[0];
  checks.push(checkReportSignature(report, leaf, 'switch'));
  checks.push(checkFwid(o.fwid, leaf, 'switch'));
  checks.push(checkSwitchArch(certs, evidence.arch));
  checks.push(checkNonce(report, options.expectedNonce, 'switch'));
  checks.push(checkOpaqueFields(report));

  let rimId: string | undefined;
  let rimIdError: string | undefined;
  try {
    if (o.vbiosVersion !== undefined) rimId = switchBiosRimId(o.vbiosVersion);
  } catch (err) {
    if (!(err instanceof ParseError)) throw err;
    rimIdError = err.message;
  }
  const golden = checkSwitchGolden(report, rimId, rimIdError, options, skip.has('rim'), chain.simulated);
  checks.push(...golden.checks);
  const revocation = checkChainRevocation(chain.verified, options, skip.has('revocation'), 'switch');
  checks.push(revocation.check);
  if (chain.simulated)
    checks.push(pass('switch.simulated', 'SIMULATED: NVSwitch evidence is signed by a software test root, trusted only because simulation is enabled'));

  const claims: SwitchClaims = reportClaims(report, golden, revocation.states);
  if (certs && isLs10Chain(certs)) claims.arch = 'ls10';
  if (certs?.[1]) claims.hwmodel = certs[1].cn;
  if (leaf) claims.ueid = leaf.serial.toString(10);
  if (o.vbiosVersion !== undefined) claims.vbiosVersion = o.vbiosVersion;
  if (rimId) claims.vbiosRimId = rimId;
  if (o.devicePdi !== undefined) claims.switchPdi = o.devicePdi;
  if (o.gpuPdis) claims.gpuPdis = o.gpuPdis;
  if (o.gpuPorts) claims.gpuPorts = o.gpuPorts;
  if (o.disabledPorts) claims.disabledPorts = o.disabledPorts;
  if (o.positionId !== undefined) claims.positionId = o.positionId;
  if (o.lockStatus !== undefined) claims.lockStatus = o.lockStatus;
  if (o.fwid) claims.fwid = bytesToHex(o.fwid);
  if (golden.oemid !== undefined) claims.oemid = golden.oemid;
  if (chain.earliestNotAfter) claims.certChainExpiration = chain.earliestNotAfter.toISOString();
  return resultOf(checks, claims, chain.simulated);
}

/** The chain is an LS10 switch chain, and the evidence's claim (if any) says so too (a GPU key cannot pass as a switch). */
function checkSwitchArch(certs: readonly Certificate[] | undefined, evidenceArch: string | undefined): Check {
  const names =
    certs
      ?.slice(0, 2)
      .map((c) => c.cn)
      .join(', ') ?? 'no chain';
  if (!certs || !isLs10Chain(certs)) return fail('switch.arch', `the device chain (${names}) is not an LS10 NVSwitch chain ("LS_10 A01 FSP ...")`);
  if (evidenceArch !== undefined && !/^(ls10|ls_10|nvswitch)$/i.test(evidenceArch))
    return fail('switch.arch', `evidence says ${evidenceArch} but the device chain is an LS10 NVSwitch chain`);
  return pass('switch.arch', `LS10 NVSwitch (from the device chain${evidenceArch ? ', matches the evidence' : ''})`);
}

/** The fields a PPCIe topology needs are present: the switch's own PDI and its GPU PDIs. */
function checkOpaqueFields(report: SwitchReport): Check {
  const o = report.opaque;
  const missing: string[] = [];
  if (o.vbiosVersion === undefined) missing.push('VBIOS_VERSION (6)');
  if (o.devicePdi === undefined) missing.push('DEVICE_PDI (22)');
  if (o.gpuPdis === undefined) missing.push('SWITCH_GPU_PDIS (26)');
  if (missing.length > 0) return fail('switch.opaque', `the report lacks the switch field(s) ${missing.join(', ')}`);
  return pass(
    'switch.opaque',
    `switch PDI ${o.devicePdi}, ${new Set(o.gpuPdis).size} distinct GPU PDI(s), position ${o.positionId ?? '?'}, lock status ${o.lockStatus ?? '?'}`,
  );
}

interface SwitchGolden {
  checks: Check[];
  measres: SwitchClaims['measres'];
  mismatches: MeasurementMismatch[];
  oemid?: string;
}

/** The switch VBIOS RIM verifies and every golden measurement it activates matches the report. */
function checkSwitchGolden(
  report: SwitchReport,
  rimId: string | undefined,
  rimIdError: string | undefined,
  options: SwitchReportVerifyOptions,
  skipped: boolean,
  simulated: boolean,
): SwitchGolden {
  if (skipped) {
    const why = 'skipped by request (--skip rim): golden measurements NOT compared';
    return { checks: [warn('switch.rim.vbios', why), warn('switch.measurements', why)], measres: 'not-checked', mismatches: [] };
  }
  const extraRoots = simulated && options.simulatedRoots?.rimRoot ? [options.simulatedRoots.rimRoot] : [];
  const v =
    rimId === undefined
      ? { check: fail('switch.rim.vbios', `cannot name the switch VBIOS RIM: ${rimIdError ?? 'the report has no VBIOS_VERSION field'}`) }
      : rimCheck(
          'switch.rim.vbios',
          'switch VBIOS',
          rimId,
          options.rims?.switchBios ?? options.rims?.byId?.get(rimId),
          report.opaque.vbiosVersion,
          options.at,
          extraRoots,
          true,
        );
  const oemid = v.rim?.manufacturerId;
  const base = oemid !== undefined ? { oemid } : {};
  if (!v.check.ok || !v.rim) {
    return {
      checks: [v.check, fail('switch.measurements', 'not compared: golden values need the switch VBIOS RIM to verify (see switch.rim.vbios)')],
      measres: 'fail',
      mismatches: [],
      ...base,
    };
  }
  const cmp = compareMeasurementsDetailed(report.measurements, undefined, v.rim);
  const bad = cmp.checks.filter((c) => !c.ok);
  const summary = cmp.checks.find((c) => c.name === 'rim.measurements');
  return bad.length === 0
    ? {
        checks: [v.check, pass('switch.measurements', summary?.detail ?? `all ${cmp.compared} golden measurements match`)],
        measres: 'success',
        mismatches: [],
        ...base,
      }
    : { checks: [v.check, fail('switch.measurements', bad.map((c) => c.detail).join('; '))], measres: 'fail', mismatches: cmp.mismatches, ...base };
}
