/**
 * Protocol-level agents: lightweight clients that speak the controller link (docs/protocol.md,
 * agent/link/protocol.ts) over real WebSockets with real signed evidence, many to a process, for
 * load figures (bench/controller-scale.bench.ts) and the test that keeps that bench honest
 * (test/e2e/controller-scale.test.ts).
 *
 * Each agent has its own agent id and its own EC P-384 key (node:crypto, made before any connection,
 * so key generation is not part of what is timed). It sends `hello`, and answers each `challenge`
 * with an evidence bundle bound to that challenge's nonce, its id and its key exactly as the agent
 * builds one (test/helpers/controller-fixture.ts makeBundle: 1 simulated SEV-SNP report + 8 simulated
 * GPU reports signed by the simulation CAs of `simDir`), plus the proof of possession
 * (agent/link/proof.ts). What can be made ahead is: keys, GPU certificate chains, the SNP
 * certificates; the reports themselves sign over the nonce, so they are signed when the challenge
 * comes (in the agents' processes, never in the controller's). Agents are spread over `machines`
 * distinct 8-GPU sets of one simulation (at most 64 simulated GPUs), all on its one simulated SNP chip.
 * Verdicts are counted by their EAR status (the token's `ear.status`); with `verifyTokens` the token
 * signature is checked against the controller keys its welcome announced.
 *
 * Two ways to run them:
 *  - ProtocolAgentFleet: agents in this process;
 *  - AgentProcesses: the same fleet split over child processes (test/helpers/protocol-agent-worker.ts),
 *    each started with a raised open-file limit, driven and counted over IPC, with their CPU time.
 * Agent `i` connects to `urls[i % urls.length]`: one controller, or several sharing one fleet.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { calculateJwkThumbprint, decodeJwt, importJWK, jwtVerify } from 'jose';
import WebSocket from 'ws';
import { SimulatedSnpDevice } from '../../agent/simulation/snp-sim.js';
import { loadSimGpuIdentity, SimulatedGpuSource } from '../../agent/simulation/gpu-sim.js';
import type { PublicJwk } from '../../agent/formats/nonce-binding.js';
import { EVIDENCE_PROOF_TYP, proofSigningInput } from '../../agent/link/proof.js';
import { EVENT_JWS_TYP, eventSigningInput } from '../../agent/link/events.js';
import { PROTOCOL, SUPPORTED_VERSIONS, decodeMessage, encodeMessage, type ControllerMessage } from '../../agent/link/protocol.js';
import { makeBundle, type Sim } from './controller-fixture.js';
import { repoRoot } from './paths.js';
import { fixtureArgs } from './built.js';
import { ChildRpc, type RpcReply, type Unsent } from './child-rpc.js';

/** GPUs per simulated machine (an 8-GPU board, as the controller benchmarks use). */
export const GPUS_PER_MACHINE = 8;
/** The simulation's GPU maximum (agent/simulation/gpu-sim.ts loadOrCreateSimGpuIdentity). */
export const SIM_MAX_GPUS = 64;

export interface FleetOptions {
  /** Controller link URLs (ws://host:port/v1/link); agent i connects to urls[i % urls.length]. */
  urls: string[];
  /** Bearer token every agent presents (a fleet token: not bound to an agent id). */
  token: string;
  /** Simulation directory (snp-sim-state.json, gpu-sim-identity.json with >= machines*8 GPUs): its roots sign the evidence. */
  simDir: string;
  /** Agent ids are agentIdOf(idPrefix, i). */
  idPrefix?: string;
  /** This fleet's agents are indices [first, first + count) of the whole fleet. */
  first?: number;
  count: number;
  /** Distinct 8-GPU sets agents are spread over (agent i uses set i % machines); default all the simulation has. */
  machines?: number;
  /** Answer challenges with evidence (default true); off: challenges are counted and left unanswered. */
  answer?: boolean;
  /** Connections opened at once while connecting (default 64). */
  connectConcurrency?: number;
  /** Check each verdict token's signature against the welcome's tokenKeys (default false: decode only). */
  verifyTokens?: boolean;
  /** Reconnect this many ms (plus up to 100% jitter) after a link closes; default: stay closed. */
  reconnectMs?: number;
}

export interface FleetCounts {
  agents: number;
  /** Links whose welcome arrived and that are open now. */
  up: number;
  welcomes: number;
  challenges: number;
  evidenceSent: number;
  verdicts: number;
  /** Verdicts by EAR status (affirming, warning, contraindicated, none). */
  byStatus: Record<string, number>;
  /** Verdict tokens whose signature did not verify (verifyTokens). */
  badTokens: number;
  /** Controller error messages by code. */
  errors: Record<string, number>;
  /** Link closes by code. */
  closes: Record<string, number>;
  eventsSent: number;
  /** Events acknowledged (the sum over agents of the highest acked seq). */
  eventsAcked: number;
  /** Connection attempts that failed before the WebSocket opened. */
  connectFailures: number;
}

export function agentIdOf(prefix: string, index: number): string {
  return `${prefix}${String(index).padStart(5, '0')}`;
}

const b64url = (b: Uint8Array | string) => Buffer.from(b).toString('base64url');

/** A compact ES384 JWS by `key` over `payload` (RFC 7515 §7.1; the signature is r || s, RFC 7518 §3.4). */
function compactEs384(payload: Uint8Array, typ: string, kid: string, key: KeyObject): string {
  const input = `${b64url(JSON.stringify({ alg: 'ES384', typ, kid }))}.${b64url(payload)}`;
  return `${input}.${b64url(sign('sha384', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' }))}`;
}

interface Agent {
  index: number;
  id: string;
  url: string;
  key: KeyObject;
  jwk: PublicJwk;
  kid: string;
  sim: Sim;
  ws: WebSocket | undefined;
  up: boolean;
  tokenKeys: Array<Record<string, unknown>>;
  nextSeq: number;
  acked: number;
}

function emptyCounts(agents: number): FleetCounts {
  return {
    agents,
    up: 0,
    welcomes: 0,
    challenges: 0,
    evidenceSent: 0,
    verdicts: 0,
    byStatus: {},
    badTokens: 0,
    errors: {},
    closes: {},
    eventsSent: 0,
    eventsAcked: 0,
    connectFailures: 0,
  };
}

const bump = (m: Record<string, number>, k: string) => {
  m[k] = (m[k] ?? 0) + 1;
};

/** N protocol-level agents in this process. `prepare()` makes keys and evidence sources (untimed), `connect()` opens the links. */
export class ProtocolAgentFleet {
  private readonly agents: Agent[] = [];
  private readonly c: FleetCounts;
  answer: boolean;
  private closed = false;

  private constructor(private readonly o: FleetOptions) {
    this.c = emptyCounts(o.count);
    this.answer = o.answer ?? true;
  }

  /** Keys, ids and per-machine evidence sources for every agent; nothing is connected yet. */
  static async prepare(o: FleetOptions): Promise<ProtocolAgentFleet> {
    const f = new ProtocolAgentFleet(o);
    const snp = await SimulatedSnpDevice.open(o.simDir);
    const id = await loadSimGpuIdentity(o.simDir);
    const machines = Math.min(o.machines ?? Math.floor(id.gpus.length / GPUS_PER_MACHINE), Math.floor(id.gpus.length / GPUS_PER_MACHINE));
    if (machines < 1) throw new Error(`simulation ${o.simDir} has ${id.gpus.length} GPUs, fewer than one ${GPUS_PER_MACHINE}-GPU machine`);
    const sims: Sim[] = Array.from({ length: machines }, (_, m) => ({
      dir: o.simDir,
      snp,
      gpus: new SimulatedGpuSource({ ...id, gpus: id.gpus.slice(GPUS_PER_MACHINE * m, GPUS_PER_MACHINE * (m + 1)) }, GPUS_PER_MACHINE),
    }));
    const first = o.first ?? 0;
    for (let k = 0; k < o.count; k++) {
      const index = first + k;
      const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
      const j = publicKey.export({ format: 'jwk' });
      const jwk: PublicJwk = { kty: 'EC', crv: 'P-384', x: j.x!, y: j.y! };
      f.agents.push({
        index,
        id: agentIdOf(o.idPrefix ?? 'scale-', index),
        url: o.urls[index % o.urls.length]!,
        key: privateKey,
        jwk,
        kid: await calculateJwkThumbprint(jwk as Parameters<typeof calculateJwkThumbprint>[0], 'sha256'),
        sim: sims[index % machines]!,
        ws: undefined,
        up: false,
        tokenKeys: [],
        nextSeq: 1,
        acked: 0,
      });
    }
    return f;
  }

  get ids(): string[] {
    return this.agents.map((a) => a.id);
  }

  /** Ids of the agents whose link is up (welcomed and open). */
  upIds(): string[] {
    return this.agents.filter((a) => a.up).map((a) => a.id);
  }

  counts(): FleetCounts {
    return { ...this.c, byStatus: { ...this.c.byStatus }, errors: { ...this.c.errors }, closes: { ...this.c.closes } };
  }

  /** Open every link (at most connectConcurrency handshakes at a time); resolves once each has opened or failed. */
  async connect(): Promise<void> {
    let next = 0;
    const lanes = Array.from({ length: Math.min(this.o.connectConcurrency ?? 64, this.agents.length) }, async () => {
      while (next < this.agents.length) await this.open(this.agents[next++]!);
    });
    await Promise.all(lanes);
  }

  /** Each agent whose link is up sends `perAgent` signed events (kind status). */
  async sendEvents(perAgent: number): Promise<number> {
    let sent = 0;
    for (const a of this.agents) {
      if (!a.up || !a.ws) continue;
      for (let i = 0; i < perAgent; i++) {
        const body = { seq: a.nextSeq++, at: new Date().toISOString(), kind: 'status' as const, data: { bench: i } };
        const sig = compactEs384(eventSigningInput(body), EVENT_JWS_TYP, a.kid, a.key);
        a.ws.send(encodeMessage('agent->controller', { type: 'event', ...body, sig }));
        sent++;
      }
    }
    this.c.eventsSent += sent;
    return sent;
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(
      this.agents.map(
        (a) =>
          new Promise<void>((resolve) => {
            const ws = a.ws;
            if (!ws || ws.readyState === WebSocket.CLOSED) return resolve();
            ws.once('close', () => resolve());
            ws.terminate();
          }),
      ),
    );
  }

  private open(a: Agent): Promise<void> {
    return new Promise<void>((resolve) => {
      const ws = new WebSocket(a.url, PROTOCOL, { headers: { authorization: `Bearer ${this.o.token}` }, perMessageDeflate: false });
      a.ws = ws;
      let opened = false;
      ws.on('open', () => {
        opened = true;
        ws.send(
          encodeMessage('agent->controller', {
            type: 'hello',
            agentId: a.id,
            version: 'protocol-agent',
            protocol: { ...SUPPORTED_VERSIONS },
            teePubKey: a.jwk,
            inventory: { tee: 'snp', gpus: GPUS_PER_MACHINE, simulated: true },
            capabilities: ['evidence-bundle-v1', 'events'],
            resumeFrom: a.acked + 1,
          }),
        );
        resolve();
      });
      ws.on('message', (data) => void this.onMessage(a, data as Buffer));
      ws.on('error', () => undefined);
      ws.on('close', (code) => {
        if (a.up) this.c.up--;
        a.up = false;
        if (!opened) {
          this.c.connectFailures++;
          resolve();
        } else bump(this.c.closes, String(code));
        if (this.o.reconnectMs !== undefined && !this.closed) {
          setTimeout(() => void this.open(a), this.o.reconnectMs * (1 + Math.random()));
        }
      });
    });
  }

  private async onMessage(a: Agent, data: Buffer): Promise<void> {
    const d = decodeMessage(data, 'controller->agent');
    if (!d.ok) {
      bump(this.c.errors, 'undecodable');
      return;
    }
    const m: ControllerMessage = d.message;
    switch (m.type) {
      case 'welcome':
        this.c.welcomes++;
        if (!a.up) this.c.up++;
        a.up = true;
        a.tokenKeys = (m.tokenKeys?.keys ?? []) as unknown as Array<Record<string, unknown>>;
        if (m.resumeFrom !== undefined) a.nextSeq = Math.max(a.nextSeq, m.resumeFrom);
        return;
      case 'challenge': {
        this.c.challenges++;
        if (!this.answer) return;
        const nonce = Buffer.from(m.nonce, 'hex');
        const bundle = await makeBundle(a.sim, nonce, a.jwk, a.id);
        const proof = compactEs384(proofSigningInput({ agentId: a.id, challengeId: m.id, nonce: m.nonce }), EVIDENCE_PROOF_TYP, a.kid, a.key);
        if (a.ws?.readyState !== WebSocket.OPEN) return;
        a.ws.send(encodeMessage('agent->controller', { type: 'evidence', challengeId: m.id, bundle, localResult: {}, proof }));
        this.c.evidenceSent++;
        return;
      }
      case 'verdict': {
        let status = 'undecodable';
        try {
          status = String((decodeJwt(m.token) as Record<string, unknown>)['ear.status']);
          if (this.o.verifyTokens) await this.verifyToken(a, m.token);
        } catch {
          this.c.badTokens++;
        }
        // Counted together, after the token check's await: a counts() snapshot taken meanwhile must not
        // see a verdict whose status is not counted yet (seen under load: 6 verdicts, 4 by status).
        this.c.verdicts++;
        bump(this.c.byStatus, status);
        return;
      }
      case 'ack':
        this.c.eventsAcked += Math.max(0, m.seq - a.acked);
        a.acked = Math.max(a.acked, m.seq);
        return;
      case 'error':
        bump(this.c.errors, m.code);
        return;
      default:
        return;
    }
  }

  private async verifyToken(a: Agent, token: string): Promise<void> {
    for (const k of a.tokenKeys) {
      try {
        await jwtVerify(token, await importJWK(k as Parameters<typeof importJWK>[0], String(k.alg ?? 'ES256')), { subject: a.id });
        return;
      } catch {
        // try the next key
      }
    }
    throw new Error('verdict token does not verify under the welcome tokenKeys');
  }
}

// ---- the fleet over child processes ------------------------------------------------------------------

export interface ProcessFleetOptions extends FleetOptions {
  /** Child processes the agents are split over (default 1). */
  processes?: number;
  /** Open-file limit asked for each child (default 65536; the hard limit when that cannot be raised). */
  nofile?: number;
}

/** Worker RPC: what the parent asks and the worker answers (test/helpers/protocol-agent-worker.ts). */
export type WorkerRequest =
  | { id: number; op: 'prepare'; options: FleetOptions }
  | { id: number; op: 'connect' }
  | { id: number; op: 'counts' }
  | { id: number; op: 'up' }
  | { id: number; op: 'answer'; on: boolean }
  | { id: number; op: 'events'; perAgent: number }
  | { id: number; op: 'close' };
/** A request without its id (Omit over a union keeps each member). */
export type { Unsent };
export type WorkerReply = RpcReply;

/**
 * Start `argv` with the open-file limit raised to `nofile`; where the hard limit cannot be raised
 * (no CAP_SYS_RESOURCE, e.g. in a container), to the hard limit. nofileOf(pid) says what it got.
 */
export function spawnWithNofile(argv: string[], nofile: number, stdio: Array<'ignore' | 'inherit' | 'pipe' | 'ipc'>): ChildProcess {
  const script = `ulimit -n ${nofile} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"`;
  return spawn('/bin/sh', ['-c', script, 'sh', ...argv], { cwd: repoRoot, stdio });
}

/** User + system CPU seconds of a live process (/proc/<pid>/stat fields 14 and 15, in clock ticks; proc(5)). */
export function cpuSecondsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/** Resident set size of a live process (/proc/<pid>/status VmRSS; proc(5)). */
export function rssBytesOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

/** The soft open-file limit of a live process (/proc/<pid>/limits "Max open files"; proc(5)). */
export function nofileOf(pid: number): number {
  const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'));
  return m?.[1] === undefined || m[1] === 'unlimited' ? Infinity : Number(m[1]);
}

/** sysconf(_SC_CLK_TCK): 100 on Linux x86-64 and arm64 (USER_HZ). */
const CLOCK_TICKS = 100;

/** The parent's side of one agent-worker child. */
class Rpc extends ChildRpc<WorkerRequest> {
  constructor(child: ChildProcess) {
    super(child, 'agent worker');
  }
}

/** Sum of per-process counts. */
export function addCounts(all: FleetCounts[]): FleetCounts {
  const out = emptyCounts(0);
  for (const c of all) {
    for (const k of [
      'agents',
      'up',
      'welcomes',
      'challenges',
      'evidenceSent',
      'verdicts',
      'badTokens',
      'eventsSent',
      'eventsAcked',
      'connectFailures',
    ] as const) {
      out[k] += c[k];
    }
    for (const k of ['byStatus', 'errors', 'closes'] as const) for (const [key, n] of Object.entries(c[k])) out[k][key] = (out[k][key] ?? 0) + n;
  }
  return out;
}

/** The fleet split over child processes: agents [0, count) in contiguous slices. */
export class AgentProcesses {
  private constructor(
    private readonly rpcs: Rpc[],
    readonly ids: string[],
  ) {}

  /** Spawn the workers and prepare every agent (keys, evidence sources); nothing is connected yet. */
  static async start(o: ProcessFleetOptions): Promise<AgentProcesses> {
    const n = Math.max(1, Math.min(o.processes ?? 1, o.count));
    const rpcs: Rpc[] = [];
    const ids: string[] = [];
    const base = o.first ?? 0;
    try {
      const slices = Array.from({ length: n }, (_, p) => {
        const lo = Math.floor((o.count * p) / n);
        const hi = Math.floor((o.count * (p + 1)) / n);
        return { first: base + lo, count: hi - lo };
      });
      for (const s of slices) {
        rpcs.push(
          new Rpc(
            spawnWithNofile([process.execPath, ...fixtureArgs('test/helpers/protocol-agent-worker.ts')], o.nofile ?? 65536, [
              'ignore',
              'inherit',
              'inherit',
              'ipc',
            ]),
          ),
        );
        for (let i = 0; i < s.count; i++) ids.push(agentIdOf(o.idPrefix ?? 'scale-', s.first + i));
      }
      const { processes: _p, nofile: _n, ...fleet } = o;
      await Promise.all(rpcs.map((r, p) => r.call({ op: 'prepare', options: { ...fleet, ...slices[p]! } })));
    } catch (err) {
      for (const r of rpcs) r.child.kill('SIGKILL');
      throw err;
    }
    return new AgentProcesses(rpcs, ids);
  }

  get pids(): number[] {
    return this.rpcs.map((r) => r.child.pid!);
  }

  /** Open every agent's link; resolves once each has opened or failed (welcomes follow: see counts). */
  async connect(): Promise<void> {
    await Promise.all(this.rpcs.map((r) => r.call({ op: 'connect' })));
  }

  async counts(): Promise<FleetCounts> {
    return addCounts(await Promise.all(this.rpcs.map((r) => r.call<FleetCounts>({ op: 'counts' }))));
  }

  /** Ids of the agents whose link is up, in fleet order. */
  async upIds(): Promise<string[]> {
    return (await Promise.all(this.rpcs.map((r) => r.call<string[]>({ op: 'up' })))).flat();
  }

  async setAnswering(on: boolean): Promise<void> {
    await Promise.all(this.rpcs.map((r) => r.call({ op: 'answer', on })));
  }

  async sendEvents(perAgent: number): Promise<number> {
    const sent = await Promise.all(this.rpcs.map((r) => r.call<number>({ op: 'events', perAgent })));
    return sent.reduce((a, b) => a + b, 0);
  }

  /** CPU seconds of all agent processes together. */
  cpuSeconds(): number {
    return this.pids.reduce((s, pid) => s + cpuSecondsOf(pid), 0);
  }

  rssBytes(): number {
    return this.pids.reduce((s, pid) => s + rssBytesOf(pid), 0);
  }

  /** The lowest open-file limit among the agent processes. */
  nofile(): number {
    return Math.min(...this.pids.map(nofileOf));
  }

  async close(): Promise<void> {
    await Promise.all(
      this.rpcs.map(async (r) => {
        const exited = new Promise<void>((resolve) =>
          r.child.exitCode !== null || r.child.signalCode !== null ? resolve() : r.child.once('exit', () => resolve()),
        );
        try {
          await Promise.race([r.call({ op: 'close' }), new Promise((resolve) => setTimeout(resolve, 5000).unref())]);
        } catch {
          // already gone
        }
        r.child.kill('SIGKILL');
        await exited;
      }),
    );
  }
}
