/**
 * What the controller knows about each agent: connection state, the last verdict per device, the
 * keys it has attested, the event sequence (last seq, gaps) and recent events. One JSON file per
 * agent in stateDir (written atomically), so `resumeFrom` and de-duplication survive a restart.
 * Without stateDir the registry is memory-only.
 */
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { calculateJwkThumbprint, type JWK } from 'jose';
import { writeFileAtomic } from '../util/atomic-file.js';
import type { TrustStatus } from '../verify/checks.js';
import type { Ear } from '../appraise/ear.js';
import type { PublicJwk } from '../binding.js';
import { AGENT_ID } from './config.js';

export const RECENT_EVENTS = 50;
export const MAX_GAPS = 100;
/** Attested keys remembered per agent (events from before an agent restart are signed with an older key). */
export const MAX_KEYS = 8;

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
  /** The EAR claims as signed (for GET /v1/agents/{id}). */
  ear: Ear;
}

export interface AgentRecord {
  agentId: string;
  version?: string;
  inventory?: unknown;
  lastSeen?: string;
  lastSeq: number;
  gaps: { from: number; to: number; reason: 'missing' | 'dropped-by-agent' }[];
  /** Keys proven by verified bundles (newest first): thumbprint -> JWK. */
  attestedKeys: { jkt: string; jwk: PublicJwk; at: string }[];
  lastVerdict?: Verdict;
  lastRejection?: { at: string; code: string; message: string };
  recentEvents: StoredEvent[];
}

export interface AgentSummary {
  id: string;
  connected: boolean;
  lastSeen: string | null;
  lastSeq: number;
  gaps: number;
  status: TrustStatus;
  devices: Record<string, TrustStatus>;
  simulated: boolean;
  lastVerdictAt: string | null;
  lastRejection: { at: string; code: string; message: string } | null;
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
        const rec = JSON.parse(await readFile(join(this.stateDir, name), 'utf8')) as AgentRecord;
        if (rec.agentId !== id || !Number.isSafeInteger(rec.lastSeq) || rec.lastSeq < 0 || !Array.isArray(rec.gaps) || !Array.isArray(rec.attestedKeys) || !Array.isArray(rec.recentEvents)) {
          throw new Error('not an agent record');
        }
        this.agents.set(id, rec);
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
    }
    return rec;
  }

  has(agentId: string): boolean {
    return this.agents.has(agentId);
  }

  isConnected(agentId: string): boolean {
    return (this.connected.get(agentId) ?? 0) > 0;
  }

  setConnected(agentId: string, up: boolean): void {
    const n = (this.connected.get(agentId) ?? 0) + (up ? 1 : -1);
    if (n <= 0) this.connected.delete(agentId);
    else this.connected.set(agentId, n);
  }

  touch(agentId: string, now: Date): void {
    this.get(agentId).lastSeen = now.toISOString();
  }

  async rememberKey(agentId: string, jwk: PublicJwk, now: Date): Promise<void> {
    const rec = this.get(agentId);
    const jkt = await keyThumbprint(jwk);
    const { kty, crv, x, y } = jwk;
    rec.attestedKeys = [{ jkt, jwk: { kty, crv, x, y }, at: now.toISOString() }, ...rec.attestedKeys.filter((k) => k.jkt !== jkt)].slice(0, MAX_KEYS);
  }

  /**
   * Record an event by seq: a seq at or below lastSeq is a duplicate (not stored again); a jump
   * records the missing range as a gap. Returns what happened.
   */
  recordEvent(agentId: string, ev: Omit<StoredEvent, 'receivedAt'>, now: Date): 'stored' | 'duplicate' {
    const rec = this.get(agentId);
    if (ev.seq <= rec.lastSeq) return 'duplicate';
    if (ev.seq > rec.lastSeq + 1) this.addGap(rec, { from: rec.lastSeq + 1, to: ev.seq - 1, reason: 'missing' });
    if (ev.kind === 'dropped') {
      const d = ev.data as { from?: unknown; to?: unknown };
      if (Number.isSafeInteger(d.from) && Number.isSafeInteger(d.to) && (d.from as number) <= (d.to as number)) {
        // The agent declares why the seqs are absent: they are no longer "missing", only dropped.
        rec.gaps = subtractRange(rec.gaps, d.from as number, d.to as number);
        this.addGap(rec, { from: d.from as number, to: d.to as number, reason: 'dropped-by-agent' });
      }
    }
    rec.lastSeq = ev.seq;
    rec.recentEvents = [{ ...ev, receivedAt: now.toISOString() }, ...rec.recentEvents].slice(0, RECENT_EVENTS);
    return 'stored';
  }

  private addGap(rec: AgentRecord, gap: AgentRecord['gaps'][number]): void {
    rec.gaps = [...rec.gaps, gap].slice(-MAX_GAPS);
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
      status: r.lastVerdict?.status ?? 'none',
      devices: r.lastVerdict?.devices ?? {},
      simulated: r.lastVerdict?.simulated ?? false,
      lastVerdictAt: r.lastVerdict?.at ?? null,
      lastRejection: r.lastRejection ?? null,
    };
  }

  /** Persist one agent's record (atomic replace; writes to one agent are serialised). */
  persist(agentId: string): Promise<void> {
    // After close() a late handler must not overwrite what a new instance may already have loaded;
    // rejecting also keeps its events unacked, so the agent resends them.
    if (this.closed) return Promise.reject(new Error('controller registry is closed'));
    if (!this.stateDir) return Promise.resolve();
    const dir = this.stateDir;
    const prev = this.writes.get(agentId) ?? Promise.resolve();
    const next = prev
      .catch(() => undefined)
      .then(() => writeFileAtomic(join(dir, `${agentId}.json`), `${JSON.stringify(this.get(agentId), null, 1)}\n`));
    this.writes.set(agentId, next);
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
export function subtractRange(gaps: AgentRecord['gaps'], from: number, to: number): AgentRecord['gaps'] {
  return gaps.flatMap((g) => {
    if (g.reason !== 'missing' || g.to < from || g.from > to) return [g];
    const rest: AgentRecord['gaps'] = [];
    if (g.from < from) rest.push({ from: g.from, to: from - 1, reason: 'missing' });
    if (g.to > to) rest.push({ from: to + 1, to: g.to, reason: 'missing' });
    return rest;
  });
}
