/**
 * Claims: the parsed report as JSON-friendly values (hex strings, numbers, booleans; no Buffers or
 * bigints) plus what the verifier established (product, signer). This is what --json prints under
 * "report" and what the appraisal/EAR layer reads.
 */
import { bytesToHex } from '../../util/bytes.js';
import { tcbFor, type SnpPlatformInfo, type SnpProduct, type SnpReport, type TcbVersion } from '../../formats/snp-abi/index.js';

export interface TcbClaims {
  raw: string;
  bootloader: number;
  tee: number;
  snp: number;
  microcode: number;
  fmc?: number;
}

export interface SnpClaims {
  version: number;
  guestSvn: number;
  policy: {
    raw: string;
    abiMajor: number;
    abiMinor: number;
    smt: boolean;
    migrateMa: boolean;
    debug: boolean;
    singleSocket: boolean;
    cxlAllow: boolean;
    memAes256Xts: boolean;
    raplDis: boolean;
    ciphertextHiding: boolean;
    pageSwapDisable: boolean;
  };
  familyId: string;
  imageId: string;
  vmpl: number;
  signatureAlgo: number;
  /** PLATFORM_INFO decoded (formats/snp-abi SnpPlatformInfo), with its raw and undefined bits as hex for JSON. */
  platformInfo: Omit<SnpPlatformInfo, 'raw' | 'undefinedBits'> & { raw: string; undefinedBits: string };
  signerInfo: { raw: number; authorKeyEn: boolean; maskChipKey: boolean; signingKey: string };
  reportData: string;
  measurement: string;
  hostData: string;
  idKeyDigest: string;
  authorKeyDigest: string;
  reportId: string;
  reportIdMa: string;
  chipId: string;
  currentTcb: TcbClaims;
  reportedTcb: TcbClaims;
  committedTcb: TcbClaims;
  launchTcb: TcbClaims;
  currentFirmware: string;
  committedFirmware: string;
  cpuid?: { family: string; model: string; stepping: number };
  launchMitVector?: string;
  currentMitVector?: string;
  /** Product line established by the verifier (CPUID on v3+, else the VCEK productName). */
  product?: SnpProduct;
  /** The key that signed (per SIGNER_INFO), and the leaf certificate's productName. */
  signer: { key: string; productName?: string; cspId?: string };
}

const hex64 = (v: bigint) => `0x${v.toString(16).padStart(16, '0')}`;

function tcbClaims(t: TcbVersion): TcbClaims {
  const out: TcbClaims = { raw: hex64(t.raw), bootloader: t.bootloader, tee: t.tee, snp: t.snp, microcode: t.microcode };
  if (t.fmc !== undefined) out.fmc = t.fmc;
  return out;
}

export function snpClaims(r: SnpReport, established: { product?: SnpProduct; productName?: string; cspId?: string }): SnpClaims {
  // Decode TCBs with the established product's layout (the parser only guesses for v2 reports).
  const tcb = (t: TcbVersion) => tcbClaims(established.product ? tcbFor(t.raw, established.product) : t);
  const fw = (v: { major: number; minor: number; build: number }) => `${v.major}.${v.minor}.${v.build}`;
  const claims: SnpClaims = {
    version: r.version,
    guestSvn: r.guestSvn,
    policy: {
      raw: hex64(r.policy.raw),
      abiMajor: r.policy.abiMajor,
      abiMinor: r.policy.abiMinor,
      smt: r.policy.smt,
      migrateMa: r.policy.migrateMa,
      debug: r.policy.debug,
      singleSocket: r.policy.singleSocket,
      cxlAllow: r.policy.cxlAllow,
      memAes256Xts: r.policy.memAes256Xts,
      raplDis: r.policy.raplDis,
      ciphertextHiding: r.policy.ciphertextHiding,
      pageSwapDisable: r.policy.pageSwapDisable,
    },
    familyId: bytesToHex(r.familyId),
    imageId: bytesToHex(r.imageId),
    vmpl: r.vmpl,
    signatureAlgo: r.signatureAlgo,
    platformInfo: {
      raw: hex64(r.platformInfo.raw),
      smtEnabled: r.platformInfo.smtEnabled,
      tsmeEnabled: r.platformInfo.tsmeEnabled,
      eccEnabled: r.platformInfo.eccEnabled,
      raplDisabled: r.platformInfo.raplDisabled,
      ciphertextHidingEnabled: r.platformInfo.ciphertextHidingEnabled,
      aliasCheckComplete: r.platformInfo.aliasCheckComplete,
      tioEnabled: r.platformInfo.tioEnabled,
      undefinedBits: hex64(r.platformInfo.undefinedBits),
    },
    signerInfo: {
      raw: r.signerInfo.raw,
      authorKeyEn: r.signerInfo.authorKeyEn,
      maskChipKey: r.signerInfo.maskChipKey,
      signingKey: r.signerInfo.signingKeyName,
    },
    reportData: bytesToHex(r.reportData),
    measurement: bytesToHex(r.measurement),
    hostData: bytesToHex(r.hostData),
    idKeyDigest: bytesToHex(r.idKeyDigest),
    authorKeyDigest: bytesToHex(r.authorKeyDigest),
    reportId: bytesToHex(r.reportId),
    reportIdMa: bytesToHex(r.reportIdMa),
    chipId: bytesToHex(r.chipId),
    currentTcb: tcb(r.currentTcb),
    reportedTcb: tcb(r.reportedTcb),
    committedTcb: tcb(r.committedTcb),
    launchTcb: tcb(r.launchTcb),
    currentFirmware: fw(r.currentVersion),
    committedFirmware: fw(r.committedVersion),
    signer: {
      key: r.signerInfo.signingKeyName,
      ...(established.productName === undefined ? {} : { productName: established.productName }),
      ...(established.cspId === undefined ? {} : { cspId: established.cspId }),
    },
  };
  if (r.cpuid) claims.cpuid = { family: `0x${r.cpuid.family.toString(16)}`, model: `0x${r.cpuid.model.toString(16)}`, stepping: r.cpuid.stepping };
  if (r.launchMitVector !== undefined) claims.launchMitVector = hex64(r.launchMitVector);
  if (r.currentMitVector !== undefined) claims.currentMitVector = hex64(r.currentMitVector);
  if (established.product) claims.product = established.product;
  return claims;
}
