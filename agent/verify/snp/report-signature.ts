/**
 * The attestation report signature: ECDSA P-384 with SHA-384 over bytes [0, 0x2A0), r and s stored
 * little-endian in 72-byte fields at 0x2A0 and 0x2E8 (SNP ABI #56860 rev 1.55 §7.3 Table 22;
 * go-sev-guest abi.SignedComponent / ReportToSignatureDER). Pure: bytes + key in, boolean out.
 */
import { verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { ParseError } from '../../errors.js';

/** Report size (0x4A0) and signature layout, SNP ABI #56860 rev 1.55 §7.3 Table 22. */
export const REPORT_SIZE = 0x4a0;
export const SIGNED_END = 0x2a0;
export const SIG_R_OFFSET = 0x2a0;
export const SIG_S_OFFSET = 0x2e8;
export const SIG_FIELD_SIZE = 72;
/** P-384 scalars are 48 bytes; the remaining 24 bytes of each field are zero-extension. */
export const P384_SCALAR_SIZE = 48;
/** SIGNATURE_ALGO value for ECDSA P-384 with SHA-384 (go-sev-guest SignEcdsaP384Sha384). */
export const SIG_ALGO_ECDSA_P384_SHA384 = 1;

function checkSize(report: Uint8Array): void {
  if (report.length < REPORT_SIZE) throw new ParseError(`SNP report: ${report.length} bytes, need ${REPORT_SIZE}`, report.length);
}

/** IEEE-P1363 r||s (96 bytes, big-endian) from the report's little-endian 72-byte fields. */
export function reportSignatureP1363(report: Uint8Array): Buffer {
  checkSize(report);
  const out = Buffer.allocUnsafe(2 * P384_SCALAR_SIZE);
  for (let i = 0; i < P384_SCALAR_SIZE; i++) {
    out[P384_SCALAR_SIZE - 1 - i] = report[SIG_R_OFFSET + i]!;
    out[2 * P384_SCALAR_SIZE - 1 - i] = report[SIG_S_OFFSET + i]!;
  }
  return out;
}

/** The zero-extension bytes 48..71 of r and s must be zero, or the 72-byte integers exceed P-384. */
export function signatureFieldsCanonical(report: Uint8Array): boolean {
  checkSize(report);
  for (let i = P384_SCALAR_SIZE; i < SIG_FIELD_SIZE; i++) {
    if (report[SIG_R_OFFSET + i] !== 0 || report[SIG_S_OFFSET + i] !== 0) return false;
  }
  return true;
}

/** True when the VCEK/VLEK key (EC P-384) signed report[0, 0x2A0). Never throws for a bad signature. */
export function verifyReportSignature(report: Uint8Array, key: KeyObject): boolean {
  checkSize(report);
  if (!signatureFieldsCanonical(report)) return false;
  const signed = report.subarray(0, SIGNED_END);
  try {
    return cryptoVerify('sha384', signed, { key, dsaEncoding: 'ieee-p1363' }, reportSignatureP1363(report));
  } catch {
    // OpenSSL rejects out-of-range scalars by throwing on some versions: that is a bad signature.
    return false;
  }
}
