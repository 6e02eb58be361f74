/**
 * The reference controller in a child process of its own, so its CPU time and RSS are its alone
 * (/proc/<pid>/stat and /proc/<pid>/status), plus the load driver that asks it for verdicts: the
 * controller challenges chosen agents (Controller.challengeNow over IPC, the call its own challenge
 * timer makes), protocol-level agents (./protocol-agents.ts) answer with signed evidence, and the
 * driver counts the verdicts that come back. Used by bench/controller-scale.bench.ts and
 * test/e2e/controller-scale.test.ts.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { tokenDigest } from '../../agent/controller/config.js';
import { cpuSecondsOf, nofileOf, rssBytesOf, spawnWithNofile, type AgentProcesses, type FleetCounts } from './protocol-agents.js';
import { ChildRpc, type Unsent } from './child-rpc.js';
import type { ScaleControllerReply, ScaleControllerRequest } from './scale-controller-child.js';
import { fixtureArgs } from './built.js';

export interface ScaleControllerOptions {
  /** Working directory: the config file and stateDir go here. */
  dir: string;
  /** Simulation directory whose roots the controller trusts (simulation.trust, as the demo runs it). */
  simDir: string;
  /** The fleet's bearer token (configured by its SHA-256). */
  token: string;
  /** limits.maxConnections (and limits.agentsPerCredential: every agent shares the one token). */
  maxConnections: number;
  /** challengeIntervalSec; default: the controller's default (CONTROLLER_DEFAULTS). */
  challengeIntervalSec?: number;
  /** log.level; default: the controller's default (info), written to /dev/null. */
  logLevel?: string;
  /** Keep per-agent state on disk (stateDir), as a deployed controller does; default true. */
  stateDir?: boolean;
  /** PostgreSQL instead of stateDir (store.url), this controller named `replica` in it. */
  store?: { url: string; replica: string };
  nofile?: number;
  /** Extra node options for the controller process (e.g. --cpu-prof, --max-old-space-size=...). */
  nodeArgs?: string[];
}

export function scaleControllerYaml(o: ScaleControllerOptions): string {
  return [
    'listen: {host: 127.0.0.1, port: 0}',
    ...(o.store ? [`store: {url: "${o.store.url}", replica: ${o.store.replica}}`] : o.stateDir === false ? [] : [`stateDir: ${join(o.dir, 'state')}`]),
    'agents:',
    '  tokens:',
    `    - sha256: ${tokenDigest(o.token).toString('hex')}`,
    `limits: {maxConnections: ${o.maxConnections}, agentsPerCredential: ${Math.max(o.maxConnections, 1000)}}`,
    `simulation: {trust: true, dir: ${o.simDir}}`,
    ...(o.challengeIntervalSec === undefined ? [] : [`challengeIntervalSec: ${o.challengeIntervalSec}`]),
    ...(o.logLevel === undefined ? [] : [`log: {level: ${o.logLevel}}`]),
    '',
  ].join('\n');
}

export class ScaleController {
  private readonly rpc: ChildRpc<ScaleControllerRequest>;

  private constructor(
    private readonly child: ChildProcess,
    readonly wsUrl: string,
    readonly httpUrl: string,
  ) {
    this.rpc = new ChildRpc(child, 'controller');
  }

  private get exited(): string | undefined {
    return this.rpc.exited;
  }

  static async start(o: ScaleControllerOptions): Promise<ScaleController> {
    mkdirSync(o.dir, { recursive: true });
    const config = join(o.dir, 'controller.yaml');
    writeFileSync(config, scaleControllerYaml(o));
    const child = spawnWithNofile(
      [process.execPath, '--expose-gc', ...(o.nodeArgs ?? []), ...fixtureArgs('test/helpers/scale-controller-child.ts'), config],
      o.nofile ?? 65536,
      ['ignore', 'ignore', 'inherit', 'ipc'],
    );
    const addr = await new Promise<{ url: string; wsUrl: string }>((resolve, reject) => {
      const onMessage = (m: ScaleControllerReply) => {
        if (m.id !== 0) return;
        child.off('message', onMessage);
        if (m.ok) resolve(m.result as { url: string; wsUrl: string });
        else reject(new Error(m.error));
      };
      child.on('message', onMessage);
      child.once('exit', (code, signal) => reject(new Error(`controller exited (${code ?? signal}) before listening`)));
    });
    return new ScaleController(child, addr.wsUrl, addr.url);
  }

  get pid(): number {
    return this.child.pid!;
  }

  private call<T>(req: Unsent<ScaleControllerRequest>): Promise<T> {
    return this.rpc.call<T>(req);
  }

  /** Challenge these connected agents now; resolves to how many were challenged. */
  challenge(agentIds: string[]): Promise<number> {
    return this.call<number>({ op: 'challenge', agentIds });
  }

  /** A full garbage collection in the controller (before an RSS reading); its process.memoryUsage() right after. */
  gc(): Promise<NodeJS.MemoryUsage> {
    return this.call<NodeJS.MemoryUsage>({ op: 'gc' });
  }

  cpuSeconds(): number {
    return cpuSecondsOf(this.pid);
  }

  /** The controller's open-file limit (each agent link is one descriptor). */
  nofile(): number {
    return nofileOf(this.pid);
  }

  rssBytes(): number {
    return rssBytesOf(this.pid);
  }

  async getJson<T>(path: string): Promise<T> {
    const res = await fetch(`${this.httpUrl}${path}`);
    if (!res.ok) throw new Error(`GET ${path}: HTTP ${res.status}`);
    return (await res.json()) as T;
  }

  async stop(): Promise<void> {
    if (this.exited) return;
    const gone = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    // A clean close (sessions closed, state written), then the process exits on its own; SIGKILL only if it hangs.
    const timeout = new Promise((resolve) => setTimeout(resolve, 10_000).unref());
    await Promise.race([this.call({ op: 'stop' }).then(() => gone), timeout]).catch(() => undefined);
    if (!this.exited) this.child.kill('SIGKILL');
    await gone;
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Poll the fleet's counts until `pred` holds; throws after `timeoutMs` naming the last counts. */
export async function waitCounts(fleet: AgentProcesses, pred: (c: FleetCounts) => boolean, timeoutMs: number, what: string, pollMs = 50): Promise<FleetCounts> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const c = await fleet.counts();
    if (pred(c)) return c;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(c)}`);
    await sleep(pollMs);
  }
}

export interface DriveResult {
  /** Verdicts that came back for the challenges issued. */
  verdicts: number;
  /** Of those, by EAR status. */
  byStatus: Record<string, number>;
  wallMs: number;
  /** Controller CPU seconds over the run. */
  controllerCpuSec: number;
  /** CPU seconds of the agent processes over the run. */
  agentsCpuSec: number;
}

const statusDelta = (a: FleetCounts, b: FleetCounts) =>
  Object.fromEntries(
    Object.entries(b.byStatus)
      .map(([k, n]) => [k, n - (a.byStatus[k] ?? 0)] as const)
      .filter(([, n]) => n > 0),
  );

/**
 * Challenge each of `agentIds` once, keeping at most `inFlight` challenges unanswered, and wait for
 * every verdict. No other challenge may be answered meanwhile (the fleet's verdict count is the measure).
 */
export async function driveVerdicts(
  ctl: ScaleController,
  fleet: AgentProcesses,
  agentIds: string[],
  opts: { inFlight?: number; timeoutMs?: number } = {},
): Promise<DriveResult> {
  const inFlight = opts.inFlight ?? 32;
  const start = await fleet.counts();
  const cpu0 = ctl.cpuSeconds();
  const agents0 = fleet.cpuSeconds();
  const t0 = performance.now();
  const deadline = Date.now() + (opts.timeoutMs ?? 120_000);
  let issued = 0;
  let c = start;
  while (c.verdicts - start.verdicts < agentIds.length) {
    const done = c.verdicts - start.verdicts;
    const room = Math.min(inFlight - (issued - done), agentIds.length - issued);
    if (room > 0) {
      const batch = agentIds.slice(issued, issued + room);
      const got = await ctl.challenge(batch);
      if (got !== batch.length) throw new Error(`only ${got} of ${batch.length} agents could be challenged (not connected)`);
      issued += batch.length;
    }
    if (Date.now() > deadline) throw new Error(`timed out driving verdicts: ${done}/${agentIds.length} back; ${JSON.stringify(c)}`);
    await sleep(10);
    c = await fleet.counts();
  }
  return {
    verdicts: c.verdicts - start.verdicts,
    byStatus: statusDelta(start, c),
    wallMs: performance.now() - t0,
    controllerCpuSec: ctl.cpuSeconds() - cpu0,
    agentsCpuSec: fleet.cpuSeconds() - agents0,
  };
}

export interface RateResult extends DriveResult {
  /** Challenges issued during the window. */
  issued: number;
  windowSec: number;
  /** How long after the window the last of its verdicts came back. */
  tailSec: number;
  /** Controller CPU seconds per second of the window (cores in use): its CPU until the last verdict, less idle CPU over the tail, over the window. */
  utilisation: number;
}

/**
 * Challenge agents (round robin over `agentIds`) at `perSec` for `windowSec`, as a fleet whose
 * challenges fall uniformly over the interval would, and wait for the verdicts still in flight. The
 * controller's CPU is read from the start to the last verdict; the tail after the window is charged
 * at `idlePerSec` (the controller's CPU seconds per second with nothing to do, measured by the caller),
 * so agents that answer late move work past the window without hiding it.
 */
export async function driveAtRate(
  ctl: ScaleController,
  fleet: AgentProcesses,
  agentIds: string[],
  perSec: number,
  windowSec: number,
  idlePerSec = 0,
): Promise<RateResult> {
  const start = await fleet.counts();
  const cpu0 = ctl.cpuSeconds();
  const agents0 = fleet.cpuSeconds();
  const t0 = performance.now();
  const total = Math.max(1, Math.round(windowSec * perSec));
  let issued = 0;
  while (issued < total) {
    const elapsed = (performance.now() - t0) / 1000;
    const due = Math.min(Math.floor(elapsed * perSec) + 1, total);
    if (due > issued) {
      const batch = Array.from({ length: due - issued }, (_, k) => agentIds[(issued + k) % agentIds.length]!);
      await ctl.challenge(batch);
      issued = due;
    }
    await sleep(Math.min(50, Math.max(1, Math.round((issued / perSec) * 1000 - (performance.now() - t0)))));
  }
  // The window ends one interval after the last challenge (total / perSec seconds after the first).
  const windowEnd = t0 + (total / perSec) * 1000;
  await sleep(Math.max(0, windowEnd - performance.now()));
  const c = await waitCounts(fleet, (x) => x.verdicts - start.verdicts >= issued, 120_000, 'the verdicts of the rate window', 20);
  const end = performance.now();
  const tailSec = Math.max(0, (end - windowEnd) / 1000);
  const controllerCpuSec = ctl.cpuSeconds() - cpu0 - idlePerSec * tailSec;
  const window = (windowEnd - t0) / 1000;
  return {
    issued,
    verdicts: c.verdicts - start.verdicts,
    byStatus: statusDelta(start, c),
    wallMs: end - t0,
    windowSec: window,
    tailSec,
    controllerCpuSec,
    agentsCpuSec: fleet.cpuSeconds() - agents0,
    utilisation: controllerCpuSec / window,
  };
}
