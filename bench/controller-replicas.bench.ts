/**
 * Replica scale figures (issue 14 item 4): 1 and 3 REAL controller replicas (each `cvm-agent
 * controller` in a child process of its own, test/helpers/scale-controller.ts) on one PostgreSQL
 * (a server in a temporary directory, test/helpers/postgres.ts; fsync off), with N = 1,000
 * protocol-level agents (test/helpers/protocol-agents.ts) connected over real WebSockets, agent i to
 * replica i mod R (controller.urls order). Of the N, ACTIVE agents attest (a real 8-GPU SNP bundle
 * signed by the simulation roots, as in bench/controller-scale.bench.ts) and then stream events; the
 * rest stay connected with their first challenge unanswered (links, heartbeats and leases count).
 * Per R:
 *  - verdicts/s: VERDICTS re-attestations driven over the replicas (48 in flight), wall rate; with
 *    controller CPU (all replicas, net of their idle CPU) and PostgreSQL CPU per verdict;
 *  - events/s: ROUNDS rounds of EVENTS events per active agent, each round sent at once and waited
 *    for until every event is acknowledged (an ack follows the commit); with controller CPU per event
 *    (signature check, registry and the store write) and PostgreSQL CPU per event (the server's own
 *    processes, from /proc: postmaster, backends, WAL writer...), both net of idle.
 * Everything runs on one machine, so agents, replicas and the database share its cores: the rates are
 * bounded by that, the CPU per operation is the figure that carries over. Without PostgreSQL the
 * bench prints one row saying so. Numbers are printed, never asserted. ~1.5-2.5 min on 2 cores.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { SimulatedSnpDevice } from '../agent/simulation/snp-sim.js';
import { loadOrCreateSimGpuIdentity } from '../agent/simulation/gpu-sim.js';
import { AgentProcesses, GPUS_PER_MACHINE, ProtocolAgentFleet, SIM_MAX_GPUS } from '../test/helpers/protocol-agents.js';
import { ScaleController, sleep, waitCounts } from '../test/helpers/scale-controller.js';
import { postgresBinDir, TestPostgres } from '../test/helpers/postgres.js';
import type { BenchRow } from './lib.js';

const N = Number(process.env.BENCH_REPLICAS_N ?? 1000);
const ACTIVE = Number(process.env.BENCH_REPLICAS_ACTIVE ?? 100);
const REPLICAS = (process.env.BENCH_REPLICAS ?? '1,3').split(',').map(Number);
const VERDICTS = 100;
const EVENTS = 40;
const ROUNDS = 2;
const IDLE_SEC = 2;
const TOKEN = 'replica-bench-token-0123456789abcdef';
const NOFILE = 65536;
const fmt = (x: number, d = 1) => x.toFixed(d);

async function until(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`bench: timed out waiting for ${what}`);
    await sleep(20);
  }
}

async function atReplicas(R: number, pgs: TestPostgres, dir: string, simDir: string): Promise<BenchRow[]> {
  const t0 = performance.now();
  const step = (what: string) => process.stderr.write(`  controller-replicas R=${R} +${fmt((performance.now() - t0) / 1000)} s: ${what}\n`);
  const url = await pgs.createDatabase(`cvm_bench_r${R}_${process.pid}`);
  const ctls: ScaleController[] = [];
  const fleets: AgentProcesses[] = [];
  try {
    for (let r = 0; r < R; r++) {
      ctls.push(
        await ScaleController.start({
          dir: join(dir, `r${R}-${r}`),
          simDir,
          token: TOKEN,
          maxConnections: N + 100,
          nofile: NOFILE,
          store: { url, replica: `bench-r${r}` },
        }),
      );
    }
    const urls = ctls.map((c) => c.wsUrl);
    const cpuCtl = () => ctls.reduce((s, c) => s + c.cpuSeconds(), 0);
    // Warm-up (untimed): one agent per 8-GPU set on each replica attests twice and leaves.
    const warmN = (SIM_MAX_GPUS / GPUS_PER_MACHINE) * R;
    const warm = await ProtocolAgentFleet.prepare({ urls, token: TOKEN, simDir, count: warmN, idPrefix: `warm${R}-` });
    await warm.connect();
    await until(() => warm.counts().verdicts >= warmN, 90_000, 'warm-up verdicts');
    await Promise.all(ctls.map((c, r) => c.challenge(warm.ids.filter((_, i) => i % R === r))));
    await until(() => warm.counts().verdicts >= 2 * warmN, 90_000, 'warm-up verdicts');
    await warm.close();

    step(`connecting ${N} agents (${ACTIVE} of them attest and stream events)`);
    const idle = await AgentProcesses.start({
      urls,
      token: TOKEN,
      simDir,
      count: N - ACTIVE,
      processes: 1,
      answer: false,
      idPrefix: `idle${R}-`,
      nofile: NOFILE,
    });
    fleets.push(idle);
    const active = await AgentProcesses.start({ urls, token: TOKEN, simDir, count: ACTIVE, processes: 1, answer: true, idPrefix: `act${R}-`, nofile: NOFILE });
    fleets.push(active);
    await Promise.all([idle.connect(), active.connect()]);
    await waitCounts(idle, (c) => c.welcomes >= N - ACTIVE, 120_000, `${N - ACTIVE} idle links up`, 100);
    await waitCounts(active, (c) => c.verdicts >= ACTIVE, 180_000, `${ACTIVE} first verdicts`, 100);

    step(`idle ${IDLE_SEC} s`);
    const [ci, di] = [cpuCtl(), pgs.cpuSeconds()];
    await sleep(IDLE_SEC * 1000);
    const idleCtl = (cpuCtl() - ci) / IDLE_SEC;
    const idleDb = (pgs.cpuSeconds() - di) / IDLE_SEC;

    step(`${VERDICTS} re-attestations`);
    const ids = active.ids;
    const start = await active.counts();
    const [cv, dv, av] = [cpuCtl(), pgs.cpuSeconds(), active.cpuSeconds()];
    const tv = performance.now();
    let issued = 0;
    let c = start;
    while (c.verdicts - start.verdicts < VERDICTS) {
      const room = Math.min(48 - (issued - (c.verdicts - start.verdicts)), VERDICTS - issued);
      if (room > 0) {
        const batch = Array.from({ length: room }, (_, k) => issued + k);
        await Promise.all(ctls.map((ctl, r) => ctl.challenge(batch.filter((i) => (i % ids.length) % R === r).map((i) => ids[i % ids.length]!))));
        issued += room;
      }
      if (performance.now() - tv > 180_000) throw new Error(`bench: verdicts timed out: ${JSON.stringify(c)}`);
      await sleep(10);
      c = await active.counts();
    }
    const vWall = (performance.now() - tv) / 1000;
    const vCtl = cpuCtl() - cv - idleCtl * vWall;
    const vDb = pgs.cpuSeconds() - dv - idleDb * vWall;
    const vAgents = active.cpuSeconds() - av;
    const verdicts = c.verdicts - start.verdicts;
    const notAffirming = Object.entries(c.byStatus).filter(([k]) => k !== 'affirming');
    if (notAffirming.length > 0) throw new Error(`bench: verdicts not affirming: ${JSON.stringify(notAffirming)}`);

    step(`${ROUNDS} rounds of ${EVENTS} events from each of ${ACTIVE} agents`);
    const e0 = await active.counts();
    const [ce, de] = [cpuCtl(), pgs.cpuSeconds()];
    const te = performance.now();
    let sent = 0;
    for (let round = 0; round < ROUNDS; round++) {
      sent += await active.sendEvents(EVENTS);
      await waitCounts(active, (x) => x.eventsAcked - e0.eventsAcked >= sent, 180_000, `round ${round + 1}: every event acknowledged`, 20);
    }
    const eWall = (performance.now() - te) / 1000;
    const eCtl = cpuCtl() - ce - idleCtl * eWall;
    const eDb = pgs.cpuSeconds() - de - idleDb * eWall;
    const cl = new pg.Client({ connectionString: url });
    await cl.connect();
    const stored = Number((await cl.query<{ n: string }>('SELECT count(*) AS n FROM cvm_events').finally(() => cl.end())).rows[0]!.n);
    const e1 = await active.counts();
    if (e1.up < ACTIVE) throw new Error(`bench: active links dropped: ${JSON.stringify(e1.closes)}`);

    const label = `${R} controller replica${R > 1 ? 's' : ''} on one PostgreSQL, ${N.toLocaleString('en-US')} agents connected`;
    return [
      {
        name: `${label}: verdicts/s`,
        medianMs: verdicts / vWall,
        runs: verdicts,
        unit: 'verdicts/s',
        note:
          `${verdicts} re-attestations (8-GPU SNP bundle), 48 in flight over ${R} replica(s), wall ${fmt(vWall)} s; controller CPU per verdict ${fmt((vCtl / verdicts) * 1000)} ms (all replicas, net of idle ${fmt(idleCtl * 1000)} ms/s), ` +
          `PostgreSQL CPU per verdict ${fmt((vDb / verdicts) * 1000, 2)} ms (net of idle ${fmt(idleDb * 1000)} ms/s); agents' CPU per verdict ${fmt((vAgents / verdicts) * 1000)} ms (bundle signing, same cores)`,
      },
      {
        name: `${label}: events/s`,
        medianMs: sent / eWall,
        runs: sent,
        unit: 'events/s',
        note: `${ACTIVE} agents x ${EVENTS} events x ${ROUNDS} rounds, each round acknowledged (after the commit) before the next; wall ${fmt(eWall)} s; ${stored} rows in cvm_events`,
      },
      {
        name: `${label}: controller CPU per event`,
        medianMs: (eCtl / sent) * 1000,
        runs: sent,
        unit: 'ms/event',
        note: 'all replicas together, net of idle: signature check, registry, the store write (one transaction per burst) and the ack',
      },
      {
        name: `${label}: PostgreSQL CPU per event`,
        medianMs: (eDb / sent) * 1000,
        runs: sent,
        unit: 'ms/event',
        note: 'the server processes (postmaster, backends, WAL writer; /proc), net of idle; fsync off',
      },
    ];
  } finally {
    await Promise.all(fleets.map((f) => f.close()));
    await Promise.all(ctls.map((c) => c.stop()));
  }
}

export default async function controllerReplicasBench(): Promise<BenchRow[]> {
  if (!postgresBinDir()) {
    return [
      {
        name: 'controller replicas on one PostgreSQL: not measured',
        medianMs: 0,
        runs: 0,
        unit: 'n/a',
        note: 'no PostgreSQL under /usr/lib/postgresql (apt-get install -y postgresql); the replica rows need a server',
      },
    ];
  }
  const dir = mkdtempSync(join(tmpdir(), 'ctl-replicas-bench-'));
  const simDir = join(dir, 'sim');
  const pgs = await TestPostgres.start();
  try {
    await SimulatedSnpDevice.open(simDir);
    await loadOrCreateSimGpuIdentity(simDir, SIM_MAX_GPUS);
    const rows: BenchRow[] = [];
    for (const R of REPLICAS) rows.push(...(await atReplicas(R, pgs, dir, simDir)));
    return rows;
  } finally {
    await pgs.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
