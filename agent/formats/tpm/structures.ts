/**
 * Pure parsers (and the few marshallers the client needs) for TPM 2.0 structures (Part 2):
 * TPML_PCR_SELECTION, TPMS_NV_PUBLIC, TPMT_PUBLIC (RSA/ECC -> node KeyObject), TPMS_ATTEST (quote
 * info) and TPMT_SIGNATURE (RSASSA / RSAPSS / ECDSA). Bytes in, struct out; ParseError on anything
 * malformed or unsupported.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { ParseError } from '../../errors.js';
import { TpmReader, TpmWriter } from './marshal.js';
import { HASH_SIZES, TPM_ALG, TPM_ECC, TPM_ST } from './constants.js';

// ---------------------------------------------------------------------------------------------
// TPML_PCR_SELECTION (Part 2 §10.9.7): count u32, {hash u16, sizeofSelect u8, pcrSelect[sizeofSelect]}

export interface PcrSelection {
  hash: number;
  /** PCR indices selected in this bank, ascending (bit i of byte j = PCR 8j+i). */
  pcrs: number[];
}

/** Banks in one selection list; real TPMs have at most a handful (sha1, sha256, sha384, sha512, sm3). */
const MAX_PCR_BANKS = 16;
/** PCR_SELECT_MAX: 24 PCRs need 3 bytes; allow up to 32 (256 PCRs) as some simulators report more. */
const MAX_SIZEOF_SELECT = 32;

export function readPcrSelection(r: TpmReader): PcrSelection[] {
  const count = r.u32('TPML_PCR_SELECTION.count');
  if (count > MAX_PCR_BANKS) throw new ParseError(`TPML_PCR_SELECTION: ${count} banks exceeds ${MAX_PCR_BANKS}`, r.offset - 4);
  const out: PcrSelection[] = [];
  for (let i = 0; i < count; i++) {
    const hash = r.u16('TPMS_PCR_SELECTION.hash');
    const size = r.u8('TPMS_PCR_SELECTION.sizeofSelect');
    if (size > MAX_SIZEOF_SELECT) throw new ParseError(`TPMS_PCR_SELECTION: sizeofSelect ${size} exceeds ${MAX_SIZEOF_SELECT}`, r.offset - 1);
    const bits = r.bytes(size, 'TPMS_PCR_SELECTION.pcrSelect');
    const pcrs: number[] = [];
    for (let j = 0; j < size; j++) for (let b = 0; b < 8; b++) if (bits[j]! & (1 << b)) pcrs.push(j * 8 + b);
    out.push({ hash, pcrs });
  }
  return out;
}

export function writePcrSelection(w: TpmWriter, selections: readonly PcrSelection[]): void {
  w.u32(selections.length);
  for (const s of selections) {
    const max = s.pcrs.reduce((m, p) => Math.max(m, p), 23);
    const size = Math.max(3, Math.ceil((max + 1) / 8));
    const bits = Buffer.alloc(size);
    for (const p of s.pcrs) bits[p >> 3]! |= 1 << (p & 7);
    w.u16(s.hash).u8(size).bytes(bits);
  }
}

// ---------------------------------------------------------------------------------------------
// TPMS_NV_PUBLIC (Part 2 §13.5)

export interface NvPublic {
  nvIndex: number;
  nameAlg: number;
  attributes: number;
  authPolicy: Buffer;
  dataSize: number;
}

export function readNvPublic(r: TpmReader): NvPublic {
  return {
    nvIndex: r.u32('TPMS_NV_PUBLIC.nvIndex'),
    nameAlg: r.u16('TPMS_NV_PUBLIC.nameAlg'),
    attributes: r.u32('TPMS_NV_PUBLIC.attributes'),
    authPolicy: r.tpm2b('TPMS_NV_PUBLIC.authPolicy', 64),
    dataSize: r.u16('TPMS_NV_PUBLIC.dataSize'),
  };
}

export function writeNvPublic(w: TpmWriter, p: NvPublic): void {
  w.u32(p.nvIndex).u16(p.nameAlg).u32(p.attributes).tpm2b(p.authPolicy).u16(p.dataSize);
}

// ---------------------------------------------------------------------------------------------
// TPMT_PUBLIC (Part 2 §12.2.4) for RSA and ECC keys

export interface TpmScheme {
  scheme: number;
  /** Hash of the scheme; undefined for TPM_ALG_NULL and schemes without one (RSAES). */
  hashAlg?: number;
}

interface PublicCommon {
  nameAlg: number;
  objectAttributes: number;
  authPolicy: Buffer;
  symmetric: { algorithm: number; keyBits?: number; mode?: number };
  scheme: TpmScheme;
}
export interface RsaPublic extends PublicCommon {
  type: 'rsa';
  keyBits: number;
  exponent: number;
  modulus: Buffer;
}
export interface EccPublic extends PublicCommon {
  type: 'ecc';
  curveId: number;
  kdf: TpmScheme;
  x: Buffer;
  y: Buffer;
}
export type TpmPublic = RsaPublic | EccPublic;

const ECC_CURVES: ReadonlyMap<number, { jwk: string; size: number }> = new Map([
  [TPM_ECC.NIST_P256, { jwk: 'P-256', size: 32 }],
  [TPM_ECC.NIST_P384, { jwk: 'P-384', size: 48 }],
  [TPM_ECC.NIST_P521, { jwk: 'P-521', size: 66 }],
]);

function readScheme(r: TpmReader, field: string): TpmScheme {
  const scheme = r.u16(`${field}.scheme`);
  if (scheme === TPM_ALG.NULL || scheme === TPM_ALG.RSAES) return { scheme };
  const hashAlg = r.u16(`${field}.hashAlg`);
  // TPMS_SCHEME_ECDAA carries a commit count after the hash (Part 2 §11.2.3.2).
  if (scheme === TPM_ALG.ECDAA) r.u16(`${field}.count`);
  return { scheme, hashAlg };
}

function readSymmetric(r: TpmReader): PublicCommon['symmetric'] {
  const algorithm = r.u16('TPMT_SYM_DEF_OBJECT.algorithm');
  if (algorithm === TPM_ALG.NULL) return { algorithm };
  return { algorithm, keyBits: r.u16('TPMT_SYM_DEF_OBJECT.keyBits'), mode: r.u16('TPMT_SYM_DEF_OBJECT.mode') };
}

export function readPublic(r: TpmReader): TpmPublic {
  const type = r.u16('TPMT_PUBLIC.type');
  const nameAlg = r.u16('TPMT_PUBLIC.nameAlg');
  const objectAttributes = r.u32('TPMT_PUBLIC.objectAttributes');
  const authPolicy = r.tpm2b('TPMT_PUBLIC.authPolicy', 64);
  if (type === TPM_ALG.RSA) {
    const symmetric = readSymmetric(r);
    const scheme = readScheme(r, 'TPMT_RSA_SCHEME');
    const keyBits = r.u16('TPMS_RSA_PARMS.keyBits');
    const exponent = r.u32('TPMS_RSA_PARMS.exponent');
    const modulus = r.tpm2b('TPM2B_PUBLIC_KEY_RSA', 512);
    return { type: 'rsa', nameAlg, objectAttributes, authPolicy, symmetric, scheme, keyBits, exponent, modulus };
  }
  if (type === TPM_ALG.ECC) {
    const symmetric = readSymmetric(r);
    const scheme = readScheme(r, 'TPMT_ECC_SCHEME');
    const curveId = r.u16('TPMS_ECC_PARMS.curveID');
    const kdf = readScheme(r, 'TPMT_KDF_SCHEME');
    const x = r.tpm2b('TPMS_ECC_POINT.x', 128);
    const y = r.tpm2b('TPMS_ECC_POINT.y', 128);
    return { type: 'ecc', nameAlg, objectAttributes, authPolicy, symmetric, scheme, curveId, kdf, x, y };
  }
  throw new ParseError(`TPMT_PUBLIC: key type 0x${type.toString(16)} is not supported (RSA or ECC only)`, r.offset - 8 - authPolicy.length);
}

/** Parse a complete TPMT_PUBLIC (e.g. the contents of a TPM2B_PUBLIC). */
export function parsePublic(bytes: Uint8Array): TpmPublic {
  const r = new TpmReader(bytes, 0, bytes.length, 'TPMT_PUBLIC');
  const pub = readPublic(r);
  r.expectEnd('TPMT_PUBLIC');
  return pub;
}

export function writePublic(w: TpmWriter, p: TpmPublic): void {
  w.u16(p.type === 'rsa' ? TPM_ALG.RSA : TPM_ALG.ECC)
    .u16(p.nameAlg)
    .u32(p.objectAttributes)
    .tpm2b(p.authPolicy);
  w.u16(p.symmetric.algorithm);
  if (p.symmetric.algorithm !== TPM_ALG.NULL) w.u16(p.symmetric.keyBits ?? 0).u16(p.symmetric.mode ?? 0);
  const writeScheme = (s: TpmScheme) => {
    w.u16(s.scheme);
    if (s.scheme !== TPM_ALG.NULL && s.scheme !== TPM_ALG.RSAES) w.u16(s.hashAlg ?? TPM_ALG.SHA256);
    if (s.scheme === TPM_ALG.ECDAA) w.u16(0);
  };
  writeScheme(p.scheme);
  if (p.type === 'rsa') {
    w.u16(p.keyBits).u32(p.exponent).tpm2b(p.modulus);
  } else {
    w.u16(p.curveId);
    writeScheme(p.kdf);
    w.tpm2b(p.x).tpm2b(p.y);
  }
}

const b64url = (b: Uint8Array) => Buffer.from(b).toString('base64url');

/** The public key as a node KeyObject (via JWK, which validates the key material). */
export function publicKeyObject(p: TpmPublic): KeyObject {
  try {
    if (p.type === 'rsa') {
      if (p.modulus.length === 0) throw new ParseError('TPMT_PUBLIC: RSA modulus is empty');
      const e = p.exponent === 0 ? 65537 : p.exponent; // 0 means the default exponent 2^16+1 (Part 2 §12.2.3.5)
      const eBytes = Buffer.alloc(4);
      eBytes.writeUInt32BE(e);
      let i = 0;
      while (i < 3 && eBytes[i] === 0) i++;
      return createPublicKey({ key: { kty: 'RSA', n: b64url(p.modulus), e: b64url(eBytes.subarray(i)) }, format: 'jwk' });
    }
    const curve = ECC_CURVES.get(p.curveId);
    if (!curve) throw new ParseError(`TPMT_PUBLIC: ECC curve 0x${p.curveId.toString(16)} is not supported`);
    if (p.x.length > curve.size || p.y.length > curve.size) throw new ParseError('TPMT_PUBLIC: ECC point coordinate too long for its curve');
    const pad = (b: Buffer) => Buffer.concat([Buffer.alloc(curve.size - b.length), b]);
    return createPublicKey({ key: { kty: 'EC', crv: curve.jwk, x: b64url(pad(p.x)), y: b64url(pad(p.y)) }, format: 'jwk' });
  } catch (err) {
    if (err instanceof ParseError) throw err;
    throw new ParseError(`TPMT_PUBLIC: not a valid public key: ${(err as Error).message}`, undefined, { cause: err });
  }
}

// ---------------------------------------------------------------------------------------------
// TPMS_ATTEST (Part 2 §10.12.12) with TPMS_QUOTE_INFO (§10.12.4)

export const TPM_GENERATED_VALUE = 0xff544347; // "\xffTCG" (Part 2 §6.2)

export interface ClockInfo {
  clock: bigint;
  resetCount: number;
  restartCount: number;
  safe: boolean;
}

export interface TpmsAttest {
  magic: number;
  type: number;
  qualifiedSigner: Buffer;
  extraData: Buffer;
  clockInfo: ClockInfo;
  firmwareVersion: bigint;
  /** Present when type == TPM_ST_ATTEST_QUOTE. */
  quote?: { pcrSelect: PcrSelection[]; pcrDigest: Buffer };
  /** Raw TPMU_ATTEST bytes for other attestation types (not interpreted). */
  attested?: Buffer;
}

/**
 * Parse the signed quote message. Rejects a wrong magic (a TPMS_ATTEST not produced by a TPM) and
 * trailing bytes, because the signature covers exactly these bytes.
 */
export function parseAttest(bytes: Uint8Array): TpmsAttest {
  const r = new TpmReader(bytes, 0, bytes.length, 'TPMS_ATTEST');
  const magic = r.u32('magic');
  if (magic !== TPM_GENERATED_VALUE) throw new ParseError(`TPMS_ATTEST: magic 0x${magic.toString(16)} is not TPM_GENERATED_VALUE 0xff544347`, 0);
  const type = r.u16('type');
  const qualifiedSigner = r.tpm2b('qualifiedSigner', 2 + 64); // TPM2B_NAME: hashAlg + digest
  const extraData = r.tpm2b('extraData', 2 + 64); // TPM2B_DATA: at most sizeof(TPMT_HA)
  const clockInfo: ClockInfo = {
    clock: r.u64('clockInfo.clock'),
    resetCount: r.u32('clockInfo.resetCount'),
    restartCount: r.u32('clockInfo.restartCount'),
    safe: r.u8('clockInfo.safe') !== 0,
  };
  const firmwareVersion = r.u64('firmwareVersion');
  const out: TpmsAttest = { magic, type, qualifiedSigner, extraData, clockInfo, firmwareVersion };
  if (type === TPM_ST.ATTEST_QUOTE) {
    const pcrSelect = readPcrSelection(r);
    const pcrDigest = r.tpm2b('pcrDigest', 64);
    r.expectEnd('TPMS_QUOTE_INFO');
    out.quote = { pcrSelect, pcrDigest };
  } else {
    out.attested = r.bytes(r.remaining, 'attested');
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// TPMT_SIGNATURE (Part 2 §11.3.4)

export type TpmSignature =
  | { sigAlg: 'rsassa' | 'rsapss'; hashAlg: number; signature: Buffer }
  | { sigAlg: 'ecdsa'; hashAlg: number; r: Buffer; s: Buffer }
  | { sigAlg: 'null' };

export function readSignature(r: TpmReader): TpmSignature {
  const alg = r.u16('TPMT_SIGNATURE.sigAlg');
  switch (alg) {
    case TPM_ALG.RSASSA:
    case TPM_ALG.RSAPSS:
      return {
        sigAlg: alg === TPM_ALG.RSASSA ? 'rsassa' : 'rsapss',
        hashAlg: r.u16('TPMS_SIGNATURE_RSA.hash'),
        signature: r.tpm2b('TPMS_SIGNATURE_RSA.sig', 512),
      };
    case TPM_ALG.ECDSA:
      return { sigAlg: 'ecdsa', hashAlg: r.u16('TPMS_SIGNATURE_ECC.hash'), r: r.tpm2b('signatureR', 128), s: r.tpm2b('signatureS', 128) };
    case TPM_ALG.NULL:
      return { sigAlg: 'null' };
    default:
      throw new ParseError(`TPMT_SIGNATURE: signature algorithm 0x${alg.toString(16)} is not supported (RSASSA, RSAPSS, ECDSA)`, r.offset - 2);
  }
}

export function parseSignature(bytes: Uint8Array): TpmSignature {
  const r = new TpmReader(bytes, 0, bytes.length, 'TPMT_SIGNATURE');
  const sig = readSignature(r);
  r.expectEnd('TPMT_SIGNATURE');
  return sig;
}

export function writeSignature(w: TpmWriter, sig: TpmSignature): void {
  if (sig.sigAlg === 'null') {
    w.u16(TPM_ALG.NULL);
    return;
  }
  if (sig.sigAlg === 'ecdsa') {
    w.u16(TPM_ALG.ECDSA).u16(sig.hashAlg).tpm2b(sig.r).tpm2b(sig.s);
    return;
  }
  w.u16(sig.sigAlg === 'rsassa' ? TPM_ALG.RSASSA : TPM_ALG.RSAPSS)
    .u16(sig.hashAlg)
    .tpm2b(sig.signature);
}

export function digestSize(hashAlg: number): number {
  const size = HASH_SIZES.get(hashAlg);
  if (size === undefined) throw new ParseError(`hash algorithm 0x${hashAlg.toString(16)} is not supported`);
  return size;
}
