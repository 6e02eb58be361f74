/**
 * Daemon benchmarks (issue: the daemon):
 * - GET /v1/status throughput and p99 with 32 concurrent clients, against a bare node:http server
 *   answering the same bytes on a Unix socket in the same run (target >= 0.7x the bare throughput);
 * - start -> READY=1 (target < 300 ms) and start -> "8 simulated GPUs attested and ready state set"
 *   (target < 500 ms): cold starts of a child process, median of BENCH_STARTS (default 5);
 * - idle resident memory (the max, which holds a cycle, and the median, between cycles) and CPU over
 *   an idle window with a one-minute schedule (target < 60 MB, < 0.5%), against a bare node:http
 *   server started the same way.
 * The agent runs as users run it: the built bundle (dist/, rebuilt first by tools/build-dist.ts)
 * through bin/cvm-agent.js, with the environment the systemd unit sets (every Environment= variable of
 * systemd/cvm-agent.service: NODE_OPTIONS, MALLOC_ARENA_MAX, UV_THREADPOOL_SIZE, NODE_ENV); the bare
 * node:http floor gets the same environment.
 */
import { execFileSync, spawn } from 'node:child_process';
import { request, Agent } from 'node:http';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import type { BenchRow } from './lib.js';
import { NotifyReceiver } from '../test/helpers/notify-receiver.js';
import { encodeHistoryLine, parseHistoryLog } from '../agent/state/history-log.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const IDLE_SEC = Number(process.env.BENCH_IDLE_SEC ?? 60);
const STARTS = Number(process.env.BENCH_STARTS ?? 5);
/**
 * The idle rows measure a daemon whose history is full (state.historySize, 100 by default), as it is
 * after 100 cycles, unless BENCH_HISTORY=empty (a first start: only the cold starts' records).
 */
const FULL_HISTORY = process.env.BENCH_HISTORY !== 'empty';
const HISTORY_SIZE = 100;

/**
 * Fills <stateDir>/history.jsonl with `size` copies of the newest record the cold starts wrote (ids
 * 1..size, a minute apart, ending now), as the agent itself encodes them.
 */
function fillHistory(stateDir: string, size: number): void {
  const path = join(stateDir, 'history.jsonl');
  const template = parseHistoryLog(readFileSync(path)).records.at(-1);
  if (!template) throw new Error(`no record in ${path} to fill the history with`);
  const now = Date.now();
  const lines = Array.from({ length: size }, (_, i) => {
    const at = (ms: number) => new Date(now - (size - i) * 60_000 + ms).toISOString();
    return encodeHistoryLine({ ...template, id: i + 1, startedAt: at(0), finishedAt: at(500) });
  });
  writeFileSync(path, lines.join(''), { mode: 0o600 });
}

/**
 * The variables the unit's Environment= lines set, as systemd reads them (systemd.exec(5): assignments
 * separated by spaces, a double-quoted one may hold spaces; a later assignment wins).
 */
export function unitEnvironment(unitText: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of unitText.split('\n')) {
    const m = /^Environment=(.*)$/.exec(line.trim());
    if (!m) continue;
    for (const [, quoted, bare] of m[1]!.matchAll(/"([^"]*)"|(\S+)/g)) {
      const word = quoted ?? bare!;
      const eq = word.indexOf('=');
      if (eq > 0) env[word.slice(0, eq)] = word.slice(eq + 1);
    }
  }
  return env;
}

/** The agent as /usr/bin/cvm-agent runs it: node bin/cvm-agent.js over the freshly built dist/, in the unit's environment. */
function agentCommand(): { argv: string[]; env: NodeJS.ProcessEnv; unitEnv: Record<string, string> } {
  execFileSync(process.execPath, ['--import', 'tsx', join(root, 'tools', 'build-dist.ts')], { stdio: 'inherit' });
  const unitEnv = unitEnvironment(readFileSync(join(root, 'systemd', 'cvm-agent.service'), 'utf8'));
  const env: NodeJS.ProcessEnv = { ...process.env };
  // Nothing of this shell's tuning leaks in: only what the unit sets.
  for (const k of Object.keys(env)) if (k === 'NODE_OPTIONS' || k === 'UV_THREADPOOL_SIZE' || k.startsWith('MALLOC_') || k === 'GLIBC_TUNABLES') delete env[k];
  Object.assign(env, unitEnv);
  return { argv: [process.execPath, join(root, 'bin', 'cvm-agent.js')], env, unitEnv };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function load(socketPath: string, path: string, concurrency: number, total: number): Promise<{ rps: number; p99: number; p50: number }> {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const lat: number[] = [];
  let next = 0;
  const one = () =>
    new Promise<void>((resolve, reject) => {
      const t0 = performance.now();
      request({ socketPath, path, agent }, (res) => {
        res.resume();
        res.on('end', () => {
          lat.push(performance.now() - t0);
          resolve();
        });
      })
        .on('error', reject)
        .end();
    });
  const worker = async () => {
    while (next < total) {
      next++;
      await one();
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  const secs = (performance.now() - t0) / 1000;
  agent.destroy();
  lat.sort((a, b) => a - b);
  return { rps: total / secs, p99: lat[Math.floor(lat.length * 0.99)]!, p50: lat[Math.floor(lat.length / 2)]! };
}

function readStat(pid: number): { rssBytes: number; cpuTicks: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  const rssPages = Number(fields[21]);
  return { rssBytes: rssPages * 4096, cpuTicks: utime + stime };
}

export default async function (): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'cvm-bench-daemon-'));
  const socket = join(dir, 'api.sock');
  const config = join(dir, 'config.yaml');
  writeFileSync(
    config,
    `tee: simulated\nsimulation: { gpus: 8, dir: ${dir}/sim/simulation }\napi: { socket: ${socket} }\nstate: { dir: ${dir}/state }\nschedule: { cron: "* * * * *", jitterSec: 0 }\nlog: { level: warn }\n`,
  );
  const agent = agentCommand();
  const [bin, ...pre] = agent.argv;
  // Create the simulated roots once, so start-up timing measures the agent, not RSA key generation.
  // The demo keeps what a --dir already held (the simulation directory made here), and removes the rest.
  mkdirSync(join(dir, 'sim', 'simulation'), { recursive: true });
  await new Promise<void>((resolve) =>
    spawn(bin!, [...pre, 'demo', '--gpus', '8', '--dir', join(dir, 'sim'), '--json'], { stdio: 'ignore', env: agent.env }).on('exit', () => resolve()),
  );

  /** One cold start: wall time to READY=1 and to the first attested status, and the CPU the process used by then. */
  const start = async (keep: boolean) => {
    const notify = await NotifyReceiver.start(join(dir, `notify-${Date.now()}.sock`));
    const t0 = performance.now();
    const child = spawn(bin!, [...pre, 'run', '--config', config], {
      env: { ...agent.env, NOTIFY_SOCKET: notify.path },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    try {
      await notify.waitFor((m) => m.includes('READY=1'), 60_000);
      const ready = performance.now() - t0;
      const readyCpu = readStat(child.pid!).cpuTicks * 10;
      await notify.waitFor((m) => /STATUS=SIMULATED (affirming|warning) at/.test(m), 60_000);
      const attested = performance.now() - t0;
      const attestedCpu = readStat(child.pid!).cpuTicks * 10;
      return { child, notify, ready, readyCpu, attested, attestedCpu };
    } finally {
      if (!keep) {
        child.kill('SIGTERM');
        await new Promise((r) => child.once('exit', r));
        notify.stop();
      }
    }
  };
  const starts: Awaited<ReturnType<typeof start>>[] = [];
  for (let i = 0; i < STARTS - 1; i++) starts.push(await start(false));
  // The last start stays up for the idle and throughput rows; it loads a full history first.
  if (FULL_HISTORY) fillHistory(join(dir, 'state'), HISTORY_SIZE);
  const last = await start(true);
  starts.push(last);
  const { child, notify } = last;
  try {
    const note = (k: 'readyCpu' | 'attestedCpu') =>
      `median of ${STARTS} cold starts (child process, built bundle); CPU used by then: median ${median(starts.map((s) => s[k]))} ms`;
    rows.push({ name: 'start -> READY=1', medianMs: median(starts.map((s) => s.ready)), runs: STARTS, target: '< 300 ms', note: note('readyCpu') });
    rows.push({
      name: 'start -> 8 simulated GPUs attested, ready state set',
      medianMs: median(starts.map((s) => s.attested)),
      runs: STARTS,
      target: '< 500 ms',
      note: note('attestedCpu'),
    });

    // Idle: settle, then sample RSS and CPU over the window (one cycle per minute runs inside it).
    const historyWords = FULL_HISTORY ? `history full (${HISTORY_SIZE} records)` : 'history empty';
    await new Promise((r) => setTimeout(r, 3000));
    const pid = child.pid!;
    const a = readStat(pid);
    const w0 = performance.now();
    const samples: number[] = [];
    while (performance.now() - w0 < IDLE_SEC * 1000) {
      await new Promise((r) => setTimeout(r, 1000));
      samples.push(readStat(pid).rssBytes);
    }
    const b = readStat(pid);
    const ticks = 100; // USER_HZ on Linux
    const cpuPct = ((b.cpuTicks - a.cpuTicks) / ticks / ((performance.now() - w0) / 1000)) * 100;
    // The floor: a bare node:http server on a Unix socket, started with the same environment, idle as long.
    const floorSock = join(dir, 'floor.sock');
    const floorScript = `require('http').createServer((q,r)=>r.end()).listen(process.argv[1],()=>console.log('up'))`;
    const floor = spawn(process.execPath, ['-e', floorScript, floorSock], { stdio: ['ignore', 'pipe', 'inherit'], env: agent.env });
    await new Promise<void>((r) => floor.stdout!.once('data', () => r()));
    await new Promise((r) => setTimeout(r, 3000));
    const floorRss = readStat(floor.pid!).rssBytes;
    floor.kill();
    rows.push({
      name: `idle RSS over ${IDLE_SEC} s, one-minute schedule, ${historyWords} (max)`,
      medianMs: Math.max(...samples) / 1e6,
      runs: samples.length,
      unit: 'MB',
      baselineName: 'bare node:http server, idle',
      baselineMs: floorRss / 1e6,
      target: '< 60 MB',
      note: `${samples.length} samples; environment from systemd/cvm-agent.service: ${Object.entries(agent.unitEnv)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ')}`,
    });
    // Between cycles: the verification worker is stopped when idle (agent/attest/verify-thread.ts
    // VERIFY_WORKER_IDLE_STOP_MS), so the median sample is the daemon without it; the max above holds a cycle.
    rows.push({
      name: `idle RSS over ${IDLE_SEC} s, one-minute schedule, ${historyWords} (median)`,
      medianMs: median(samples) / 1e6,
      runs: samples.length,
      unit: 'MB',
      baselineName: 'bare node:http server, idle',
      baselineMs: floorRss / 1e6,
      target: '< 60 MB',
      note: `${samples.length} samples, one per second; the worker runs only around a cycle`,
    });
    rows.push({
      name: `idle CPU over ${IDLE_SEC} s, one-minute schedule, ${historyWords}`,
      medianMs: cpuPct,
      runs: 1,
      unit: '%',
      target: '< 0.5 %',
      note: 'of one core',
    });
    // Throughput: the same bytes from a bare node:http server on a Unix socket.
    const bodyRes = await new Promise<Buffer>((resolve) =>
      request({ socketPath: socket, path: '/v1/status' }, (res) => {
        const c: Buffer[] = [];
        res.on('data', (d: Buffer) => c.push(d));
        res.on('end', () => resolve(Buffer.concat(c)));
      }).end(),
    );
    const bareSock = join(dir, 'bare.sock');
    // The baseline runs in its own process too, so neither server shares a core with the load generator.
    const bodyFile = join(dir, 'status.json');
    writeFileSync(bodyFile, bodyRes);
    const bareScript = `const b=require('fs').readFileSync(process.argv[1]);require('http').createServer((q,r)=>{r.writeHead(200,{'content-type':'application/json','content-length':b.length});r.end(b)}).listen(process.argv[2],()=>console.log('up'))`;
    const bare = spawn(process.execPath, ['-e', bareScript, bodyFile, bareSock], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((r) => bare.stdout!.once('data', () => r()));
    const total = 20_000;
    await load(socket, '/v1/status', 32, 2000);
    await load(bareSock, '/', 32, 2000);
    const runs = 3;
    const agentRuns: { rps: number; p99: number }[] = [];
    const bareRuns: { rps: number; p99: number }[] = [];
    for (let i = 0; i < runs; i++) {
      agentRuns.push(await load(socket, '/v1/status', 32, total));
      bareRuns.push(await load(bareSock, '/', 32, total));
    }
    bare.kill();
    const agentRps = median(agentRuns.map((r) => r.rps));
    const bareRps = median(bareRuns.map((r) => r.rps));
    rows.push({
      name: 'GET /v1/status, 32 clients: time per request (1/throughput)',
      medianMs: 1000 / agentRps,
      runs,
      baselineName: 'bare node:http, same bytes',
      baselineMs: 1000 / bareRps,
      target: 'throughput >= 0.7x bare (ratio <= 1.43)',
      note: `${agentRps.toFixed(0)} req/s vs ${bareRps.toFixed(0)} req/s = ${(agentRps / bareRps).toFixed(2)}x; p99 ${median(agentRuns.map((r) => r.p99)).toFixed(2)} ms vs ${median(bareRuns.map((r) => r.p99)).toFixed(2)} ms; ${bodyRes.length} B body; median of ${runs}`,
    });
  } finally {
    child.kill('SIGTERM');
    notify.stop();
  }
  return rows;
}
