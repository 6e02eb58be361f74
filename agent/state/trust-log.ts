/**
 * The trust history: every trust-loss trigger, recovery and consequence action, persisted next to the
 * cycle history as <stateDir>/trust-log.json (mode 0600), so an operator can see after a restart what
 * the agent did and why. Bounded in entries and in bytes per entry; written atomically, one write in
 * flight with later entries coalesced; read back strictly (the state directory is not trusted: a
 * file that does not validate is moved aside and the log starts empty).
 */
import { rename } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../util/atomic-file.js';
import { CoalescingWrite } from './coalescing-write.js';
import { readBoundedText } from '../util/bounded-read.js';
import { ParseError } from '../errors.js';
import { hasOnlyKeys, isBoundedString, isJsonObject } from '../util/json-fields.js';

export const TRUST_LOG_FILE = 'trust-log.json';
export const TRUST_LOG_ENTRIES = 256;
const MAX_DETAIL = 1024;

export interface TrustLogEntry {
  id: number;
  at: string;
  /** trigger: a trigger became active; recovery: it cleared; action: a consequence applied or undone. */
  kind: 'trigger' | 'recovery' | 'action';
  trigger: string;
  action?: string;
  phase?: 'apply' | 'undo';
  outcome?: 'done' | 'failed' | 'skipped';
  detail: string;
}

const KINDS = ['trigger', 'recovery', 'action'];
const PHASES = ['apply', 'undo'];
const OUTCOMES = ['done', 'failed', 'skipped'];
const ENTRY_KEYS = ['id', 'at', 'kind', 'trigger', 'action', 'phase', 'outcome', 'detail'];

function validEntry(o: unknown): TrustLogEntry | undefined {
  if (!isJsonObject(o) || !hasOnlyKeys(o, ENTRY_KEYS)) return undefined;
  if (!Number.isSafeInteger(o.id) || (o.id as number) < 1 || !isBoundedString(o.at, 64) || !Number.isFinite(Date.parse(o.at))) return undefined;
  if (!KINDS.includes(o.kind as string) || !isBoundedString(o.trigger, 64) || !isBoundedString(o.detail, MAX_DETAIL)) return undefined;
  const e: TrustLogEntry = { id: o.id as number, at: o.at, kind: o.kind as TrustLogEntry['kind'], trigger: o.trigger, detail: o.detail };
  if (o.action !== undefined) {
    if (!isBoundedString(o.action, 64)) return undefined;
    e.action = o.action;
  }
  if (o.phase !== undefined) {
    if (!PHASES.includes(o.phase as string)) return undefined;
    e.phase = o.phase as 'apply' | 'undo';
  }
  if (o.outcome !== undefined) {
    if (!OUTCOMES.includes(o.outcome as string)) return undefined;
    e.outcome = o.outcome as 'done' | 'failed' | 'skipped';
  }
  return e;
}

export class TrustLog {
  readonly path: string;
  private entries: TrustLogEntry[] = [];
  private lastId = 0;
  private readonly writer = new CoalescingWrite(() => this.writeDocument());

  constructor(
    stateDir: string,
    private readonly size = TRUST_LOG_ENTRIES,
    private readonly onProblem: (msg: string) => void = () => undefined,
  ) {
    this.path = join(stateDir, TRUST_LOG_FILE);
  }

  /** Call after the state directory exists (ResultHistory.load creates it). */
  async load(): Promise<void> {
    let text: string;
    try {
      text = await readBoundedText(this.path, 'trustLog');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      return this.setAside((err as Error).message);
    }
    try {
      const doc = JSON.parse(text) as { version?: unknown; entries?: unknown };
      if (doc.version !== 1 || !Array.isArray(doc.entries)) throw new ParseError('not a version 1 trust log');
      const entries = doc.entries.map((e, i) => {
        const v = validEntry(e);
        if (!v) throw new ParseError(`entry ${i} does not validate`);
        return v;
      });
      for (let i = 1; i < entries.length; i++) if (entries[i]!.id <= entries[i - 1]!.id) throw new ParseError(`entry ${i}: ids must grow`);
      this.entries = entries.slice(-this.size);
      this.lastId = this.entries.at(-1)?.id ?? 0;
    } catch (err) {
      await this.setAside((err as Error).message);
    }
  }

  private async setAside(reason: string): Promise<void> {
    const to = `${this.path}.corrupt-${Date.now()}`;
    await rename(this.path, to).catch(() => undefined);
    this.onProblem(`trust log ${this.path} unusable (${reason}); moved to ${to}, starting empty`);
  }

  append(entry: Omit<TrustLogEntry, 'id'>): Promise<void> {
    const e: TrustLogEntry = { ...entry, id: ++this.lastId, detail: entry.detail.slice(0, MAX_DETAIL) };
    this.entries.push(e);
    if (this.entries.length > this.size) this.entries.splice(0, this.entries.length - this.size);
    return this.writer.request();
  }

  /** Newest first. */
  list(limit = this.size): TrustLogEntry[] {
    return this.entries.slice(-Math.max(0, limit)).reverse();
  }

  async flushed(): Promise<void> {
    await this.writer.settled();
  }

  private writeDocument(): Promise<void> {
    return writeFileAtomic(this.path, `${JSON.stringify({ version: 1, entries: this.entries.slice() })}\n`, 0o600);
  }
}
