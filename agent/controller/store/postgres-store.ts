/**
 * The PostgreSQL store (`store: {url: "postgres://..."}`), through node-postgres (`pg`). Several
 * controller replicas may share one database: every write of an agent's record is one transaction
 * that locks the agent's row and checks that its lastSeq is still the one this controller last
 * wrote (a fence: two replicas never both advance a stream), then inserts the events (primary key
 * agent and seq, with the hash: stored exactly once), gaps, alarms, keys, verdicts (primary key the
 * challenge: one verdict per challenge) and secret releases. The caller acknowledges events only
 * after the commit. Challenges are rows consumed by one conditional UPDATE (answered at most once).
 * Schema: postgres-schema.ts, migrated at start under an advisory lock.
 */
import pg from 'pg';
import { DeviceError, StoreError } from '../../errors.js';
import { recordSummary, type AgentRecord, type AgentSummary } from '../registry.js';
import { checkAgentRecord } from './file-store.js';
import type { AgentDelta, ChallengeStore, ConsumeResult, ControllerStore, LeaseHolder, LeaseStore, PruneCounts, StoredChallenge } from './controller-store.js';
import type { StoreRetention } from '../config.js';
import { LATEST_SCHEMA, MIGRATION_LOCK, MIGRATIONS, PRUNE_LOCK } from './postgres-schema.js';
import { expiredBefore, expiredLate, replayed } from './memory-challenges.js';

export interface PostgresStoreOptions {
  url: string;
  replicaId: string;
  /** Connections in the pool (default 10). */
  poolSize?: number;
  /** How long a lease lives without renewal (default LEASE_TTL_MS). */
  leaseTtlMs?: number;
  /** Errors of idle connections (a database restart): logged, never fatal. */
  onIdleError?: (err: Error) => void;
}

/** The URL without its password (for logs and errors). */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'postgres://(unparsable URL)';
  }
}

/** A session lease not renewed for this long is free (renewed every third of it). */
export const LEASE_TTL_MS = 10_000;

/** Remove expired challenges this long after they expire (a replay after that reads as unknown). */
const CHALLENGE_KEEP_MS = 3600_000;
/** Clean challenges up once every this many issued. */
const CLEANUP_EVERY = 256;
/** Rows one prune statement deletes at most (short transactions; the prune repeats until none is left). */
const PRUNE_BATCH = 5000;

export class PostgresStore implements ControllerStore {
  readonly kind = 'postgres';
  readonly shared = true;
  readonly durable = true;
  readonly challenges: ChallengeStore;
  readonly leases: LeaseStore;
  readonly replicaId: string;
  private readonly pool: pg.Pool;
  private puts = 0;

  private constructor(private readonly o: PostgresStoreOptions) {
    this.replicaId = o.replicaId;
    this.pool = new pg.Pool({ connectionString: o.url, max: o.poolSize ?? 10, connectionTimeoutMillis: 10_000, application_name: 'cvm-agent-controller' });
    // An idle client whose server went away emits 'error' on the pool: without a listener that kills the process.
    this.pool.on('error', (err) => o.onIdleError?.(err));
    this.challenges = { put: (c) => this.putChallenge(c), consume: (...a) => this.consumeChallenge(...a) };
    this.leases = new PostgresLeases(this.pool, o.leaseTtlMs ?? LEASE_TTL_MS);
  }

  /** Connect, apply the migrations this controller knows, refuse a newer schema. */
  static async open(o: PostgresStoreOptions): Promise<PostgresStore> {
    const store = new PostgresStore(o);
    try {
      await store.migrate();
    } catch (err) {
      await store.pool.end().catch(() => undefined);
      if (err instanceof StoreError) throw err;
      const e = err as NodeJS.ErrnoException;
      throw new DeviceError(
        'ERR_STORE',
        `cannot open the store at ${redactUrl(o.url)}: ${e.code ? `${e.code} ` : ''}${e.message}`,
        { errno: e.code },
        { cause: err },
      );
    }
    return store;
  }

  /** The schema version in the database (0: none). */
  async schemaVersion(): Promise<number> {
    const r = await this.pool.query<{ present: boolean }>("SELECT to_regclass('cvm_schema') IS NOT NULL AS present");
    if (!r.rows[0]?.present) return 0;
    const m = await this.pool.query<{ v: number | null }>('SELECT max(version) AS v FROM cvm_schema');
    return m.rows[0]?.v ?? 0;
  }

  private async migrate(): Promise<void> {
    await this.tx(async (c) => {
      await c.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
      await c.query(
        'CREATE TABLE IF NOT EXISTS cvm_schema (version integer PRIMARY KEY, what text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), applied_by text NOT NULL)',
      );
      const r = await c.query<{ v: number | null }>('SELECT max(version) AS v FROM cvm_schema');
      const have = r.rows[0]?.v ?? 0;
      if (have > LATEST_SCHEMA) {
        throw new StoreError(
          'ERR_STORE_SCHEMA',
          `the database at ${redactUrl(this.o.url)} has store schema version ${have}; this controller knows versions up to ${LATEST_SCHEMA}: run a controller at least as new as the one that migrated it (an older one never writes to a newer schema)`,
        );
      }
      for (const m of MIGRATIONS) {
        if (m.version <= have) continue;
        await c.query(m.sql);
        await c.query('INSERT INTO cvm_schema (version, what, applied_by) VALUES ($1, $2, $3)', [m.version, m.what, this.replicaId]);
      }
    });
  }

  private async tx<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    const c = await this.pool.connect();
    // A checked-out client whose server goes away between two statements emits 'error': without a
    // listener that would end the process (the pool listens only on idle clients).
    const onError = (err: Error) => this.o.onIdleError?.(err);
    c.on('error', onError);
    let failed: Error | undefined;
    try {
      await c.query('BEGIN');
      const out = await fn(c);
      await c.query('COMMIT');
      return out;
    } catch (err) {
      failed = err as Error;
      await c.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      c.off('error', onError);
      // After a failure the connection may be broken: destroy it rather than return it to the pool.
      c.release(failed);
    }
  }

  async loadAgents(onProblem: (where: string, why: string) => void = () => undefined): Promise<AgentRecord[]> {
    const r = await this.pool.query<{ agent_id: string; record: string }>('SELECT agent_id, record FROM cvm_agents ORDER BY agent_id');
    const out: AgentRecord[] = [];
    for (const row of r.rows) {
      try {
        out.push(checkAgentRecord(JSON.parse(row.record), row.agent_id));
      } catch (err) {
        onProblem(`cvm_agents ${row.agent_id}`, (err as Error).message);
      }
    }
    return out;
  }

  async loadSummaries(): Promise<AgentSummary[]> {
    const r = await this.pool.query<{ summary: string }>('SELECT summary FROM cvm_agents ORDER BY agent_id');
    return r.rows.map((row) => JSON.parse(row.summary) as AgentSummary);
  }

  async loadAgent(agentId: string): Promise<AgentRecord | undefined> {
    const r = await this.pool.query<{ record: string }>('SELECT record FROM cvm_agents WHERE agent_id = $1', [agentId]);
    const row = r.rows[0];
    return row ? checkAgentRecord(JSON.parse(row.record), agentId) : undefined;
  }

  async saveAgent(record: AgentRecord, delta: AgentDelta, baseSeq: number): Promise<void> {
    const id = record.agentId;
    try {
      await this.tx(async (c) => {
        // The lease fence: a replica whose session for this agent was taken over (it learns so at its
        // next renewal) writes nothing more for it.
        const held = await c.query<{ replica: string }>(
          'SELECT replica FROM cvm_sessions WHERE agent_id = $1 AND replica <> $2 AND heartbeat_at >= now() - make_interval(secs => $3)',
          [id, this.replicaId, this.leases.ttlMs / 1000],
        );
        if (held.rows[0]) {
          throw new StoreError(
            'ERR_STORE_CONFLICT',
            `agent ${id}: its session is held by replica ${held.rows[0].replica}; this replica writes nothing more for it`,
          );
        }
        const cur = await c.query<{ last_seq: string }>('SELECT last_seq FROM cvm_agents WHERE agent_id = $1 FOR UPDATE', [id]);
        const doc = JSON.stringify(record);
        const summary = JSON.stringify(recordSummary(record, false));
        if (cur.rows[0] === undefined) {
          // Two replicas inserting one new agent at once: the second fails on the primary key.
          await c.query('INSERT INTO cvm_agents (agent_id, last_seq, credential, record, summary, updated_by) VALUES ($1, $2, $3, $4, $5, $6)', [
            id,
            record.lastSeq,
            record.credential ?? null,
            doc,
            summary,
            this.replicaId,
          ]);
        } else {
          const stored = Number(cur.rows[0].last_seq);
          if (stored !== baseSeq) {
            throw new StoreError(
              'ERR_STORE_CONFLICT',
              `agent ${id}: its stream is at seq ${stored} in the store, not ${baseSeq} as this controller last wrote; another replica moved it on`,
            );
          }
          await c.query(
            'UPDATE cvm_agents SET last_seq = $2, credential = $3, record = $4, summary = $5, updated_at = now(), updated_by = $6 WHERE agent_id = $1',
            [id, record.lastSeq, record.credential ?? null, doc, summary, this.replicaId],
          );
        }
        const ev = delta.events;
        if (ev.length > 0) {
          await c.query(
            'INSERT INTO cvm_events (agent_id, seq, hash, kind, doc, received_at) SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::timestamptz[])',
            [
              id,
              ev.map((e) => e.seq),
              ev.map((e) => e.hash),
              ev.map((e) => e.kind),
              ev.map((e) => JSON.stringify({ at: e.at, data: e.data ?? null })),
              ev.map((e) => e.receivedAt),
            ],
          );
        }
        for (const g of delta.gaps) {
          await c.query('INSERT INTO cvm_gaps (agent_id, from_seq, to_seq, reason, doc) VALUES ($1, $2, $3, $4, $5)', [
            id,
            g.from,
            g.to,
            g.reason,
            JSON.stringify(g),
          ]);
        }
        for (const a of delta.alarms) {
          await c.query('INSERT INTO cvm_alarms (agent_id, seq, code, doc) VALUES ($1, $2, $3, $4)', [id, a.seq, a.code, JSON.stringify(a)]);
        }
        for (const k of delta.keys) {
          await c.query('INSERT INTO cvm_attested_keys (agent_id, jkt, jwk, first_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING', [
            id,
            k.jkt,
            JSON.stringify(k.jwk),
            k.at,
          ]);
        }
        for (const v of delta.verdicts) {
          await c.query('INSERT INTO cvm_verdicts (challenge_id, agent_id, at, status, doc, replica) VALUES ($1, $2, $3, $4, $5, $6)', [
            v.challengeId,
            id,
            v.at,
            v.status,
            JSON.stringify(v),
            this.replicaId,
          ]);
        }
        for (const s of delta.releases) {
          await c.query('INSERT INTO cvm_secret_releases (agent_id, secret, at, challenge_id, status, jkt, replica) VALUES ($1, $2, $3, $4, $5, $6, $7)', [
            id,
            s.secret,
            s.at,
            s.challengeId,
            s.status,
            s.jkt,
            s.replica,
          ]);
        }
      });
    } catch (err) {
      if (err instanceof StoreError) throw err;
      const e = err as { code?: string; constraint?: string; message: string };
      if (e.code === '23505') {
        throw new StoreError('ERR_STORE_CONFLICT', `agent ${id}: already stored (${e.constraint ?? 'unique key'}): ${e.message}`, { cause: err });
      }
      throw new StoreError('ERR_STORE', `agent ${id}: the store write failed: ${e.code ? `${e.code} ` : ''}${e.message}`, { cause: err });
    }
  }

  private async putChallenge(c: StoredChallenge): Promise<void> {
    await this.pool.query(
      'INSERT INTO cvm_challenges (id, agent_id, session_kid, nonce, issued_at, expires_at, issued_by) VALUES ($1, $2, $3, $4, $5, $6, $7)',
      [c.id, c.agentId, c.sessionKid, c.nonce, c.issuedAt, c.expiresAt, c.replica],
    );
    if (++this.puts % CLEANUP_EVERY === 0) {
      await this.pool.query('DELETE FROM cvm_challenges WHERE expires_at < $1', [new Date(c.issuedAt.getTime() - CHALLENGE_KEEP_MS)]).catch(() => undefined);
    }
  }

  private async consumeChallenge(id: string, agentId: string, sessionKid: string, now: Date, replica: string): Promise<ConsumeResult> {
    const r = await this.pool.query<{ nonce: Buffer; issued_at: Date; expires_at: Date; issued_by: string }>(
      `UPDATE cvm_challenges SET answered_at = $4, answered_by = $5
       WHERE id = $1 AND agent_id = $2 AND session_kid = $3 AND answered_at IS NULL AND expires_at >= $4
       RETURNING nonce, issued_at, expires_at, issued_by`,
      [id, agentId, sessionKid, now, replica],
    );
    const row = r.rows[0];
    if (row) {
      return {
        ok: true,
        challenge: { id, nonce: row.nonce, agentId, sessionKid, issuedAt: row.issued_at, expiresAt: row.expires_at, replica: row.issued_by },
      };
    }
    const why = await this.pool.query<{ answered_at: Date | null; expires_at: Date }>(
      'SELECT answered_at, expires_at FROM cvm_challenges WHERE id = $1 AND agent_id = $2 AND session_kid = $3',
      [id, agentId, sessionKid],
    );
    const w = why.rows[0];
    if (!w) return { ok: false, code: 'unknown-challenge', message: `challenge ${id} was not issued to this agent and session key` };
    if (w.answered_at !== null) return { ok: false, code: 'replayed-challenge', message: replayed(id) };
    return {
      ok: false,
      code: 'expired-challenge',
      message: now.getTime() - w.expires_at.getTime() > 0 ? expiredLate({ id, expiresAt: w.expires_at }, now) : expiredBefore(id),
    };
  }

  /**
   * Delete what the retention no longer keeps, in batches of PRUNE_BATCH rows, under a session
   * advisory lock taken with pg_try_advisory_lock: one replica prunes at a time and the others skip
   * (undefined). Every delete is idempotent, so a prune cut off (a replica killed, the database
   * restarted: the lock goes with the connection) is finished by the next. What is kept:
   *  - events, gaps and alarms of an agent's newest `eventsPerAgent` seqs (seq > last_seq - K; every
   *    stored event is already acknowledged, an unacknowledged one is not in the table yet);
   *  - secret releases younger than `releaseDays`, and at most `releases` rows (the newest);
   *  - an agent's newest `verdictsPerAgent` verdicts, and every verdict a kept release names.
   */
  async prune(r: StoreRetention): Promise<PruneCounts | undefined> {
    const c = await this.pool.connect();
    const onError = (err: Error) => this.o.onIdleError?.(err);
    c.on('error', onError);
    let failed: Error | undefined;
    try {
      const got = await c.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1) AS ok', [PRUNE_LOCK]);
      if (!got.rows[0]?.ok) return undefined;
      try {
        const loop = async (sql: string, values: unknown[]): Promise<number> => {
          let n = 0;
          for (;;) {
            const d = await c.query(sql, [...values, PRUNE_BATCH]);
            n += d.rowCount ?? 0;
            if ((d.rowCount ?? 0) < PRUNE_BATCH) return n;
          }
        };
        const k = r.eventsPerAgent;
        const out: PruneCounts = { events: 0, gaps: 0, alarms: 0, verdicts: 0, releases: 0 };
        out.events = await loop(
          `DELETE FROM cvm_events WHERE ctid IN (SELECT e.ctid FROM cvm_events e JOIN cvm_agents a USING (agent_id)
           WHERE e.seq <= a.last_seq - $1 LIMIT $2)`,
          [k],
        );
        out.gaps = await loop(
          `DELETE FROM cvm_gaps WHERE ctid IN (SELECT g.ctid FROM cvm_gaps g JOIN cvm_agents a USING (agent_id)
           WHERE g.to_seq <= a.last_seq - $1 LIMIT $2)`,
          [k],
        );
        out.alarms = await loop(
          `DELETE FROM cvm_alarms WHERE id IN (SELECT x.id FROM cvm_alarms x JOIN cvm_agents a USING (agent_id)
           WHERE x.seq <= a.last_seq - $1 LIMIT $2)`,
          [k],
        );
        out.releases = await loop(
          `DELETE FROM cvm_secret_releases WHERE id IN (SELECT id FROM cvm_secret_releases
           WHERE at < now() - make_interval(days => $1)
              OR id <= (SELECT id FROM cvm_secret_releases ORDER BY id DESC OFFSET $2 LIMIT 1) LIMIT $3)`,
          [r.releaseDays, r.releases],
        );
        out.verdicts = await loop(
          `DELETE FROM cvm_verdicts WHERE challenge_id IN (
             SELECT v.challenge_id FROM (
               SELECT challenge_id, row_number() OVER (PARTITION BY agent_id ORDER BY at DESC, challenge_id DESC) AS n FROM cvm_verdicts
             ) v
             WHERE v.n > $1 AND NOT EXISTS (SELECT 1 FROM cvm_secret_releases s WHERE s.challenge_id = v.challenge_id) LIMIT $2)`,
          [r.verdictsPerAgent],
        );
        return out;
      } finally {
        await c.query('SELECT pg_advisory_unlock($1)', [PRUNE_LOCK]);
      }
    } catch (err) {
      failed = err as Error;
      const e = err as { code?: string; message: string };
      throw new StoreError('ERR_STORE', `the store prune failed: ${e.code ? `${e.code} ` : ''}${e.message}`, { cause: err });
    } finally {
      c.off('error', onError);
      c.release(failed);
    }
  }

  /** Run a query (tests and the trial count what is stored). */
  query<R extends pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<pg.QueryResult<R>> {
    return this.pool.query<R>(text, values);
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

/** Session leases in cvm_sessions (one row per agent id), judged by the database's clock. */
class PostgresLeases implements LeaseStore {
  constructor(
    private readonly pool: pg.Pool,
    readonly ttlMs: number,
  ) {}

  async acquire(agentId: string, h: LeaseHolder, force: boolean): Promise<{ ok: true } | { ok: false; holder: LeaseHolder }> {
    const r = await this.pool.query(
      `INSERT INTO cvm_sessions AS s (agent_id, replica, session_id, bound, attested, heartbeat_at) VALUES ($1, $2, $3, $4, $5, now())
       ON CONFLICT (agent_id) DO UPDATE SET replica = EXCLUDED.replica, session_id = EXCLUDED.session_id, bound = EXCLUDED.bound,
         attested = EXCLUDED.attested, heartbeat_at = now()
       WHERE $6 OR s.replica = EXCLUDED.replica OR s.heartbeat_at < now() - make_interval(secs => $7)
       RETURNING agent_id`,
      [agentId, h.replica, h.sessionId, h.bound, h.attested, force, this.ttlMs / 1000],
    );
    if (r.rowCount === 1) return { ok: true };
    const cur = await this.pool.query<{ replica: string; session_id: string; bound: boolean; attested: boolean }>(
      'SELECT replica, session_id, bound, attested FROM cvm_sessions WHERE agent_id = $1',
      [agentId],
    );
    const row = cur.rows[0];
    // Gone between the two statements: try once more.
    if (!row) return this.acquire(agentId, h, force);
    return { ok: false, holder: { replica: row.replica, sessionId: row.session_id, bound: row.bound, attested: row.attested } };
  }

  async markAttested(agentId: string, sessionId: string): Promise<void> {
    await this.pool.query('UPDATE cvm_sessions SET attested = true, heartbeat_at = now() WHERE agent_id = $1 AND session_id = $2', [agentId, sessionId]);
  }

  async renew(replica: string, sessions: readonly { agentId: string; sessionId: string }[]): Promise<string[]> {
    if (sessions.length === 0) return [];
    const r = await this.pool.query<{ agent_id: string }>(
      `UPDATE cvm_sessions s SET heartbeat_at = now() FROM unnest($2::text[], $3::text[]) AS mine (agent_id, session_id)
       WHERE s.agent_id = mine.agent_id AND s.session_id = mine.session_id AND s.replica = $1
       RETURNING s.agent_id`,
      [replica, sessions.map((x) => x.agentId), sessions.map((x) => x.sessionId)],
    );
    const kept = new Set(r.rows.map((x) => x.agent_id));
    return sessions.filter((x) => !kept.has(x.agentId)).map((x) => x.agentId);
  }

  async release(agentId: string, sessionId: string): Promise<void> {
    await this.pool.query('DELETE FROM cvm_sessions WHERE agent_id = $1 AND session_id = $2', [agentId, sessionId]);
  }

  async liveAgents(): Promise<Set<string>> {
    const r = await this.pool.query<{ agent_id: string }>('SELECT agent_id FROM cvm_sessions WHERE heartbeat_at >= now() - make_interval(secs => $1)', [
      this.ttlMs / 1000,
    ]);
    return new Set(r.rows.map((x) => x.agent_id));
  }
}
