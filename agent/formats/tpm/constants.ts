/**
 * TPM 2.0 constants used by the client (TCG TPM 2.0 Library, Part 2 "Structures": §6 constants,
 * §8 attributes). Only what this agent marshals or parses; values are from the spec tables.
 */

/** TPM_ST (Part 2 §6.9). */
export const TPM_ST = {
  NO_SESSIONS: 0x8001,
  SESSIONS: 0x8002,
  ATTEST_CERTIFY: 0x8017,
  ATTEST_QUOTE: 0x8018,
} as const;

/** TPM_CC (Part 2 §6.5.2). */
export const TPM_CC = {
  EvictControl: 0x00000120,
  NV_UndefineSpace: 0x00000122,
  NV_DefineSpace: 0x0000012a,
  CreatePrimary: 0x00000131,
  NV_Write: 0x00000137,
  Startup: 0x00000144,
  NV_Read: 0x0000014e,
  Quote: 0x00000158,
  FlushContext: 0x00000165,
  NV_ReadPublic: 0x00000169,
  ReadPublic: 0x00000173,
  GetCapability: 0x0000017a,
  PCR_Read: 0x0000017e,
} as const;

/** TPM_ALG_ID (TCG Algorithm Registry). */
export const TPM_ALG = {
  RSA: 0x0001,
  SHA1: 0x0004,
  HMAC: 0x0005,
  AES: 0x0006,
  KEYEDHASH: 0x0008,
  SHA256: 0x000b,
  SHA384: 0x000c,
  SHA512: 0x000d,
  NULL: 0x0010,
  SM3_256: 0x0012,
  RSASSA: 0x0014,
  RSAES: 0x0015,
  RSAPSS: 0x0016,
  OAEP: 0x0017,
  ECDSA: 0x0018,
  ECDH: 0x0019,
  ECDAA: 0x001a,
  SM2: 0x001b,
  ECSCHNORR: 0x001c,
  ECMQV: 0x001d,
  ECC: 0x0023,
  SYMCIPHER: 0x0025,
  CFB: 0x0043,
} as const;

/** TPM_ECC_CURVE (Part 2 §6.4). */
export const TPM_ECC = { NIST_P256: 0x0003, NIST_P384: 0x0004, NIST_P521: 0x0005 } as const;

/** Permanent handles (Part 2 §7.4) and handle ranges (§7.2). */
export const TPM_RH = {
  OWNER: 0x40000001,
  NULL: 0x40000007,
  ENDORSEMENT: 0x4000000b,
  PLATFORM: 0x4000000c,
} as const;
/** Password authorization pseudo-session (Part 2 §7.4: TPM_RS_PW). */
export const TPM_RS_PW = 0x40000009;

/** TPM_SU for TPM2_Startup (Part 2 §6.7). */
export const TPM_SU = { CLEAR: 0x0000, STATE: 0x0001 } as const;

/** TPM_CAP and TPM_PT (Part 2 §6.12, §6.13). */
export const TPM_CAP = { HANDLES: 0x00000001, TPM_PROPERTIES: 0x00000006 } as const;
const PT_FIXED = 0x100;
export const TPM_PT = {
  INPUT_BUFFER: PT_FIXED + 13,
  NV_INDEX_MAX: PT_FIXED + 23,
  NV_BUFFER_MAX: PT_FIXED + 44,
} as const;

/** TPMA_OBJECT bits (Part 2 §8.3). */
export const TPMA_OBJECT = {
  fixedTPM: 1 << 1,
  fixedParent: 1 << 4,
  sensitiveDataOrigin: 1 << 5,
  userWithAuth: 1 << 6,
  noDA: 1 << 10,
  restricted: 1 << 16,
  decrypt: 1 << 17,
  sign: 1 << 18,
} as const;

/** TPMA_NV bits (Part 2 §13.4). */
export const TPMA_NV = {
  PPWRITE: 1 << 0,
  OWNERWRITE: 1 << 1,
  AUTHWRITE: 1 << 2,
  POLICYWRITE: 1 << 3,
  PPREAD: 1 << 16,
  OWNERREAD: 1 << 17,
  AUTHREAD: 1 << 18,
  POLICYREAD: 1 << 19,
  NO_DA: 1 << 25,
  WRITTEN: 1 << 29,
} as const;

/** Digest sizes of the hash algorithms a TPMT_HA / PCR bank can use. */
export const HASH_SIZES: ReadonlyMap<number, number> = new Map([
  [TPM_ALG.SHA1, 20],
  [TPM_ALG.SHA256, 32],
  [TPM_ALG.SHA384, 48],
  [TPM_ALG.SHA512, 64],
  [TPM_ALG.SM3_256, 32],
]);

/** node:crypto names of the hash algorithms (SM3 is not in OpenSSL's default provider everywhere). */
export const HASH_NAMES: ReadonlyMap<number, string> = new Map([
  [TPM_ALG.SHA1, 'sha1'],
  [TPM_ALG.SHA256, 'sha256'],
  [TPM_ALG.SHA384, 'sha384'],
  [TPM_ALG.SHA512, 'sha512'],
]);

/** Header of every command and response: tag u16, size u32, code u32 (Part 1 §18). */
export const HEADER_SIZE = 10;
/** Largest command/response this client sends or accepts (TPM_PT_MAX_COMMAND_SIZE is 4096 on common TPMs). */
export const MAX_MESSAGE_SIZE = 8192;

/** Azure vTPM well-known handles (Azure cvm-guest-attestation client-library LinuxTpm/lib/Tss2Util.h; az-cvm-vtpm src/vtpm/mod.rs). */
export const AZURE = {
  HCL_REPORT_INDEX: 0x01400001,
  REPORT_DATA_INDEX: 0x01400002,
  AK_HANDLE: 0x81000003,
} as const;
