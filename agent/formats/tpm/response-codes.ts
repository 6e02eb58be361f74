/**
 * TPM_RC decoding (TPM 2.0 Part 2 §6.6): turns a response code into a stable name such as
 * "TPM_RC_NV_UNINITIALIZED" or "TPM_RC_HANDLE (handle 1)", so errors say what went wrong.
 */
import { DeviceError } from '../../errors.js';

const RC_VER1 = 0x100;
const RC_FMT1 = 0x080;
const RC_WARN = 0x900;

/** Format-0 errors, value = RC_VER1 + n (Part 2 Table 16). */
const FMT0_ERRORS: Record<number, string> = {
  0x000: 'INITIALIZE',
  0x001: 'FAILURE',
  0x003: 'SEQUENCE',
  0x00b: 'PRIVATE',
  0x019: 'HMAC',
  0x020: 'DISABLED',
  0x021: 'EXCLUSIVE',
  0x024: 'AUTH_TYPE',
  0x025: 'AUTH_MISSING',
  0x026: 'POLICY',
  0x027: 'PCR',
  0x028: 'PCR_CHANGED',
  0x02d: 'UPGRADE',
  0x02e: 'TOO_MANY_CONTEXTS',
  0x02f: 'AUTH_UNAVAILABLE',
  0x030: 'REBOOT',
  0x031: 'UNBALANCED',
  0x042: 'COMMAND_SIZE',
  0x043: 'COMMAND_CODE',
  0x044: 'AUTHSIZE',
  0x045: 'AUTH_CONTEXT',
  0x046: 'NV_RANGE',
  0x047: 'NV_SIZE',
  0x048: 'NV_LOCKED',
  0x049: 'NV_AUTHORIZATION',
  0x04a: 'NV_UNINITIALIZED',
  0x04b: 'NV_SPACE',
  0x04c: 'NV_DEFINED',
  0x050: 'BAD_CONTEXT',
  0x051: 'CPHASH',
  0x052: 'PARENT',
  0x053: 'NEEDS_TEST',
  0x054: 'NO_RESULT',
  0x055: 'SENSITIVE',
};

/** Format-1 errors (parameter/handle/session), value = RC_FMT1 + n. */
const FMT1_ERRORS: Record<number, string> = {
  0x001: 'ASYMMETRIC',
  0x002: 'ATTRIBUTES',
  0x003: 'HASH',
  0x004: 'VALUE',
  0x005: 'HIERARCHY',
  0x007: 'KEY_SIZE',
  0x008: 'MGF',
  0x009: 'MODE',
  0x00a: 'TYPE',
  0x00b: 'HANDLE',
  0x00c: 'KDF',
  0x00d: 'RANGE',
  0x00e: 'AUTH_FAIL',
  0x00f: 'NONCE',
  0x010: 'PP',
  0x012: 'SCHEME',
  0x015: 'SIZE',
  0x016: 'SYMMETRIC',
  0x017: 'TAG',
  0x018: 'SELECTOR',
  0x01a: 'INSUFFICIENT',
  0x01b: 'SIGNATURE',
  0x01c: 'KEY',
  0x01d: 'POLICY_FAIL',
  0x01f: 'INTEGRITY',
  0x020: 'TICKET',
  0x021: 'RESERVED_BITS',
  0x022: 'BAD_AUTH',
  0x023: 'EXPIRED',
  0x024: 'POLICY_CC',
  0x025: 'BINDING',
  0x026: 'CURVE',
  0x027: 'ECC_POINT',
};

/** Warnings, value = RC_WARN + n. */
const WARNINGS: Record<number, string> = {
  0x001: 'CONTEXT_GAP',
  0x002: 'OBJECT_MEMORY',
  0x003: 'SESSION_MEMORY',
  0x004: 'MEMORY',
  0x005: 'SESSION_HANDLES',
  0x006: 'OBJECT_HANDLES',
  0x007: 'LOCALITY',
  0x008: 'YIELDED',
  0x009: 'CANCELED',
  0x00a: 'TESTING',
  0x010: 'REFERENCE_H0',
  0x011: 'REFERENCE_H1',
  0x012: 'REFERENCE_H2',
  0x013: 'REFERENCE_H3',
  0x014: 'REFERENCE_H4',
  0x015: 'REFERENCE_H5',
  0x016: 'REFERENCE_H6',
  0x018: 'REFERENCE_S0',
  0x019: 'REFERENCE_S1',
  0x01a: 'REFERENCE_S2',
  0x01b: 'REFERENCE_S3',
  0x01c: 'REFERENCE_S4',
  0x01d: 'REFERENCE_S5',
  0x01e: 'REFERENCE_S6',
  0x020: 'NV_RATE',
  0x021: 'LOCKOUT',
  0x022: 'RETRY',
  0x023: 'NV_UNAVAILABLE',
};

export interface DecodedRc {
  rc: number;
  /** e.g. "TPM_RC_HANDLE"; "TPM_RC_SUCCESS" for 0; "TPM_RC_0x..." when unknown. */
  name: string;
  format: 0 | 1;
  warning: boolean;
  /** Format 1 only: which parameter, handle or session the error refers to (1-based). */
  parameter?: number;
  handle?: number;
  session?: number;
  /** Human-readable: name plus what it refers to. */
  text: string;
}

export function decodeRc(rc: number): DecodedRc {
  rc >>>= 0;
  const hex = `0x${rc.toString(16).padStart(8, '0')}`;
  if (rc === 0) return { rc, name: 'TPM_RC_SUCCESS', format: 0, warning: false, text: 'TPM_RC_SUCCESS' };
  if (rc & RC_FMT1) {
    const n = rc & 0x3f;
    const name = FMT1_ERRORS[n] !== undefined ? `TPM_RC_${FMT1_ERRORS[n]}` : `TPM_RC_FMT1_${hex}`;
    const num = (rc >>> 8) & 0xf;
    const out: DecodedRc = { rc, name, format: 1, warning: false, text: name };
    if (rc & 0x40) {
      out.parameter = num;
      out.text = `${name} (parameter ${num})`;
    } else if (num & 0x8) {
      out.session = num & 0x7;
      out.text = `${name} (session ${num & 0x7})`;
    } else if (num !== 0) {
      out.handle = num;
      out.text = `${name} (handle ${num})`;
    }
    return out;
  }
  if ((rc & RC_VER1) === 0) {
    const name = `TPM_RC_TPM12_${hex}`;
    return { rc, name, format: 0, warning: false, text: `${name} (TPM 1.2 response code)` };
  }
  const n = rc & 0x7f;
  if (rc & 0x400) {
    const name = `TPM_RC_VENDOR_${hex}`;
    return { rc, name, format: 0, warning: false, text: `${name} (TPM-vendor defined)` };
  }
  const warning = (rc & 0xf00) === RC_WARN;
  const table = warning ? WARNINGS : FMT0_ERRORS;
  const known = (rc & ~0x7f) === (warning ? RC_WARN : RC_VER1) ? table[n] : undefined;
  const name = known !== undefined ? `TPM_RC_${known}` : `TPM_RC_${hex}`;
  return { rc, name, format: 0, warning, text: name };
}

/**
 * A TPM answered with a non-success response code. A DeviceError (the device refused), code "ERR_TPM",
 * `rcName` the decoded name so callers can branch (e.g. TPM_RC_HANDLE = index absent).
 */
export class TpmError extends DeviceError {
  readonly rc: number;
  readonly rcName: string;
  readonly decoded: DecodedRc;
  readonly command: string;
  constructor(command: string, rc: number) {
    const decoded = decodeRc(rc);
    super('ERR_TPM', `TPM2_${command} failed: ${decoded.text} (rc 0x${(rc >>> 0).toString(16)})`, { command, rc: rc >>> 0, rcName: decoded.name });
    this.rc = rc >>> 0;
    this.rcName = decoded.name;
    this.decoded = decoded;
    this.command = command;
  }
}
