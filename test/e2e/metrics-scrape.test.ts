/**
 * What Prometheus sees: real scrapes of a running agent (simulated TEE, metrics.listen on loopback
 * TCP) and of a running reference controller, checked by `promtool check metrics` (Debian package
 * `prometheus`), which must report nothing. Also: the agent's TCP listener serves /metrics and
 * nothing else (the local API's endpoints are 404 there, so their authorization by kernel
 * credentials is never bypassed over TCP), it is off by default, a non-loopback address is logged
 * as a warning, and the controller's /healthz says when it cannot do its job. Without promtool the
 * promtool checks are skipped, except under CI=true, where a missing promtool fails.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import pino from 'pino';
import { Daemon } from '../../agent/daemon/daemon.js';
import { callApi } from '../../agent/cli/api-client.js';
import { signEvent } from '../../agent/link/events.js';
import { packageVersion } from '../../agent/util/package-version.js';
import { buildCommit } from '../../agent/util/build-info.js';
import { packageRoot } from '../../agent/native/addon-loader.js';
import { FakeAgent, makeBundle, openSim, startController, type ControllerUnderTest, type Sim } from '../helpers/controller-fixture.js';

/** What `cvm-agent --version` says: in a checkout, the commit of HEAD. */
const COMMIT = buildCommit(packageRoot());

const PROMTOOL = (process.env.PATH ?? '')
  .split(delimiter)
  .map((d) => join(d, 'promtool'))
  .find((p) => p !== 'promtool' && existsSync(p));
/** Under CI a missing tool is a failure, never a silent skip. */
const PROMTOOL_TESTS = PROMTOOL !== undefined || process.env.CI === 'true';

/** `promtool check metrics` on a scrape: its exit status and everything it printed. */
function promtoolCheck(body: string): Promise<{ code: number | null; output: string }> {
  expect(PROMTOOL, 'promtool not found: apt-get install -y prometheus').toBeDefined();
  return new Promise((resolve, reject) => {
    const child = spawn(PROMTOOL!, ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
    child.stdin.end(body);
  });
}

interface HttpAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function http(url: string, method = 'GET'): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Prometheus text -> { 'name{labels}': value } (enough for the values checked here). */
function samples(body: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of body.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

interface AgentUnderTest {
  daemon: Daemon;
  dir: string;
  socket: string;
  logs: Array<Record<string, unknown>>;
  stop(): Promise<void>;
}

/** A daemon in this process on the simulated TEE; `yaml` lines are appended to its config. */
async function startAgent(yaml: string[], opts: { start?: boolean } = {}): Promise<AgentUnderTest> {
  const dir = mkdtempSync(join(tmpdir(), 'cvm-metrics-'));
  const socket = join(dir, 'api.sock');
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  writeFileSync(
    join(dir, 'agent.yaml'),
    [
      'tee: simulated',
      `simulation: {gpus: 1, dir: ${join(dir, 'sim')}}`,
      `api: {socket: ${socket}}`,
      `state: {dir: ${join(dir, 'state')}}`,
      `collateral: {dir: ${join(dir, 'cache')}}`,
      'controller: {agentId: metrics-vm}',
      'schedule: {cron: "0 0 1 1 *", jitterSec: 0, attestAtStart: false}',
      ...yaml,
    ].join('\n'),
  );
  const logs: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => void logs.push(JSON.parse(s) as Record<string, unknown>) });
  const daemon = new Daemon({ configPath: join(dir, 'agent.yaml'), logger, env: {}, peerCredentials: () => ({ pid: process.pid, uid, gid }) });
  let started = false;
  const agent = {
    daemon,
    dir,
    socket,
    logs,
    async stop() {
      if (started) await daemon.stop(2000);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  if (opts.start ?? true) {
    try {
      await daemon.start();
      started = true;
    } catch (err) {
      await agent.stop();
      throw err;
    }
  }
  return agent;
}

describe('agent: metrics.listen', () => {
  let agent: AgentUnderTest;
  let base: string;
  let policyDir: string;

  beforeAll(async () => {
    // A policy no simulated guest meets: the cycle is CONTRAINDICATED (its log level is checked too).
    policyDir = mkdtempSync(join(tmpdir(), 'cvm-metrics-policy-'));
    writeFileSync(join(policyDir, 'policy.yaml'), `id: strict\nsnp:\n  measurements: ["${'ab'.repeat(48)}"]\n`);
    agent = await startAgent(['metrics: {listen: "127.0.0.1:0"}', `policy: {file: ${join(policyDir, 'policy.yaml')}}`]);
    const a = agent.daemon.metricsAddress()!;
    base = `http://127.0.0.1:${a.port}`;
    // One cycle, so the cycle series have samples.
    await callApi(agent.socket, 'POST', '/v1/attest', {});
  }, 120_000);

  afterAll(async () => {
    await agent?.stop();
    rmSync(policyDir, { recursive: true, force: true });
  });

  it('serves /metrics over TCP on loopback, with build info and the standard process and Node.js metrics', async () => {
    const a = agent.daemon.metricsAddress()!;
    expect(a.host).toBe('127.0.0.1');
    expect(a.port).toBeGreaterThan(0);
    expect(agent.logs.some((l) => l.msg === 'metrics listening' && l.level === 30 && l.port === a.port)).toBe(true);
    const r = await http(`${base}/metrics`);
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    const s = samples(r.body);
    expect(s.get(`cvm_agent_build_info{version="${packageVersion()}",commit="${COMMIT}",node="${process.version}"}`)).toBe(1);
    expect(s.get('cvm_attestation_cycles_total{result="contraindicated"}')).toBe(1);
    expect(s.get('process_resident_memory_bytes')).toBeGreaterThan(0);
    expect(s.get('process_start_time_seconds')).toBeGreaterThan(0);
    expect([...s.keys()].some((k) => k.startsWith('nodejs_eventloop_lag_seconds'))).toBe(true);
    // The same exposition as the socket's /metrics.
    const viaSocket = samples((await callApi(agent.socket, 'GET', '/metrics')).body.toString());
    expect(viaSocket.get('cvm_attestation_cycles_total{result="contraindicated"}')).toBe(1);
    const head = await http(`${base}/metrics`, 'HEAD');
    expect(head.status).toBe(200);
    expect(head.body).toBe('');
  });

  it('serves nothing but /metrics: every local API path is 404, other methods 405', async () => {
    for (const path of [
      '/v1/status',
      '/v1/health',
      '/v1/token',
      '/v1/secrets/model-key',
      `/v1/evidence?nonce=${'aa'.repeat(16)}`,
      '/v1/events',
      '/',
      '/metrics/x',
      '/metricsx',
    ]) {
      const r = await http(`${base}${path}`);
      expect(r.status, path).toBe(404);
      expect(r.headers['content-type']).toBe('application/problem+json');
      expect(r.body).not.toMatch(/cvm_|agentKey|teePubKey/);
    }
    const post = await http(`${base}/v1/attest`, 'POST');
    expect(post.status).toBe(404);
    const postMetrics = await http(`${base}/metrics`, 'POST');
    expect(postMetrics.status).toBe(405);
    expect(postMetrics.headers.allow).toBe('GET, HEAD');
  });

  it('logs a CONTRAINDICATED cycle as a warning, not an error', () => {
    const cycle = agent.logs.find((l) => typeof l.msg === 'string' && l.msg.startsWith('attestation contraindicated'));
    expect(cycle, JSON.stringify(agent.logs.map((l) => l.msg))).toBeDefined();
    expect(cycle!.level).toBe(40);
  });

  it.runIf(PROMTOOL_TESTS)('promtool check metrics reports nothing for the agent', async () => {
    const body = (await http(`${base}/metrics`)).body;
    const r = await promtoolCheck(body);
    expect(r.output).toBe('');
    expect(r.code).toBe(0);
  });
});

describe('agent: metrics.listen off, busy, or not loopback', () => {
  it('is off by default: no TCP listener', async () => {
    const agent = await startAgent([]);
    try {
      expect(agent.daemon.config.metrics.listen).toBeUndefined();
      expect(agent.daemon.metricsAddress()).toBeUndefined();
      expect(agent.logs.some((l) => l.msg === 'metrics listening')).toBe(false);
    } finally {
      await agent.stop();
    }
  }, 60_000);

  it('a busy port fails the start with an error naming metrics.listen, and leaves nothing running', async () => {
    const busy: Server = createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    const port = (busy.address() as { port: number }).port;
    const agent = await startAgent([`metrics: {listen: "127.0.0.1:${port}"}`], { start: false });
    try {
      await expect(agent.daemon.start()).rejects.toThrow(new RegExp(`^metrics\\.listen: cannot listen on 127\\.0\\.0\\.1:${port}: EADDRINUSE`));
      expect(existsSync(agent.socket)).toBe(false);
    } finally {
      busy.close();
      await agent.stop();
    }
  }, 60_000);

  it('a non-loopback address is the operator explicit choice, and is logged as a warning at start', async () => {
    const agent = await startAgent(['metrics: {listen: "0.0.0.0:0"}']);
    try {
      const line = agent.logs.find((l) => l.msg === 'metrics listening' || String(l.msg).startsWith('metrics listening on a non-loopback'));
      expect(line).toMatchObject({ level: 40, listen: '0.0.0.0:0' });
      expect((await http(`http://127.0.0.1:${agent.daemon.metricsAddress()!.port}/v1/status`)).status).toBe(404);
    } finally {
      await agent.stop();
    }
  }, 60_000);
});

describe('controller: /metrics and /healthz', () => {
  let sim: Sim;
  let ctl: ControllerUnderTest;
  const agents: FakeAgent[] = [];

  beforeAll(async () => {
    sim = await openSim();
    ctl = await startController(sim, 'simulation: {trust: true, dir: SIMDIR}\nreleaseSecretsOn: warning\n');
    const url = ctl.controller.address().wsUrl;
    // One agent attested (a secret released, two events stored)...
    const good = await FakeAgent.connect(url);
    good.hello('metrics-good');
    const c1 = await good.next('challenge');
    await good.answer(c1, await makeBundle(sim, Buffer.from(c1.nonce, 'hex'), good.key.publicJwk, 'metrics-good'));
    await good.next('verdict');
    for (const seq of [1, 2]) good.send(await signEvent({ seq, at: new Date().toISOString(), kind: 'status', data: { n: seq } }, good.key));
    // Until both are acked (stored): the controller may ack seq 1 on its own before seq 2 arrives.
    let ack = await good.next('ack');
    while (ack.seq < 2) ack = await good.next('ack');
    // ...and one whose evidence was tampered with: CONTRAINDICATED.
    const bad = await FakeAgent.connect(url);
    bad.hello('metrics-bad');
    const c2 = await bad.next('challenge');
    const bundle = await makeBundle(sim, Buffer.from(c2.nonce, 'hex'), bad.key.publicJwk, 'metrics-bad');
    const cpu = bundle.cpu as { report: string };
    const report = Buffer.from(cpu.report, 'base64');
    report[0x90]! ^= 1;
    cpu.report = report.toString('base64');
    await bad.answer(c2, bundle);
    await bad.next('verdict');
    agents.push(good, bad);
  }, 120_000);

  afterAll(async () => {
    agents.forEach((a) => a.close());
    await ctl?.controller.close();
    rmSync(sim.dir, { recursive: true, force: true });
    rmSync(ctl.stateDir, { recursive: true, force: true });
  });

  it('counts agents connected, verdicts by status, verification time, events stored and secrets released', async () => {
    const r = await http(`${ctl.controller.address().url}/metrics`);
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    const s = samples(r.body);
    expect(s.get('cvm_controller_agents_connected')).toBe(2);
    const passed = (s.get('cvm_controller_verdicts_total{status="affirming"}') ?? 0) + (s.get('cvm_controller_verdicts_total{status="warning"}') ?? 0);
    expect(passed).toBe(1);
    expect(s.get('cvm_controller_verdicts_total{status="contraindicated"}')).toBe(1);
    expect(s.get('cvm_controller_verification_duration_seconds_count')).toBe(2);
    expect(s.get('cvm_controller_verification_duration_seconds_sum')).toBeGreaterThan(0);
    expect(s.get('cvm_controller_events_stored_total')).toBe(2);
    expect(s.get('cvm_controller_secrets_released_total')).toBe(1);
    expect(s.get(`cvm_controller_build_info{version="${packageVersion()}",commit="${COMMIT}",node="${process.version}"}`)).toBe(1);
    expect(s.get('process_resident_memory_bytes')).toBeGreaterThan(0);
  });

  it('logs the CONTRAINDICATED verdict as a warning', () => {
    const lines = ctl.logLines.map((l) => JSON.parse(l) as { level: number; msg: string; agentId?: string });
    const bad = lines.find((l) => l.agentId === 'metrics-bad' && /^verdict CONTRAINDICATED/.test(l.msg));
    expect(bad?.level).toBe(40);
    const good = lines.find((l) => l.agentId === 'metrics-good' && /^verdict (AFFIRMING|WARNING)/.test(l.msg));
    expect(good?.level).toBe(30);
  });

  it.runIf(PROMTOOL_TESTS)('promtool check metrics reports nothing for the controller', async () => {
    const r = await promtoolCheck((await http(`${ctl.controller.address().url}/metrics`)).body);
    expect(r.output).toBe('');
    expect(r.code).toBe(0);
  });

  it('/healthz is 200 while it can serve agents, 503 with the reason when agent state cannot be written', async () => {
    const url = `${ctl.controller.address().url}/healthz`;
    const ok = await http(url);
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body)).toEqual({ status: 'ok', reasons: [] });
    expect((await http(url, 'HEAD')).status).toBe(200);
    // The state directory disappears under the controller (a file in its place): the next write fails.
    rmSync(ctl.stateDir, { recursive: true, force: true });
    writeFileSync(ctl.stateDir, 'not a directory');
    await expect(ctl.controller.registry.persist('metrics-good')).rejects.toThrow();
    const failing = await http(url);
    expect(failing.status).toBe(503);
    const doc = JSON.parse(failing.body) as { status: string; reasons: string[] };
    expect(doc.status).toBe('failing');
    expect(doc.reasons.join('\n')).toMatch(/latest agent state write failed \(agent metrics-good, .*\): ENOTDIR/);
    // Writable again: the next successful write makes it healthy.
    rmSync(ctl.stateDir, { force: true });
    mkdirSync(ctl.stateDir);
    await ctl.controller.registry.persist('metrics-good');
    expect((await http(url)).status).toBe(200);
  });
});
