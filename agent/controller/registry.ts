/**
 * What the controller knows about each agent: connection state, the last verdict per device, the
 * keys it has attested, the event sequence (last seq, gaps, hashes of recent seqs, alarms) and
 * recent events. One JSON file per agent in stateDir (written atomically), so `resumeFrom` and
 * de-duplication survive a restart. Without stateDir the registry is memory-only.
 *
 * Bounds (docs/controller.md "Resource bounds"): a record is kept in memory only, and only while the
 * agent is connected, until the agent proves a key with verified evidence; only then is it written.
 * Each credential speaks for a bounded number of agent ids; inventories, event data kept in
 * recentEvents, gaps, hashes and alarms are bounded per record.
 */
import { createHash } from 'node:crypto';
import { mkdir, readdir } from 'node:fs/promises';
import { readBoundedText } from '../util/bounded-read.js';
import { join } from 'node:path';
import { calculateJwkThumbprint, type JWK } from 'jose';
import { writeFileAtomic } from '../util/atomic-file.js';
import { canonicalize } from '../util/jcs.js';
import type { TrustStatus } from '../formats/checks.js';
import type { Ear } from '../appraise/ear.js';
import type { PublicJwk } from '../formats/nonce-binding.js';
import { AGENT_ID } from './config.js';
import { ParseError } from '../errors.js';
import { eventsStored, gpuCountOf, gpuReadyFromEvent, type GpuReadyReport } from './agent-facts.js';

export const RECENT_EVENTS = 50;
export const MAX_GAPS = 100;
/** Attested keys remembered per agent (events from before an agent restart are signed with an older key). */
export const MAX_KEYS = 8;
/** Hashes of the most recent stored seqs kept per agent, so a conflicting resend is told from a duplicate. */
export const HASH_WINDOW = 256;
export const MAX_ALARMS = 20;
/** Event data kept per event in recentEvents; larger data is replaced by its size. */
export const MAX_RECENT_DATA_BYTES = 8 * 1024;
/** hello.inventory kept per agent (display only); a larger one is replaced by a note. */
export const MAX_INVENTORY_BYTES = 16 * 1024;

export type GapReason = 'missing' | 'dropped-by-agent' | 'unverifiable';
export interface Gap {
  from: number;
  to: number;
  /** 'missing' is only found in records written before strict ordering (seq == lastSeq + 1). */
  reason: GapReason;
  detail?: string;
}
export interface Alarm {
  at: string;
  seq: number;
  code: string;
  message: string;
}

export interface StoredEvent {
  seq: number;
  at: string;
  kind: string;
  data: unknown;
  receivedAt: string;
}

export interface Verdict {
  challengeId: string;
  at: string;
  status: TrustStatus;
  simulated: boolean;
  devices: Record<string, TrustStatus>;
  secretsReleased: string[];
  secretsDecision: string;
  tokenExpiresAt?: string;
  /** The TEE kind the appraised bundle names (cpu.kind), when it parsed. */
  teeKind?: string;
  /** How many GPUs the appraised bundle carries, when it parsed. */
  gpuCount?: number;
  /** The EAR claims as signed (for GET /v1/agents/{id}). */
  ear: Ear;
}

export interface AgentRecord {
  agentId: string;
  version?: string;
  inventory?: unknown;
  lastSeen?: string;
  lastSeq: number;
  gaps: Gap[];
  /** Short hashes of the last stored seqs: list[i] is seq `to - list.length + 1 + i` ('' inside a gap). */
  hashes?: { to: number; list: string[] };
  /** Conflicting duplicates and other stream alarms (newest last, bounded) and how many there were. */
  alarms?: Alarm[];
  alarmCount?: number;
  /** The credential (a label, never the secret) the agent proved its first key under. */
  credential?: string;
  /** Keys proven by verified bundles (newest first): thumbprint -> JWK. */
  attestedKeys: { jkt: string; jwk: PublicJwk; at: string }[];
  lastVerdict?: Verdict;
  lastRejection?: { at: string; code: string; message: string };
  recentEvents: StoredEvent[];
  /** The GPU ready state from the newest stored event that reports it (it may have left recentEvents). */
  gpuReady?: GpuReadyReport;
}

export interface AgentSummary {
  id: string;
  connected: boolean;
  lastSeen: string | null;
  lastSeq: number;
  gaps: number;
  alarms: number;
  status: TrustStatus;
  devices: Record<string, TrustStatus>;
  simulated: boolean;
  lastVerdictAt: string | null;
  lastRejection: { at: string; code: string; message: string } | null;
  /** hello.version of the agent's latest session. */
  version: string | null;
  /** From the last appraised evidence (null before any, or when it did not parse). */
  teeKind: string | null;
  gpus: number | null;
  /** As the agent last reported it in a stored event; null when it never did. */
  gpuReady: GpuReadyReport | null;
  /** Expiry of the last verdict's token. */
  tokenExpiresAt: string | null;
  /** Events stored: seqs 1..lastSeq less the gap ranges kept. */
  eventsStored: number;
}

/** What an event is compared by: SHA-256 of JCS({seq, at, kind, data}), first 128 bits, base64url. */
export function eventHash(ev: { seq: number; at: string; kind: string; data: unknown }): string {
  return createHash('sha256')
    .update(canonicalize({ seq: ev.seq, at: ev.at, kind: ev.kind, data: ev.data }))
    .digest()
    .subarray(0, 16)
    .toString('base64url');
}

/** hello.inventory as kept: itself when small, else a note (it is for display; the agent is not refused). */
export function boundedInventory(inventory: unknown): unknown {
  const bytes = Buffer.byteLength(JSON.stringify(inventory ?? null));
  return bytes <= MAX_INVENTORY_BYTES ? inventory : { omitted: `inventory of ${bytes} bytes is over the ${MAX_INVENTORY_BYTES}-byte limit` };
}

function boundedData(data: unknown): unknown {
  const bytes = Buffer.byteLength(JSON.stringify(data ?? null));
  return bytes <= MAX_RECENT_DATA_BYTES ? data : { omitted: `event data of ${bytes} bytes is not kept (limit ${MAX_RECENT_DATA_BYTES})` };
}

export async function keyThumbprint(jwk: PublicJwk): Promise<string> {
  const { kty, crv, x, y } = jwk;
  return calculateJwkThumbprint({ kty, crv, x, y } as JWK, 'sha256');
}

export class AgentRegistry {
  private readonly agents = new Map<string, AgentRecord>();
  private readonly connected = new Map<string, number>();
  /** Serialise writes per agent so an older state never overwrites a newer one. */
  private readonly writes = new Map<string, Promise<void>>();
  /** Records of agents that have not proven a key yet: memory only, dropped when they disconnect. */
  private readonly provisional = new Set<string>();
  /** Agent ids each credential speaks for (persisted records, and connected agents). */
  private readonly idsByCredential = new Map<string, Set<string>>();
  /** The credential of each connected agent's latest session. */
  private readonly liveCredential = new Map<string, string>();

  /** The most recent state write, when it failed (GET /healthz); cleared by the next one that succeeds. */
  lastWriteFailure: { at: string; agentId: string; error: string } | undefined;

  constructor(private readonly stateDir?: string) {}

  /** Load persisted records (bad files are skipped and reported, never fatal). */
  async load(onProblem: (file: string, why: string) => void = () => undefined): Promise<void> {
    if (!this.stateDir) return;
    await mkdir(this.stateDir, { recursive: true, mode: 0o700 });
    for (const name of await readdir(this.stateDir)) {
      if (!name.endsWith('.json')) continue;
      const id = name.slice(0, -5);
      if (!AGENT_ID.test(id)) continue;
      try {
        const rec = JSON.parse(await readBoundedText(join(this.stateDir, name), 'agentRecord')) as AgentRecord;
        if (
          rec.agentId !== id ||
          !Number.isSafeInteger(rec.lastSeq) ||
          rec.lastSeq < 0 ||
          !Array.isArray(rec.gaps) ||
          !Array.isArray(rec.attestedKeys) ||
          !Array.isArray(rec.recentEvents)
        ) {
          throw new ParseError('not an agent record');
        }
        this.agents.set(id, rec);
        if (typeof rec.credential === 'string') this.idsOf(rec.credential).add(id);
      } catch (err) {
        onProblem(name, (err as Error).message);
      }
    }
  }

  get(agentId: string): AgentRecord {
    let rec = this.agents.get(agentId);
    if (!rec) {
      rec = { agentId, lastSeq: 0, gaps: [], attestedKeys: [], recentEvents: [] };
      this.agents.set(agentId, rec);
      this.provisional.add(agentId);
    }
    return rec;
  }

  /** True while the agent has not proven a key with verified evidence (nothing about it is persisted). */
  isProvisional(agentId: string): boolean {
    return this.provisional.has(agentId);
  }

  private idsOf(credential: string): Set<string> {
    let ids = this.idsByCredential.get(credential);
    if (!ids) {
      ids = new Set();
      this.idsByCredential.set(credential, ids);
    }
    return ids;
  }

  /**
   * May `credential` speak for `agentId`? At most `cap` distinct ids per credential: the ids of
   * records it proved a key for, plus those connected with it now. Changes nothing (see admit).
   */
  mayAdmit(credential: string, agentId: string, cap: number): boolean {
    const ids = this.idsByCredential.get(credential);
    return ids === undefined || ids.has(agentId) || ids.size < cap;
  }

  /** mayAdmit, and when it may, count `agentId` for `credential` (an admitted session). */
  admit(credential: string, agentId: string, cap: number): boolean {
    if (!this.mayAdmit(credential, agentId, cap)) return false;
    this.idsOf(credential).add(agentId);
    return true;
  }

  /** The credential of the agent's live session (the one its next verified key is recorded under). */
  setLiveCredential(agentId: string, credential: string): void {
    this.liveCredential.set(agentId, credential);
  }

  /** How many agent ids `credential` speaks for now. */
  idsFor(credential: string): number {
    return this.idsByCredential.get(credential)?.size ?? 0;
  }

  has(agentId: string): boolean {
    return this.agents.has(agentId);
  }

  /** Agent ids with a live session now. */
  connectedCount(): number {
    return this.connected.size;
  }

  isConnected(agentId: string): boolean {
    return (this.connected.get(agentId) ?? 0) > 0;
  }

  setConnected(agentId: string, up: boolean): void {
    const n = (this.connected.get(agentId) ?? 0) + (up ? 1 : -1);
    if (n > 0) {
      this.connected.set(agentId, n);
      return;
    }
    this.connected.delete(agentId);
    const credential = this.liveCredential.get(agentId);
    this.liveCredential.delete(agentId);
    if (this.provisional.has(agentId)) {
      // Never proved a key: forget it (it was never written), and free its place under the credential.
      this.provisional.delete(agentId);
      this.agents.delete(agentId);
      if (credential !== undefined) this.idsByCredential.get(credential)?.delete(agentId);
    }
  }

  touch(agentId: string, now: Date): void {
    this.get(agentId).lastSeen = now.toISOString();
  }

  async rememberKey(agentId: string, jwk: PublicJwk, now: Date): Promise<void> {
    const rec = this.get(agentId);
    const jkt = await keyThumbprint(jwk);
    const { kty, crv, x, y } = jwk;
    rec.attestedKeys = [{ jkt, jwk: { kty, crv, x, y }, at: now.toISOString() }, ...rec.attestedKeys.filter((k) => k.jkt !== jkt)].slice(0, MAX_KEYS);
    // Verified evidence: from now on the record is kept and written, and counts for its credential.
    this.provisional.delete(agentId);
    const credential = this.liveCredential.get(agentId);
    if (credential !== undefined && rec.credential !== credential) {
      if (rec.credential !== undefined) this.idsByCredential.get(rec.credential)?.delete(agentId);
      rec.credential = credential;
      this.idsOf(credential).add(agentId);
    }
  }

  /** The hash kept for a stored seq, '' for a seq inside a gap, undefined when outside the window. */
  hashOf(rec: AgentRecord, seq: number): string | undefined {
    const h = rec.hashes;
    if (!h || seq > h.to) return undefined;
    const i = h.list.length - 1 - (h.to - seq);
    return i >= 0 ? h.list[i] : undefined;
  }

  private pushHashes(rec: AgentRecord, from: number, to: number, hash: string): void {
    const prev = rec.hashes && rec.hashes.to === from - 1 ? rec.hashes.list : [];
    const n = Math.min(to - from + 1, HASH_WINDOW);
    const added = Array.from({ length: n }, (_, k) => (k === n - 1 ? hash : ''));
    rec.hashes = { to, list: [...prev, ...added].slice(-HASH_WINDOW) };
  }

  /**
   * Record an event by seq. Only the next seq (lastSeq + 1) is stored; at or below lastSeq it is a
   * duplicate, or a conflict when a different event was stored under that seq (the caller raises
   * the alarm); above it nothing happens ('out-of-order': the caller holds it until its turn).
   */
  recordEvent(agentId: string, ev: Omit<StoredEvent, 'receivedAt'>, now: Date): 'stored' | 'duplicate' | 'conflict' | 'out-of-order' {
    const rec = this.get(agentId);
    const hash = eventHash(ev);
    if (ev.seq <= rec.lastSeq) {
      const known = this.hashOf(rec, ev.seq);
      return known && known !== hash ? 'conflict' : 'duplicate';
    }
    if (ev.seq !== rec.lastSeq + 1) return 'out-of-order';
    rec.lastSeq = ev.seq;
    this.pushHashes(rec, ev.seq, ev.seq, hash);
    const ready = gpuReadyFromEvent(ev);
    if (ready) rec.gpuReady = ready;
    rec.recentEvents = [{ seq: ev.seq, at: ev.at, kind: ev.kind, data: boundedData(ev.data), receivedAt: now.toISOString() }, ...rec.recentEvents].slice(
      0,
      RECENT_EVENTS,
    );
    return 'stored';
  }

  /**
   * The seqs from lastSeq + 1 through `to` will never be stored: record them as a gap and move
   * past them. `hash` (one-seq gaps of an unverifiable event) is kept so a resend of that same
   * event is a duplicate and a different one a conflict.
   */
  declareGap(agentId: string, to: number, reason: GapReason, detail: string | undefined, hash = ''): void {
    const rec = this.get(agentId);
    const from = rec.lastSeq + 1;
    if (to < from) return;
    rec.gaps = subtractRange(rec.gaps, from, to);
    const last = rec.gaps[rec.gaps.length - 1];
    if (last && last.to === from - 1 && last.reason === reason && last.detail === detail) last.to = to;
    else rec.gaps = [...rec.gaps, { from, to, reason, ...(detail !== undefined ? { detail } : {}) }].slice(-MAX_GAPS);
    rec.lastSeq = to;
    this.pushHashes(rec, from, to, hash);
  }

  /** A stream alarm (e.g. a conflicting duplicate): kept (bounded) and counted in the record. */
  alarm(agentId: string, alarm: Alarm): void {
    const rec = this.get(agentId);
    rec.alarms = [...(rec.alarms ?? []), alarm].slice(-MAX_ALARMS);
    rec.alarmCount = (rec.alarmCount ?? 0) + 1;
  }

  summaries(): AgentSummary[] {
    return [...this.agents.values()].sort((a, b) => a.agentId.localeCompare(b.agentId)).map((r) => this.summary(r));
  }

  summary(r: AgentRecord): AgentSummary {
    return {
      id: r.agentId,
      connected: this.isConnected(r.agentId),
      lastSeen: r.lastSeen ?? null,
      lastSeq: r.lastSeq,
      gaps: r.gaps.length,
      alarms: r.alarmCount ?? 0,
      status: r.lastVerdict?.status ?? 'none',
      devices: r.lastVerdict?.devices ?? {},
      simulated: r.lastVerdict?.simulated ?? false,
      lastVerdictAt: r.lastVerdict?.at ?? null,
      lastRejection: r.lastRejection ?? null,
      version: r.version ?? null,
      teeKind: r.lastVerdict?.teeKind ?? null,
      gpus: gpuCountOf(r.lastVerdict),
      gpuReady: r.gpuReady ?? null,
      tokenExpiresAt: r.lastVerdict?.tokenExpiresAt ?? null,
      eventsStored: eventsStored(r.lastSeq, r.gaps),
    };
  }

  /** Persist one agent's record (atomic replace; writes to one agent are serialised). */
  persist(agentId: string): Promise<void> {
    // After close() a late handler must not overwrite what a new instance may already have loaded;
    // rejecting also keeps its events unacked, so the agent resends them.
    if (this.closed) return Promise.reject(new Error('controller registry is closed'));
    // Nothing is written for an id that never proved a key (any peer with a credential could mint ids).
    if (!this.stateDir || this.provisional.has(agentId)) return Promise.resolve();
    const dir = this.stateDir;
    const prev = this.writes.get(agentId) ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(() => writeFileAtomic(join(dir, `${agentId}.json`), `${JSON.stringify(this.get(agentId), null, 1)}\n`));
    this.writes.set(agentId, next);
    next.then(
      () => (this.lastWriteFailure = undefined),
      (err: NodeJS.ErrnoException) => (this.lastWriteFailure = { at: new Date().toISOString(), agentId, error: err.code ?? err.message }),
    );
    return next;
  }

  /** Wait for pending writes (shutdown). */
  async flush(): Promise<void> {
    await Promise.allSettled([...this.writes.values()]);
  }

  private closed = false;

  /** Refuse further writes, then wait for the pending ones (controller shutdown). */
  async close(): Promise<void> {
    this.closed = true;
    await this.flush();
  }
}

/** Remove [from, to] from the "missing" gaps (splitting one that straddles it); declared drops stay. */
export function subtractRange(gaps: Gap[], from: number, to: number): Gap[] {
  return gaps.flatMap((g) => {
    if (g.reason !== 'missing' || g.to < from || g.from > to) return [g];
    const rest: Gap[] = [];
    if (g.from < from) rest.push({ from: g.from, to: from - 1, reason: 'missing' });
    if (g.to > to) rest.push({ from: to + 1, to: g.to, reason: 'missing' });
    return rest;
  });
}
