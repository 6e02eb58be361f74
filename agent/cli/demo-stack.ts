/**
 * The demo (README's first command, issue: controller link): on loopback, in a temporary directory,
 * it starts the reference controller and an agent daemon on the built-in SIMULATED TEE (a software
 * SEV-SNP CPU and N software H100s). The controller challenges the agent, verifies its evidence with
 * the same verifiers, signs an EAR token and releases a secret to the attested key; the demo then
 * reads the token and the secret back through the agent's local Unix socket, like a workload would.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import pino from 'pino';
import { decodeJwt } from 'jose';
import { openSimulation } from '../simulation/open.js';
import { Daemon } from '../daemon/daemon.js';
import { Controller } from '../controller/controller-server.js';
import { parseControllerConfig, resolveControllerConfig, tokenDigest } from '../controller/config.js';
import { callApi } from './api-client.js';
import { createPeerCredentialReader } from '../native/system.js';
import { CvmError } from '../errors.js';

/**
 * Everything the demo creates, so that every exit path removes it: the directory holds the agent's
 * bearer token and the released secret in plain files. A fresh temporary directory is removed
 * whole; inside a `--dir` that already existed, only what the demo created (and the token and
 * secret files, which it always rewrites) is removed. Running services are stopped first.
 */
export class DemoWorkspace {
  private readonly owned: string[] = [];
  private readonly stops: (() => Promise<void>)[] = [];
  private closing: Promise<void> | undefined;

  private constructor(readonly dir: string) {}

  static async open(dir?: string): Promise<DemoWorkspace> {
    if (dir === undefined) {
      const ws = new DemoWorkspace(await mkdtemp(join(tmpdir(), 'cvm-agent-demo-')));
      ws.owned.push(ws.dir);
      return ws;
    }
    const abs = resolve(dir);
    // mkdir -p answers the top-most directory it created, or undefined when `abs` existed.
    const first = await mkdir(abs, { recursive: true, mode: 0o700 });
    const ws = new DemoWorkspace(abs);
    if (first !== undefined) ws.owned.push(first);
    return ws;
  }

  get closed(): boolean {
    return this.closing !== undefined;
  }

  /** `name` under the workspace; removed at close when `always` or when it does not exist yet. */
  path(name: string, always = false): string {
    this.assertOpen();
    const p = join(this.dir, name);
    if (always || !existsSync(p)) this.owned.push(p);
    return p;
  }

  /** A service to stop at close (before the files go). Throws if the workspace is already closing. */
  adopt(stop: () => Promise<void>): void {
    if (this.closing) {
      void stop().catch(() => undefined);
      this.assertOpen();
    }
    this.stops.push(stop);
  }

  assertOpen(): void {
    if (this.closing) throw new CvmError('ERR_DEMO_INTERRUPTED', 'the demo was stopped');
  }

  /** Stops what was adopted (newest first), then removes what the demo created. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const stop of this.stops.splice(0).reverse()) await stop().catch(() => undefined);
      for (const p of [...this.owned].reverse()) await rm(p, { recursive: true, force: true, maxRetries: 3 });
    })();
    return this.closing;
  }

  /** Last resort from a process 'exit' handler, where nothing asynchronous runs any more. */
  removeSync(): void {
    for (const p of [...this.owned].reverse()) {
      try {
        rmSync(p, { recursive: true, force: true, maxRetries: 3 });
      } catch {
        // best effort: the process is exiting
      }
    }
  }
}

export interface DemoOptions {
  gpus: number;
  /** Where to work; a new temporary directory when absent (removed by `stop()`). */
  dir?: string;
  /** An already open workspace (the CLI opens it first so a signal can clean it up at any time). */
  workspace?: DemoWorkspace;
  log?: (line: string) => void;
  /** How long to wait for the controller's verdict. */
  timeoutMs?: number;
}

export interface DemoDevice {
  id: string;
  status: string;
  failed: string[];
  warnings: string[];
}

export interface DemoResult {
  ok: boolean;
  dir: string;
  fleetUrl: string;
  socket: string;
  agentStatus: string;
  simulated: boolean;
  devices: DemoDevice[];
  gpuReady: { set: boolean; reason: string };
  token: { claims: Record<string, unknown>; expiresAt: string } | undefined;
  secret: { name: string; bytes: number; sha256: string; matches: boolean } | undefined;
  /** Stops the controller and the agent and removes everything the demo created. */
  stop(): Promise<void>;
}

const AGENT_ID = 'demo-vm';
const SECRET_NAME = 'model-key';

async function poll<T>(ws: DemoWorkspace, what: string, timeoutMs: number, fn: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    ws.assertOpen();
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new CvmError('ERR_DEMO_TIMEOUT', `${what} did not happen within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function runDemo(opts: DemoOptions): Promise<DemoResult> {
  const ws = opts.workspace ?? (await DemoWorkspace.open(opts.dir));
  try {
    return await demoIn(ws, opts);
  } catch (err) {
    await ws.close();
    throw err;
  }
}

async function demoIn(ws: DemoWorkspace, opts: DemoOptions): Promise<DemoResult> {
  const log = opts.log ?? (() => undefined);
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const dir = ws.dir;
  const simDir = ws.path('simulation');
  const silent = pino({ level: 'silent' });

  log(`[1/5] simulated TEE in ${simDir}: SEV-SNP (Genoa) + ${opts.gpus} H100, test roots created on first use (SIMULATED: trusted only by this demo)`);
  await openSimulation(simDir, opts.gpus);

  const agentToken = randomBytes(24).toString('base64url');
  const secretValue = randomBytes(32);
  await writeFile(ws.path('agent.token', true), agentToken, { mode: 0o600 });
  await writeFile(ws.path('model.key', true), secretValue, { mode: 0o600 });
  const controllerYaml = [
    'listen: {host: 127.0.0.1, port: 0}',
    'agents:',
    '  tokens:',
    `    - {agentId: ${AGENT_ID}, sha256: ${tokenDigest(agentToken).toString('hex')}}`,
    `simulation: {trust: true, dir: ${simDir}}`,
    'releaseSecretsOn: affirming',
    'secrets:',
    `  - {name: ${SECRET_NAME}, file: model.key, agents: [${AGENT_ID}]}`,
    `stateDir: ${ws.path('controller')}`,
    'log: {level: silent}',
  ].join('\n');
  const controller = await Controller.start(await resolveControllerConfig(parseControllerConfig(controllerYaml, 'demo controller', dir)), { log: silent });
  ws.adopt(() => controller.close());
  const { wsUrl, url } = controller.address();
  log(`[2/5] reference controller on ${url} (fleet page ${url}/), trusting the simulated roots, releasing "${SECRET_NAME}" to affirming agents`);

  const socket = ws.path('api.sock');
  const uid = process.getuid?.() ?? 0;
  // Loopback ws:// (controller.insecure), so the agent pins the controller's token key to authenticate verdicts.
  const tokenKey = ws.path('controller-token-key.jwk', true);
  await writeFile(tokenKey, JSON.stringify(controller.signer.jwks()), { mode: 0o644 });
  await writeFile(
    ws.path('agent.yaml', true),
    [
      'tee: simulated',
      `simulation: {gpus: ${opts.gpus}, dir: ${simDir}}`,
      `controller: {url: "${wsUrl}", insecure: true, tokenKey: ${tokenKey}, agentId: ${AGENT_ID}, tokenFile: ${join(dir, 'agent.token')}}`,
      `api: {socket: ${socket}, authorization: {secrets: {uids: ["${uid}"]}}}`,
      `state: {dir: ${ws.path('state')}}`,
      'schedule: {cron: "0 0 1 1 *", jitterSec: 0, attestAtStart: true}',
      'log: {level: fatal}',
    ].join('\n'),
  );
  const daemon = new Daemon({
    configPath: join(dir, 'agent.yaml'),
    logger: silent,
    peerCredentials: createPeerCredentialReader(),
  });
  // Adopted before start: a half-started daemon (listening, then failing) is stopped too.
  ws.adopt(() => daemon.stop(2000));
  await daemon.start();
  log(`[3/5] agent "${AGENT_ID}" started: local API on ${socket}, linked to the controller`);
  const stop = () => ws.close();

  log('[4/5] controller challenge -> agent cycle bound to its nonce (GPU reports, SNP report over them) -> controller verifies, signs EAR, seals the secret');
  const token = await poll(ws, 'the controller verdict', timeoutMs, async () => {
    const r = await callApi(socket, 'GET', '/v1/token');
    return r.status === 200 ? (r.json() as { token: string; expiresAt: string }) : undefined;
  });
  const secretRes = await callApi(socket, 'GET', `/v1/secrets/${SECRET_NAME}`);
  const status = (await callApi(socket, 'GET', '/v1/status')).json() as {
    health: { status: string };
    tee: { simulated: boolean };
    lastAttestation: {
      status: string;
      devices: Record<string, { status: string; failed: { name: string; detail: string }[]; warnings: { name: string; detail: string }[] }>;
    } | null;
    gpus: { readyState: boolean; readyReason: string };
  };
  log(`[5/5] token and secret read back through the local socket, as a workload would`);
  const devices = Object.entries(status.lastAttestation?.devices ?? {}).map(([id, d]) => ({
    id,
    status: d.status,
    failed: d.failed.map((c) => `${c.name}: ${c.detail}`),
    warnings: d.warnings.map((c) => `${c.name}: ${c.detail}`),
  }));
  const secret =
    secretRes.status === 200
      ? {
          name: SECRET_NAME,
          bytes: secretRes.body.length,
          sha256: createHash('sha256').update(secretRes.body).digest('hex'),
          matches: secretRes.body.equals(secretValue),
        }
      : undefined;
  return {
    ok: status.lastAttestation?.status === 'affirming' && secret?.matches === true,
    dir,
    fleetUrl: `${url}/`,
    socket,
    agentStatus: status.lastAttestation?.status ?? 'none',
    simulated: status.tee.simulated,
    devices,
    gpuReady: { set: status.gpus.readyState, reason: status.gpus.readyReason },
    token: { claims: decodeJwt(token.token) as Record<string, unknown>, expiresAt: token.expiresAt },
    secret,
    stop,
  };
}

const MARK: Record<string, string> = { affirming: 'PASS', warning: 'WARN', contraindicated: 'FAIL', none: 'NONE' };

export function formatDemoSummary(r: DemoResult): string {
  const lines = ['', `Attestation result${r.simulated ? ' (SIMULATED)' : ''}: ${r.agentStatus.toUpperCase()}`, '', '  device  verdict  notes'];
  for (const d of r.devices) {
    const notes = [...d.failed.map((n) => `FAILED ${n}`), ...d.warnings.map((n) => `warning ${n}`)];
    lines.push(`  ${d.id.padEnd(6)}  ${(MARK[d.status] ?? d.status).padEnd(7)}  ${notes[0] ?? 'all checks passed'}`);
    for (const n of notes.slice(1)) lines.push(`  ${''.padEnd(6)}  ${''.padEnd(7)}  ${n}`);
  }
  lines.push('', `GPU ready state: ${r.gpuReady.set ? 'SET' : 'not set'} (${r.gpuReady.reason})`);
  if (r.token) {
    const c = r.token.claims as Record<string, any>;
    const submods = Object.entries((c.submods ?? {}) as Record<string, Record<string, unknown>>)
      .map(([k, v]) => `${k}=${String(v['ear.status'])}`)
      .join(' ');
    lines.push('', 'Controller token (EAR JWT, ES384), claims:');
    lines.push(`  iss ${c.iss}  sub ${c.sub}  iat ${new Date(c.iat * 1000).toISOString()}  exp ${r.token.expiresAt}`);
    lines.push(`  ear.status ${c['ear.status']}  submods ${submods}`);
    lines.push(`  eat_nonce ${c.eat_nonce}  cnf.jkt ${c.cnf?.jkt ?? '-'}`);
  }
  lines.push(
    '',
    r.secret
      ? `Secret "${r.secret.name}" released to the attested key (JWE, ECDH-ES+A256KW) and read through the socket: ${r.secret.bytes} bytes, sha256 ${r.secret.sha256.slice(0, 16)}..., ${r.secret.matches ? 'matches what the controller holds' : 'DOES NOT MATCH'}`
      : 'Secret: NOT released (the controller releases secrets only to affirming agents)',
  );
  lines.push('');
  return lines.join('\n');
}
