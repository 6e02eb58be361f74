/**
 * Typed errors. Every error the agent raises on purpose is a CvmError with a stable `code` from the
 * closed union ErrorCode, so callers (CLI exit codes, API problem+json, tests) can branch on it without
 * parsing messages. The native addon (native/src/*.c) throws with the same names; a unit test checks
 * that every code in the C sources is a member of ERROR_CODES.
 */
export const ERROR_CODES = [
  'ERR_AGENT_UNREACHABLE',
  'ERR_AZURE_NO_HCL_REPORT',
  'ERR_AZURE_USER_DATA_INDEX',
  'ERR_AZURE_USER_DATA_TIMEOUT',
  'ERR_BUSY',
  'ERR_CANCELLED',
  'ERR_COLLATERAL',
  'ERR_CONFIG',
  'ERR_CYCLE',
  'ERR_DEMO_INTERRUPTED',
  'ERR_DEMO_TIMEOUT',
  'ERR_DEVICE',
  'ERR_EVENT_DATA',
  'ERR_EVENT_TOO_LARGE',
  'ERR_GPU_CC_OFF',
  'ERR_GPU_MISSING',
  'ERR_GPU_READY',
  'ERR_INTERNAL',
  'ERR_INVALID_ARGUMENT',
  'ERR_LINK_ENCODE',
  'ERR_LISTEN',
  'ERR_LINK_STOPPED',
  'ERR_NAPI',
  'ERR_NATIVE_UNAVAILABLE',
  'ERR_NOT_APPRAISED',
  'ERR_NO_GPU',
  'ERR_NO_MEMORY',
  'ERR_NO_TEE',
  'ERR_NVML',
  'ERR_NVML_BAD_LENGTH',
  'ERR_NVML_UNAVAILABLE',
  'ERR_OUTBOX_CLOSED',
  'ERR_OUTBOX_IO',
  'ERR_PARSE',
  'ERR_PEERCRED',
  'ERR_PEERGROUPS',
  'ERR_PINNED_ROOT',
  'ERR_RIM_BUILD',
  'ERR_ROOT_INTEGRITY',
  'ERR_SD_NOTIFY',
  'ERR_SECRET',
  'ERR_SIMULATION',
  'ERR_SIM_UNAVAILABLE',
  'ERR_SNP_CERTS_TOO_LARGE',
  'ERR_SNP_CERTS_UNSTABLE',
  'ERR_SNP_DEVICE_ABSENT',
  'ERR_SNP_DEVICE_ACCESS',
  'ERR_SNP_FIRMWARE',
  'ERR_SNP_IOCTL',
  'ERR_SNP_REPORT_SIZE',
  'ERR_SNP_REPORT_STATUS',
  'ERR_SNP_UNAVAILABLE',
  'ERR_SNP_VMPCK_DISABLED',
  'ERR_SOCKET_IN_USE',
  'ERR_SOCKET_PATH',
  'ERR_STATE',
  'ERR_STEP_TIMEOUT',
  'ERR_STORE',
  'ERR_STORE_CONFLICT',
  'ERR_STORE_SCHEMA',
  'ERR_STOPPING',
  'ERR_TPM',
  'ERR_TPM_IO',
  'ERR_TPM_PCR_RACE',
  'ERR_TPM_TIMEOUT',
  'ERR_TPM_UNAVAILABLE',
  'ERR_TRUST_LOST',
  'ERR_TSM_ABSENT',
  'ERR_TSM_ACCESS',
  'ERR_TSM_IO',
  'ERR_TSM_NO_PROVIDER',
  'ERR_TSM_OUTBLOB_SIZE',
  'ERR_TSM_PRIVLEVEL',
  'ERR_TSM_PROVIDER',
  'ERR_TSM_RACE',
  'ERR_TSM_REPORT',
  'ERR_USAGE',
  'ERR_VERDICT',
  'ERR_VERIFY_WORKER',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

const CODE_SET: ReadonlySet<string> = new Set(ERROR_CODES);

/** True when `code` (e.g. from a native addon rejection) is one of the agent's error codes. */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && CODE_SET.has(code);
}

export class CvmError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** Malformed bytes or text: truncated, oversized, wrong magic, bad encoding. */
export class ParseError extends CvmError {
  /** Byte offset in the input where parsing failed, when known. */
  readonly offset: number | undefined;
  constructor(message: string, offset?: number, options?: { cause?: unknown }) {
    super('ERR_PARSE', offset === undefined ? message : `${message} (at offset ${offset})`, options);
    this.offset = offset;
  }
}

/** Bad command-line usage or unreadable input file (CLI exit code 2). */
export class UsageError extends CvmError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_USAGE', message, options);
  }
}

/** A device or OS interface failed (sev-guest, configfs-tsm, TPM, NVML). */
export class DeviceError extends CvmError {
  readonly details: Record<string, unknown>;
  constructor(code: ErrorCode, message: string, details: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(code, message, options);
    this.details = details;
  }
}

/** Configuration or policy file invalid. */
export class ConfigError extends CvmError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_CONFIG', message, options);
  }
}

/** Collateral missing or unusable (a certificate, CRL, RIM, OCSP response). */
export class CollateralError extends CvmError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_COLLATERAL', message, options);
  }
}

/**
 * A file refused by its size or type (never an I/O error: those propagate as the fs error, with its
 * `code`, for the caller to word). A ParseError, so the CLI prints it on one line with exit 2.
 */
export class InputFileError extends ParseError {
  constructor(
    readonly path: string,
    /** Why, without the path: "is a directory, expected a regular file", "… over the 1 MiB limit …". */
    readonly reason: string,
  ) {
    super(`${path}: ${reason}`);
    this.name = 'InputFileError';
  }
}

export type FetchFailure = 'timeout' | 'rate-limited' | 'not-found' | 'http' | 'network' | 'too-large' | 'invalid';

/** A collateral fetch that failed, with why (for metrics and branching) and the URL. */
export class CollateralFetchError extends CollateralError {
  readonly reason: FetchFailure;
  readonly url: string;
  readonly status: number | undefined;
  constructor(reason: FetchFailure, url: string, message: string, status?: number, options?: { cause?: unknown }) {
    super(message, options);
    this.reason = reason;
    this.url = url;
    this.status = status;
  }
}

/** A controller verdict this agent must not apply (unsolicited, replayed, badly signed). */
export class VerdictError extends CvmError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_VERDICT', message, options);
  }
}

/** An embedded root certificate does not match its pinned digest (a corrupted build). */
export class RootIntegrityError extends CvmError {
  constructor(message: string) {
    super('ERR_ROOT_INTEGRITY', message);
  }
}

/** A step of the attestation cycle ran past its time limit. */
export class StepTimeoutError extends CvmError {
  constructor(step: string, ms: number) {
    super('ERR_STEP_TIMEOUT', `${step} did not finish within ${ms} ms`);
  }
}

/**
 * The controller's store (docs/controller.md "Deployment"): ERR_STORE (a write or read failed; the
 * database is unreachable), ERR_STORE_SCHEMA (the database holds a schema newer than this controller
 * knows), ERR_STORE_CONFLICT (another controller moved an agent's stream on: this write is refused).
 */
export class StoreError extends CvmError {
  constructor(code: 'ERR_STORE' | 'ERR_STORE_CONFLICT' | 'ERR_STORE_SCHEMA', message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** A bug or broken invariant inside the agent (CLI exit code 70), not bad input or a failed check. */
export class InternalError extends CvmError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_INTERNAL', message, options);
  }
}
