/**
 * One attestation cycle as kept in the persisted history, and a strict validator for records read
 * back from disk. The history file lives in the state directory, so its content is treated as
 * hostile: every field is checked, unknown keys are rejected, and validated records are rebuilt
 * from scratch (never spread from the parsed object) so nothing unexpected rides along.
 * Pure: unknown in, a record or a ParseError out.
 */
import { EAR_PROFILE, type Ear, type EarSubmod } from '../appraise/ear.js';
import { ParseError } from '../errors.js';
import type { Check, TrustStatus } from '../formats/checks.js';
import { isJsonObject, jsonReader } from '../util/json-fields.js';

export interface CycleError {
  code: string;
  message: string;
}

export interface CycleRecord {
  /** Strictly increasing over the life of the state directory (survives trimming and restarts). */
  id: number;
  /** ISO 8601 timestamps. */
  startedAt: string;
  finishedAt: string;
  /** Why the cycle ran: "schedule", "startup", "api", "controller", "retry", ... */
  reason: string;
  /** Overall verdict; a cycle that failed before appraisal is "none" with `error` set. */
  status: TrustStatus;
  /** The EAR the cycle produced; null only when the cycle failed before building one. */
  ear: Ear | null;
  error?: CycleError;
}

export type NewCycleRecord = Omit<CycleRecord, 'id'>;

const STATUSES: readonly TrustStatus[] = ['affirming', 'warning', 'contraindicated', 'none'];
const MAX_SHORT = 256;
export const MAX_TEXT = 8192;
const MAX_SUBMODS = 256;
const MAX_CHECKS = 4096;

type Obj = Record<string, unknown>;

const isObject = isJsonObject;
const read = jsonReader(
  (where, problem) => {
    throw new ParseError(`${where}: ${problem}`);
  },
  {
    object: 'expected an object',
    string: 'expected a string',
    tooLong: (max) => `longer than ${max} characters`,
    array: (max) => `expected an array of at most ${max}`,
    unexpectedKey: (key) => `unexpected key ${JSON.stringify(key.slice(0, 64))}`,
  },
);
const object = (v: unknown, where: string, allowed: readonly string[]): Obj => read.obj(v, where, allowed);
const str = (v: unknown, where: string, max = MAX_SHORT): string => read.str(v, where, max);

function status(v: unknown, where: string): TrustStatus {
  if (typeof v !== 'string' || !(STATUSES as readonly string[]).includes(v)) {
    throw new ParseError(`${where}: expected one of ${STATUSES.join(', ')}`);
  }
  return v as TrustStatus;
}

function timestamp(v: unknown, where: string): string {
  const s = str(v, where, 64);
  if (!Number.isFinite(Date.parse(s))) throw new ParseError(`${where}: not an ISO 8601 timestamp`);
  return s;
}

function validateCheck(v: unknown, where: string): Check {
  const o = object(v, where, ['name', 'ok', 'warning', 'detail']);
  if (typeof o.ok !== 'boolean') throw new ParseError(`${where}.ok: expected a boolean`);
  const check: Check = { name: str(o.name, `${where}.name`), ok: o.ok, detail: str(o.detail, `${where}.detail`, MAX_TEXT) };
  if (o.warning !== undefined) {
    if (typeof o.warning !== 'boolean') throw new ParseError(`${where}.warning: expected a boolean`);
    check.warning = o.warning;
  }
  return check;
}

function validateSubmod(v: unknown, where: string): EarSubmod {
  const o = object(v, where, ['ear.status', 'ear.trustworthiness-vector', 'ear.appraisal-policy-id', 'cvm.checks', 'cvm.simulated', 'cvm.claims', 'cvm.error']);
  const tv = object(o['ear.trustworthiness-vector'], `${where}.ear.trustworthiness-vector`, ['instance-identity', 'configuration', 'executables', 'hardware']);
  const vector: EarSubmod['ear.trustworthiness-vector'] = {};
  for (const [dim, value] of Object.entries(tv)) {
    // AR4SI trust claims are signed 8-bit integers (-128..127).
    if (typeof value !== 'number' || !Number.isInteger(value) || value < -128 || value > 127) {
      throw new ParseError(`${where}.ear.trustworthiness-vector.${dim}: expected an integer in -128..127`);
    }
    vector[dim as keyof typeof vector] = value;
  }
  const checks = o['cvm.checks'];
  if (!Array.isArray(checks) || checks.length > MAX_CHECKS) throw new ParseError(`${where}.cvm.checks: expected an array of at most ${MAX_CHECKS}`);
  const submod: EarSubmod = {
    'ear.status': status(o['ear.status'], `${where}.ear.status`),
    'ear.trustworthiness-vector': vector,
    'ear.appraisal-policy-id': str(o['ear.appraisal-policy-id'], `${where}.ear.appraisal-policy-id`),
    'cvm.checks': checks.map((c, i) => validateCheck(c, `${where}.cvm.checks[${i}]`)),
  };
  if (o['cvm.simulated'] !== undefined) {
    if (o['cvm.simulated'] !== true) throw new ParseError(`${where}.cvm.simulated: expected true when present`);
    submod['cvm.simulated'] = true;
  }
  if (o['cvm.error'] !== undefined) {
    const e = object(o['cvm.error'], `${where}.cvm.error`, ['code', 'message']);
    submod['cvm.error'] = { code: str(e.code, `${where}.cvm.error.code`, 64), message: str(e.message, `${where}.cvm.error.message`, MAX_TEXT) };
  }
  // Claims are verifier output kept for display only; re-serialising keeps them plain JSON data.
  if (o['cvm.claims'] !== undefined) submod['cvm.claims'] = o['cvm.claims'];
  return submod;
}

export function validateEar(v: unknown, where = 'ear'): Ear {
  const o = object(v, where, ['eat_profile', 'iat', 'eat_nonce', 'ear.verifier-id', 'ear.status', 'submods']);
  if (o.eat_profile !== EAR_PROFILE) throw new ParseError(`${where}.eat_profile: expected ${EAR_PROFILE}`);
  if (typeof o.iat !== 'number' || !Number.isSafeInteger(o.iat) || o.iat < 0) throw new ParseError(`${where}.iat: expected a non-negative integer`);
  const vid = object(o['ear.verifier-id'], `${where}.ear.verifier-id`, ['developer', 'build']);
  const submodsIn = object(o.submods, `${where}.submods`, Object.keys(isObject(o.submods) ? o.submods : {}));
  const names = Object.keys(submodsIn);
  if (names.length > MAX_SUBMODS) throw new ParseError(`${where}.submods: more than ${MAX_SUBMODS} entries`);
  // A null-prototype map: a submod called "__proto__" stays a plain key.
  const submods: Record<string, EarSubmod> = Object.create(null) as Record<string, EarSubmod>;
  for (const name of names) {
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(name)) throw new ParseError(`${where}.submods: bad submod name ${JSON.stringify(name.slice(0, 64))}`);
    submods[name] = validateSubmod(submodsIn[name], `${where}.submods.${name}`);
  }
  const ear: Ear = {
    eat_profile: EAR_PROFILE,
    iat: o.iat,
    'ear.verifier-id': { developer: str(vid.developer, `${where}.ear.verifier-id.developer`), build: str(vid.build, `${where}.ear.verifier-id.build`) },
    'ear.status': status(o['ear.status'], `${where}.ear.status`),
    submods,
  };
  if (o.eat_nonce !== undefined) ear.eat_nonce = str(o.eat_nonce, `${where}.eat_nonce`, 1024);
  return ear;
}

export function validateRecord(v: unknown, where = 'record'): CycleRecord {
  const o = object(v, where, ['id', 'startedAt', 'finishedAt', 'reason', 'status', 'ear', 'error']);
  if (typeof o.id !== 'number' || !Number.isSafeInteger(o.id) || o.id < 1) throw new ParseError(`${where}.id: expected a positive integer`);
  const record: CycleRecord = {
    id: o.id,
    startedAt: timestamp(o.startedAt, `${where}.startedAt`),
    finishedAt: timestamp(o.finishedAt, `${where}.finishedAt`),
    reason: str(o.reason, `${where}.reason`, 64),
    status: status(o.status, `${where}.status`),
    ear: o.ear === null ? null : validateEar(o.ear, `${where}.ear`),
  };
  if (o.error !== undefined) {
    const e = object(o.error, `${where}.error`, ['code', 'message']);
    record.error = { code: str(e.code, `${where}.error.code`, 64), message: str(e.message, `${where}.error.message`, MAX_TEXT) };
  }
  if (record.ear === null && record.error === undefined) throw new ParseError(`${where}: a record without an EAR must carry an error`);
  return record;
}

/** The on-disk document: a version tag so a later format can be told apart, and the records oldest first. */
export interface HistoryDocument {
  version: 1;
  records: CycleRecord[];
}

export function validateHistoryDocument(v: unknown): HistoryDocument {
  const o = object(v, 'history', ['version', 'records']);
  if (o.version !== 1) throw new ParseError('history.version: expected 1');
  if (!Array.isArray(o.records)) throw new ParseError('history.records: expected an array');
  const records = o.records.map((r, i) => validateRecord(r, `history.records[${i}]`));
  for (let i = 1; i < records.length; i++) {
    // Ids only grow: a repeat or a step back means the file was edited or assembled wrongly.
    if (records[i]!.id <= records[i - 1]!.id) throw new ParseError(`history.records[${i}].id: not greater than the previous id`);
  }
  return { version: 1, records };
}
