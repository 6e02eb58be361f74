/**
 * End-to-end fixture for the trust-loss tests: a real `cvm-agent run` child on the simulated TEE
 * whose GPUs' driver side (presence, CC mode, ready state) is the fake libnvidia-ml (config
 * simulation.nvml), a fake `systemctl` that records what it is asked, an optional reference
 * controller over loopback, and a client for GET /v1/events over the Unix socket.
 */
import { chmodSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import pino from 'pino';
import { startDaemon, type DaemonProcess } from './daemon-process.js';
import { fakesDir } from './paths.js';
import { callApi } from '../../agent/cli/api-client.js';
import { noteConformance, noteEventConformance } from './api-contract.js';
import { Controller } from '../../agent/controller/controller-server.js';
import { openSimulation } from '../../agent/simulation/open.js';
import { parseControllerConfig, resolveControllerConfig, tokenDigest } from '../../agent/controller/config.js';

export const FAKE_NVML = join(fakesDir, 'libnvidia-ml.so.1');

/** Wait until fn() returns a value (not undefined/false); no timing assertion, only a generous limit. */
export async function until<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    // A probe that throws (the agent not listening yet) counts as "not yet".
    const v = await Promise.resolve()
      .then(fn)
      .catch((err: unknown) => ((lastError = err), undefined));
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline)
      throw new Error(`${what}: not reached within ${timeoutMs} ms${lastError ? ` (last error: ${(lastError as Error).message})` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export interface AgentFixture {
  dir: string;
  socket: string;
  config: string;
  daemon: DaemonProcess;
  /** The fake driver's persisted ready state ("0"/"1"), as another process would see it. */
  readyFile: string;
  /** Every ready-state write the fake driver received, in order. */
  readyWrites(): string[];
  /** Every systemctl invocation, as "verb -- unit". */
  systemctlCalls(): string[];
  /** Change the fake GPUs of the running agent (FAKE_NVML_* keys), e.g. { FAKE_NVML_CC_1: 'off' }. */
  setHardware(over: Record<string, string>): void;
  api(method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; json: () => any; body: Buffer }>;
  stop(): Promise<void>;
}

export function writeAgentConfig(dir: string, extra = ''): string {
  const file = join(dir, 'config.yaml');
  writeFileSync(
    file,
    `tee: simulated
simulation: { gpus: 2, dir: ${dir}/sim, nvml: true }
devices: { nvmlLibrary: ${FAKE_NVML} }
api:
  socket: ${dir}/api.sock
  authorization:
    secrets: { uids: ["0"] }
state: { dir: ${dir}/state }
collateral: { dir: ${dir}/cache }
${extra}`,
  );
  return file;
}

/** A fake systemctl: records its arguments, exits 0 (or FAIL_UNITS lists units it refuses). */
function fakeSystemctl(dir: string): string {
  const path = join(dir, 'systemctl');
  writeFileSync(
    path,
    `#!/bin/sh\n# $1=--no-ask-password $2=verb $3=-- $4=unit\necho "$2 $3 $4" >> ${dir}/systemctl.log\ncase " $(cat ${dir}/systemctl.fail 2>/dev/null) " in *" $4 "*) echo "Failed to $2 $4: Access denied" >&2; exit 1;; esac\nexit 0\n`,
  );
  chmodSync(path, 0o755);
  return path;
}

/** A fresh directory for one agent, with its simulated TEE created (so a controller can trust it first). */
export async function agentDir(gpus = 2): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'cvm-trust-'));
  chmodSync(dir, 0o755);
  await openSimulation(join(dir, 'sim'), gpus);
  return dir;
}

export async function startAgent(
  opts: { dir?: string; controllerYaml?: string; schedule?: string; extra?: string; env?: Record<string, string>; gpus?: number } = {},
): Promise<AgentFixture> {
  const dir = opts.dir ?? (await agentDir(opts.gpus ?? 2));
  const systemctl = fakeSystemctl(dir);
  const readyFile = join(dir, 'nvml-ready');
  const overrides = join(dir, 'nvml-overrides');
  writeFileSync(overrides, '');
  const config = writeAgentConfig(
    dir,
    `${opts.schedule ?? 'schedule: { cron: "0 0 1 1 *", jitterSec: 0, retry: { initialSec: 3600, maxSec: 3600 } }'}
consequences:
  systemctl: ${systemctl}
  units: { stop: [inference.service], start: [quarantine.service] }
${opts.controllerYaml ?? ''}
${opts.extra ?? ''}`,
  );
  const daemon = startDaemon(['--config', config], {
    FAKE_NVML_GPUS: String(opts.gpus ?? 2),
    FAKE_NVML_STATE_FILE: readyFile,
    FAKE_NVML_OVERRIDES: overrides,
    FAKE_NVML_READY_LOG: join(dir, 'ready.log'),
    CVM_AGENT_LOG_LEVEL: 'debug',
    ...opts.env,
  });
  const socket = join(dir, 'api.sock');
  return {
    dir,
    socket,
    config,
    daemon,
    readyFile,
    readyWrites: () => (existsSync(join(dir, 'ready.log')) ? readFileSync(join(dir, 'ready.log'), 'utf8').split('\n').filter(Boolean) : []),
    systemctlCalls: () => (existsSync(join(dir, 'systemctl.log')) ? readFileSync(join(dir, 'systemctl.log'), 'utf8').split('\n').filter(Boolean) : []),
    setHardware: (over) =>
      writeFileSync(
        overrides,
        Object.entries(over)
          .map(([k, v]) => `${k}=${v}\n`)
          .join(''),
      ),
    api: (method, path, body) => callApi(socket, method, path, body),
    async stop() {
      if (daemon.child.exitCode === null && daemon.child.signalCode === null) {
        daemon.child.kill('SIGTERM');
        await Promise.race([daemon.exit, new Promise((r) => setTimeout(r, 8000))]);
        if (daemon.child.exitCode === null) daemon.child.kill('SIGKILL');
      }
    },
  };
}

/** The reference controller over loopback with a fixed signing key, so restarts keep the issuer. */
export interface ControllerFixture {
  dir: string;
  agentToken: string;
  port: number;
  controller: Controller;
  wsUrl: string;
  /** The agent's config fragment for this controller. */
  agentYaml: string;
  restart(opts?: { contraindicate?: boolean }): Promise<void>;
  close(): Promise<void>;
}

export async function startController(opts: {
  simDir: string;
  contraindicate?: boolean;
  tokenTtlSec?: number;
  challengeIntervalSec?: number;
}): Promise<ControllerFixture> {
  const dir = mkdtempSync(join(tmpdir(), 'cvm-trust-ctl-'));
  const agentToken = randomBytes(24).toString('base64url');
  writeFileSync(join(dir, 'agent.token'), agentToken, { mode: 0o600 });
  writeFileSync(join(dir, 'model.key'), randomBytes(32), { mode: 0o600 });
  const signing = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  writeFileSync(join(dir, 'signing.pem'), signing.privateKey.export({ type: 'pkcs8', format: 'pem' }));
  // The agent pins the controller's public token key (controller.tokenKey): verdicts must verify under it.
  writeFileSync(join(dir, 'token-key.pem'), signing.publicKey.export({ type: 'spki', format: 'pem' }));
  // A launch measurement no simulated guest has: this controller contraindicates every agent.
  writeFileSync(join(dir, 'strict-snp.yaml'), `measurements: ["${'ab'.repeat(48)}"]\n`);
  const yaml = (port: number, contraindicate: boolean) =>
    [
      `listen: {host: 127.0.0.1, port: ${port}}`,
      'agents:',
      '  tokens:',
      `    - {agentId: trust-vm, sha256: ${tokenDigest(agentToken).toString('hex')}}`,
      `simulation: {trust: true, dir: ${opts.simDir}}`,
      'releaseSecretsOn: affirming',
      'secrets:',
      '  - {name: model-key, file: model.key, agents: [trust-vm]}',
      `signingKey: signing.pem`,
      `tokenTtlSec: ${opts.tokenTtlSec ?? 300}`,
      `challengeIntervalSec: ${opts.challengeIntervalSec ?? 3600}`,
      ...(contraindicate ? ['policy: {snp: strict-snp.yaml}'] : []),
      `stateDir: ${join(dir, 'state')}`,
      'log: {level: silent}',
    ].join('\n');
  const silent = pino({ level: 'silent' });
  const boot = async (port: number, contraindicate: boolean) =>
    Controller.start(await resolveControllerConfig(parseControllerConfig(yaml(port, contraindicate), 'trust controller', dir)), { log: silent });
  const fx: ControllerFixture = {
    dir,
    agentToken,
    port: 0,
    controller: await boot(0, opts.contraindicate ?? false),
    wsUrl: '',
    agentYaml: '',
    async restart(o = {}) {
      await fx.controller.close();
      fx.controller = await boot(fx.port, o.contraindicate ?? false);
    },
    close: () => fx.controller.close(),
  };
  fx.port = fx.controller.address().port;
  fx.wsUrl = fx.controller.address().wsUrl;
  // Loopback ws:// (controller.insecure) with the token key pinned, as the agent requires for ws://.
  fx.agentYaml = `controller: { url: "${fx.wsUrl}", insecure: true, tokenKey: ${join(dir, 'token-key.pem')}, agentId: trust-vm, tokenFile: ${join(dir, 'agent.token')} }`;
  return fx;
}

export interface SseEvent {
  id?: string;
  event: string;
  data: any;
}

/** A subscriber to GET /v1/events over the Unix socket. */
export interface Subscription {
  status: number;
  events: SseEvent[];
  waitFor(pred: (e: SseEvent) => boolean, timeoutMs?: number): Promise<SseEvent>;
  close(): void;
  closed: Promise<void>;
}

export function subscribe(socket: string, headers: Record<string, string> = {}): Promise<Subscription> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, path: '/v1/events', method: 'GET', headers: { accept: 'text/event-stream', ...headers } }, (res) => {
      const events: SseEvent[] = [];
      let buf = '';
      let waiters: { pred: (e: SseEvent) => boolean; resolve: (e: SseEvent) => void }[] = [];
      let closedResolve!: () => void;
      const closed = new Promise<void>((r) => (closedResolve = r));
      res.setEncoding('utf8');
      // Checked against docs/openapi.yaml: the status and content type now, each event as it comes,
      // a problem body once it has ended.
      const seen = {
        method: 'GET',
        target: '/v1/events',
        status: res.statusCode ?? 0,
        contentType: String(res.headers['content-type'] ?? ''),
        headers: Object.keys(res.headers),
        socket,
      };
      const streaming = seen.status === 200;
      if (streaming) noteConformance(seen);
      let whole = '';
      if (!streaming) res.on('end', () => noteConformance({ ...seen, body: whole }));
      res.on('data', (chunk: string) => {
        if (!streaming) whole += chunk;
        buf += chunk;
        let i: number;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const frame = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const e: Partial<SseEvent> & { raw?: string[] } = {};
          const data: string[] = [];
          for (const line of frame.split('\n')) {
            if (line.startsWith(':')) continue;
            const [k, ...rest] = line.split(':');
            const v = rest.join(':').replace(/^ /, '');
            if (k === 'event') e.event = v;
            else if (k === 'id') e.id = v;
            else if (k === 'data') data.push(v);
          }
          if (!e.event && data.length === 0) continue;
          const ev: SseEvent = { ...(e.id ? { id: e.id } : {}), event: e.event ?? 'message', data: data.length ? JSON.parse(data.join('\n')) : undefined };
          if (streaming) noteEventConformance('GET', '/v1/events', ev.event, ev.data, socket);
          events.push(ev);
          waiters = waiters.filter((w) => (w.pred(ev) ? (w.resolve(ev), false) : true));
        }
      });
      res.on('close', () => closedResolve());
      res.on('error', () => closedResolve());
      resolve({
        status: res.statusCode ?? 0,
        events,
        closed,
        waitFor(pred, timeoutMs = 60_000) {
          const hit = events.find(pred);
          if (hit) return Promise.resolve(hit);
          return new Promise((res2, rej) => {
            const t = setTimeout(
              () => rej(new Error(`no matching event within ${timeoutMs} ms; got ${JSON.stringify(events.map((x) => x.event))}`)),
              timeoutMs,
            );
            waiters.push({
              pred,
              resolve: (e) => {
                clearTimeout(t);
                res2(e);
              },
            });
          });
        },
        close: () => req.destroy(),
      });
    });
    req.on('error', reject);
    req.end();
  });
}
