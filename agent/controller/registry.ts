/**
 * What the controller knows about each agent: connection state, the last verdict per device, the
 * keys it has attested, the event sequence (last seq, gaps, hashes of recent seqs, alarms) and
 * recent events. Records are written through the controller's store (store/controller-store.ts: one
 * JSON file per agent in stateDir by default, or PostgreSQL), with what changed since the last write
 * (events, gaps, alarms, keys, verdicts, secret releases) in the same write, so `resumeFrom` and
 * de-duplication survive a restart. Without a stateDir or store the registry is memory-only.
 * An event is acknowledged only up to `ackableSeq`: what the store has committed.
 *
 * Bounds (docs/controller.md "Resource bounds"): a record is kept in memory only, and only while the
 * agent is connected, until the agent proves a key with verified evidence; only then is it written.
 * Each credential speaks for a bounded number of agent ids; inventories, event data kept in
 * recentEvents, gaps, hashes and alarms are bounded per record.
 */
import { createHash } from 'node:crypto';
import { canonicalize } from '../util/jcs.js';
import { ecJwkThumbprint } from '../util/jwk-thumbprint.js';
import type { TrustStatus } from '../formats/checks.js';
import type { Ear } from '../appraise/ear.js';
import type { PublicJwk } from '../formats/nonce-binding.js';
import { StoreError } from '../errors.js';
import { emptyDelta, isEmptyDelta, type AgentDelta, type ControllerStore, type SecretRelease } from './store/controller-store.js';
import { FileStore } from './store/file-store.js';
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

/** The RFC 7638 thumbprint (jkt) of an agent key. */
export function keyThumbprint(jwk: PublicJwk): string {
  return ecJwkThumbprint(jwk);
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

  readonly store: ControllerStore;
  /** What changed per agent since its last write (written with the record, atomically). */
  private readonly deltas = new Map<string, AgentDelta>();
  /** lastSeq of each agent's record as last written (what the store has committed). */
  private readonly committed = new Map<string, number>();

  /** A stateDir (the embedded file store), a store, or nothing (memory only). */
  constructor(store?: string | ControllerStore) {
    this.store = typeof store === 'object' ? store : new FileStore(store);
  }

  /** Load persisted records (bad ones are skipped and reported, never fatal). */
  async load(onProblem: (file: string, why: string) => void = () => undefined): Promise<void> {
    for (const rec of await this.store.loadAgents(onProblem)) this.adopt(rec);
  }

  private adopt(rec: AgentRecord): void {
    const old = this.agents.get(rec.agentId);
    if (old?.credential !== undefined) this.idsByCredential.get(old.credential)?.delete(rec.agentId);
    this.agents.set(rec.agentId, rec);
    this.provisional.delete(rec.agentId);
    this.deltas.delete(rec.agentId);
    this.committed.set(rec.agentId, rec.lastSeq);
    if (typeof rec.credential === 'string') this.idsOf(rec.credential).add(rec.agentId);
  }

  /**
   * A shared store: take the agent's record as stored now (another replica may have moved it on)
   * before this controller's session for it stores anything. Waits for this controller's own
   * pending write of the record first. No-op for the embedded store (this process is the only writer).
   */
  async refresh(agentId: string): Promise<void> {
    if (!this.store.shared) return;
    await this.writes.get(agentId)?.catch(() => undefined);
    const stored = await this.store.loadAgent(agentId);
    // Changes this controller could not write are dropped with its copy: their events were never
    // acknowledged (ackableSeq), so the agent sends them again.
    if (stored) this.adopt(stored);
  }

  /**
   * The fleet list as the store has it now (a shared store: the whole fleet, whichever replica
   * serves it), `connected` per `live` (agents with a lease) or a session here.
   */
  async storedSummaries(live: ReadonlySet<string> = new Set()): Promise<AgentSummary[]> {
    if (!this.store.shared || !this.store.loadSummaries) return this.summaries();
    const byId = new Map((await this.store.loadSummaries()).map((s) => [s.id, { ...s, connected: live.has(s.id) || this.isConnected(s.id) }]));
    // This replica's live sessions: its own copy is at least as new (and an agent that has not
    // proven a key yet is shown while connected, as on the embedded store).
    for (const id of this.connected.keys()) {
      const mine = this.agents.get(id);
      if (mine) byId.set(id, this.summary(mine, true));
    }
    return [...byId.values()].sort((a, b) => a.id.localeCompare(b.id));
  }

  private delta(agentId: string): AgentDelta {
    let d = this.deltas.get(agentId);
    if (!d) {
      d = emptyDelta();
      this.deltas.set(agentId, d);
    }
    return d;
  }

  /** Something about the agent is recorded and not yet written. */
  hasPending(agentId: string): boolean {
    const d = this.deltas.get(agentId);
    return d !== undefined && !isEmptyDelta(d);
  }

  /**
   * The highest seq that may be acknowledged: what the store has committed (memory only, or a record
   * that is not written because it never proved a key: what is recorded).
   */
  ackableSeq(agentId: string): number {
    const rec = this.get(agentId);
    if (!this.store.durable || this.provisional.has(agentId)) return rec.lastSeq;
    return Math.min(rec.lastSeq, this.committed.get(agentId) ?? 0);
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
      this.deltas.delete(agentId);
      if (credential !== undefined) this.idsByCredential.get(credential)?.delete(agentId);
    }
  }

  touch(agentId: string, now: Date): void {
    this.get(agentId).lastSeen = now.toISOString();
  }

  async rememberKey(agentId: string, jwk: PublicJwk, now: Date): Promise<void> {
    const rec = this.get(agentId);
    const jkt = keyThumbprint(jwk);
    const { kty, crv, x, y } = jwk;
    const key = { jkt, jwk: { kty, crv, x, y }, at: now.toISOString() };
    rec.attestedKeys = [key, ...rec.attestedKeys.filter((k) => k.jkt !== jkt)].slice(0, MAX_KEYS);
    this.delta(agentId).keys.push(key);
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
    this.delta(agentId).events.push({ seq: ev.seq, at: ev.at, kind: ev.kind, data: ev.data, receivedAt: now.toISOString(), hash });
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
    this.delta(agentId).gaps.push({ from, to, reason, ...(detail !== undefined ? { detail } : {}) });
  }

  /** A stream alarm (e.g. a conflicting duplicate): kept (bounded) and counted in the record. */
  alarm(agentId: string, alarm: Alarm): void {
    const rec = this.get(agentId);
    rec.alarms = [...(rec.alarms ?? []), alarm].slice(-MAX_ALARMS);
    rec.alarmCount = (rec.alarmCount ?? 0) + 1;
    this.delta(agentId).alarms.push(alarm);
  }

  /** A verdict was issued (one per challenge), with the secrets it released (the audit). */
  recordVerdict(agentId: string, verdict: Verdict, releases: SecretRelease[]): void {
    this.get(agentId).lastVerdict = verdict;
    const d = this.delta(agentId);
    d.verdicts.push(verdict);
    d.releases.push(...releases);
  }

  summaries(): AgentSummary[] {
    return [...this.agents.values()].sort((a, b) => a.agentId.localeCompare(b.agentId)).map((r) => this.summary(r));
  }

  /** `connected`: as the caller knows it (a shared store: a live lease on any replica); by default, a session here. */
  summary(r: AgentRecord, connected = this.isConnected(r.agentId)): AgentSummary {
    return recordSummary(r, connected);
  }

  /**
   * Write one agent's record and what changed since its last write (atomically; writes to one agent
   * are serialised). A write that fails keeps its changes for the next one.
   */
  persist(agentId: string): Promise<void> {
    // After close() a late handler must not overwrite what a new instance may already have loaded;
    // rejecting also keeps its events unacked, so the agent resends them.
    if (this.closed) return Promise.reject(new StoreError('ERR_STORE', 'controller registry is closed'));
    // Nothing is written for an id that never proved a key (any peer with a credential could mint ids).
    if (!this.store.durable || this.provisional.has(agentId)) {
      this.deltas.delete(agentId);
      return Promise.resolve();
    }
    const prev = this.writes.get(agentId) ?? Promise.resolve();
    const next = prev
      .catch(() => undefined)
      .then(async () => {
        const rec = this.get(agentId);
        const delta = this.deltas.get(agentId) ?? emptyDelta();
        this.deltas.delete(agentId);
        const snapshot = JSON.parse(JSON.stringify(rec)) as AgentRecord;
        try {
          await this.store.saveAgent(snapshot, delta, this.committed.get(agentId) ?? 0);
        } catch (err) {
          // Put the changes back in front of any made meanwhile: the next write carries them.
          const later = this.deltas.get(agentId);
          this.deltas.set(agentId, later ? mergeDeltas(delta, later) : delta);
          throw err;
        }
        this.committed.set(agentId, snapshot.lastSeq);
      });
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
    await this.store.close();
  }
}

function mergeDeltas(a: AgentDelta, b: AgentDelta): AgentDelta {
  return {
    events: [...a.events, ...b.events],
    gaps: [...a.gaps, ...b.gaps],
    alarms: [...a.alarms, ...b.alarms],
    keys: [...a.keys, ...b.keys],
    verdicts: [...a.verdicts, ...b.verdicts],
    releases: [...a.releases, ...b.releases],
  };
}

/** What the fleet list shows of a record (GET /v1/agents). */
export function recordSummary(r: AgentRecord, connected: boolean): AgentSummary {
  return {
    id: r.agentId,
    connected,
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
