/**
 * What crosses between the daemon's main thread and its verification worker (attest/verify-thread.ts,
 * attest/verify-worker.ts): the request and reply messages, bytes, and errors. Messages go through
 * the structured clone of node:worker_threads, which keeps plain objects, arrays, Maps, Sets, Dates and
 * typed arrays but turns a Buffer into a plain Uint8Array and an error into a bare Error; the two
 * helpers here undo both, so the verifier sees Buffers as it does in one thread, and a typed error
 * (agent/errors.ts) arrives as the same class with the same code and message.
 */
import {
  CollateralError,
  CollateralFetchError,
  ConfigError,
  CvmError,
  DeviceError,
  InputFileError,
  InternalError,
  ParseError,
  RootIntegrityError,
  StepTimeoutError,
  UsageError,
  VerdictError,
  isErrorCode,
} from '../errors.js';
import { TpmError } from '../formats/tpm/response-codes.js';
import type { EvidenceBundle } from '../formats/evidence-bundle.js';
import type { KeyObject } from 'node:crypto';
import type { BundleVerifyOptions } from './verify-bundle.js';

/**
 * Main thread -> worker: one bundle to verify with fully formed options (collateral already gathered),
 * or (simulation only) a batch of simulated reports to sign with the simulation's test keys.
 */
export type VerifyRequest =
  | { id: number; op: 'verify'; bundle: EvidenceBundle; opts: BundleVerifyOptions }
  | { id: number; op: 'sign'; jobs: { data: Uint8Array; key: KeyObject }[] };

/** Worker -> main thread: the result (a BundleResult, or the signatures in order), or the error thrown. */
export type VerifyReply = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: WireError };

/** An error as data: its class name, code, message, stack and own fields (offset, details, url, ...). */
export interface WireError {
  name: string;
  message: string;
  code?: string;
  stack?: string;
  fields: Record<string, unknown>;
}

/** Nesting deeper than this is not walked (our own bundles and results are a few levels deep). */
const MAX_DEPTH = 32;

/**
 * Every Uint8Array in a freshly received message, in place, as a Buffer over the same memory (no copy).
 * Only for values this thread owns (a structured clone it just received).
 */
export function withBuffers<T>(value: T, depth = 0): T {
  if (depth > MAX_DEPTH || value === null || typeof value !== 'object') return value;
  if (value instanceof Uint8Array) return (Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength)) as T;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = withBuffers(value[i], depth + 1);
    return value;
  }
  if (value instanceof Map) {
    for (const [k, v] of value) value.set(k, withBuffers(v, depth + 1));
    return value;
  }
  if (value instanceof Date || value instanceof Set || ArrayBuffer.isView(value)) return value;
  const o = value as Record<string, unknown>;
  for (const k of Object.keys(o)) o[k] = withBuffers(o[k], depth + 1);
  return value;
}

/** The classes of agent/errors.ts by name; an InputFileError (which names itself) included. */
const TYPED: Record<string, { prototype: CvmError }> = {
  CvmError,
  ParseError,
  UsageError,
  DeviceError,
  ConfigError,
  CollateralError,
  InputFileError,
  CollateralFetchError,
  VerdictError,
  RootIntegrityError,
  StepTimeoutError,
  InternalError,
  TpmError,
};

const BUILTIN: Record<string, ErrorConstructor> = { Error, TypeError, RangeError, SyntaxError, ReferenceError, EvalError, URIError };

/** Its own enumerable fields, in their order (a CvmError's code and name, offset, details, url, ...); not message, stack, cause. */
function ownFields(err: object): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  for (const k of Object.keys(err)) {
    if (k === 'message' || k === 'stack' || k === 'cause') continue;
    const v = (err as Record<string, unknown>)[k];
    if (v === null || ['string', 'number', 'boolean', 'undefined'].includes(typeof v)) fields[k] = v;
    else if (typeof v === 'object') {
      try {
        fields[k] = structuredClone(v);
      } catch {
        // not cloneable (a function, a handle): left out
      }
    }
  }
  return fields;
}

export function errorToWire(err: unknown): WireError {
  if (!(err instanceof Error)) return { name: 'Error', message: String(err), fields: {} };
  const w: WireError = { name: err.name, message: err.message, fields: ownFields(err) };
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') w.code = code;
  if (err.stack !== undefined) w.stack = err.stack;
  return w;
}

/**
 * The error as the receiving thread should see it: the same agent/errors.ts class (instanceof holds)
 * with the same code and message; other errors as the built-in class of their name.
 */
export function errorFromWire(w: WireError): Error {
  // A CvmError subclass this table does not know still arrives as a CvmError, under its own name.
  const typed = Object.hasOwn(TYPED, w.name) ? TYPED[w.name] : isErrorCode(w.code) ? CvmError : undefined;
  const hidden = (value: unknown) => ({ value, writable: true, configurable: true, enumerable: false });
  let err: Error;
  if (typed) {
    // Built without running the constructor (each class words its message its own way): the same
    // prototype, and the own fields a constructed one has (name and code enumerable, message not).
    err = Object.create(typed.prototype) as Error;
    Object.defineProperty(err, 'message', hidden(w.message));
  } else {
    err = new (Object.hasOwn(BUILTIN, w.name) ? BUILTIN[w.name]! : Error)(w.message);
    if (err.name !== w.name) Object.defineProperty(err, 'name', hidden(w.name));
  }
  const target = err as unknown as Record<string, unknown>;
  for (const [k, v] of Object.entries(w.fields)) if (k !== '__proto__') target[k] = v;
  if (w.code !== undefined && !Object.hasOwn(target, 'code')) target.code = w.code;
  if (typed && !Object.hasOwn(target, 'name')) target.name = w.name;
  if (w.stack !== undefined) Object.defineProperty(err, 'stack', hidden(w.stack));
  return err;
}
