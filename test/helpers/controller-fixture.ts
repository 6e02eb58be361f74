/**
 * Test fixture for the reference controller: a simulated SNP device + simulated GPUs sharing one
 * simulation directory (as the simulated agent does), a minimal fake agent built from the link
 * protocol module, and a controller started on a loopback port.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import WebSocket from 'ws';
import pino from 'pino';
import { SimulatedSnpDevice } from '../../agent/simulation/snp-sim.js';
import { loadOrCreateSimGpuIdentity, SimulatedGpuSource } from '../../agent/simulation/gpu-sim.js';
import { bundleToJson, type EvidenceBundle } from '../../agent/formats/evidence-bundle.js';
import { cpuReportData, gpuNonce, type PublicJwk } from '../../agent/formats/nonce-binding.js';
import { createAgentKey, type AgentKey } from '../../agent/link/agent-key.js';
import { PROTOCOL, type ControllerMessage, type AgentMessage } from '../../agent/link/protocol.js';
import { signEvidenceProof } from '../../agent/link/proof.js';
import { signEvent } from '../../agent/link/events.js';
import { parseControllerConfig, resolveControllerConfig, tokenDigest } from '../../agent/controller/config.js';
import { Controller } from '../../agent/controller/controller-server.js';
import { storeYaml } from './test-store.js';

export const TOKEN = 'test-token-0123456789abcdef';
export const SECRET_VALUE = 'model-weights-key-42';

export interface Sim {
  dir: string;
  snp: SimulatedSnpDevice;
  gpus: SimulatedGpuSource;
}

export async function openSim(): Promise<Sim> {
  const dir = mkdtempSync(join(tmpdir(), 'ctl-sim-'));
  const snp = await SimulatedSnpDevice.open(dir);
  const id = await loadOrCreateSimGpuIdentity(dir, 2);
  return { dir, snp, gpus: new SimulatedGpuSource(id, 2) };
}

/**
 * A bundle bound to `nonce`, `key` and `agentId` exactly as the agent builds it (docs/architecture.md "One attestation cycle").
 * `announceKey` / `announceAgentId` put another key / id in the bundle than the reports are bound to.
 */
export async function makeBundle(
  sim: Sim,
  nonce: Buffer,
  key: PublicJwk,
  agentId: string,
  opts: { announceKey?: PublicJwk; announceAgentId?: string; devToolsMode?: boolean } = {},
): Promise<Record<string, unknown>> {
  const gpus = await sim.gpus.collect(gpuNonce(nonce, key, agentId));
  const rd = cpuReportData(
    nonce,
    key,
    agentId,
    gpus.map((g) => g.report),
  );
  const snp = await sim.snp.getExtReport(rd);
  const bundle: EvidenceBundle = {
    version: 1,
    agentId: opts.announceAgentId ?? agentId,
    nonce,
    teePubKey: opts.announceKey ?? key,
    simulated: true,
    cpu: { kind: 'snp', source: 'simulated', report: snp.report, certificates: [snp.vcek, snp.ask, snp.ark] },
    gpus: gpus.map((g) => ({
      index: g.index,
      arch: g.architecture,
      report: g.report,
      certChainPem: g.certChainPem,
      nvml: { driverVersion: g.driverVersion, vbiosVersion: g.vbiosVersion, cc: { ...g.cc, ...(opts.devToolsMode ? { devToolsMode: true } : {}) } },
    })),
  };
  return bundleToJson(bundle);
}

export interface ControllerUnderTest {
  controller: Controller;
  clock: { offsetMs: number };
  logLines: string[];
  stateDir: string;
}

/**
 * The default credentials: TOKEN, an unbound (fleet) token, and "bound-token", bound to agent id
 * "bound-agent"; one secret for every attested agent. Pass `credentials` to replace the agents and
 * secrets sections (a config may not restrict secrets by id while it accepts an unbound token).
 */
export async function startController(
  sim: Sim,
  yaml: string,
  stateDir = mkdtempSync(join(tmpdir(), 'ctl-state-')),
  credentials?: string,
  /** The store's replica name (replicas sharing one database: test/helpers/test-store.ts). */
  replica?: string,
): Promise<ControllerUnderTest> {
  const defaults = `agents:\n  tokens:\n    - sha256: ${tokenDigest(TOKEN).toString('hex')}\n    - agentId: bound-agent\n      sha256: ${tokenDigest('bound-token').toString('hex')}\nsecrets:\n  - name: model-key\n    value: ${SECRET_VALUE}\n`;
  const cfg = parseControllerConfig(
    `listen: {host: 127.0.0.1, port: 0}\n${await storeYaml(stateDir, replica)}\n${credentials ?? defaults}${yaml.replaceAll('SIMDIR', sim.dir)}`,
    'test config',
  );
  const resolved = await resolveControllerConfig(cfg);
  const logLines: string[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => logLines.push(s) });
  const clock = { offsetMs: 0 };
  const controller = await Controller.start(resolved, { log, now: () => new Date(Date.now() + clock.offsetMs) });
  return { controller, clock, logLines, stateDir };
}

/** A minimal agent: speaks the link protocol, queues what the controller sends. */
export class FakeAgent {
  readonly inbox: ControllerMessage[] = [];
  private waiters: (() => void)[] = [];
  closed: { code: number; reason: string } | undefined;

  /** The id said in hello (what the evidence proof signs by default). */
  agentId = '';

  private constructor(
    readonly ws: WebSocket,
    readonly key: AgentKey,
  ) {
    ws.on('message', (d) => {
      this.inbox.push(JSON.parse(d.toString()) as ControllerMessage);
      this.wake();
    });
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      this.wake();
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    w.forEach((f) => f());
  }

  static async connect(
    url: string,
    opts: { token?: string | null; key?: AgentKey; protocols?: string[]; tls?: { ca: string; cert: string; key: string } } = {},
  ): Promise<FakeAgent> {
    const key = opts.key ?? (await createAgentKey()); // before the socket exists: 'open' must not fire unobserved
    const headers: Record<string, string> = opts.token === null ? {} : { authorization: `Bearer ${opts.token ?? TOKEN}` };
    const ws = new WebSocket(url, opts.protocols ?? [PROTOCOL], { headers, perMessageDeflate: false, ...(opts.tls ?? {}) });
    const agent = new FakeAgent(ws, key);
    await once(ws, 'open');
    return agent;
  }

  send(m: AgentMessage | Record<string, unknown> | string): void {
    this.ws.send(typeof m === 'string' ? m : JSON.stringify(m));
  }

  hello(agentId: string, resumeFrom = 1, teePubKey = this.key.publicJwk): void {
    this.agentId = agentId;
    this.send({ type: 'hello', agentId, version: 'test', protocol: { min: 1, max: 1 }, teePubKey, inventory: {}, capabilities: [], resumeFrom });
  }

  /**
   * Answer a challenge with `bundle` and a proof of possession (agent/link/proof.ts) signed by this
   * agent's key over {agentId, challengeId, nonce}, unless `opts` says otherwise.
   */
  async answer(
    challenge: { id: string; nonce: string | Buffer },
    bundle: Record<string, unknown>,
    opts: { proofKey?: AgentKey; proofAgentId?: string; proof?: string } = {},
  ): Promise<void> {
    const nonce = typeof challenge.nonce === 'string' ? challenge.nonce : challenge.nonce.toString('hex');
    const proof =
      opts.proof ?? (await signEvidenceProof({ agentId: opts.proofAgentId ?? this.agentId, challengeId: challenge.id, nonce }, opts.proofKey ?? this.key));
    this.send({ type: 'evidence', challengeId: challenge.id, bundle, localResult: {}, proof });
  }

  /** The next message of `type` (removed from the inbox); rejects on close or timeout. */
  async next<T extends ControllerMessage['type']>(type: T, timeoutMs = 20_000): Promise<Extract<ControllerMessage, { type: T }>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.inbox.findIndex((m) => m.type === type);
      if (i >= 0) return this.inbox.splice(i, 1)[0] as Extract<ControllerMessage, { type: T }>;
      if (this.closed) throw new Error(`closed (${this.closed.code} ${this.closed.reason}) while waiting for ${type}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${type}; inbox: ${JSON.stringify(this.inbox.map((m) => m.type))}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  async waitClosed(timeoutMs = 10_000): Promise<{ code: number; reason: string }> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error('not closed');
      await new Promise((r) => setTimeout(r, 20));
    }
    return this.closed;
  }

  close(): void {
    this.ws.close();
  }
}

/** A FakeAgent on `url` with `token` (and `key`, if given) that has said hello as `agentId`. */
export async function connectAs(url: string, agentId: string, token: string, key?: AgentKey): Promise<FakeAgent> {
  const a = await FakeAgent.connect(url, { token, ...(key ? { key } : {}) });
  a.hello(agentId);
  return a;
}

/** Answer the next challenge with genuine simulated evidence for the agent's key and id; resolves with the verdict. */
export async function attestNext(sim: Sim, a: FakeAgent): Promise<Extract<ControllerMessage, { type: 'verdict' }>> {
  const c = await a.next('challenge');
  await a.answer(c, await makeBundle(sim, Buffer.from(c.nonce, 'hex'), a.key.publicJwk, a.agentId));
  return a.next('verdict');
}

/**
 * Send signed status events `seqs` (data {from, seq}) and wait for the ack of the last one (the
 * controller acks once per burst it stores: under load the seqs may be acked separately).
 */
export async function sendEventsAcked(a: FakeAgent, seqs: number[], from: string): Promise<number> {
  const at = new Date().toISOString();
  for (const seq of seqs) a.send(await signEvent({ seq, at, kind: 'status', data: { from, seq } }, a.key));
  let ack = await a.next('ack');
  while (ack.seq < seqs[seqs.length - 1]!) ack = await a.next('ack');
  return ack.seq;
}
