/**
 * Typed errors. Every error the agent raises on purpose is a CvmError with a stable `code`,
 * so callers (CLI exit codes, API problem+json, tests) can branch on it without parsing messages.
 */
export class CvmError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
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
  constructor(code: string, message: string, details: Record<string, unknown> = {}, options?: { cause?: unknown }) {
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
