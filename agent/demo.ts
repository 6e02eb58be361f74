/**
 * The demo (README's first command, issue: controller link): on loopback, in a temporary directory,
 * it starts the reference controller and an agent daemon on the built-in SIMULATED TEE (a software
 * SEV-SNP CPU and N software H100s). The controller challenges the agent, verifies its evidence with
 * the same verifiers, signs an EAR token and releases a secret to the attested key; the demo then
 * reads the token and the secret back through the agent's local Unix socket, like a workload would.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { decodeJwt } from 'jose';
import { openSimulation } from './attest/simulation.js';
import { Daemon } from './daemon/daemon.js';
import { Controller } from './controller/server.js';
import { parseControllerConfig, resolveControllerConfig, tokenDigest } from './controller/config.js';
import { callApi } from './cli/api-client.js';
import { peerCredentials } from './native/system.js';
import { CvmError } from './errors.js';

export interface DemoOptions {
  gpus: number;
  dir?: string;
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
  stop(): Promise<void>;
}

const AGENT_ID = 'demo-vm';
const SECRET_NAME = 'model-key';

async function poll<T>(what: string, timeoutMs: number, fn: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new CvmError('ERR_DEMO_TIMEOUT', `${what} did not happen within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function runDemo(opts: DemoOptions): Promise<DemoResult> {
  const log = opts.log ?? (() => undefined);
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), 'cvm-agent-demo-')));
  const simDir = join(dir, 'simulation');
  const silent = pino({ level: 'silent' });

  log(`[1/5] simulated TEE in ${simDir}: SEV-SNP (Genoa) + ${opts.gpus} H100, test roots created on first use (SIMULATED: trusted only by this demo)`);
  await openSimulation(simDir, opts.gpus);

  const agentToken = randomBytes(24).toString('base64url');
  const secretValue = randomBytes(32);
  await writeFile(join(dir, 'agent.token'), agentToken, { mode: 0o600 });
  await writeFile(join(dir, 'model.key'), secretValue, { mode: 0o600 });
  const controllerYaml = [
    'listen: {host: 127.0.0.1, port: 0}',
    'agents:',
    '  tokens:',
    `    - {agentId: ${AGENT_ID}, sha256: ${tokenDigest(agentToken).toString('hex')}}`,
    `simulation: {trust: true, dir: ${simDir}}`,
    'releaseSecretsOn: affirming',
    'secrets:',
    `  - {name: ${SECRET_NAME}, file: model.key, agents: [${AGENT_ID}]}`,
    `stateDir: ${join(dir, 'controller')}`,
    'log: {level: silent}',
  ].join('\n');
  const controller = await Controller.start(await resolveControllerConfig(parseControllerConfig(controllerYaml, 'demo controller', dir)), { log: silent });
  const { wsUrl, url } = controller.address();
  log(`[2/5] reference controller on ${url} (fleet page ${url}/), trusting the simulated roots, releasing "${SECRET_NAME}" to affirming agents`);

  const socket = join(dir, 'api.sock');
  const uid = process.getuid?.() ?? 0;
  // Loopback ws:// (controller.insecure), so the agent pins the controller's token key to authenticate verdicts.
  const tokenKey = join(dir, 'controller-token-key.jwk');
  await writeFile(tokenKey, JSON.stringify(controller.signer.jwks()), { mode: 0o644 });
  await writeFile(
    join(dir, 'agent.yaml'),
    [
      'tee: simulated',
      `simulation: {gpus: ${opts.gpus}, dir: ${simDir}}`,
      `controller: {url: "${wsUrl}", insecure: true, tokenKey: ${tokenKey}, agentId: ${AGENT_ID}, tokenFile: ${join(dir, 'agent.token')}}`,
      `api: {socket: ${socket}, authorization: {secrets: {uids: ["${uid}"]}}}`,
      `state: {dir: ${join(dir, 'state')}}`,
      'schedule: {cron: "0 0 1 1 *", jitterSec: 0, attestAtStart: true}',
      'log: {level: fatal}',
    ].join('\n'),
  );
  const daemon = new Daemon({
    configPath: join(dir, 'agent.yaml'),
    logger: silent,
    peerCredentials: (s) => {
      try {
        return peerCredentials(s);
      } catch {
        return undefined;
      }
    },
  });
  await daemon.start();
  log(`[3/5] agent "${AGENT_ID}" started: local API on ${socket}, linked to the controller`);
  const stop = async () => {
    await daemon.stop(2000);
    await controller.close();
  };

  try {
    log('[4/5] controller challenge -> agent cycle bound to its nonce (GPU reports, SNP report over them) -> controller verifies, signs EAR, seals the secret');
    const token = await poll('the controller verdict', timeoutMs, async () => {
      const r = await callApi(socket, 'GET', '/v1/token');
      return r.status === 200 ? (r.json() as { token: string; expiresAt: string }) : undefined;
    });
    const secretRes = await callApi(socket, 'GET', `/v1/secrets/${SECRET_NAME}`);
    const status = (await callApi(socket, 'GET', '/v1/status')).json() as {
      health: { status: string };
      tee: { simulated: boolean };
      lastAttestation: { status: string; devices: Record<string, { status: string; failed: { name: string; detail: string }[]; warnings: { name: string; detail: string }[] }> } | null;
      gpus: { readyState: boolean; readyReason: string };
    };
    log(`[5/5] token and secret read back through the local socket, as a workload would`);
    const devices = Object.entries(status.lastAttestation?.devices ?? {}).map(([id, d]) => ({
      id,
      status: d.status,
      failed: d.failed.map((c) => `${c.name}: ${c.detail}`),
      warnings: d.warnings.map((c) => `${c.name}: ${c.detail}`),
    }));
    const secret = secretRes.status === 200
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
  } catch (err) {
    await stop();
    throw err;
  }
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
    const submods = Object.entries((c.submods ?? {}) as Record<string, Record<string, unknown>>).map(([k, v]) => `${k}=${String(v['ear.status'])}`).join(' ');
    lines.push('', 'Controller token (EAR JWT, ES384), claims:');
    lines.push(`  iss ${c.iss}  sub ${c.sub}  iat ${new Date(c.iat * 1000).toISOString()}  exp ${r.token.expiresAt}`);
    lines.push(`  ear.status ${c['ear.status']}  submods ${submods}`);
    lines.push(`  eat_nonce ${c.eat_nonce}  cnf.jkt ${c.cnf?.jkt ?? '-'}`);
  }
  lines.push('', r.secret
    ? `Secret "${r.secret.name}" released to the attested key (JWE, ECDH-ES+A256KW) and read through the socket: ${r.secret.bytes} bytes, sha256 ${r.secret.sha256.slice(0, 16)}..., ${r.secret.matches ? 'matches what the controller holds' : 'DOES NOT MATCH'}`
    : 'Secret: NOT released (the controller releases secrets only to affirming agents)');
  lines.push('');
  return lines.join('\n');
}
