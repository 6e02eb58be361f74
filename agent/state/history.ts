/**
 * Persisted, bounded history of attestation cycles: <stateDir>/history.json (mode 0600).
 *
 * - Writes go through writeFileAtomic (temp + fsync + rename + dir fsync), so after a crash or
 *   kill -9 the file holds either the previous or the next complete list, never a torn one.
 * - One write is in flight at a time; appends that arrive meanwhile are coalesced into the next
 *   single write, so a burst of N appends costs at most two writes.
 * - `append()` resolves once a write that contains the record has reached the disk.
 * - A file that does not parse or validate (someone edited it; the atomic writes never produce one)
 *   is moved aside to history.json.corrupt-<ts> and reported through `onEvent`; the agent then
 *   starts with an empty history instead of refusing to start.
 */
import { mkdir, readFile, readdir, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { CvmError, ParseError } from '../errors.js';
import { writeFileAtomic } from '../util/atomic-file.js';
import { CoalescingWrite } from './coalescing-write.js';
import { MAX_TEXT, validateHistoryDocument, validateRecord, type CycleRecord, type HistoryDocument, type NewCycleRecord } from './record.js';

export type { CycleRecord, NewCycleRecord } from './record.js';

export const HISTORY_FILE = 'history.json';
/** Far above what historySize 10,000 of ordinary EARs needs; a bigger file is treated as corrupt. */
export const MAX_HISTORY_BYTES = 256 * 1024 * 1024;

export type HistoryEvent =
  | { kind: 'corrupt'; path: string; movedTo: string; reason: string }
  | { kind: 'stale-temp-removed'; path: string }
  | { kind: 'trimmed'; dropped: number };

export interface ResultHistoryOptions {
  stateDir: string;
  /** config state.historySize; the oldest records are dropped beyond it. */
  size?: number;
  /** Where the history reports what it did on its own (the daemon passes a pino logger adapter). */
  onEvent?: (event: HistoryEvent) => void;
  /** Injectable clock for the corrupt-file suffix (tests). */
  now?: () => Date;
}

export class ResultHistory {
  readonly path: string;
  private readonly stateDir: string;
  private readonly size: number;
  private readonly onEvent: (event: HistoryEvent) => void;
  private readonly now: () => Date;
  private records: CycleRecord[] = [];
  private lastId = 0;
  private loaded = false;
  private readonly writer = new CoalescingWrite(() => this.writeDocument());
  private writeCount = 0;

  constructor(opts: ResultHistoryOptions) {
    const size = opts.size ?? 100;
    if (!Number.isSafeInteger(size) || size < 1) throw new CvmError('ERR_STATE', `history size must be a positive integer, got ${size}`);
    this.stateDir = opts.stateDir;
    this.path = join(opts.stateDir, HISTORY_FILE);
    this.size = size;
    this.onEvent = opts.onEvent ?? (() => undefined);
    this.now = opts.now ?? (() => new Date());
  }

  /**
   * Reads the file. Missing: empty history. Corrupt: moved aside, reported, empty history.
   * Other I/O failures (permissions, a directory in the way) are real faults: CvmError ERR_STATE.
   */
  async load(): Promise<void> {
    await mkdir(this.stateDir, { recursive: true, mode: 0o700 }).catch((err: unknown) => {
      throw new CvmError('ERR_STATE', `cannot create state directory ${this.stateDir}: ${(err as Error).message}`, { cause: err });
    });
    await this.removeStaleTemps();
    const doc = await this.readDocument();
    let records = doc?.records ?? [];
    if (records.length > this.size) {
      this.onEvent({ kind: 'trimmed', dropped: records.length - this.size });
      records = records.slice(-this.size);
    }
    this.records = records;
    this.lastId = records.at(-1)?.id ?? 0;
    this.loaded = true;
  }

  /** Adds a record (its id is assigned here) and resolves when it is on disk. */
  async append(record: NewCycleRecord): Promise<CycleRecord> {
    if (!this.loaded) throw new CvmError('ERR_STATE', 'ResultHistory.append() called before load()');
    const full = toStorable(this.lastId + 1, record);
    this.lastId = full.id;
    this.records.push(full);
    if (this.records.length > this.size) this.records.splice(0, this.records.length - this.size);
    await this.writer.request();
    return full;
  }

  /** Completed writes of the file since construction (shows the coalescing; handy for metrics). */
  get writes(): number {
    return this.writeCount;
  }

  latest(): CycleRecord | undefined {
    return this.records.at(-1);
  }

  /** The most recent `limit` records, newest first. */
  list(limit = this.size): CycleRecord[] {
    if (!Number.isSafeInteger(limit) || limit < 0) throw new CvmError('ERR_STATE', `list limit must be a non-negative integer, got ${limit}`);
    return limit === 0 ? [] : this.records.slice(-limit).reverse();
  }

  /** Resolves when every append made so far is on disk. */
  async flushed(): Promise<void> {
    await this.writer.settled();
  }

  private writeDocument(): Promise<void> {
    const doc: HistoryDocument = { version: 1, records: this.records.slice() };
    return writeFileAtomic(this.path, JSON.stringify(doc) + '\n', 0o600).then(
      () => {
        this.writeCount++;
      },
      (err: unknown) => {
        throw new CvmError('ERR_STATE', `cannot write ${this.path}: ${(err as Error).message}`, { cause: err });
      },
    );
  }

  private async readDocument(): Promise<HistoryDocument | undefined> {
    let text: string;
    try {
      const info = await stat(this.path);
      if (!info.isFile()) throw new CvmError('ERR_STATE', `${this.path} is not a regular file`);
      if (info.size > MAX_HISTORY_BYTES) {
        await this.moveAside(`file is ${info.size} bytes, over the ${MAX_HISTORY_BYTES} byte limit`);
        return undefined;
      }
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      if (err instanceof CvmError) throw err;
      throw new CvmError('ERR_STATE', `cannot read ${this.path}: ${(err as Error).message}`, { cause: err });
    }
    try {
      return validateHistoryDocument(JSON.parse(text) as unknown);
    } catch (err) {
      const reason = err instanceof ParseError ? err.message : `invalid JSON: ${(err as Error).message}`;
      await this.moveAside(reason);
      return undefined;
    }
  }

  private async moveAside(reason: string): Promise<void> {
    const stamp = this.now().toISOString().replace(/[:.]/g, '-');
    const movedTo = `${this.path}.corrupt-${stamp}`;
    try {
      await rename(this.path, movedTo);
    } catch (err) {
      throw new CvmError('ERR_STATE', `cannot move corrupt ${this.path} aside: ${(err as Error).message}`, { cause: err });
    }
    this.onEvent({ kind: 'corrupt', path: this.path, movedTo, reason });
  }

  /** A kill -9 between writing and renaming leaves `.history.json.<pid>.<rand>.tmp` behind. */
  private async removeStaleTemps(): Promise<void> {
    const prefix = `.${HISTORY_FILE}.`;
    let names: string[];
    try {
      names = await readdir(this.stateDir);
    } catch (err) {
      throw new CvmError('ERR_STATE', `cannot list ${this.stateDir}: ${(err as Error).message}`, { cause: err });
    }
    for (const name of names) {
      if (!name.startsWith(prefix) || !name.endsWith('.tmp')) continue;
      const path = join(this.stateDir, name);
      await unlink(path).then(
        () => this.onEvent({ kind: 'stale-temp-removed', path }),
        () => undefined,
      );
    }
  }
}

/**
 * The record exactly as it will read back: a JSON round trip (drops undefined, rejects BigInt and
 * cycles) and the same validation load() applies, so append() can never write a file that the
 * next start would have to move aside. Over-long error messages are cut rather than refused.
 */
function toStorable(id: number, record: NewCycleRecord): CycleRecord {
  const candidate = {
    id,
    startedAt: record.startedAt,
    finishedAt: record.finishedAt,
    reason: record.reason,
    status: record.status,
    ear: record.ear,
    error: record.error && { code: record.error.code, message: String(record.error.message).slice(0, MAX_TEXT) },
  };
  let plain: unknown;
  try {
    plain = JSON.parse(JSON.stringify(candidate)) as unknown;
  } catch (err) {
    throw new CvmError('ERR_STATE', `cycle record is not plain JSON data: ${(err as Error).message}`, { cause: err });
  }
  try {
    return validateRecord(plain, 'record');
  } catch (err) {
    throw new CvmError('ERR_STATE', `cycle record rejected: ${(err as Error).message}`, { cause: err });
  }
}
