/**
 * Persisted, bounded history of attestation cycles: <stateDir>/history.jsonl (mode 0600), one
 * checksummed line per cycle (history-log.ts).
 *
 * - A cycle writes only its own line: append + fdatasync. `append()` resolves once that line (or a
 *   rewrite holding it) has reached the disk. One write is in flight at a time; appends that arrive
 *   meanwhile are coalesced into the next single write, so a burst of N appends costs at most two.
 * - Bounded: memory holds the newest `size` records as their encoded lines (ASCII, history-log.ts) and a
 *   summary of each (`recent()`, what the daemon's status shows); `list()` and `latest()` decode lines
 *   on demand. A parsed record (an EAR with every check) would take about as much again as its line,
 *   for data that only the file and the occasional `list()` need. The file is compacted (rewritten whole through
 *   writeFileAtomic: temp + fsync + rename + dir fsync) once it holds `size` lines beyond those, or
 *   COMPACT_AT_BYTES. Compaction runs as its own write after the append that passed the cap has
 *   resolved, so no cycle waits for it.
 * - Crash safety: a kill -9 can leave only a torn LAST line (an append cut short) or a compaction
 *   temp file; load() drops the first (truncating it away, reported) and removes the second. A bad
 *   line anywhere else, or a file that does not validate, is moved aside to history.jsonl.corrupt-<ts>
 *   and reported through `onEvent`; the agent then starts with an empty history.
 * - A write that fails (disk full, directory gone) may have left part of a line: the next write is a
 *   full rewrite of what memory holds, so the records of the failed append reach the disk too.
 * - Upgrade: the history.json of earlier versions (one JSON document) is read once, with the same
 *   limits and validation, written out as history.jsonl, and removed.
 */
import { mkdir, open, readFile, readdir, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { CvmError, ParseError } from '../errors.js';
import { writeFileAtomic } from '../util/atomic-file.js';
import { CoalescingWrite } from './coalescing-write.js';
import { decodeHistoryLine, encodeHistoryLine, isAsciiLine, parseHistoryLog } from './history-log.js';
import { MAX_TEXT, validateHistoryDocument, validateRecord, type CycleRecord, type NewCycleRecord } from './record.js';

export type { CycleRecord, NewCycleRecord } from './record.js';

/** What `GET /v1/status` lists of a cycle (`recent`); the whole record stays in its line. */
export type CycleSummary = Pick<CycleRecord, 'id' | 'startedAt' | 'finishedAt' | 'reason' | 'status'>;

const summaryOf = (r: CycleRecord): CycleSummary => ({ id: r.id, startedAt: r.startedAt, finishedAt: r.finishedAt, reason: r.reason, status: r.status });

export const HISTORY_FILE = 'history.jsonl';
/** The single-document file of earlier versions, migrated at the first start. */
export const LEGACY_HISTORY_FILE = 'history.json';
/** Far above what historySize 10,000 of ordinary EARs needs; a bigger file is treated as corrupt. */
export const MAX_HISTORY_BYTES = 256 * 1024 * 1024;
/** The file is compacted once it grows past this, so it stays well inside the read cap. */
export const COMPACT_AT_BYTES = MAX_HISTORY_BYTES / 2;

export type HistoryEvent =
  | { kind: 'corrupt'; path: string; movedTo: string; reason: string }
  | { kind: 'stale-temp-removed'; path: string }
  | { kind: 'trimmed'; dropped: number }
  | { kind: 'torn-tail-dropped'; path: string; bytes: number }
  | { kind: 'migrated'; from: string; to: string; records: number }
  | { kind: 'compact-failed'; path: string; reason: string };

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
  private readonly legacyPath: string;
  private readonly stateDir: string;
  private readonly size: number;
  private readonly onEvent: (event: HistoryEvent) => void;
  private readonly now: () => Date;
  /** The kept records, oldest first, as summaries and, parallel to them, as encoded lines (compaction only joins strings). */
  private summaries: CycleSummary[] = [];
  private lines: string[] = [];
  private lastId = 0;
  private loaded = false;
  /** Lines not written yet (each also in `lines`). */
  private pending: string[] = [];
  /** What the file holds: lines and bytes, whole lines only. */
  private fileLines = 0;
  private fileBytes = 0;
  /** The file's directory entry is durable (so an fdatasync of the file is enough). */
  private fileOnDisk = false;
  /** A write failed part-way: the file may end in a partial line, so the next write rewrites it. */
  private needsRewrite = false;
  private fh: FileHandle | undefined;
  private readonly writer = new CoalescingWrite(() => this.write());
  private writeCount = 0;

  constructor(opts: ResultHistoryOptions) {
    const size = opts.size ?? 100;
    if (!Number.isSafeInteger(size) || size < 1) throw new CvmError('ERR_STATE', `history size must be a positive integer, got ${size}`);
    this.stateDir = opts.stateDir;
    this.path = join(opts.stateDir, HISTORY_FILE);
    this.legacyPath = join(opts.stateDir, LEGACY_HISTORY_FILE);
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
    const log = await this.readLog();
    let records: CycleRecord[];
    // The lines as read are kept when they are what encodeHistoryLine writes (ASCII), so a restart does not re-encode them.
    let lines: (string | undefined)[];
    if (log === undefined) {
      records = (await this.readLegacy()) ?? [];
      lines = [];
    } else {
      ({ records, lines } = log);
      // history.jsonl exists, so a history.json beside it is what a migration left before its unlink.
      await unlink(this.legacyPath).catch(() => undefined);
    }
    if (records.length > this.size) {
      this.onEvent({ kind: 'trimmed', dropped: records.length - this.size });
      records = records.slice(-this.size);
      lines = lines.slice(-this.size);
    }
    this.summaries = records.map(summaryOf);
    this.lines = records.map((r, i) => {
      const line = lines[i];
      return line !== undefined && isAsciiLine(line) ? line : encodeHistoryLine(r);
    });
    this.lastId = records.at(-1)?.id ?? 0;
    this.loaded = true;
  }

  /** Adds a record (its id is assigned here) and resolves when it is on disk. */
  async append(record: NewCycleRecord): Promise<CycleRecord> {
    if (!this.loaded) throw new CvmError('ERR_STATE', 'ResultHistory.append() called before load()');
    const full = toStorable(this.lastId + 1, record);
    const line = encodeHistoryLine(full);
    this.lastId = full.id;
    this.summaries.push(summaryOf(full));
    this.lines.push(line);
    this.pending.push(line);
    if (this.lines.length > this.size) {
      this.summaries.splice(0, this.summaries.length - this.size);
      this.lines.splice(0, this.lines.length - this.size);
    }
    await this.writer.request();
    return full;
  }

  /** Completed writes of the file since construction (shows the coalescing; handy for metrics). */
  get writes(): number {
    return this.writeCount;
  }

  latest(): CycleRecord | undefined {
    const line = this.lines.at(-1);
    return line === undefined ? undefined : decodeHistoryLine(line);
  }

  /** The most recent `limit` records, newest first (decoded from their lines). */
  list(limit = this.size): CycleRecord[] {
    return this.newest(this.lines, limit).map(decodeHistoryLine);
  }

  /** The most recent `limit` records' summaries, newest first: what status shows, without decoding a line. */
  recent(limit = this.size): CycleSummary[] {
    return this.newest(this.summaries, limit);
  }

  private newest<T>(items: T[], limit: number): T[] {
    if (!Number.isSafeInteger(limit) || limit < 0) throw new CvmError('ERR_STATE', `list limit must be a non-negative integer, got ${limit}`);
    return limit === 0 ? [] : items.slice(-limit).reverse();
  }

  /** Resolves when every append made so far is on disk (and a compaction it started has ended). */
  async flushed(): Promise<void> {
    await this.writer.settled();
  }

  /** One write: the pending lines appended, or the whole file rewritten when it must be. */
  private async write(): Promise<void> {
    if (this.needsRewrite || this.overCap()) {
      const mustSucceed = this.needsRewrite;
      try {
        await this.rewrite();
      } catch (err) {
        if (mustSucceed) throw new CvmError('ERR_STATE', `cannot write ${this.path}: ${(err as Error).message}`, { cause: err });
        // A compaction that failed left the log whole: report it, append as usual, retry at the next write.
        this.onEvent({ kind: 'compact-failed', path: this.path, reason: (err as Error).message });
        if (this.pending.length > 0) await this.appendPending();
      }
    } else if (this.pending.length > 0) {
      await this.appendPending();
    } else {
      return;
    }
    this.writeCount++;
    // Off the hot path: the append that passed the cap resolves now; compaction is the next write.
    if (this.overCap()) void this.writer.request().catch(() => undefined);
  }

  private overCap(): boolean {
    return this.fileLines - this.lines.length >= this.size || this.fileBytes > COMPACT_AT_BYTES;
  }

  private async appendPending(): Promise<void> {
    const text = this.pending.join('');
    const count = this.pending.length;
    this.pending = [];
    try {
      this.fh ??= await open(this.path, 'a', 0o600);
      await this.fh.write(text);
      await this.fh.datasync();
      // A file created by this append: its directory entry must be durable too.
      if (!this.fileOnDisk) await syncDir(this.stateDir);
    } catch (err) {
      this.needsRewrite = true;
      await this.fh?.close().catch(() => undefined);
      this.fh = undefined;
      throw new CvmError('ERR_STATE', `cannot write ${this.path}: ${(err as Error).message}`, { cause: err });
    }
    this.fileOnDisk = true;
    this.fileLines += count;
    this.fileBytes += Buffer.byteLength(text);
  }

  /** Replaces the file with the records memory holds (which include every pending line). */
  private async rewrite(): Promise<void> {
    // Later appends must go to the new file, not to the inode the rename replaces.
    await this.fh?.close().catch(() => undefined);
    this.fh = undefined;
    const text = this.lines.join('');
    const count = this.lines.length;
    // Appends made during the write stay pending for the next one.
    const covered = this.pending.length;
    await writeFileAtomic(this.path, text, 0o600);
    this.pending.splice(0, covered);
    this.needsRewrite = false;
    this.fileOnDisk = true;
    this.fileLines = count;
    this.fileBytes = Buffer.byteLength(text);
  }

  /** history.jsonl: undefined when missing or moved aside as corrupt; a torn last line is cut off. */
  private async readLog(): Promise<{ records: CycleRecord[]; lines: string[] } | undefined> {
    const data = await this.readCapped(this.path);
    if (data === undefined) return undefined;
    let parsed: ReturnType<typeof parseHistoryLog>;
    try {
      parsed = parseHistoryLog(data);
    } catch (err) {
      await this.moveAside(this.path, err instanceof ParseError ? err.message : (err as Error).message);
      return undefined;
    }
    if (parsed.tornBytes > 0) {
      // Cut it off before the next append, or that line would follow the garbage and read as corrupt.
      try {
        const fh = await open(this.path, 'r+');
        try {
          await fh.truncate(parsed.goodBytes);
          await fh.datasync();
        } finally {
          await fh.close();
        }
      } catch (err) {
        throw new CvmError('ERR_STATE', `cannot truncate the torn end of ${this.path}: ${(err as Error).message}`, { cause: err });
      }
      this.onEvent({ kind: 'torn-tail-dropped', path: this.path, bytes: parsed.tornBytes });
    }
    this.fileOnDisk = true;
    this.fileLines = parsed.records.length;
    this.fileBytes = parsed.goodBytes;
    return { records: parsed.records, lines: parsed.lines };
  }

  /** history.json of earlier versions: validated as before, written out as history.jsonl, removed. */
  private async readLegacy(): Promise<CycleRecord[] | undefined> {
    const data = await this.readCapped(this.legacyPath);
    if (data === undefined) return undefined;
    let records: CycleRecord[];
    try {
      records = validateHistoryDocument(JSON.parse(Buffer.from(data).toString('utf8')) as unknown).records;
    } catch (err) {
      const reason = err instanceof ParseError ? err.message : `invalid JSON: ${(err as Error).message}`;
      await this.moveAside(this.legacyPath, reason);
      return undefined;
    }
    // The new file is durable before the old one goes: a crash in between migrates again, losing nothing.
    this.lines = records.map(encodeHistoryLine);
    try {
      await this.rewrite();
      await unlink(this.legacyPath);
      await syncDir(this.stateDir);
    } catch (err) {
      throw new CvmError('ERR_STATE', `cannot migrate ${this.legacyPath} to ${this.path}: ${(err as Error).message}`, { cause: err });
    }
    this.onEvent({ kind: 'migrated', from: this.legacyPath, to: this.path, records: records.length });
    return records;
  }

  /** A regular file within MAX_HISTORY_BYTES; undefined when missing or moved aside for its size. */
  private async readCapped(path: string): Promise<Uint8Array | undefined> {
    try {
      const info = await stat(path);
      if (!info.isFile()) throw new CvmError('ERR_STATE', `${path} is not a regular file`);
      if (info.size > MAX_HISTORY_BYTES) {
        await this.moveAside(path, `file is ${info.size} bytes, over the ${MAX_HISTORY_BYTES} byte limit`);
        return undefined;
      }
      return await readFile(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      if (err instanceof CvmError) throw err;
      throw new CvmError('ERR_STATE', `cannot read ${path}: ${(err as Error).message}`, { cause: err });
    }
  }

  private async moveAside(path: string, reason: string): Promise<void> {
    const stamp = this.now().toISOString().replace(/[:.]/g, '-');
    const movedTo = `${path}.corrupt-${stamp}`;
    try {
      await rename(path, movedTo);
    } catch (err) {
      throw new CvmError('ERR_STATE', `cannot move corrupt ${path} aside: ${(err as Error).message}`, { cause: err });
    }
    this.onEvent({ kind: 'corrupt', path, movedTo, reason });
  }

  /** A kill -9 between writing and renaming leaves `.history.jsonl.<pid>.<rand>.tmp` (or `.history.json.`) behind. */
  private async removeStaleTemps(): Promise<void> {
    const prefixes = [`.${HISTORY_FILE}.`, `.${LEGACY_HISTORY_FILE}.`];
    let names: string[];
    try {
      names = await readdir(this.stateDir);
    } catch (err) {
      throw new CvmError('ERR_STATE', `cannot list ${this.stateDir}: ${(err as Error).message}`, { cause: err });
    }
    for (const name of names) {
      if (!prefixes.some((p) => name.startsWith(p)) || !name.endsWith('.tmp')) continue;
      const path = join(this.stateDir, name);
      await unlink(path).then(
        () => this.onEvent({ kind: 'stale-temp-removed', path }),
        () => undefined,
      );
    }
  }
}

async function syncDir(dir: string): Promise<void> {
  const dh = await open(dir, 'r');
  try {
    await dh.sync();
  } finally {
    await dh.close();
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
