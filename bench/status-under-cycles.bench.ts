/**
 * "Status p99 while cycles run every second" (issue 12 part 3): a daemon on the simulated TEE with 8
 * GPUs, schedule.cron every second, and one client polling GET /v1/status over the Unix socket every
 * 20 ms. Reports the status latency p50/p99 seen by the client and the daemon's own event-loop delay
 * p99 per 10 s window (perf_hooks.monitorEventLoopDelay, preloaded with bench/fixtures/loop-lag.mjs).
 * BENCH_CYCLES_SEC sets the measured window (default 30 s, after a 5 s warm-up); BENCH_ROOT runs the
 * daemon of another checkout (a before/after comparison with the same client).
 */
import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import type { BenchRow } from './lib.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = process.env.BENCH_ROOT ?? join(here, '..');
const SECONDS = Number(process.env.BENCH_CYCLES_SEC ?? 30);

function cliCommand(): string[] {
  const dist = join(root, 'dist', 'cli', 'main.js');
  return existsSync(dist) ? [process.execPath, dist] : [process.execPath, '--import', 'tsx', join(root, 'agent', 'cli', 'main.ts')];
}

function getStatus(socketPath: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    request({ socketPath, path: '/v1/status' }, (res) => {
      res.resume();
      res.on('end', () => resolve(performance.now() - t0));
    })
      .on('error', reject)
      .end();
  });
}

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))]!;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export default async function (): Promise<BenchRow[]> {
  const dir = mkdtempSync(join(tmpdir(), 'cvm-bench-cycles-'));
  const socket = join(dir, 'api.sock');
  const config = join(dir, 'config.yaml');
  const lagFile = join(dir, 'lag.jsonl');
  writeFileSync(
    config,
    `tee: simulated\nsimulation: { gpus: 8, dir: ${dir}/sim/simulation }\napi: { socket: ${socket} }\nstate: { dir: ${dir}/state }\nschedule: { cron: "* * * * * *", jitterSec: 0 }\nlog: { level: warn }\n`,
  );
  mkdirSync(join(dir, 'sim', 'simulation'), { recursive: true });
  const [bin0, ...pre0] = cliCommand();
  await new Promise<void>((resolve) =>
    spawn(bin0!, [...pre0, 'demo', '--gpus', '8', '--dir', join(dir, 'sim'), '--json'], { stdio: 'ignore' }).on('exit', () => resolve()),
  );
  const [bin, ...pre] = cliCommand();
  const child = spawn(bin!, ['--import', join(here, 'fixtures', 'loop-lag.mjs'), ...pre, 'run', '--config', config], {
    env: { ...process.env, LOOP_LAG_FILE: lagFile },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  try {
    for (let t0 = Date.now(); !existsSync(socket); await sleep(50)) if (Date.now() - t0 > 60_000) throw new Error('daemon did not open its socket');
    await sleep(5000);
    writeFileSync(lagFile, '');
    const lat: number[] = [];
    const end = performance.now() + SECONDS * 1000;
    while (performance.now() < end) {
      lat.push(await getStatus(socket));
      await sleep(20);
    }
    const windows = readFileSync(lagFile, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { p99: number; max: number });
    const historyBytes = ['history.jsonl', 'history.json']
      .map((f) => join(dir, 'state', f))
      .filter(existsSync)
      .map((f) => readFileSync(f).length);
    const p99Lag =
      windows.length > 0
        ? pct(
            windows.map((w) => w.p99),
            0.5,
          )
        : Number.NaN;
    const note = `${lat.length} polls over ${SECONDS} s; event-loop delay p99 per 10 s window: ${windows.map((w) => w.p99.toFixed(1)).join(', ')} ms (max ${Math.max(...windows.map((w) => w.max)).toFixed(0)} ms); history file ${historyBytes.join('+')} B`;
    return [
      { name: 'GET /v1/status p50 while cycles run every second (8 simulated GPUs)', medianMs: pct(lat, 0.5), runs: lat.length, note },
      { name: 'GET /v1/status p99 while cycles run every second (8 simulated GPUs)', medianMs: pct(lat, 0.99), runs: lat.length, target: '< 5 ms' },
      { name: 'daemon event-loop delay p99 per 10 s window, cycles every second (median window)', medianMs: p99Lag, runs: windows.length },
    ];
  } finally {
    child.kill('SIGTERM');
  }
}
