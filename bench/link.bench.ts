/**
 * Controller-link benchmarks (issue 6 "Performance"), all over loopback with the REAL agent link
 * (ControllerLink + fsync'd Outbox) and the REAL reference controller:
 *  1. events/s from one agent to the controller, acked (append -> ack), with the outbox alone
 *     (same fsync'd appends, no link) as the floor; median/p99 append -> ack latency, one event at a time;
 *  2. controller restart -> resumed stream (controller listening again -> first new event acked),
 *     median of several restarts, with the default backoff (1 s base, full jitter) and a 20 ms one;
 *  3. 500 full ControllerLink clients (in this process, default backoff) against one controller in a
 *     child process that is SIGKILLed and started again: how the reconnect storm spreads
 *     (p50/p90/max reconnect delay after the controller is back, peak connections per second) with
 *     full jitter vs. no jitter (every agent at the ceiling), and the controller's RSS per agent.
 * Numbers are printed, never asserted. Total time ~1.5-2.5 min on 2 cores.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { BenchRow } from './lib.js';
import { createAgentKey } from '../agent/link/agent-key.js';
import { ControllerLink } from '../agent/link/link-client.js';
import { DEFAULT_BACKOFF, type BackoffOptions } from '../agent/link/backoff.js';
import { Outbox } from '../agent/link/outbox.js';
import { makeHarness, type Harness } from '../test/helpers/test-controller.js';
import { makeBundle, openSim, type Sim } from '../test/helpers/controller-fixture.js';
import { ChildController, CONTROLLER_TOKEN_KEY, percentile, RestartableController, sleep, TOKEN, until } from '../test/helpers/link-load.js';
import { buildDist } from '../tools/build-dist.js';

const STORM_AGENTS = Number(process.env.BENCH_LINK_AGENTS ?? 500);

/** Time at which each event seq was first covered by an ack (the outbox's ack is wrapped). */
function watchAcks(h: Harness): Map<number, number> {
  const ackedAt = new Map<number, number>();
  const box = h.outbox;
  const orig = box.ack.bind(box);
  let covered = box.lastAcked;
  box.ack = async (seq: number) => {
    await orig(seq);
    const t = performance.now();
    for (; covered < box.lastAcked; covered++) ackedAt.set(covered + 1, t);
  };
  return ackedAt;
}

async function attestedHarness(rc: RestartableController, sim: Sim, tokenFile: string, agentId: string, backoff?: BackoffOptions): Promise<Harness> {
  let h!: Harness;
  h = await makeHarness(rc.wsUrl, {
    agentId,
    tokenFile,
    tokenKeys: [CONTROLLER_TOKEN_KEY],
    // The backoff attempt resets after the link stayed up this long: each restart below then starts from
    // attempt 0, as after a controller that had been up for a while (the default is 60 s).
    ...(backoff ? { backoff, resetAfterMs: 200 } : {}),
    handlers: { onChallenge: async (nonce) => ({ bundle: await makeBundle(sim, nonce, h.key.publicJwk, agentId), localResult: {} }) },
  });
  h.link.start();
  await until(() => h.calls.verdicts.length > 0, 20_000, 'a first verdict');
  return h;
}

/** E events appended back to back (the outbox serialises them) until the last is acked: events/s and per-event latency. */
async function throughput(h: Harness, ackedAt: Map<number, number>, E: number): Promise<{ evPerSec: number; ms: number; lat: number[] }> {
  const base = h.outbox.lastSeq;
  const issued: number[] = [];
  const t0 = performance.now();
  const appends = Array.from({ length: E }, (_, i) => {
    issued.push(performance.now());
    return h.outbox.append('status', { i });
  });
  await Promise.all(appends);
  await until(() => h.outbox.lastAcked >= base + E, 60_000, 'throughput events acked', 1);
  const ms = performance.now() - t0;
  const lat = issued.map((t, i) => ackedAt.get(base + i + 1)! - t).sort((a, b) => a - b);
  return { evPerSec: (E / ms) * 1000, ms, lat };
}

/** Throughput against a controller without stateDir: how much of the cost is its per-batch state write. */
async function memoryOnlyThroughput(sim: Sim, tokenFile: string, E: number): Promise<number> {
  const rc = await RestartableController.create({ stateDir: undefined, simDir: sim.dir });
  await rc.start();
  const h = await attestedHarness(rc, sim, tokenFile, 'bench-stream-mem');
  try {
    return (await throughput(h, watchAcks(h), E)).evPerSec;
  } finally {
    await h.close();
    await rc.stop();
  }
}

async function streamBench(sim: Sim, dir: string, tokenFile: string): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const E = 2000;
  const memEvPerSec = await memoryOnlyThroughput(sim, tokenFile, E);
  const rc = await RestartableController.create({ stateDir: join(dir, 'ctl-stream'), simDir: sim.dir });
  await rc.start();
  const h = await attestedHarness(rc, sim, tokenFile, 'bench-stream');
  const ackedAt = watchAcks(h);
  try {
    // Floor: the same appends (sign + fsync) into an outbox with no link.
    const floorBox = await Outbox.open({ dir: join(dir, 'floor'), key: h.key, maxEvents: 100_000 });
    const f0 = performance.now();
    await Promise.all(Array.from({ length: E }, (_, i) => floorBox.append('status', { i })));
    const floorMs = performance.now() - f0;
    await floorBox.close();

    const { evPerSec, ms, lat: pipelinedLat } = await throughput(h, ackedAt, E);
    rows.push({
      name: `link throughput, ${E} events appended back to back -> acked (agent + controller in one process)`,
      medianMs: evPerSec,
      runs: 1,
      unit: 'ev/s',
      baselineName: 'outbox.append alone (sign+fsync, no link)',
      baselineMs: (E / floorMs) * 1000,
      note: `${ms.toFixed(0)} ms total; controller without stateDir: ${memEvPerSec.toFixed(0)} ev/s; append->ack under that load p50 ${percentile(pipelinedLat, 50).toFixed(1)} ms, p99 ${percentile(pipelinedLat, 99).toFixed(1)} ms (queueing included)`,
    });

    // Latency: one event at a time (append, wait for its ack, next).
    const L = 300;
    const lat: number[] = [];
    for (let i = 0; i < L + 20; i++) {
      const t = performance.now();
      const e = await h.outbox.append('status', { lat: i });
      await until(() => ackedAt.has(e.seq), 5000, 'latency ack', 0);
      if (i >= 20) lat.push(ackedAt.get(e.seq)! - t);
    }
    lat.sort((a, b) => a - b);
    rows.push({
      name: 'event latency append -> ack, one at a time (p50)',
      medianMs: percentile(lat, 50),
      runs: L,
      note: `p99 ${percentile(lat, 99).toFixed(2)} ms, max ${lat[lat.length - 1]!.toFixed(2)} ms; ${L} events (append includes sign + fsync)`,
    });
    rows.push({ name: 'event latency append -> ack, one at a time (p99)', medianMs: percentile(lat, 99), runs: L, note: `${L} events` });
  } finally {
    await h.close();
    await rc.stop();
  }
  return rows;
}

/** Controller stopped, down `downMs`, started again: time from "listening" to the ack of an event appended while down. */
async function restartBench(
  sim: Sim,
  dir: string,
  tokenFile: string,
  backoff: BackoffOptions,
  label: string,
  restarts: number,
  downMs: number,
): Promise<BenchRow> {
  const rc = await RestartableController.create({ stateDir: join(dir, `ctl-restart-${backoff.baseMs}`), simDir: sim.dir });
  await rc.start();
  const h = await attestedHarness(rc, sim, tokenFile, `bench-restart-${backoff.baseMs}`, backoff);
  const ackedAt = watchAcks(h);
  const samples: number[] = [];
  try {
    for (let i = 0; i < restarts; i++) {
      await rc.stop();
      const e = await h.outbox.append('status', { restart: i });
      await sleep(downMs);
      await rc.start();
      const up = rc.upAt;
      await until(() => ackedAt.has(e.seq), 120_000, 'resumed stream', 1);
      samples.push(ackedAt.get(e.seq)! - up);
      await sleep(300); // past resetAfterMs
    }
  } finally {
    await h.close();
    await rc.stop();
  }
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    name: `controller restart -> resumed stream (first new ack), ${label}`,
    medianMs: percentile(sorted, 50),
    runs: restarts,
    note: `${restarts} restarts (in process, same port + stateDir), down ${downMs} ms each, backoff attempt reset before each; samples ${sorted.map((s) => s.toFixed(0)).join('/')} ms`,
  };
}

// ---- the reconnect storm: 500 agents, the controller in a child process ------------------------------

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

function peakPerWindow(times: number[], windowMs: number): number {
  const t = [...times].sort((a, b) => a - b);
  let peak = 0;
  let lo = 0;
  for (let hi = 0; hi < t.length; hi++) {
    while (t[hi]! - t[lo]! >= windowMs) lo++;
    peak = Math.max(peak, hi - lo + 1);
  }
  return peak;
}

let distBuilt: Promise<unknown> | undefined;

async function stormBench(dir: string, tokenFile: string, jitter: boolean): Promise<{ rows: BenchRow[]; p90: number }> {
  const tag = jitter ? 'full jitter' : 'no jitter';
  // ChildController runs the built CLI (bin/cvm-agent.js): build dist/ from this tree once.
  await (distBuilt ??= buildDist());
  // Log at info: its "controller listening" line tells us when it is back up. Default per-link limits.
  const ctl = await ChildController.create(
    { stateDir: join(dir, `storm-state-${jitter ? 'j' : 'n'}`), logLevel: 'info', limits: { messagesPerSec: 20, burst: 60, maxConnections: 2000 } },
    dir,
  );
  await ctl.start();
  const links: ControllerLink[] = [];
  const boxes: Outbox[] = [];
  const welcomes: number[][] = [];
  try {
    await sleep(1000);
    const rss0 = rssBytes(ctl.pid!);
    const url = ctl.wsUrl;
    for (let i = 0; i < STORM_AGENTS; i++) {
      const key = await createAgentKey();
      const outbox = await Outbox.open({ dir: join(dir, `storm-agents-${jitter ? 'j' : 'n'}`, String(i)), key });
      boxes.push(outbox);
      const mine: number[] = [];
      welcomes.push(mine);
      links.push(
        new ControllerLink({
          url,
          insecure: true,
          tokenKeys: [CONTROLLER_TOKEN_KEY],
          agentId: `storm-${String(i).padStart(4, '0')}`,
          agentVersion: 'bench',
          key,
          outbox,
          tokenFile,
          backoff: DEFAULT_BACKOFF,
          // No jitter: every agent waits exactly the ceiling, as a naive exponential backoff would.
          ...(jitter ? {} : { random: () => 0.999999 }),
          handlers: {
            // Attestation is not what is measured: answer challenges with an error, which is cheap for both sides.
            onChallenge: async () => {
              throw new Error('bench agent: no evidence');
            },
            onAttestRequest: async () => undefined,
            onVerdict: () => undefined,
            onWelcome: () => {
              mine.push(performance.now());
            },
          },
        }),
      );
    }
    const c0 = performance.now();
    for (const l of links) l.start();
    await until(
      () => links.every((l) => l.status().state === 'up'),
      120_000,
      () => `all ${STORM_AGENTS} links up (${links.filter((l) => l.status().state === 'up').length})`,
      20,
    );
    const coldMs = performance.now() - c0;
    await sleep(2000);
    const rss1 = rssBytes(ctl.pid!);

    // The storm: SIGKILL the controller, start it again at once, and watch the fleet come back.
    const before = welcomes.map((w) => w.length);
    const connects0 = links.reduce((n, l) => n + l.status().counters.connects, 0);
    await ctl.kill9();
    await ctl.start();
    const up = ctl.upAt;
    await until(
      () => welcomes.every((w, i) => w.length > before[i]!),
      180_000,
      () => `all agents back (${welcomes.filter((w, i) => w.length > before[i]!).length}/${STORM_AGENTS})`,
      20,
    );
    const back = welcomes.map((w, i) => w[before[i]!]!);
    const delays = back.map((t) => t - up).sort((a, b) => a - b);
    const attempts = links.reduce((n, l) => n + l.status().counters.connects, 0) - connects0;
    const peak1s = peakPerWindow(back, 1000);
    const peak100 = peakPerWindow(back, 100);
    const rows: BenchRow[] = [
      {
        name: `${STORM_AGENTS} agents, controller SIGKILL+restart, ${tag}: reconnect delay p50`,
        medianMs: percentile(delays, 50),
        runs: 1,
        note: `p90 ${percentile(delays, 90).toFixed(0)} ms, max ${delays[delays.length - 1]!.toFixed(0)} ms after "listening"; peak ${peak1s} conn in any 1 s, ${peak100} in any 100 ms (${peak100 * 10}/s); ${attempts} connection attempts (${(attempts / STORM_AGENTS).toFixed(1)}/agent); default backoff 1 s..60 s`,
      },
      { name: `${STORM_AGENTS} agents, ${tag}: reconnect delay p90`, medianMs: percentile(delays, 90), runs: 1 },
      { name: `${STORM_AGENTS} agents, ${tag}: reconnect delay max`, medianMs: delays[delays.length - 1]!, runs: 1 },
      { name: `${STORM_AGENTS} agents, ${tag}: peak connections per second (1 s window)`, medianMs: peak1s, runs: 1, unit: 'conn/s' },
    ];
    if (jitter) {
      rows.push({
        name: `controller RSS per connected agent (${STORM_AGENTS} links)`,
        medianMs: (rss1 - rss0) / STORM_AGENTS / 1024,
        runs: 1,
        unit: 'KiB',
        note: `RSS ${(rss0 / 2 ** 20).toFixed(1)} MiB idle -> ${(rss1 / 2 ** 20).toFixed(1)} MiB with ${STORM_AGENTS} links (child process, /proc VmRSS); cold connect of all: ${coldMs.toFixed(0)} ms`,
      });
    }
    return { rows, p90: percentile(delays, 90) };
  } finally {
    await Promise.all(links.map((l) => l.stop()));
    await Promise.all(boxes.map((b) => b.close()));
    await ctl.kill9();
  }
}

export default async function (): Promise<BenchRow[]> {
  const dir = mkdtempSync(join(tmpdir(), 'cvm-bench-link-'));
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, `${TOKEN}\n`);
  await mkdir(join(dir, 'floor'), { recursive: true });
  const sim = await openSim();
  const rows: BenchRow[] = [];
  try {
    const step = (what: string) => process.stderr.write(`  link: ${what}...\n`);
    step('stream');
    rows.push(...(await streamBench(sim, dir, tokenFile)));
    step('restart (fast backoff)');
    rows.push(await restartBench(sim, dir, tokenFile, { baseMs: 20, capMs: 150 }, 'backoff 20..150 ms', 7, 300));
    step('restart (default backoff)');
    rows.push(await restartBench(sim, dir, tokenFile, DEFAULT_BACKOFF, 'default backoff 1..60 s', 5, 300));
    step(`storm, ${STORM_AGENTS} agents, full jitter`);
    rows.push(...(await stormBench(dir, tokenFile, true)).rows);
    step(`storm, ${STORM_AGENTS} agents, no jitter`);
    rows.push(...(await stormBench(dir, tokenFile, false)).rows);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(sim.dir, { recursive: true, force: true });
  }
  return rows;
}
