/**
 * The failover trial (docs/controller.md "Deployment"): three controller replicas as real processes
 * on one PostgreSQL database, 20 agents (the real agent link, ControllerLink, with its outbox and
 * backoff) listing the three in controller.urls, 5,000 events, and a replica killed with SIGKILL
 * every few seconds and started again. Afterwards every seq of every agent is stored exactly once
 * (and is the event the agent wrote), no challenge got two verdicts, every verdict an agent received
 * was committed first, and every agent came back on a live replica within its backoff. Then the
 * database itself is restarted under the stream: the controllers reconnect, the agents keep their
 * outbox, nothing is lost. Needs Debian's postgresql (test/helpers/postgres.ts).
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ChildController, CONTROLLER_TOKEN_KEY, freePort, sleep, until } from '../helpers/link-load.js';
import { requireTool } from '../helpers/tools.js';
import { linkSuite } from '../helpers/link-suite.js';
import { makeHarness, type Harness } from '../helpers/test-controller.js';
import { makeBundle } from '../helpers/controller-fixture.js';
import { requirePostgres, TestPostgres } from '../helpers/postgres.js';
import { PostgresStore } from '../../agent/controller/store/postgres-store.js';

const run = requirePostgres();
const haproxy = run && requireTool('haproxy', 'haproxy');
const suite = linkSuite('cvm-failover-');
const { cleanup } = suite;

/** Deterministic schedule (a failure must be reproducible). */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const BACKOFF = { baseMs: 200, capMs: 2000 };

interface Agent {
  id: string;
  h: Harness;
  verdictChallenges: string[];
  /** Outages: ms from the link going down to its next welcome. */
  outages: number[];
}

async function startReplicas(url: string, n: number, ids: string[], tokens: Record<string, string>): Promise<ChildController[]> {
  const replicas: ChildController[] = [];
  for (let i = 0; i < n; i++) {
    const r = await ChildController.create(
      {
        stateDir: undefined,
        storeLine: `store: {url: "${url}", replica: r${i}}`,
        simDir: suite.sim.dir,
        logLevel: 'info', // ChildController waits for the "controller listening" line
        challengeIntervalSec: 10,
        boundTokens: Object.fromEntries(ids.map((id) => [id, tokens[id]!])),
      },
      suite.tmp,
    );
    cleanup.push(() => r.kill9());
    await r.start();
    replicas.push(r);
  }
  return replicas;
}

async function startAgents(urls: string[], ids: string[], tokens: Record<string, string>): Promise<Agent[]> {
  return Promise.all(
    ids.map(async (id) => {
      const tokenFile = join(suite.tmp, `${id}.token`);
      writeFileSync(tokenFile, `${tokens[id]}\n`);
      const a: Agent = { id, h: undefined as unknown as Harness, verdictChallenges: [], outages: [] };
      a.h = await makeHarness(urls[0]!, {
        agentId: id,
        urls: urls.slice(1),
        tokenFile,
        tokenKeys: [CONTROLLER_TOKEN_KEY],
        backoff: BACKOFF,
        handlers: {
          onChallenge: async (nonce) => ({ bundle: await makeBundle(suite.sim, nonce, a.h.key.publicJwk, id), localResult: {} }),
          onVerdict: (v) => {
            a.verdictChallenges.push(v.challengeId);
          },
        },
      });
      cleanup.push(() => a.h.close());
      a.h.link.start();
      return a;
    }),
  );
}

/** Watch each agent's link: how long from down to up again. */
function watchOutages(agents: Agent[]): () => void {
  const downSince = new Map<string, number>();
  const t = setInterval(() => {
    for (const a of agents) {
      const up = a.h.link.status().state === 'up';
      const since = downSince.get(a.id);
      if (!up && since === undefined) downSince.set(a.id, performance.now());
      if (up && since !== undefined) {
        a.outages.push(performance.now() - since);
        downSince.delete(a.id);
      }
    }
  }, 20);
  return () => clearInterval(t);
}

async function appendAll(agents: Agent[], perAgent: number, everyMs: number): Promise<void> {
  await Promise.all(
    agents.map(async (a) => {
      for (let i = 1; i <= perAgent; i++) {
        await a.h.outbox.append('status', { agent: a.id, i });
        await sleep(everyMs);
      }
    }),
  );
}

/** Every agent's outbox acked through `perAgent` (the controllers committed all of it), within 90 s. */
function allAcked(agents: Agent[], perAgent: number): Promise<void> {
  return until(
    () => agents.every((a) => a.h.outbox.lastAcked === perAgent),
    90_000,
    () => `every event acked: ${agents.map((a) => `${a.id}=${a.h.outbox.lastAcked} ${a.h.link.status().state}`).join(', ')}`,
  );
}

async function checkStored(url: string, agents: Agent[], perAgent: number): Promise<{ verdicts: number; answered: number }> {
  const db = await PostgresStore.open({ url, replicaId: 'checker' });
  try {
    for (const a of agents) {
      const rows = await db.query<{ seq: string; doc: string }>('SELECT seq, doc FROM cvm_events WHERE agent_id = $1 ORDER BY seq', [a.id]);
      const seqs = rows.rows.map((r) => Number(r.seq));
      expect(seqs, a.id).toEqual(Array.from({ length: perAgent }, (_, k) => k + 1));
      // Each stored event is the one the agent wrote under that seq.
      expect(rows.rows.every((r) => (JSON.parse(r.doc) as { data: { i: number; agent: string } }).data.i === Number(r.seq))).toBe(true);
      expect(rows.rows.every((r) => (JSON.parse(r.doc) as { data: { agent: string } }).data.agent === a.id)).toBe(true);
      const rec = (await db.loadAgent(a.id))!;
      expect(rec.lastSeq).toBe(perAgent);
      expect(rec.gaps).toEqual([]);
    }
    expect((await db.query('SELECT 1 FROM cvm_gaps')).rowCount).toBe(0);
    const verdictIds = new Set((await db.query<{ challenge_id: string }>('SELECT challenge_id FROM cvm_verdicts')).rows.map((r) => r.challenge_id));
    const answered = Number((await db.query<{ n: string }>('SELECT count(*) AS n FROM cvm_challenges WHERE answered_at IS NOT NULL')).rows[0]!.n);
    for (const a of agents) {
      // No challenge got two verdicts, and a verdict reached an agent only after its commit.
      expect(new Set(a.verdictChallenges).size, a.id).toBe(a.verdictChallenges.length);
      for (const c of a.verdictChallenges) expect(verdictIds.has(c), `${a.id} verdict ${c} committed`).toBe(true);
    }
    expect(verdictIds.size).toBeLessThanOrEqual(answered);
    return { verdicts: verdictIds.size, answered };
  } finally {
    await db.close();
  }
}

describe.runIf(run)('controller failover trial (3 replicas, one PostgreSQL)', () => {
  it('20 agents, 5,000 events, a replica killed with SIGKILL every few seconds: every seq stored once, no verdict twice, every agent back within its backoff', async () => {
    const pgs = await TestPostgres.start();
    cleanup.push(() => pgs.stop());
    const url = await pgs.createDatabase();
    const ids = Array.from({ length: 20 }, (_, i) => `fo-${String(i).padStart(2, '0')}`);
    const tokens = Object.fromEntries(ids.map((id) => [id, `token-${id}-0123456789`]));
    const replicas = await startReplicas(url, 3, ids, tokens);
    const agents = await startAgents(
      replicas.map((r) => r.wsUrl),
      ids,
      tokens,
    );
    await until(
      () => agents.every((a) => a.verdictChallenges.length > 0),
      60_000,
      () => `a first verdict for every agent`,
    );
    const stopWatch = watchOutages(agents);
    const PER_AGENT = 250;
    const rnd = lcg(0xfa11);
    let appending = true;
    let kills = 0;
    const t0 = Date.now();
    const killer = (async () => {
      while (appending) {
        await sleep(2500 + Math.floor(rnd() * 1500));
        if (!appending) break;
        const r = replicas[Math.floor(rnd() * replicas.length)]!;
        await r.kill9();
        kills++;
        await sleep(300 + Math.floor(rnd() * 700));
        await r.start();
      }
    })();
    // Progress, with what a stall needs to be read: the time, each agent's last appended seq (is it
    // still appending?), its events sent and unacknowledged (is it sending, its events held by a
    // controller?) and the replica (port) its link is on (did every agent move together?).
    const progress = setInterval(() => {
      const links = agents.map((a) => a.h.link.status());
      const ports = [...new Set(links.map((s) => new URL(s.url ?? 'ws://x:0').port))].join('/');
      process.stderr.write(
        `[failover] t+${Math.round((Date.now() - t0) / 1000)}s kills ${kills}${appending ? '' : ' (appending done)'}; acked ${agents.map((a) => a.h.outbox.lastAcked).join(',')}; ` +
          `appended ${agents.map((a) => a.h.outbox.lastSeq).join(',')}; in flight ${links.map((s) => s.inFlight).join(',')}; ` +
          `up ${links.filter((s) => s.state === 'up').length} on port ${ports}\n`,
      );
    }, 5000);
    cleanup.push(async () => clearInterval(progress));
    await appendAll(agents, PER_AGENT, 100);
    appending = false;
    await killer;
    await allAcked(agents, PER_AGENT);
    // Not during the next tests: their lines would read as this trial's.
    clearInterval(progress);
    stopWatch();
    const { verdicts, answered } = await checkStored(url, agents, PER_AGENT);
    const outages = agents.flatMap((a) => a.outages).sort((x, y) => x - y);
    const worst = outages[outages.length - 1] ?? 0;
    console.log(
      `[failover] ${ids.length} agents, ${ids.length * PER_AGENT} events, ${kills} SIGKILLs in ${Date.now() - t0} ms; ${outages.length} outages, ` +
        `median ${Math.round(outages[Math.floor(outages.length / 2)] ?? 0)} ms, worst ${Math.round(worst)} ms; ${verdicts} verdicts for ${answered} answered challenges`,
    );
    expect(kills).toBeGreaterThanOrEqual(5);
    expect(outages.length).toBeGreaterThan(0);
    // Back on a live replica within its backoff: at most three attempts (the next URL may be the one
    // just killed), each at most capMs apart, plus connect and handshake on a loaded machine.
    expect(worst).toBeLessThan(3 * BACKOFF.capMs + 5000);
  }, 300_000);

  it('the database restarted under the stream: the controllers reconnect, the agents keep their outbox, nothing is lost', async () => {
    const pgs = await TestPostgres.start();
    cleanup.push(() => pgs.stop());
    const url = await pgs.createDatabase();
    const ids = Array.from({ length: 5 }, (_, i) => `db-${i}`);
    const tokens = Object.fromEntries(ids.map((id) => [id, `token-${id}-0123456789`]));
    const replicas = await startReplicas(url, 2, ids, tokens);
    const agents = await startAgents(
      replicas.map((r) => r.wsUrl),
      ids,
      tokens,
    );
    await until(() => agents.every((a) => a.verdictChallenges.length > 0), 60_000, 'a first verdict for every agent');
    const PER_AGENT = 200;
    const appending = appendAll(agents, PER_AGENT, 20);
    await until(() => agents.every((a) => a.h.outbox.lastAcked >= 30), 30_000, 'events flowing');
    await pgs.stopServer('SIGKILL');
    // Acks for what was committed before the kill may still be on their way (sent by a controller
    // just before, or queued in the agent behind its outbox writes, which go on): the snapshot is
    // taken once no ack has moved for 500 ms (at most 10 s; a controller that kept acking without
    // the database would then fail the check below anyway).
    const acked = () => agents.map((a) => a.h.outbox.lastAcked);
    let ackedWhileDown = acked();
    for (let quietSince = Date.now(), deadline = Date.now() + 10_000; Date.now() - quietSince < 500 && Date.now() < deadline; ) {
      await sleep(50);
      const now = acked();
      if (now.some((n, i) => n !== ackedWhileDown[i])) quietSince = Date.now();
      ackedWhileDown = now;
    }
    await sleep(2000);
    // Nothing is acknowledged while the database is down (an ack follows a commit).
    expect(agents.map((a) => a.h.outbox.lastAcked)).toEqual(ackedWhileDown);
    await pgs.startServer();
    await appending;
    await allAcked(agents, PER_AGENT);
    await checkStored(url, agents, PER_AGENT);
    // The replicas lived through it (a dropped database connection never ends the process) and answer.
    expect(replicas.every((r) => r.pid !== undefined)).toBe(true);
    for (const r of replicas) {
      const res = await fetch(`${r.wsUrl.replace('ws://', 'http://').replace('/v1/link', '')}/healthz`);
      expect([200, 503]).toContain(res.status);
    }
  }, 300_000);

  it.runIf(haproxy)(
    'behind HAProxy (one URL, TCP, /healthz checks): 10 agents, 2,000 events, replicas killed with SIGKILL in turn, every event stored once',
    async () => {
      const pgs = await TestPostgres.start();
      cleanup.push(() => pgs.stop());
      const url = await pgs.createDatabase();
      const ids = Array.from({ length: 10 }, (_, i) => `lb-${i}`);
      const tokens = Object.fromEntries(ids.map((id) => [id, `token-${id}-0123456789`]));
      const replicas = await startReplicas(url, 3, ids, tokens);
      const port = await freePort();
      const cfg = join(suite.tmp, 'haproxy.cfg');
      // As docs/controller.md "A load balancer" shows it (plain HTTP replicas here, so no check-ssl).
      writeFileSync(
        cfg,
        [
          'global',
          '    maxconn 1000',
          'defaults',
          '    timeout connect 5s',
          '    timeout client 1h',
          '    timeout server 1h',
          'frontend cvm_link',
          '    mode tcp',
          `    bind 127.0.0.1:${port}`,
          '    default_backend cvm_controllers',
          'backend cvm_controllers',
          '    mode tcp',
          '    balance leastconn',
          '    option httpchk GET /healthz',
          '    http-check expect status 200',
          ...replicas.map((r, i) => `    server c${i} 127.0.0.1:${r.port} check inter 300ms fall 1 rise 1`),
          '',
        ].join('\n'),
      );
      const lb = spawn('haproxy', ['-f', cfg, '-db'], { stdio: ['ignore', 'ignore', 'pipe'] });
      let lbErr = '';
      lb.stderr?.on('data', (d: Buffer) => (lbErr += d.toString()));
      cleanup.push(async () => {
        lb.kill('SIGKILL');
      });
      await sleep(500);
      expect(lb.exitCode, lbErr).toBeNull();
      const agents = await startAgents([`ws://127.0.0.1:${port}/v1/link`], ids, tokens);
      await until(
        () => agents.every((a) => a.verdictChallenges.length > 0),
        60_000,
        () => `a first verdict for every agent (haproxy: ${lbErr.slice(-500)})`,
      );
      const PER_AGENT = 200;
      const rnd = lcg(0x1b);
      let appending = true;
      let kills = 0;
      const killer = (async () => {
        while (appending) {
          await sleep(2000 + Math.floor(rnd() * 1000));
          if (!appending) break;
          const r = replicas[kills % replicas.length]!;
          await r.kill9();
          kills++;
          await sleep(500);
          await r.start();
        }
      })();
      await appendAll(agents, PER_AGENT, 100);
      appending = false;
      await killer;
      await allAcked(agents, PER_AGENT);
      expect(kills).toBeGreaterThanOrEqual(3);
      await checkStored(url, agents, PER_AGENT);
    },
    300_000,
  );
});
