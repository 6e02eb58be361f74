/**
 * The PostgreSQL store against a real server (test/helpers/postgres.ts): migrations (applied once by
 * replicas starting together, a newer schema refused), exactly-once events, one verdict per
 * challenge, the write fence between replicas, challenges consumed once across replicas, the
 * secret-release audit, and agent-supplied text that jsonb would refuse.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PostgresStore, redactUrl } from '../../../../agent/controller/store/postgres-store.js';
import { LATEST_SCHEMA, PRUNE_LOCK } from '../../../../agent/controller/store/postgres-schema.js';
import { CONTROLLER_DEFAULTS } from '../../../../agent/controller/config.js';
import { emptyDelta } from '../../../../agent/controller/store/controller-store.js';
import { AgentRegistry, eventHash } from '../../../../agent/controller/registry.js';
import { StoreError } from '../../../../agent/errors.js';
import { requirePostgres, TestPostgres } from '../../../helpers/postgres.js';

const run = requirePostgres();

/** A stored verdict record for challenge `challengeId` at `at` (the store keeps it whole; its EAR is not read). */
const testVerdict = (challengeId: string, at = new Date().toISOString()) => ({
  challengeId,
  at,
  status: 'affirming' as const,
  simulated: true,
  devices: {},
  secretsReleased: [],
  secretsDecision: '',
  ear: {} as never,
});

describe.runIf(run)('PostgreSQL store', () => {
  let pgs: TestPostgres;
  beforeAll(async () => {
    pgs = await TestPostgres.start();
  });
  afterAll(async () => {
    await pgs?.stop();
  });

  const open = (url: string, replicaId = 'r1') => PostgresStore.open({ url, replicaId });

  it('migrates once when replicas start together, and records the version', async () => {
    const url = await pgs.createDatabase();
    const stores = await Promise.all([open(url, 'a'), open(url, 'b'), open(url, 'c')]);
    const r = await stores[0]!.query<{ version: number }>('SELECT version FROM cvm_schema ORDER BY version');
    expect(r.rows.map((x) => x.version)).toEqual(Array.from({ length: LATEST_SCHEMA }, (_, i) => i + 1));
    expect(await stores[1]!.schemaVersion()).toBe(LATEST_SCHEMA);
    await Promise.all(stores.map((s) => s.close()));
  });

  it('refuses a database whose schema is newer than it knows (ERR_STORE_SCHEMA), and an unreachable one (ERR_STORE) without the password', async () => {
    const url = await pgs.createDatabase();
    const s = await open(url);
    await s.query("INSERT INTO cvm_schema (version, what, applied_by) VALUES ($1, 'from the future', 'test')", [LATEST_SCHEMA + 1]);
    await s.close();
    const err = await open(url).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreError);
    expect(err).toMatchObject({ code: 'ERR_STORE_SCHEMA', message: expect.stringContaining(`schema version ${LATEST_SCHEMA + 1}`) });
    const bad = `postgres://postgres:hunter2@127.0.0.1:1/nowhere`;
    const down = await open(bad).catch((e: unknown) => e);
    expect(down).toMatchObject({ code: 'ERR_STORE' });
    expect((down as Error).message).not.toContain('hunter2');
    expect(redactUrl(bad)).toBe('postgres://postgres:***@127.0.0.1:1/nowhere');
  });

  it('cvm-agent controller exits 1 with ERR_STORE_SCHEMA on a newer schema, and 4 when the database cannot be reached', async () => {
    const url = await pgs.createDatabase();
    const s = await open(url);
    await s.query("INSERT INTO cvm_schema (version, what, applied_by) VALUES ($1, 'from the future', 'test')", [LATEST_SCHEMA + 7]);
    await s.close();
    const { main } = await import('../../../../agent/cli/main.js');
    const dir = mkdtempSync(join(tmpdir(), 'ctl-store-cli-'));
    const run = async (storeUrl: string) => {
      writeFileSync(join(dir, 'c.yaml'), `listen: {host: 127.0.0.1, port: 0}\nlog: {level: silent}\nstore: {url: "${storeUrl}"}\n`);
      const err: string[] = [];
      const code = await main(['controller', '--config', join(dir, 'c.yaml')], {
        stdout: { write: () => true },
        stderr: { write: (t: string) => err.push(t) },
        env: {},
        cwd: '/',
      });
      return { code, err: err.join('') };
    };
    const newer = await run(url);
    expect(newer.code).toBe(1);
    expect(newer.err).toMatch(new RegExp(`schema version ${LATEST_SCHEMA + 7}; this controller knows versions up to ${LATEST_SCHEMA}.*\\[ERR_STORE_SCHEMA\\]`));
    const down = await run('postgres://postgres:hunter2@127.0.0.1:1/cvm');
    expect(down.code).toBe(4);
    expect(down.err).toMatch(/cannot open the store at postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:1\/cvm.*\[ERR_STORE\]/);
    expect(down.err).not.toContain('hunter2');
  });

  it('stores each event once (agent, seq, hash); a second write of a seq, and a verdict twice for one challenge, are refused whole', async () => {
    const s = await open(await pgs.createDatabase());
    const reg = new AgentRegistry(s);
    reg.get('vm-1');
    await reg.rememberKey('vm-1', { kty: 'EC', crv: 'P-384', x: 'AAAA', y: 'BBBB' }, new Date());
    for (let seq = 1; seq <= 3; seq++)
      expect(reg.recordEvent('vm-1', { seq, at: '2026-01-01T00:00:00Z', kind: 'attested', data: { n: seq } }, new Date())).toBe('stored');
    await reg.persist('vm-1');
    expect(reg.ackableSeq('vm-1')).toBe(3);
    const rows = await s.query<{ seq: string; hash: string }>('SELECT seq, hash FROM cvm_events WHERE agent_id = $1 ORDER BY seq', ['vm-1']);
    expect(rows.rows.map((r) => Number(r.seq))).toEqual([1, 2, 3]);
    expect(rows.rows[0]!.hash).toBe(eventHash({ seq: 1, at: '2026-01-01T00:00:00Z', kind: 'attested', data: { n: 1 } }));
    // The same seq again (a replica that did not see the commit): nothing of that write is kept.
    const rec = (await s.loadAgent('vm-1'))!;
    const again = { ...emptyDelta(), events: [{ seq: 3, at: 'x', kind: 'attested', data: {}, receivedAt: new Date().toISOString(), hash: 'h' }] };
    await expect(s.saveAgent({ ...rec, lastSeq: 3 }, again, 3)).rejects.toMatchObject({ code: 'ERR_STORE_CONFLICT' });
    const verdict = testVerdict('c-1');
    await s.saveAgent(rec, { ...emptyDelta(), verdicts: [verdict] }, 3);
    await expect(s.saveAgent(rec, { ...emptyDelta(), verdicts: [verdict] }, 3)).rejects.toMatchObject({ code: 'ERR_STORE_CONFLICT' });
    expect((await s.query('SELECT 1 FROM cvm_verdicts')).rowCount).toBe(1);
    await reg.close();
  });

  it('fences replicas: a write based on an older lastSeq than stored is refused and its changes kept for the next write', async () => {
    const url = await pgs.createDatabase();
    const [a, b] = [await open(url, 'a'), await open(url, 'b')];
    const ra = new AgentRegistry(a);
    const rb = new AgentRegistry(b);
    ra.get('vm-2');
    await ra.rememberKey('vm-2', { kty: 'EC', crv: 'P-384', x: 'AAAA', y: 'BBBB' }, new Date());
    ra.recordEvent('vm-2', { seq: 1, at: 't', kind: 'attested', data: {} }, new Date());
    await ra.persist('vm-2');
    await rb.load();
    rb.recordEvent('vm-2', { seq: 2, at: 't', kind: 'attested', data: {} }, new Date());
    await rb.persist('vm-2');
    // a still thinks the stream is at 1: its seq 2 must not be written over b's.
    ra.recordEvent('vm-2', { seq: 2, at: 'other', kind: 'attested', data: {} }, new Date());
    await expect(ra.persist('vm-2')).rejects.toMatchObject({ code: 'ERR_STORE_CONFLICT' });
    expect(ra.ackableSeq('vm-2')).toBe(1);
    expect(ra.hasPending('vm-2')).toBe(true);
    // While replica b holds the agent's session lease, a writes nothing for it; once b lets go, it may.
    await b.leases.acquire('vm-2', { replica: 'b', sessionId: 's-b', bound: true, attested: true }, false);
    await expect(ra.persist('vm-2')).rejects.toMatchObject({ code: 'ERR_STORE_CONFLICT', message: expect.stringContaining('held by replica b') });
    expect(await a.leases.acquire('vm-2', { replica: 'a', sessionId: 's-a', bound: false, attested: false }, false)).toMatchObject({
      ok: false,
      holder: { replica: 'b', sessionId: 's-b', bound: true, attested: true },
    });
    expect([...(await a.leases.liveAgents())]).toEqual(['vm-2']);
    expect(await b.leases.renew('b', [{ agentId: 'vm-2', sessionId: 's-b' }])).toEqual([]);
    await b.leases.release('vm-2', 's-b');
    expect([...(await a.leases.liveAgents())]).toEqual([]);
    // Its next session re-reads the stored record.
    await ra.refresh('vm-2');
    expect(ra.get('vm-2').lastSeq).toBe(2);
    expect(ra.hasPending('vm-2')).toBe(false);
    const ev = await a.query<{ doc: string }>('SELECT doc FROM cvm_events WHERE agent_id = $1 AND seq = 2', ['vm-2']);
    expect(JSON.parse(ev.rows[0]!.doc).at).toBe('t');
    await ra.close();
    await rb.close();
  });

  it("leases: one holder per agent; an expired one is free, a forced takeover shows in the old holder's renewal", async () => {
    const url = await pgs.createDatabase();
    // A TTL that outlasts a few queries on a loaded machine: the checks below that a lease is still
    // held run a query or three after it was taken or renewed (300 ms left little room for a stall).
    const TTL_MS = 1500;
    const [a, b] = [
      await PostgresStore.open({ url, replicaId: 'a', leaseTtlMs: TTL_MS }),
      await PostgresStore.open({ url, replicaId: 'b', leaseTtlMs: TTL_MS }),
    ];
    const hb = { replica: 'b', sessionId: 's-b', bound: false, attested: false };
    const ha = { replica: 'a', sessionId: 's-a', bound: false, attested: false };
    expect(await b.leases.acquire('vm-l', hb, false)).toEqual({ ok: true });
    expect((await a.leases.acquire('vm-l', ha, false)).ok).toBe(false);
    await new Promise((r) => setTimeout(r, TTL_MS + 100)); // b stopped renewing (killed)
    expect(await a.leases.acquire('vm-l', ha, false)).toEqual({ ok: true });
    expect(await b.leases.renew('b', [{ agentId: 'vm-l', sessionId: 's-b' }])).toEqual(['vm-l']);
    expect(await b.leases.acquire('vm-l', { ...hb, sessionId: 's-b2' }, true)).toEqual({ ok: true });
    expect(await a.leases.renew('a', [{ agentId: 'vm-l', sessionId: 's-a' }])).toEqual(['vm-l']);
    // Releasing a lease one no longer holds leaves the holder's alone.
    await a.leases.release('vm-l', 's-a');
    expect([...(await a.leases.liveAgents())]).toEqual(['vm-l']);
    await a.close();
    await b.close();
  });

  it('a challenge is answered once whichever replica issued it, only by its agent and session key, only before expiry', async () => {
    const url = await pgs.createDatabase();
    const [a, b] = [await open(url, 'a'), await open(url, 'b')];
    const t0 = new Date();
    const c = {
      id: 'ch-1',
      nonce: Buffer.alloc(32, 7),
      agentId: 'vm-3',
      sessionKid: 'k',
      issuedAt: t0,
      expiresAt: new Date(t0.getTime() + 60_000),
      replica: 'a',
    };
    await a.challenges.put(c);
    expect(await b.challenges.consume('ch-1', 'vm-4', 'k', t0, 'b')).toMatchObject({ ok: false, code: 'unknown-challenge' });
    expect(await b.challenges.consume('ch-1', 'vm-3', 'other', t0, 'b')).toMatchObject({ ok: false, code: 'unknown-challenge' });
    const both = await Promise.all([a.challenges.consume('ch-1', 'vm-3', 'k', t0, 'a'), b.challenges.consume('ch-1', 'vm-3', 'k', t0, 'b')]);
    expect(both.filter((r) => r.ok)).toHaveLength(1);
    expect(both.find((r) => !r.ok)).toMatchObject({ code: 'replayed-challenge' });
    const ok = both.find((r) => r.ok) as { challenge: { nonce: Buffer; replica: string } };
    expect(ok.challenge.nonce.equals(c.nonce)).toBe(true);
    expect(ok.challenge.replica).toBe('a');
    await a.challenges.put({ ...c, id: 'ch-2' });
    expect(await b.challenges.consume('ch-2', 'vm-3', 'k', new Date(t0.getTime() + 60_001), 'b')).toMatchObject({ ok: false, code: 'expired-challenge' });
    await a.close();
    await b.close();
  });

  it('keeps agent-supplied text jsonb would refuse (NUL; lone surrogates never get this far, event-stream.ts), and audits secret releases under their verdict', async () => {
    const s = await open(await pgs.createDatabase());
    const reg = new AgentRegistry(s);
    reg.get('vm-5');
    await reg.rememberKey('vm-5', { kty: 'EC', crv: 'P-384', x: 'AAAA', y: 'BBBB' }, new Date());
    const data = { text: 'nul\u0000here', quote: 'a"b\\c' };
    reg.recordEvent('vm-5', { seq: 1, at: 't', kind: 'attested', data }, new Date());
    reg.declareGap('vm-5', 4, 'dropped-by-agent', 'why\u0000');
    const at = new Date().toISOString();
    reg.recordVerdict(
      'vm-5',
      { challengeId: 'c-9', at, status: 'affirming', simulated: true, devices: {}, secretsReleased: ['model-key'], secretsDecision: '', ear: {} as never },
      [{ agentId: 'vm-5', secret: 'model-key', at, challengeId: 'c-9', status: 'affirming', jkt: 'j', replica: 'r1' }],
    );
    await reg.persist('vm-5');
    const back = (await s.loadAgent('vm-5'))!;
    expect(back.recentEvents[0]!.data).toEqual(data);
    expect(back.lastSeq).toBe(4);
    expect(back.gaps).toEqual([{ from: 2, to: 4, reason: 'dropped-by-agent', detail: 'why\u0000' }]);
    const rel = await s.query<{ secret: string; challenge_id: string; status: string }>('SELECT secret, challenge_id, status FROM cvm_secret_releases');
    expect(rel.rows).toEqual([{ secret: 'model-key', challenge_id: 'c-9', status: 'affirming' }]);
    await reg.close();
  });

  it('retention: a prune (one replica at a time) keeps the newest K events and verdicts per agent, verdicts a kept release names, and the audit by age and count; the bound holds over many writes', async () => {
    const url = await pgs.createDatabase();
    const [a, b] = [await open(url, 'a'), await open(url, 'b')];
    const reg = new AgentRegistry(a);
    const retention = { ...CONTROLLER_DEFAULTS.retention, eventsPerAgent: 256, verdictsPerAgent: 10, releaseDays: 30, releases: 1000 };
    const base = new Map<string, number>();
    const old = new Date(Date.now() - 90 * 86_400_000).toISOString();
    let vn = 0;
    const verdict = (at: string) => testVerdict(`c-${vn++}`, at);
    const release = (agentId: string, challengeId: string, at: string) => ({
      agentId,
      secret: 'model-key',
      at,
      challengeId,
      status: 'affirming',
      jkt: 'j',
      replica: 'a',
    });
    /** One agent: `n` more events in writes of 50, an alarm and a gap now and then, 2 verdicts per write. */
    const write = async (id: string, n: number) => {
      for (let i = 0; i < n; i += 50) {
        const from = base.get(id) ?? 0;
        const rec = { ...reg.get(id), lastSeq: from + 50 };
        const d = emptyDelta();
        for (let seq = from + 1; seq <= from + 50; seq++)
          d.events.push({ seq, at: 't', kind: 'status', data: { seq }, receivedAt: new Date().toISOString(), hash: `h${seq}` });
        d.alarms.push({ seq: from + 1, code: 'x', at: 't' } as never);
        d.gaps.push({ from: from + 50, to: from + 50, reason: 'lost' } as never);
        d.verdicts.push(verdict(new Date(Date.now() - 1000).toISOString()), verdict(new Date().toISOString()));
        // The first verdict of each write is named by a release: an old one (past releaseDays) now and then.
        d.releases.push(release(id, d.verdicts[0]!.challengeId, i % 200 === 0 ? old : new Date().toISOString()));
        await a.saveAgent(rec, d, from);
        base.set(id, from + 50);
      }
    };
    const count = async (sql: string, v: unknown[] = []) => Number((await a.query<{ n: string }>(sql, v)).rows[0]!.n);
    for (let round = 0; round < 3; round++) {
      await write('vm-r1', 1000);
      await write('vm-r2', 500);
      // Both replicas prune at once: one does it, the other skips (or finds nothing left); the result is the same.
      const [pa, pb] = await Promise.all([a.prune(retention), b.prune(retention)]);
      expect(pa !== undefined || pb !== undefined).toBe(true);
      for (const id of ['vm-r1', 'vm-r2']) {
        const last = base.get(id)!;
        const seqs = (await a.query<{ seq: string }>('SELECT seq FROM cvm_events WHERE agent_id = $1 ORDER BY seq', [id])).rows.map((r) => Number(r.seq));
        expect(seqs).toEqual(Array.from({ length: 256 }, (_, i) => last - 255 + i));
        expect(await count('SELECT count(*) AS n FROM cvm_gaps WHERE agent_id = $1 AND to_seq <= $2', [id, last - 256])).toBe(0);
        expect(await count('SELECT count(*) AS n FROM cvm_alarms WHERE agent_id = $1 AND seq <= $2', [id, last - 256])).toBe(0);
        expect(await count('SELECT count(*) AS n FROM cvm_alarms WHERE agent_id = $1', [id])).toBeGreaterThan(0);
        // The newest 10 verdicts are kept, and every verdict a kept release names; no other.
        const newest = await a.query<{ challenge_id: string }>(
          'SELECT challenge_id FROM cvm_verdicts WHERE agent_id = $1 ORDER BY at DESC, challenge_id DESC LIMIT 10',
          [id],
        );
        expect(newest.rows).toHaveLength(10);
        const kept = await count(
          `SELECT count(*) AS n FROM cvm_verdicts v WHERE agent_id = $1 AND NOT EXISTS (SELECT 1 FROM cvm_secret_releases s WHERE s.challenge_id = v.challenge_id)`,
          [id],
        );
        expect(kept).toBeLessThanOrEqual(10);
      }
      expect(await count("SELECT count(*) AS n FROM cvm_secret_releases WHERE at < now() - interval '30 days'")).toBe(0);
      expect(await count('SELECT count(*) AS n FROM cvm_secret_releases')).toBeGreaterThan(0);
    }
    // The audit's count bound: 1,200 releases under one verdict, pruned to the newest 1,000.
    const last = base.get('vm-r1')!;
    const d = emptyDelta();
    d.verdicts.push(verdict(new Date().toISOString()));
    for (let i = 0; i < 1200; i++) d.releases.push(release('vm-r1', d.verdicts[0]!.challengeId, new Date().toISOString()));
    await a.saveAgent({ ...reg.get('vm-r1'), lastSeq: last }, d, last);
    const maxId = await count('SELECT max(id) AS n FROM cvm_secret_releases');
    expect(await a.prune(retention)).toMatchObject({ releases: expect.any(Number) });
    expect(await count('SELECT count(*) AS n FROM cvm_secret_releases')).toBe(1000);
    expect(await count('SELECT min(id) AS n FROM cvm_secret_releases')).toBe(maxId - 999);
    // A replica holding the prune lock makes the others skip.
    const other = new pg.Client({ connectionString: url });
    await other.connect();
    await other.query('SELECT pg_advisory_lock($1)', [PRUNE_LOCK]);
    expect(await a.prune(retention)).toBeUndefined();
    await other.end(); // the lock goes with its connection (a replica killed mid-prune)
    expect(await a.prune(retention)).toEqual({ events: 0, gaps: 0, alarms: 0, verdicts: 0, releases: 0 });
    await reg.close();
    await b.close();
  });
});
