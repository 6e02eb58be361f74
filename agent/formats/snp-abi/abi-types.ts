/**
 * Types of the SEV-SNP ABI structures: the 1184-byte ATTESTATION_REPORT, its TCB_VERSION,
 * POLICY, PLATFORM_INFO and signer-info words, the GHCB certificate table and the AMD VCEK/VLEK
 * X.509 extensions. Pure data; parsing lives in report.ts, tcb.ts, cert-table.ts, amd-extensions.ts.
 * Layout source: AMD SEV-SNP Firmware ABI #56860 rev 1.58, table "ATTESTATION_REPORT Structure",
 * as encoded by go-sev-guest abi/abi.go and virtee/sev snp.rs).
 */

/** Processor generations this agent knows (AMD KDS product names without stepping). */
export type SnpProduct = 'Milan' | 'Genoa' | 'Turin';

/** TCB_VERSION byte layout: Milan/Genoa ("legacy", struct version 0) or Turin (FMC byte first). virtee/sev src/firmware/host/types/snp.rs TcbVersion */
export type TcbLayout = 'legacy' | 'turin';

export interface TcbVersion {
  /** The 8 bytes as a little-endian u64, exactly as in the report (re-decode it with another layout if needed). */
  raw: bigint;
  bootloader: number;
  tee: number;
  snp: number;
  microcode: number;
  /** Turin layout only (byte 0). */
  fmc?: number;
  layout: TcbLayout;
  /** The reserved bytes (legacy: bytes 2..5 = spl4..spl7; Turin: bytes 4..6) in place, others masked out. Non-zero is unusual. */
  reservedBits: bigint;
}

/** Guest POLICY (report 0x008): go-sev-guest abi/abi.go ParseSnpPolicy; Linux include/linux/psp-sev.h SNP_POLICY_MASK_*. */
export interface SnpPolicy {
  raw: bigint;
  abiMinor: number;
  abiMajor: number;
  smt: boolean;
  /** Bit 17: reserved, must be 1 (go-sev-guest rejects 0). */
  reservedBit17: boolean;
  migrateMa: boolean;
  debug: boolean;
  singleSocket: boolean;
  cxlAllow: boolean;
  memAes256Xts: boolean;
  raplDis: boolean;
  ciphertextHiding: boolean;
  /** Bit 25, ABI 1.58 (report v5). */
  pageSwapDisable: boolean;
  /** Bits 63:26 in place (must be zero). */
  mbzBits: bigint;
}

/**
 * PLATFORM_INFO (report 0x040), AMD SEV-SNP Firmware ABI #56860 rev 1.58, table "ATTESTATION_REPORT
 * Structure", field PLATFORM_INFO (bit positions as encoded by go-sev-guest abi/abi.go
 * ParseSnpPlatformInfo and virtee/sev snp.rs PlatformInfo). Firmware reports platform state here and
 * adds bits without a new report VERSION (ALIAS_CHECK_COMPLETE arrived by firmware update, AMD-SB-3015),
 * so bits the revision leaves reserved are informational, not must-be-zero.
 */
export interface SnpPlatformInfo {
  raw: bigint;
  /** Bit 0 SMT_EN. */
  smtEnabled: boolean;
  /** Bit 1 TSME_EN. */
  tsmeEnabled: boolean;
  /** Bit 2 ECC_EN. */
  eccEnabled: boolean;
  /** Bit 3 RAPL_DIS. */
  raplDisabled: boolean;
  /** Bit 4 CIPHERTEXT_HIDING_DRAM_EN. */
  ciphertextHidingEnabled: boolean;
  /** Bit 5 ALIAS_CHECK_COMPLETE: BadRAM alias check complete (AMD-SB-3015). */
  aliasCheckComplete: boolean;
  /** Bit 7 TIO_EN: SEV-TIO enabled. */
  tioEnabled: boolean;
  /**
   * Bits rev 1.58 does not define (bit 6 and 63:8), in place. Informational: genuine Turin firmware
   * 1.55.x sets bit 6 (value 0x65/0x67 in the wild).
   */
  undefinedBits: bigint;
}

export type SigningKeyName = 'vcek' | 'vlek' | 'none' | 'reserved';

/** Signer info word (report 0x048): bit0 AUTHOR_KEY_EN, bit1 MASK_CHIP_KEY, bits 4:2 SIGNING_KEY, 31:5 MBZ. */
export interface SnpSignerInfo {
  raw: number;
  authorKeyEn: boolean;
  maskChipKey: boolean;
  /** 0 VCEK, 1 VLEK, 2..6 reserved, 7 none. */
  signingKey: number;
  signingKeyName: SigningKeyName;
  /** Bits 31:5 in place (must be zero). */
  mbzBits: number;
}

export interface FirmwareVersion {
  major: number;
  minor: number;
  build: number;
}

export interface SnpCpuid {
  /** Combined extended family + family (e.g. 0x19 Milan/Genoa, 0x1A Turin). */
  family: number;
  /** Combined (extended model << 4) + model. */
  model: number;
  stepping: number;
}

/**
 * How the report's TCB layout was chosen: from the v3+ CPUID fields, from the v2 CHIP_ID heuristic
 * (virtee/sev chip_id_is_turin_like), or by default (v2 with no signal). Anything but 'cpuid' is a
 * guess: the verifier should re-decode the raw TCBs with the product from the VCEK (decodeTcb).
 */
export type TcbLayoutSource = 'cpuid' | 'chip-id-heuristic' | 'default';

/** The 1184-byte SEV-SNP ATTESTATION_REPORT, versions 2..5 (SNP ABI #56860 rev 1.58, table "ATTESTATION_REPORT Structure"; go-sev-guest abi/abi.go ReportToProto). */
export interface SnpReport {
  version: number;
  guestSvn: number;
  policy: SnpPolicy;
  familyId: Buffer;
  imageId: Buffer;
  vmpl: number;
  /** 1 = ECDSA P-384 with SHA-384; anything else must be rejected by the verifier. */
  signatureAlgo: number;
  currentTcb: TcbVersion;
  platformInfo: SnpPlatformInfo;
  signerInfo: SnpSignerInfo;
  reportData: Buffer;
  measurement: Buffer;
  hostData: Buffer;
  idKeyDigest: Buffer;
  authorKeyDigest: Buffer;
  reportId: Buffer;
  reportIdMa: Buffer;
  /** TCB the VCEK was derived for: the VCEK's SPL extensions must equal this. */
  reportedTcb: TcbVersion;
  /** v3+ only. */
  cpuid?: SnpCpuid;
  /** Product derived from cpuid (v3+) when it is a known generation. */
  product?: SnpProduct;
  tcbLayout: TcbLayout;
  tcbLayoutSource: TcbLayoutSource;
  chipId: Buffer;
  committedTcb: TcbVersion;
  currentVersion: FirmwareVersion;
  committedVersion: FirmwareVersion;
  launchTcb: TcbVersion;
  /** v5+ only (SNP ABI 1.58). */
  launchMitVector?: bigint;
  currentMitVector?: bigint;
  /** r and s as stored: 72-byte little-endian fields (P-384 uses the low 48 bytes). */
  signature: { r: Buffer; s: Buffer };
  /**
   * Every reserved byte range of the layout for this version, by name (e.g. "reserved@0x04c"),
   * copied so that serializeSnpReport can reproduce the input exactly.
   */
  reserved: Record<string, Buffer>;
  /**
   * Names of must-be-zero ranges/bits that are not zero. Includes reserved byte ranges,
   * "signerInfo[31:5]", "policy[63:26]",
   * "signature.r[48..72)", "signature.s[48..72)" and "reserved@0x330" (the last three only when
   * signatureAlgo = 1). "reserved@0x1f8" (the pre-v5 MIT-vector area) is judged only for v2/v3:
   * v4's content there is under AMD embargo (virtee/sev PR #312). Empty for a well-formed report.
   * PLATFORM_INFO bits the ABI does not define are not listed here (see SnpPlatformInfo.undefinedBits).
   */
  nonZeroReserved: string[];
  /** The 1184 input bytes (a copy). */
  raw: Buffer;
}

/**
 * Input of serializeSnpReport. A parsed SnpReport is assignable to it (round trip); the simulator
 * passes plain numbers. Omitted byte fields are zero, omitted reserved ranges are zero.
 */
export interface SnpReportInit {
  version: number;
  guestSvn?: number;
  policy: bigint | { raw: bigint };
  familyId?: Uint8Array;
  imageId?: Uint8Array;
  vmpl?: number;
  signatureAlgo?: number;
  currentTcb: bigint | { raw: bigint };
  platformInfo?: bigint | { raw: bigint };
  signerInfo?: number | { raw: number } | { authorKeyEn: boolean; maskChipKey: boolean; signingKey: number };
  reportData?: Uint8Array;
  measurement?: Uint8Array;
  hostData?: Uint8Array;
  idKeyDigest?: Uint8Array;
  authorKeyDigest?: Uint8Array;
  reportId?: Uint8Array;
  /** Default ff…ff (no migration agent). */
  reportIdMa?: Uint8Array;
  reportedTcb: bigint | { raw: bigint };
  /** Written only for version >= 3. */
  cpuid?: SnpCpuid;
  chipId?: Uint8Array;
  committedTcb: bigint | { raw: bigint };
  currentVersion: FirmwareVersion;
  committedVersion: FirmwareVersion;
  launchTcb: bigint | { raw: bigint };
  /** Written only for version >= 5. */
  launchMitVector?: bigint;
  currentMitVector?: bigint;
  signature?: { r: Uint8Array; s: Uint8Array };
  reserved?: Record<string, Uint8Array>;
}

/** AMD VCEK/VLEK certificate extensions, OIDs 1.3.6.1.4.1.3704.1.* (AMD #57230; go-sev-guest kds/kds.go). */
export interface AmdCertExtensions {
  /** …1.1 (0 Milan/Genoa/VLEK, 1 Turin). */
  structVersion?: number;
  /** …1.2 raw, e.g. "Milan-B0", "Genoa", "Turin". */
  productName: string;
  /** productName without stepping when it names a known generation. */
  product?: SnpProduct;
  blSpl: number;
  teeSpl: number;
  snpSpl: number;
  ucodeSpl: number;
  /** …1.3.9, Turin. */
  fmcSpl?: number;
  spl4?: number;
  spl5?: number;
  spl6?: number;
  spl7?: number;
  /** …1.4 (VCEK only): 64 bytes (Milan/Genoa) or 8 bytes (Turin), raw or DER-wrapped in the cert. */
  hwId?: Buffer;
  /** …1.5 (VLEK only), e.g. "CN=cc-us-east-2.amazonaws.com". */
  cspId?: string;
}

export type CertTableKind = 'vcek' | 'vlek' | 'ask' | 'ark' | 'asvk' | 'crl' | 'extra' | 'unknown';

/** One entry of the GHCB extended-report certificate table (GHCB #56421 rev 2.03 §4.1.8.1). */
export interface CertTableEntry {
  /** Canonical lowercase GUID text, e.g. "63da758d-e664-4564-adc5-f4b93be8accd". */
  guid: string;
  kind: CertTableKind;
  data: Buffer;
  /** Byte order the GUID was stored in (unknown GUIDs are read as RFC 4122). */
  guidOrder: 'rfc4122' | 'mixed-endian';
}
