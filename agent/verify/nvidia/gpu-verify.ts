/**
 * Verify one NVIDIA GPU's attestation evidence (report + device chain + optional NVML state, RIMs, OCSP).
 * Pure: bytes + collateral + time in, named checks + claims out; no I/O (nvtrust local_gpu_verifier cc_admin.py attest(),
 * with the stricter choices of attestation-sdk src/gpu/verify.cpp). Fail closed: a check that cannot be evaluated
 * fails or warns with a reason, never passes silently. No policy: the architecture allow-list, the
 * requireNonce rule, the driver/VBIOS allow-lists and the NVML CC-state rules are appraisal
 * (agent/appraise/gpu-checks.ts), composed with this by agent/attest/verify-and-appraise.ts.
 */
import { createHash, verify as cryptoVerify } from 'node:crypto';
import { ParseError } from '../../errors.js';
import { bytesToHex, timingSafeEqual } from '../../util/bytes.js';
import { fail, failureLines, pass, warn, resultOf, type Check, type VerificationResult } from '../../formats/checks.js';
import { nvidiaDeviceRoot } from '../../roots/nvidia-device.js';
import { parseGpuReport, type GpuReport } from './gpu-report.js';
import { GPU_CHAIN_LENGTH, parsePemChain, verifyDeviceChain } from './device-chain.js';
import { NVSWITCH_UNSUPPORTED, nvswitchEvidenceReason } from './nvswitch-detect.js';
import { parseCertificateEager as parseCertificate, type Certificate } from '../../formats/x509/certificate.js';
import { leafFwid } from './fwid.js';
import { certRevocationStatus, parseOcspResponses, type OcspResponse } from './ocsp-check.js';
import { compareMeasurementsDetailed, driverRimId, vbiosRimId, type MeasurementMismatch, type Rim } from './rim/index.js';
import { verifyRimCached } from './rim-cache.js';
import { statusByteName, type GpuArch, type GpuClaims } from './gpu-claims.js';
import type { GpuCcFacts, GpuEvidenceRecord } from '../../formats/gpu-evidence-record.js';

export interface SimulatedRoots {
  /** DER of the simulated device root. */
  deviceRoot: Buffer;
  /** DER of the simulated RIM root. */
  rimRoot?: Buffer;
  simulated: true;
}

export type GpuSkip = 'rim' | 'revocation';

export interface GpuReportVerifyOptions {
  at: Date;
  expectedNonce?: Uint8Array;
  /** RIM XML: explicit driver/VBIOS files, or a collection by RIM id. */
  rims?: { driver?: string; vbios?: string; byId?: ReadonlyMap<string, string> };
  skip?: ReadonlySet<GpuSkip>;
  /** DER OCSP responses (collateral) for the device chain. */
  ocsp?: readonly Uint8Array[];
  /** Accept OCSP responses up to this many seconds past nextUpdate. Default 0. */
  ocspGraceSeconds?: number;
  /** Tolerate OCSP "revoked: certificateHold" as a warning (nvtrust --allow_hold_cert). Default false. */
  allowHoldCert?: boolean;
  /** Trust the simulation roots (only when simulation is explicitly enabled). */
  simulatedRoots?: SimulatedRoots;
}

/** The device kind a shared check names: `gpu.signature`, `switch.signature`, ... */
export type CheckPrefix = 'gpu' | 'switch';

/** What the signature check needs of a parsed report (GPU or NVSwitch: the same SPDM framing). */
export interface SignedReport {
  signedBytes: Uint8Array;
  signature: Uint8Array;
}

const DEVICE_ROOT_NAME = 'NVIDIA Device Identity CA';
const SIM_ROOT_NAME = 'SIMULATED NVIDIA Device Identity CA (trusted only because simulation is enabled)';

/** Architecture from the device chain: GH100 → Hopper, GB1xx/GB2xx → Blackwell (device chain CNs). */
export function archFromChain(certs: readonly Certificate[]): GpuArch | undefined {
  const names = certs.slice(0, 2).map((c) => c.cn);
  if (names.some((n) => /^GH1\d\d\b/.test(n))) return 'hopper';
  if (names.some((n) => /^GB\d\d\d\b/.test(n))) return 'blackwell';
  return undefined;
}

export function normaliseArch(arch: string | undefined): GpuArch | 'unknown' | undefined {
  if (arch === undefined) return undefined;
  const a = arch.toLowerCase();
  return a === 'hopper' || a === 'blackwell' ? a : 'unknown';
}

const parsedOcspCache = new WeakMap<readonly Uint8Array[], OcspResponse[]>();

function parseOcspOnce(list: readonly Uint8Array[]): OcspResponse[] {
  let hit = parsedOcspCache.get(list);
  if (!hit) {
    hit = parseOcspResponses(list);
    parsedOcspCache.set(list, hit);
  }
  return hit;
}

/** Summarise a RIM verification into one named check (sub-check details kept for the failures). */
export function rimCheck(
  name: string,
  kind: string,
  id: string,
  xml: string | undefined,
  expectedVersion: string | undefined,
  at: Date,
  extraRoots: Buffer[],
  caseInsensitive: boolean,
): { check: Check; rim?: Rim } {
  if (xml === undefined) {
    return { check: fail(name, `${kind} RIM ${id} not found: supply it as a file or in the RIM directory/cache, or skip RIM checks explicitly (--skip rim)`) };
  }
  const v = verifyRimCached(xml, at, extraRoots);
  if (v.parseError !== undefined) return { check: fail(name, `${kind} RIM for ${id} is not readable XML: ${v.parseError}`) };
  const warnings = v.checks.filter((c) => c.ok && c.warning);
  const problems = failureLines(v.checks);
  const rim = v.rim;
  if (rim && expectedVersion !== undefined) {
    const same = caseInsensitive ? rim.colloquialVersion.toUpperCase() === expectedVersion.toUpperCase() : rim.colloquialVersion === expectedVersion;
    if (!same) problems.push(`the RIM is for version ${rim.colloquialVersion}, the report says ${expectedVersion}`);
  }
  if (!rim) problems.push('the RIM could not be modelled');
  if (problems.length > 0) return { check: fail(name, `${kind} RIM ${id} rejected: ${problems.join('; ')}`) };
  const detail = `${kind} RIM ${id} (${rim!.colloquialVersion}): XML signature, signing chain and validity verified`;
  if (warnings.length > 0) return { check: warn(name, `${detail}; ${warnings.map((c) => `${c.name}: ${c.detail}`).join('; ')}`), rim };
  return { check: pass(name, detail), rim };
}

/** Verify one GPU. Never throws for bad evidence: malformed input becomes a failed named check. */
export function verifyGpuReport(evidence: GpuEvidenceRecord, options: GpuReportVerifyOptions): VerificationResult<GpuClaims> {
  const at = options.at;
  const skip = options.skip ?? new Set<GpuSkip>();
  const label = evidence.index === undefined ? 'GPU' : `GPU ${evidence.index}`;

  // The chain and the report are each parsed once here and shared by the NVSwitch refusal and the checks.
  const pemChain = readPemChain(evidence.certChainPem);
  const parsed = checkReportParses(evidence.report, label);
  const nvswitch = checkNotNvswitch(evidence, label, pemChain.certs, parsed.report);
  if (nvswitch) return resultOf<GpuClaims>([nvswitch], undefined, false);
  if (!parsed.report) return resultOf<GpuClaims>([parsed.check], undefined, false);
  const report = parsed.report;
  const o = report.opaque;
  const checks: Check[] = [parsed.check];

  const chain = checkDeviceChain(pemChain, options.simulatedRoots, at, label);
  checks.push(...chain.checks);
  const certs = chain.certs;
  const leaf = certs?.[0];
  checks.push(checkReportSignature(report, leaf));
  checks.push(checkFwid(o.fwid, leaf));
  const arch = certs ? archFromChain(certs) : undefined;
  checks.push(checkArch(certs, arch, evidence.arch));
  checks.push(checkNonce(report, options.expectedNonce));
  // Driver / VBIOS versions: report vs NVML (the allow-lists are appraisal).
  checks.push(versionCheck('gpu.driver-version', 'driver', o.driverVersion, evidence.nvml?.driverVersion, false));
  checks.push(versionCheck('gpu.vbios-version', 'VBIOS', o.vbiosVersion, evidence.nvml?.vbiosVersion, true));
  // The NVML CC state is not signed by the GPU: its rules are appraisal (gpu.cc.*).

  const ids = rimIds(report, arch);
  const golden = checkGoldenMeasurements(report, ids, options, skip.has('rim'), chain.simulated);
  checks.push(...golden.checks);
  const revocation = checkChainRevocation(chain.verified, options, skip.has('revocation'));
  checks.push(revocation.check);
  if (chain.simulated)
    checks.push(pass('gpu.simulated', 'SIMULATED: GPU evidence is signed by a software test root, trusted only because simulation is enabled'));

  return resultOf(
    checks,
    gpuClaims(report, { arch, certs, ids, golden, revocation: revocation.states, earliestNotAfter: chain.earliestNotAfter, cc: evidence.nvml?.cc }),
    chain.simulated,
  );
}

/** The PEM chain parsed, or why it could not be (an unreadable chain is gpu.chain's to report). */
export function readPemChain(pem: string): { certs?: Certificate[]; error?: string } {
  try {
    return { certs: parsePemChain(pem) };
  } catch (err) {
    if (!(err instanceof ParseError)) throw err;
    return { error: err.message };
  }
}

/**
 * NVSwitch (LS10) evidence is refused by name before any GPU check is reported (interim: no switch
 * verifier yet). A report the GPU parser read lends its opaque fields; otherwise the detector parses.
 */
function checkNotNvswitch(evidence: GpuEvidenceRecord, label: string, certs: Certificate[] | undefined, report: GpuReport | undefined): Check | undefined {
  const reason = nvswitchEvidenceReason(evidence.report, evidence.arch, certs, report?.opaque.fields);
  return reason === undefined ? undefined : fail('gpu.nvswitch', `${label}: ${NVSWITCH_UNSUPPORTED} (${reason})`);
}

/** Report structure: the SPDM GET_MEASUREMENTS request/response parses. */
function checkReportParses(bytes: Uint8Array, label: string): { check: Check; report?: GpuReport } {
  try {
    const report = parseGpuReport(bytes);
    return {
      check: pass(
        'gpu.report.parse',
        `${label}: SPDM 1.1 GET_MEASUREMENTS/MEASUREMENTS, ${report.response.numberOfBlocks} blocks, ${report.opaque.fields.length} opaque fields, ${report.bytes.length} bytes`,
      ),
      report,
    };
  } catch (err) {
    if (!(err instanceof ParseError)) throw err;
    return { check: fail('gpu.report.parse', `${label}: the attestation report is malformed: ${err.message}`) };
  }
}

export interface DeviceChainStep {
  checks: Check[];
  /** The supplied chain, leaf first; absent when unreadable. */
  certs?: Certificate[];
  verified: Certificate[];
  earliestNotAfter?: Date;
  /** The chain ends in the simulated root (trusted only because the caller passed it). */
  simulated: boolean;
}

/** Device chain: parse, anchor (pinned or explicitly enabled simulated root), links, validity. */
export function checkDeviceChain(
  pemChain: { certs?: Certificate[]; error?: string },
  simulatedRoots: SimulatedRoots | undefined,
  at: Date,
  label: string,
  prefix: CheckPrefix = 'gpu',
): DeviceChainStep {
  const { certs, error: chainError } = pemChain;
  let simulated = false;
  let anchor = parseCertificate(nvidiaDeviceRoot().der);
  let anchorName = DEVICE_ROOT_NAME;
  if (simulatedRoots?.simulated === true && certs) {
    const sim = parseCertificate(simulatedRoots.deviceRoot);
    if (certs[certs.length - 1]?.sha256 === sim.sha256) {
      anchor = sim;
      anchorName = SIM_ROOT_NAME;
      simulated = true;
    }
  }
  if (!certs) {
    return {
      checks: [
        fail(`${prefix}.chain`, `${label}: the device certificate chain is unreadable: ${chainError}`),
        fail(`${prefix}.chain.root`, 'not evaluated: no readable certificate chain'),
      ],
      verified: [],
      simulated,
    };
  }
  const cr = verifyDeviceChain(certs, anchor, at, anchorName, GPU_CHAIN_LENGTH, prefix);
  return { checks: [cr.chain, cr.root], certs, verified: cr.verified, ...(cr.earliestNotAfter ? { earliestNotAfter: cr.earliestNotAfter } : {}), simulated };
}

/** Report signature: ECDSA P-384 / SHA-384 over request ‖ response[:-96], raw r‖s (nvtrust attestation/__init__.py verify_signature). */
export function checkReportSignature(report: SignedReport, leaf: Certificate | undefined, prefix: CheckPrefix = 'gpu'): Check {
  const name = `${prefix}.signature`;
  if (!leaf) return fail(name, 'not evaluated: no attestation key (AK) certificate');
  if (leaf.publicKey.asymmetricKeyType !== 'ec' || leaf.publicKey.asymmetricKeyDetails?.namedCurve !== 'secp384r1') {
    return fail(name, `the AK certificate "${leaf.cn}" does not hold an EC P-384 key`);
  }
  let ok = false;
  try {
    ok = cryptoVerify('sha384', report.signedBytes, { key: leaf.publicKey, dsaEncoding: 'ieee-p1363' }, report.signature);
  } catch {
    ok = false;
  }
  return ok
    ? pass(name, `ECDSA P-384 signature over the ${report.signedBytes.length} signed bytes verifies with the AK "${leaf.cn}"`)
    : fail(name, `the report signature does not verify with the AK certificate "${leaf.cn}": the report was altered or belongs to another device`);
}

/** FWID: report opaque field 20 == leaf extension (only when the report carries one, cc_admin_utils.py verify_gpu_certificate_chain). */
export function checkFwid(reportFwid: Uint8Array | undefined, leaf: Certificate | undefined, prefix: CheckPrefix = 'gpu'): Check {
  const name = `${prefix}.fwid`;
  let leafFw: { fwid: Uint8Array; source: string } | undefined;
  let fwidError: string | undefined;
  if (leaf) {
    try {
      leafFw = leafFwid(leaf.extensions);
    } catch (err) {
      if (!(err instanceof ParseError)) throw err;
      fwidError = err.message;
    }
  }
  if (reportFwid === undefined) return pass(name, 'the report carries no FWID field (older firmware); nothing to compare');
  if (!leaf) return fail(name, 'not evaluated: no AK certificate');
  if (fwidError !== undefined) return fail(name, `the AK certificate's FWID extension is malformed: ${fwidError}`);
  if (!leafFw) return fail(name, `the report has FWID ${bytesToHex(reportFwid)} but the AK certificate has no FWID extension`);
  if (leafFw.fwid.length !== reportFwid.length || !timingSafeEqual(leafFw.fwid, reportFwid)) {
    return fail(
      name,
      `report FWID ${bytesToHex(reportFwid)} differs from the AK certificate's ${bytesToHex(leafFw.fwid)} (${leafFw.source}): the report is not from the firmware the AK was issued to`,
    );
  }
  return pass(name, `report FWID equals the AK certificate's (${leafFw.source})`);
}

/** Architecture: the chain names one, and the evidence's claim (if any) agrees (the allowed list is appraisal). */
function checkArch(certs: readonly Certificate[] | undefined, chainArch: GpuArch | undefined, evidenceArch: string | undefined): Check {
  const claimedArch = normaliseArch(evidenceArch);
  if (!chainArch)
    return fail(
      'gpu.arch',
      `cannot tell the architecture from the chain (${
        certs
          ?.slice(0, 2)
          .map((c) => c.cn)
          .join(', ') ?? 'no chain'
      }); expected GH100 (Hopper) or GB1xx (Blackwell)`,
    );
  if (claimedArch !== undefined && claimedArch !== chainArch) return fail('gpu.arch', `evidence says ${evidenceArch} but the device chain is ${chainArch}`);
  return pass('gpu.arch', `${chainArch} (from the device chain${claimedArch ? ', matches the evidence' : ''})`);
}

/** Nonce: the requester nonce at report offset 4 (cc_admin_utils.py verify_attestation_report: not the responder nonce). */
export function checkNonce(report: { request: { nonce: Uint8Array } }, expectedNonce: Uint8Array | undefined, prefix: CheckPrefix = 'gpu'): Check {
  const name = `${prefix}.nonce`;
  if (expectedNonce === undefined) {
    return warn(name, 'no expected nonce given: freshness of the report was not checked'); // the policy may make this a failure (requireNonce)
  }
  if (expectedNonce.length !== report.request.nonce.length || !timingSafeEqual(expectedNonce, report.request.nonce)) {
    return fail(name, `report nonce ${bytesToHex(report.request.nonce)} differs from the expected ${bytesToHex(expectedNonce)}: stale or replayed report`);
  }
  return pass(name, 'the report nonce equals the expected nonce');
}

interface RimIds {
  driverId?: string;
  vbiosId?: string;
  /** Why an id could not be derived (a malformed field), when one could not. */
  idError?: string;
}

/** The driver and VBIOS RIM ids the report's fields name. */
function rimIds(report: GpuReport, arch: GpuArch | undefined): RimIds {
  const o = report.opaque;
  const ids: RimIds = {};
  try {
    if (o.driverVersion !== undefined && arch) ids.driverId = driverRimId(o.driverVersion, arch, o.chipInfo);
    if (o.project !== undefined && o.projectSku !== undefined && o.chipSku !== undefined && o.vbiosVersion !== undefined) {
      ids.vbiosId = vbiosRimId({ project: o.project, projectSku: o.projectSku, chipSku: o.chipSku, vbiosVersion: o.vbiosVersion });
    }
  } catch (err) {
    if (!(err instanceof ParseError)) throw err;
    ids.idError = err.message;
  }
  return ids;
}

/**
 * The claims a GPU and an NVSwitch report give the same way: what the CPU report binds, and the
 * measurement and revocation outcome (nvtrust sets secboot/dbgstat only on measres success).
 */
export function reportClaims(
  report: { bytes: Uint8Array; request: { nonce: Uint8Array } },
  golden: Pick<GoldenStep, 'measres' | 'mismatches'>,
  revocation: GpuClaims['revocation'],
): Pick<GpuClaims, 'nonce' | 'reportSha384' | 'measres' | 'secboot' | 'dbgstat' | 'mismatchedMeasurements' | 'revocation'> {
  const measres = golden.measres;
  return {
    nonce: bytesToHex(report.request.nonce),
    reportSha384: createHash('sha384').update(report.bytes).digest('hex'),
    measres,
    secboot: measres === 'success' ? true : null,
    dbgstat: measres === 'success' ? 'disabled' : null,
    mismatchedMeasurements: golden.mismatches,
    revocation,
  };
}

export interface GoldenStep {
  checks: Check[];
  measres: GpuClaims['measres'];
  mismatches: MeasurementMismatch[];
  oemid?: string;
}

/** RIMs and golden measurements: both RIMs verify, then the report's measurements match them. */
function checkGoldenMeasurements(report: GpuReport, ids: RimIds, options: GpuReportVerifyOptions, skipped: boolean, simulated: boolean): GoldenStep {
  if (skipped) {
    const why = 'skipped by request (--skip rim): golden measurements NOT compared';
    return { checks: [warn('gpu.rim.driver', why), warn('gpu.rim.vbios', why), warn('gpu.measurements', why)], measres: 'not-checked', mismatches: [] };
  }
  const o = report.opaque;
  const { driverId, vbiosId, idError } = ids;
  const extraRoots = simulated && options.simulatedRoots?.rimRoot ? [options.simulatedRoots.rimRoot] : [];
  const d =
    driverId === undefined
      ? { check: fail('gpu.rim.driver', `cannot name the driver RIM: ${idError ?? 'the report has no driver version or the architecture is unknown'}`) }
      : rimCheck(
          'gpu.rim.driver',
          'driver',
          driverId,
          options.rims?.driver ?? options.rims?.byId?.get(driverId),
          o.driverVersion,
          options.at,
          extraRoots,
          false,
        );
  const v =
    vbiosId === undefined
      ? { check: fail('gpu.rim.vbios', `cannot name the VBIOS RIM: ${idError ?? 'the report lacks PROJECT / PROJECT_SKU / CHIP_SKU / VBIOS_VERSION'}`) }
      : rimCheck('gpu.rim.vbios', 'VBIOS', vbiosId, options.rims?.vbios ?? options.rims?.byId?.get(vbiosId), o.vbiosVersion, options.at, extraRoots, true);
  const oemid = d.rim?.manufacturerId;
  const step = (measurements: Check, measres: GpuClaims['measres'], mismatches: MeasurementMismatch[]): GoldenStep => ({
    checks: [d.check, v.check, measurements],
    measres,
    mismatches,
    ...(oemid !== undefined ? { oemid } : {}),
  });
  if (!(d.check.ok && v.check.ok && d.rim && v.rim)) {
    return step(
      fail('gpu.measurements', 'not compared: golden values need both the driver RIM and the VBIOS RIM to verify (see gpu.rim.driver / gpu.rim.vbios)'),
      'fail',
      [],
    );
  }
  const cmp = compareMeasurementsDetailed(report.measurements, d.rim, v.rim, o.nvdec0Status === undefined ? {} : { nvdec0Status: o.nvdec0Status });
  const bad = cmp.checks.filter((c) => !c.ok);
  const summary = cmp.checks.find((c) => c.name === 'rim.measurements');
  return bad.length === 0
    ? step(pass('gpu.measurements', summary?.detail ?? `all ${cmp.compared} golden measurements match`), 'success', cmp.mismatches)
    : step(fail('gpu.measurements', bad.map((c) => c.detail).join('; ')), 'fail', cmp.mismatches);
}

/** Revocation of the device chain's intermediates (positions 1 .. n-2, cc_admin_utils.py ocsp_certificate_chain_validation). */
export function checkChainRevocation(
  verifiedChain: readonly Certificate[],
  options: GpuReportVerifyOptions,
  skipped: boolean,
  prefix: CheckPrefix = 'gpu',
): { check: Check; states: GpuClaims['revocation'] } {
  const states: GpuClaims['revocation'] = [];
  const covered = verifiedChain.length >= 3 ? verifiedChain.slice(1, -1).map((c, i) => ({ cert: c, issuer: verifiedChain[i + 2]!, index: i + 1 })) : [];
  const notChecked = () => covered.forEach((c) => states.push({ index: c.index, subject: c.cert.cn, state: 'not-checked' }));
  if (skipped) {
    notChecked();
    return { check: warn(`${prefix}.revocation`, 'revocation not checked (skipped by request, --skip revocation)'), states };
  }
  if (!options.ocsp || options.ocsp.length === 0) {
    notChecked();
    return {
      check: warn(
        `${prefix}.revocation`,
        'revocation not checked: no OCSP responses supplied for the device chain (fetch them with the collateral cache, or pass --ocsp)',
      ),
      states,
    };
  }
  const check = revocationCheck(
    options.ocsp,
    covered,
    options.at,
    { graceSeconds: options.ocspGraceSeconds ?? 0, allowHold: options.allowHoldCert === true },
    states,
    prefix,
  );
  return { check, states };
}

/** The claims: what the report, the chain and the steps established (optional fields only when known). */
function gpuClaims(
  report: GpuReport,
  facts: {
    arch: GpuArch | undefined;
    certs: Certificate[] | undefined;
    ids: RimIds;
    golden: GoldenStep;
    revocation: GpuClaims['revocation'];
    earliestNotAfter: Date | undefined;
    cc: GpuCcFacts | undefined;
  },
): GpuClaims {
  const o = report.opaque;
  const { arch, certs, ids, golden, earliestNotAfter, cc } = facts;
  const leaf = certs?.[0];
  const claims: GpuClaims = reportClaims(report, golden, facts.revocation);
  if (arch) claims.arch = arch;
  if (certs?.[1]) claims.hwmodel = certs[1].cn;
  if (leaf) claims.ueid = leaf.serial.toString(10);
  if (o.driverVersion !== undefined) claims.driverVersion = o.driverVersion;
  if (o.vbiosVersion !== undefined) claims.vbiosVersion = o.vbiosVersion;
  if (o.fwid) claims.fwid = bytesToHex(o.fwid);
  if (o.project !== undefined) claims.project = o.project;
  if (o.projectSku !== undefined) claims.projectSku = o.projectSku;
  if (o.chipSku !== undefined) claims.chipSku = o.chipSku;
  if (o.chipInfo !== undefined) claims.chipInfo = o.chipInfo;
  if (o.boardId !== undefined) claims.boardId = o.boardId;
  if (o.nvdec0Status !== undefined) claims.nvdec0 = statusByteName(o.nvdec0Status)!;
  if (o.protectedPcieStatus !== undefined) claims.protectedPcie = statusByteName(o.protectedPcieStatus)!;
  if (o.opaqueDataVersion !== undefined) claims.opaqueDataVersion = o.opaqueDataVersion;
  if (o.featureFlag !== undefined) claims.featureFlag = o.featureFlag;
  if (o.switchPdis !== undefined) claims.switchPdis = o.switchPdis;
  if (ids.driverId) claims.driverRimId = ids.driverId;
  if (ids.vbiosId) claims.vbiosRimId = ids.vbiosId;
  if (golden.oemid !== undefined) claims.oemid = golden.oemid;
  if (earliestNotAfter) claims.certChainExpiration = earliestNotAfter.toISOString();
  if (cc) claims.cc = { ccEnabled: cc.ccEnabled, devToolsMode: cc.devToolsMode, environment: cc.environment };
  return claims;
}

/** A module-level function, not a closure per call (the build keeps function names: each closure costs a defineProperty). */
const normaliseVersion = (s: string, caseInsensitive: boolean) => (caseInsensitive ? s.toUpperCase() : s);

function versionCheck(name: string, what: string, reported: string | undefined, nvml: string | undefined, caseInsensitive: boolean): Check {
  if (reported === undefined) return fail(name, `the report has no ${what} version field`);
  if (nvml !== undefined && normaliseVersion(nvml.trim(), caseInsensitive) !== normaliseVersion(reported, caseInsensitive)) {
    return fail(name, `the report says ${what} ${reported} but NVML says ${nvml}: the report is not from this GPU/driver`);
  }
  return pass(name, nvml !== undefined ? `${what} ${reported}, as NVML reports` : `${what} ${reported} (no NVML value given to compare)`);
}

function revocationCheck(
  ocsp: readonly Uint8Array[],
  covered: { cert: Certificate; issuer: Certificate; index: number }[],
  at: Date,
  tolerance: { graceSeconds: number; allowHold: boolean },
  out: GpuClaims['revocation'],
  prefix: CheckPrefix,
): Check {
  const name = `${prefix}.revocation`;
  let responses: OcspResponse[];
  try {
    responses = parseOcspOnce(ocsp);
  } catch (err) {
    if (!(err instanceof ParseError)) throw err;
    covered.forEach((c) => out.push({ index: c.index, subject: c.cert.cn, state: 'invalid' }));
    return fail(name, `malformed OCSP collateral: ${err.message}`);
  }
  if (covered.length === 0) return fail(name, 'not evaluated: the device chain is too short to have intermediates');
  const failures: string[] = [];
  const warnings: string[] = [];
  const goods: string[] = [];
  for (const c of covered) {
    const r = certRevocationStatus(c.cert, c.issuer, responses, at, tolerance.graceSeconds);
    out.push({ index: c.index, subject: c.cert.cn, state: r.state });
    const line = `certificate ${c.index} (${c.cert.cn}): ${r.detail}`;
    if (r.state === 'good') goods.push(line);
    else if (r.state === 'missing') warnings.push(line);
    else if (r.state === 'hold' && tolerance.allowHold) warnings.push(`${line}; tolerated by policy allowHoldCert`);
    else failures.push(line);
  }
  if (failures.length > 0) return fail(name, failures.join('; '));
  if (warnings.length > 0) return warn(name, `revocation not fully checked: ${warnings.join('; ')}`);
  return pass(name, goods.join('; '));
}
