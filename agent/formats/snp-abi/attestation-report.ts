/**
 * SEV-SNP ATTESTATION_REPORT (1184 bytes, little-endian) parser and its exact inverse.
 * Offsets: AMD SEV-SNP Firmware ABI #56860 rev 1.58, table "ATTESTATION_REPORT Structure", as encoded by
 * go-sev-guest abi/abi.go ReportToProto/ReportToAbiBytes and virtee/sev snp.rs). Pure: bytes in, data out.
 */
import { CvmError, ParseError } from '../../errors.js';
import { isAllZero, readUintLE } from '../../util/bytes.js';
import { decodeTcb, productFromCpuid, tcbLayoutForFamily } from './tcb-version.js';
import type { SigningKeyName, SnpPlatformInfo, SnpPolicy, SnpReport, SnpReportInit, SnpSignerInfo, TcbLayout, TcbLayoutSource } from './abi-types.js';

/** Report size (MSG_REPORT_RSP report_size = 0x4A0; Linux sev-guest.c struct snp_msg_report_resp_hdr). */
export const SNP_REPORT_SIZE = 0x4a0;
/** Signature covers bytes [0, 0x2A0) (go-sev-guest abi/abi.go SignedComponent). */
export const SNP_SIGNED_END = 0x2a0;
/** go-sev-guest MinSupportedReportVersion / MaxSupportedReportVersion (go-sev-guest abi/abi.go). */
export const SNP_MIN_REPORT_VERSION = 2;
export const SNP_MAX_REPORT_VERSION = 5;
/** SIGNATURE_ALGO 1 = ECDSA P-384 with SHA-384 (SNP ABI #56860 rev 1.58, go-sev-guest SignEcdsaP384Sha384). */
export const SNP_SIG_ALGO_ECDSA_P384_SHA384 = 1;

/** Field offsets and sizes, SNP ABI #56860 rev 1.58 table "ATTESTATION_REPORT Structure". */
export const OFF = {
  version: 0x000,
  guestSvn: 0x004,
  policy: 0x008,
  familyId: 0x010, // 16
  imageId: 0x020, // 16
  vmpl: 0x030,
  signatureAlgo: 0x034,
  currentTcb: 0x038,
  platformInfo: 0x040,
  signerInfo: 0x048,
  reportData: 0x050, // 64
  measurement: 0x090, // 48
  hostData: 0x0c0, // 32
  idKeyDigest: 0x0e0, // 48
  authorKeyDigest: 0x110, // 48
  reportId: 0x140, // 32
  reportIdMa: 0x160, // 32
  reportedTcb: 0x180,
  cpuidFamily: 0x188, // v3+
  cpuidModel: 0x189,
  cpuidStepping: 0x18a,
  chipId: 0x1a0, // 64
  committedTcb: 0x1e0,
  currentBuild: 0x1e8,
  currentMinor: 0x1e9,
  currentMajor: 0x1ea,
  committedBuild: 0x1ec,
  committedMinor: 0x1ed,
  committedMajor: 0x1ee,
  launchTcb: 0x1f0,
  launchMitVector: 0x1f8, // v5+
  currentMitVector: 0x200, // v5+
  signatureR: 0x2a0, // 72, little-endian
  signatureS: 0x2e8, // 72, little-endian
} as const;

const BYTES = {
  familyId: [OFF.familyId, 16],
  imageId: [OFF.imageId, 16],
  reportData: [OFF.reportData, 64],
  measurement: [OFF.measurement, 48],
  hostData: [OFF.hostData, 32],
  idKeyDigest: [OFF.idKeyDigest, 48],
  authorKeyDigest: [OFF.authorKeyDigest, 48],
  reportId: [OFF.reportId, 32],
  reportIdMa: [OFF.reportIdMa, 32],
  chipId: [OFF.chipId, 64],
} as const;

const SIG_FIELD = 72;
/** P-384 r and s are 48 bytes; the upper 24 bytes of each 72-byte field are zero. */
const P384_SCALAR = 48;

/** Reserved byte ranges of the layout for a report version: [name, offset, length]. */
export function reservedRanges(version: number): Array<[string, number, number]> {
  const r: Array<[string, number, number]> = [['reserved@0x04c', 0x04c, 4]];
  // v2: 0x188..0x19F reserved; v3 put CPUID_FAM/MOD/STEP at 0x188..0x18A (go-sev-guest abi/abi.go ReportToProto).
  r.push(version >= 3 ? ['reserved@0x18b', 0x18b, 0x15] : ['reserved@0x188', 0x188, 0x18]);
  r.push(['reserved@0x1eb', 0x1eb, 1], ['reserved@0x1ef', 0x1ef, 1]);
  // LAUNCH/CURRENT_MIT_VECTOR exist from v5 (SNP ABI 1.58); reserved before.
  if (version < 5) r.push(['reserved@0x1f8', 0x1f8, 16]);
  r.push(['reserved@0x208', 0x208, 0x98], ['reserved@0x330', 0x330, 0x170]);
  return r;
}

export function decodePolicy(raw: bigint): SnpPolicy {
  const bit = (n: number) => ((raw >> BigInt(n)) & 1n) === 1n;
  return {
    raw,
    abiMinor: Number(raw & 0xffn),
    abiMajor: Number((raw >> 8n) & 0xffn),
    smt: bit(16),
    reservedBit17: bit(17),
    migrateMa: bit(18),
    debug: bit(19),
    singleSocket: bit(20),
    cxlAllow: bit(21),
    memAes256Xts: bit(22),
    raplDis: bit(23),
    ciphertextHiding: bit(24),
    pageSwapDisable: bit(25),
    mbzBits: raw & ~((1n << 26n) - 1n),
  };
}

/** PLATFORM_INFO bits SNP ABI rev 1.58 defines: 0..5 and 7 (TIO_EN); bit 6 and 63:8 are reserved. */
export const PLATFORM_INFO_DEFINED_MASK = 0xbfn;

export function decodePlatformInfo(raw: bigint): SnpPlatformInfo {
  const bit = (n: number) => ((raw >> BigInt(n)) & 1n) === 1n;
  return {
    raw,
    smtEnabled: bit(0),
    tsmeEnabled: bit(1),
    eccEnabled: bit(2),
    raplDisabled: bit(3),
    ciphertextHidingEnabled: bit(4),
    aliasCheckComplete: bit(5),
    tioEnabled: bit(7),
    undefinedBits: raw & ~PLATFORM_INFO_DEFINED_MASK,
  };
}

export function decodeSignerInfo(raw: number): SnpSignerInfo {
  const signingKey = (raw >>> 2) & 0x7;
  const signingKeyName: SigningKeyName = signingKey === 0 ? 'vcek' : signingKey === 1 ? 'vlek' : signingKey === 7 ? 'none' : 'reserved';
  return {
    raw,
    authorKeyEn: (raw & 1) === 1,
    maskChipKey: (raw & 2) === 2,
    signingKey,
    signingKeyName,
    mbzBits: (raw & ~0x1f) >>> 0,
  };
}

/**
 * TCB layout for the report: v3+ from CPUID (Turin and later: FMC-first). v2 carries no CPUID:
 * virtee/sev chip_id_is_turin_like treats CHIP_ID[8..64) all zero as Turin (8-byte chip IDs); we
 * additionally require CHIP_ID[0..8) non-zero, since a masked (all-zero) CHIP_ID says nothing.
 */
function chooseLayout(version: number, family: number, chipId: Buffer): [TcbLayout, TcbLayoutSource] {
  if (version >= 3) return [tcbLayoutForFamily(family), 'cpuid'];
  if (!isAllZero(chipId.subarray(0, 8)) && isAllZero(chipId.subarray(8))) return ['turin', 'chip-id-heuristic'];
  return ['legacy', 'default'];
}

/** Parse a 1184-byte report of version 2..5. Anything else is a ParseError. */
export function parseSnpReport(bytes: Uint8Array): SnpReport {
  if (!(bytes instanceof Uint8Array)) throw new ParseError('SNP report: expected bytes');
  if (bytes.length !== SNP_REPORT_SIZE) {
    throw new ParseError(`SNP report: expected ${SNP_REPORT_SIZE} bytes, got ${bytes.length}`);
  }
  const b = Buffer.from(bytes); // private copy: the result must not alias caller memory
  const version = b.readUInt32LE(OFF.version);
  if (version < SNP_MIN_REPORT_VERSION || version > SNP_MAX_REPORT_VERSION) {
    throw new ParseError(`SNP report: unsupported version ${version} (supported ${SNP_MIN_REPORT_VERSION}..${SNP_MAX_REPORT_VERSION})`, OFF.version);
  }
  const u64 = (off: number) => readUintLE(b, off, 8);
  const slice = ([off, len]: readonly [number, number]) => Buffer.from(b.subarray(off, off + len));

  const chipId = slice(BYTES.chipId);
  const family = b[OFF.cpuidFamily]!;
  const [layout, layoutSource] = chooseLayout(version, family, chipId);
  const policy = decodePolicy(u64(OFF.policy));
  const platformInfo = decodePlatformInfo(u64(OFF.platformInfo));
  const signerInfo = decodeSignerInfo(b.readUInt32LE(OFF.signerInfo));
  const signatureAlgo = b.readUInt32LE(OFF.signatureAlgo);
  const signature = {
    r: Buffer.from(b.subarray(OFF.signatureR, OFF.signatureR + SIG_FIELD)),
    s: Buffer.from(b.subarray(OFF.signatureS, OFF.signatureS + SIG_FIELD)),
  };

  const reserved: Record<string, Buffer> = {};
  const nonZeroReserved: string[] = [];
  for (const [name, off, len] of reservedRanges(version)) {
    reserved[name] = Buffer.from(b.subarray(off, off + len));
    const mbz =
      name === 'reserved@0x330'
        ? signatureAlgo === SNP_SIG_ALGO_ECDSA_P384_SHA384 // only the ECDSA P-384 signature format defines it as zero
        : name !== 'reserved@0x1f8' || version < 4; // v4 content is under AMD embargo (virtee/sev PR #312): do not judge it
    if (mbz && !isAllZero(reserved[name]!)) nonZeroReserved.push(name);
  }
  if (signerInfo.mbzBits !== 0) nonZeroReserved.push('signerInfo[31:5]');
  if (policy.mbzBits !== 0n) nonZeroReserved.push('policy[63:26]');
  // PLATFORM_INFO bits without a name are informational (SnpPlatformInfo.undefinedBits), not MBZ.
  if (signatureAlgo === SNP_SIG_ALGO_ECDSA_P384_SHA384) {
    if (!isAllZero(signature.r.subarray(P384_SCALAR))) nonZeroReserved.push('signature.r[48..72)');
    if (!isAllZero(signature.s.subarray(P384_SCALAR))) nonZeroReserved.push('signature.s[48..72)');
  }

  const report: SnpReport = {
    version,
    guestSvn: b.readUInt32LE(OFF.guestSvn),
    policy,
    familyId: slice(BYTES.familyId),
    imageId: slice(BYTES.imageId),
    vmpl: b.readUInt32LE(OFF.vmpl),
    signatureAlgo,
    currentTcb: decodeTcb(u64(OFF.currentTcb), layout),
    platformInfo,
    signerInfo,
    reportData: slice(BYTES.reportData),
    measurement: slice(BYTES.measurement),
    hostData: slice(BYTES.hostData),
    idKeyDigest: slice(BYTES.idKeyDigest),
    authorKeyDigest: slice(BYTES.authorKeyDigest),
    reportId: slice(BYTES.reportId),
    reportIdMa: slice(BYTES.reportIdMa),
    reportedTcb: decodeTcb(u64(OFF.reportedTcb), layout),
    tcbLayout: layout,
    tcbLayoutSource: layoutSource,
    chipId,
    committedTcb: decodeTcb(u64(OFF.committedTcb), layout),
    currentVersion: { major: b[OFF.currentMajor]!, minor: b[OFF.currentMinor]!, build: b[OFF.currentBuild]! },
    committedVersion: { major: b[OFF.committedMajor]!, minor: b[OFF.committedMinor]!, build: b[OFF.committedBuild]! },
    launchTcb: decodeTcb(u64(OFF.launchTcb), layout),
    signature,
    reserved,
    nonZeroReserved,
    raw: b,
  };
  if (version >= 3) {
    report.cpuid = { family, model: b[OFF.cpuidModel]!, stepping: b[OFF.cpuidStepping]! };
    const product = productFromCpuid(family, report.cpuid.model, report.cpuid.stepping);
    if (product !== undefined) report.product = product;
  }
  if (version >= 5) {
    report.launchMitVector = u64(OFF.launchMitVector);
    report.currentMitVector = u64(OFF.currentMitVector);
  }
  return report;
}

function invalid(message: string): never {
  throw new CvmError('ERR_INVALID_ARGUMENT', `serializeSnpReport: ${message}`);
}

const rawOf = <T extends bigint | number>(v: T | { raw: T }): T => (typeof v === 'object' ? v.raw : v);

/**
 * Build the 1184 report bytes from fields (inverse of parseSnpReport: serialize(parse(x)) equals x).
 * Used by the simulator (which then signs bytes [0, SNP_SIGNED_END)) and by tests.
 */
export function serializeSnpReport(f: SnpReportInit): Buffer {
  const b = Buffer.alloc(SNP_REPORT_SIZE);
  const u32 = (off: number, v: number, what: string) => {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) invalid(`${what} ${v} is not a u32`);
    b.writeUInt32LE(v, off);
  };
  const u64 = (off: number, v: bigint, what: string) => {
    if (typeof v !== 'bigint' || v < 0n || v >= 1n << 64n) invalid(`${what} is not a u64`);
    b.writeBigUInt64LE(v, off);
  };
  const u8 = (off: number, v: number, what: string) => {
    if (!Number.isInteger(v) || v < 0 || v > 255) invalid(`${what} ${v} is not a byte`);
    b[off] = v;
  };
  const bytes = (key: keyof typeof BYTES, v: Uint8Array | undefined) => {
    const [off, len] = BYTES[key];
    if (v === undefined) return;
    if (v.length !== len) invalid(`${key} must be ${len} bytes, got ${v.length}`);
    b.set(v, off);
  };

  if (f.version < SNP_MIN_REPORT_VERSION || f.version > SNP_MAX_REPORT_VERSION) invalid(`unsupported version ${f.version}`);
  u32(OFF.version, f.version, 'version');
  u32(OFF.guestSvn, f.guestSvn ?? 0, 'guestSvn');
  u64(OFF.policy, rawOf(f.policy), 'policy');
  bytes('familyId', f.familyId);
  bytes('imageId', f.imageId);
  u32(OFF.vmpl, f.vmpl ?? 0, 'vmpl');
  u32(OFF.signatureAlgo, f.signatureAlgo ?? SNP_SIG_ALGO_ECDSA_P384_SHA384, 'signatureAlgo');
  u64(OFF.currentTcb, rawOf(f.currentTcb), 'currentTcb');
  u64(OFF.platformInfo, f.platformInfo === undefined ? 0n : rawOf(f.platformInfo), 'platformInfo');
  let signer = 0;
  if (typeof f.signerInfo === 'number') signer = f.signerInfo;
  else if (f.signerInfo !== undefined && 'raw' in f.signerInfo) signer = f.signerInfo.raw;
  else if (f.signerInfo !== undefined) {
    const { authorKeyEn, maskChipKey, signingKey } = f.signerInfo;
    if (!Number.isInteger(signingKey) || signingKey < 0 || signingKey > 7) invalid(`signingKey ${signingKey} is not 0..7`);
    signer = (authorKeyEn ? 1 : 0) | (maskChipKey ? 2 : 0) | (signingKey << 2);
  }
  u32(OFF.signerInfo, signer, 'signerInfo');
  bytes('reportData', f.reportData);
  bytes('measurement', f.measurement);
  bytes('hostData', f.hostData);
  bytes('idKeyDigest', f.idKeyDigest);
  bytes('authorKeyDigest', f.authorKeyDigest);
  bytes('reportId', f.reportId);
  if (f.reportIdMa === undefined)
    b.fill(0xff, OFF.reportIdMa, OFF.reportIdMa + 32); // no migration agent
  else bytes('reportIdMa', f.reportIdMa);
  u64(OFF.reportedTcb, rawOf(f.reportedTcb), 'reportedTcb');
  if (f.version >= 3 && f.cpuid !== undefined) {
    u8(OFF.cpuidFamily, f.cpuid.family, 'cpuid.family');
    u8(OFF.cpuidModel, f.cpuid.model, 'cpuid.model');
    u8(OFF.cpuidStepping, f.cpuid.stepping, 'cpuid.stepping');
  }
  bytes('chipId', f.chipId);
  u64(OFF.committedTcb, rawOf(f.committedTcb), 'committedTcb');
  u8(OFF.currentBuild, f.currentVersion.build, 'currentVersion.build');
  u8(OFF.currentMinor, f.currentVersion.minor, 'currentVersion.minor');
  u8(OFF.currentMajor, f.currentVersion.major, 'currentVersion.major');
  u8(OFF.committedBuild, f.committedVersion.build, 'committedVersion.build');
  u8(OFF.committedMinor, f.committedVersion.minor, 'committedVersion.minor');
  u8(OFF.committedMajor, f.committedVersion.major, 'committedVersion.major');
  u64(OFF.launchTcb, rawOf(f.launchTcb), 'launchTcb');
  if (f.version >= 5) {
    u64(OFF.launchMitVector, f.launchMitVector ?? 0n, 'launchMitVector');
    u64(OFF.currentMitVector, f.currentMitVector ?? 0n, 'currentMitVector');
  }
  if (f.signature !== undefined) {
    for (const [name, v, off] of [
      ['r', f.signature.r, OFF.signatureR],
      ['s', f.signature.s, OFF.signatureS],
    ] as const) {
      if (v.length !== SIG_FIELD) invalid(`signature.${name} must be ${SIG_FIELD} bytes (little-endian), got ${v.length}`);
      b.set(v, off);
    }
  }
  if (f.reserved !== undefined) {
    const ranges = new Map(reservedRanges(f.version).map(([name, off, len]) => [name, [off, len] as const]));
    for (const [name, v] of Object.entries(f.reserved)) {
      const range = ranges.get(name);
      if (range === undefined) invalid(`no reserved range "${name}" in a version ${f.version} report`);
      if (v.length !== range[1]) invalid(`reserved range ${name} must be ${range[1]} bytes, got ${v.length}`);
      b.set(v, range[0]);
    }
  }
  return b;
}

/** The signed part of a report: bytes [0, 0x2A0). */
export function signedBytes(report: Uint8Array): Buffer {
  if (report.length !== SNP_REPORT_SIZE) throw new ParseError(`SNP report: expected ${SNP_REPORT_SIZE} bytes, got ${report.length}`);
  return Buffer.from(report.subarray(0, SNP_SIGNED_END));
}

/**
 * The signature as IEEE-P1363 r||s (96 bytes big-endian) for node:crypto verify with
 * dsaEncoding 'ieee-p1363': reverse each little-endian 72-byte field and keep the low 48 bytes (go-sev-guest abi/abi.go ReportToSignatureDER).
 */
export function signatureP1363(report: Pick<SnpReport, 'signature'>): Buffer {
  const be = (le: Buffer) => Buffer.from(le.subarray(0, P384_SCALAR)).reverse();
  return Buffer.concat([be(report.signature.r), be(report.signature.s)]);
}

/** Inverse of signatureP1363: 96-byte r||s big-endian → two 72-byte little-endian fields. */
export function signatureFromP1363(sig: Uint8Array): { r: Buffer; s: Buffer } {
  if (sig.length !== 2 * P384_SCALAR) throw new ParseError(`ECDSA P-384 signature must be 96 bytes, got ${sig.length}`);
  const le = (be: Uint8Array) => {
    const out = Buffer.alloc(SIG_FIELD);
    Buffer.from(be).reverse().copy(out, 0);
    return out;
  };
  return { r: le(sig.subarray(0, P384_SCALAR)), s: le(sig.subarray(P384_SCALAR)) };
}
