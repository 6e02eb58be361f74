/**
 * The daemon end to end, as systemd would run it: a real `cvm-agent run` child process on the
 * simulated TEE, a real Unix socket, sd_notify datagrams received by a socket this test owns,
 * SO_PEERCRED authorization with two different uids, SIGHUP with a good and a bad file, SIGTERM,
 * and socket activation through systemd-socket-activate.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, writeFileSync, existsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { NotifyReceiver } from '../helpers/notify-receiver.js';
import { startDaemon, CLI, type DaemonProcess } from '../helpers/daemon-process.js';
import { requireTool } from '../helpers/tools.js';
import { callApi } from '../../agent/cli/api-client.js';
import { assertConforms } from '../helpers/api-contract.js';
import { main } from '../../agent/cli/main.js';

const pexec = promisify(execFile);

function io() {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { stdout: { write: (s: string) => out.push(s) }, stderr: { write: (s: string) => err.push(s) }, env: {}, cwd: process.cwd() } };
}

function writeConfig(dir: string, extra = '') {
  const file = join(dir, 'config.yaml');
  writeFileSync(
    file,
    `tee: simulated
simulation: { gpus: 2, dir: ${dir}/sim }
api:
  socket: ${dir}/api.sock
  authorization:
    status: { uids: ["1001"] }
    secrets: { uids: ["1001"] }
state: { dir: ${dir}/state }
collateral: { dir: ${dir}/cache }
schedule: { cron: "0 0 1 1 *", jitterSec: 0 }
${extra}`,
  );
  return file;
}

/** A request made by another uid (gid 0 so the 0660 root-group socket admits it), checked against docs/openapi.yaml. */
async function requestAs(uid: number, socket: string, path: string): Promise<number> {
  const script = `require('node:http').get({socketPath: ${JSON.stringify(socket)}, path: ${JSON.stringify(path)}}, (r) => { let b = ''; r.setEncoding('utf8'); r.on('data', (d) => (b += d)); r.on('end', () => console.log(JSON.stringify({ status: r.statusCode, contentType: r.headers['content-type'], body: b }))); }).on('error', (e) => { console.log('ERR ' + e.code); });`;
  const r = await new Promise<{ status: number; contentType: string; body: string }>((resolve, reject) => {
    const c = spawn(process.execPath, ['-e', script], { uid, gid: 0, cwd: '/', stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    c.on('exit', () => (out.startsWith('{') ? resolve(JSON.parse(out)) : reject(new Error(`client as uid ${uid}: ${out}`))));
  });
  assertConforms({ method: 'GET', target: path, ...r });
  return r.status;
}

describe('cvm-agent run (simulated TEE)', () => {
  let dir: string;
  let notify: NotifyReceiver;
  let daemon: DaemonProcess;
  let socket: string;
  let config: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cvm-daemon-'));
    chmodSync(dir, 0o755);
    socket = join(dir, 'api.sock');
    config = writeConfig(dir);
    notify = await NotifyReceiver.start(join(dir, 'notify.sock'));
    daemon = startDaemon(['--config', config], { NOTIFY_SOCKET: notify.path, WATCHDOG_USEC: '2000000', CVM_AGENT_LOG_LEVEL: 'debug' });
    await notify.waitFor((m) => m.includes('READY=1'), 60_000);
    await daemon.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('attestation'), 60_000);
  }, 120_000);

  afterAll(() => {
    daemon?.child.kill('SIGKILL');
    notify?.stop();
  });

  it('announces READY with a status line, pings the watchdog, and logs one line per cycle', async () => {
    const ready = notify.messages.find((m) => m.includes('READY=1'))!;
    expect(ready).toMatch(/STATUS=SIMULATED starting|MAINPID=/);
    await notify.waitFor((m) => m === 'WATCHDOG=1', 5000);
    await notify.waitFor((m) => /STATUS=SIMULATED (affirming|warning) at /.test(m));
    const cycle = daemon.logs.find((l) => l.cycle && l.reason === 'start')!;
    expect(cycle.devices).toEqual({ cpu0: expect.any(String), gpu0: expect.any(String), gpu1: expect.any(String) });
    expect(cycle.simulated).toBe(true);
    expect(statSync(socket).mode & 0o777).toBe(0o660);
  });

  it('serves every endpoint over the Unix socket', async () => {
    const health = await callApi(socket, 'GET', '/v1/health');
    expect(health.status).toBe(200);
    expect(['ok', 'degraded']).toContain((health.json() as { status: string }).status);
    const status = (await callApi(socket, 'GET', '/v1/status')).json() as Record<string, any>;
    expect(status.tee).toEqual({ kind: 'simulated', source: 'simulated', simulated: true });
    expect(Object.keys(status.lastAttestation.devices)).toEqual(['cpu0', 'gpu0', 'gpu1']);
    expect(status.gpus.readyState).toBe(true);
    expect(status.agentKey.d).toBeUndefined();
    expect(status.api).toEqual({ socket, socketActivated: false });
    const attest = (await callApi(socket, 'POST', '/v1/attest', { nonce: 'aa'.repeat(32) })).json() as Record<string, any>;
    expect(attest.nonce).toBe('aa'.repeat(32));
    expect(attest.ok).toBe(true);
    const evidence = (await callApi(socket, 'GET', `/v1/evidence?nonce=${'bb'.repeat(16)}`)).json() as Record<string, any>;
    expect(evidence.nonce).toBe('bb'.repeat(16));
    expect(evidence.gpus).toHaveLength(2);
    expect(JSON.stringify(evidence)).not.toMatch(/"d":/);
    const metrics = await callApi(socket, 'GET', '/metrics');
    expect(metrics.body.toString()).toMatch(/cvm_attestation_cycles_total\{result="(affirming|warning)"\} [1-9]/);
    expect(metrics.body.toString()).toMatch(/cvm_gpu_ready_state 1/);
    expect((await callApi(socket, 'GET', '/v1/token')).status).toBe(404);
    expect((await callApi(socket, 'GET', '/v1/secrets/model-key')).status).toBe(403);
  });

  it('drives every client command with exit codes scripts can use', async () => {
    const env = { CVM_AGENT_SOCKET: socket };
    const s = io();
    expect(await main(['status', '--json'], { ...s.io, env })).toBeLessThanOrEqual(3);
    expect(JSON.parse(s.out.join('')).tee.simulated).toBe(true);
    const t = io();
    expect([0, 3]).toContain(await main(['status', '--table'], { ...t.io, env }));
    expect(t.out.join('')).toContain('[SIMULATED TEE]');
    const h = io();
    expect([0, 3]).toContain(await main(['health'], { ...h.io, env }));
    const a = io();
    expect([0, 3]).toContain(await main(['attest', '--nonce', '11'.repeat(32)], { ...a.io, env }));
    expect(JSON.parse(a.out.join('')).ear.eat_nonce).toBe(Buffer.alloc(32, 0x11).toString('base64url'));
    const e = io();
    expect(await main(['evidence', '--nonce', '22'.repeat(32)], { ...e.io, env })).toBe(0);
    expect(JSON.parse(e.out.join('')).nonce).toBe('22'.repeat(32));
    const k = io();
    expect(await main(['token'], { ...k.io, env })).toBe(1);
    expect(k.err.join('')).toMatch(/no valid controller token/);
    const u = io();
    expect(await main(['evidence'], { ...u.io, env })).toBe(2);
    const dead = io();
    expect(await main(['status'], { ...dead.io, env: { CVM_AGENT_SOCKET: join(dir, 'nope.sock') } })).toBe(4);
    expect(dead.err.join('')).toMatch(/cannot reach the agent/);
  });

  it('authorizes by SO_PEERCRED: uid 1001 may read status, uid 1002 may not', async () => {
    expect(await requestAs(1001, socket, '/v1/status')).toBe(200);
    expect(await requestAs(1002, socket, '/v1/status')).toBe(403);
    expect(await requestAs(1002, socket, '/v1/health')).toBe(200);
    expect(await requestAs(1002, socket, '/v1/secrets/x')).toBe(403);
    expect(await requestAs(1001, socket, '/v1/secrets/x')).toBe(404);
  });

  it('reloads a good file on SIGHUP and keeps the running config on a bad one', async () => {
    writeConfig(dir, 'log: { level: debug }\n').toString();
    writeFileSync(config, `${(await import('node:fs')).readFileSync(config, 'utf8').replace('0 0 1 1 *', '0 12 * * *')}`);
    daemon.child.kill('SIGHUP');
    await daemon.waitForLog((l) => l.msg === 'configuration reloaded');
    const after = (await callApi(socket, 'GET', '/v1/status')).json() as Record<string, any>;
    expect(new Date(after.nextAttestation.at).getUTCHours()).toBe(12);
    expect(after.nextAttestation.reason).toBe('schedule');
    expect(after.lastAttestation).not.toBeNull(); // a reload keeps the running state
    await notify.waitFor((m) => m.includes('RELOADING=1'));
    writeFileSync(config, 'tee: [broken\n');
    daemon.child.kill('SIGHUP');
    const rejected = await daemon.waitForLog((l) => l.msg === 'reload rejected: keeping the running configuration');
    expect(String(rejected.err)).toMatch(/not valid YAML/);
    expect((await callApi(socket, 'GET', '/v1/health')).status).toBe(200);
  });

  it('drains and exits 0 within 5 s on SIGTERM, saying STOPPING', async () => {
    const t0 = Date.now();
    daemon.child.kill('SIGTERM');
    const { code } = await daemon.exit;
    expect(code).toBe(0);
    expect(Date.now() - t0).toBeLessThan(5000);
    await notify.waitFor((m) => m.includes('STOPPING=1'));
    expect(existsSync(socket)).toBe(false);
  });
});

describe.runIf(requireTool('systemd-socket-activate', 'systemd'))('socket activation', () => {
  it('serves on the listener systemd-socket-activate hands over (LISTEN_FDS), and reports that socket, not the configured path', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cvm-activate-'));
    // The unit's ListenStream= decides where systemd listens; config api.socket names api.sock beside it.
    const socket = join(dir, 'activated.sock');
    const config = writeConfig(dir);
    const d = startDaemon(['--config', config], {}, ['systemd-socket-activate', '-l', socket, '--fdname=api', process.execPath, CLI, 'run']);
    try {
      // The socket exists before the daemon runs; the first connection starts it.
      for (let i = 0; i < 50 && !existsSync(socket); i++) await new Promise((r) => setTimeout(r, 100));
      const status = (await callApi(socket, 'GET', '/v1/status')).json() as Record<string, any>;
      expect(status.api).toEqual({ socket, socketActivated: true });
      const listening = await d.waitForLog((l) => l.msg === 'local API listening');
      expect(listening).toMatchObject({ activated: true, socket });
      expect(existsSync(join(dir, 'api.sock'))).toBe(false);
    } finally {
      d.child.kill('SIGTERM');
      await d.exit;
    }
  }, 60_000);
});

describe('configuration errors', () => {
  it('refuses to start on an invalid file with exit 2 and the key named', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cvm-badcfg-'));
    writeFileSync(join(dir, 'c.yaml'), 'schedule: { cron: "every minute" }\n');
    const r = await pexec(process.execPath, [CLI, 'run', '--config', join(dir, 'c.yaml')]).catch((e: { code: number; stderr: string }) => e);
    expect((r as { code: number }).code).toBe(2);
    expect((r as { stderr: string }).stderr).toContain('schedule.cron');
  });
});

describe('cvm-agent run on the device path (sev-guest shim + fake NVML)', () => {
  it('reads the CPU through /dev/sev-guest and the GPUs through NVML, fails closed with reasons, and never sets the ready state', async () => {
    const { fakesDir, vectorsDir } = await import('../helpers/paths.js');
    const dir = mkdtempSync(join(tmpdir(), 'cvm-device-'));
    const socket = join(dir, 'api.sock');
    const readyLog = join(dir, 'ready.log');
    const shimLog = join(dir, 'shim.log');
    const config = join(dir, 'config.yaml');
    writeFileSync(
      config,
      `tee: snp
devices: { sevGuest: /dev/sev-guest, nvmlLibrary: ${fakesDir}/libnvidia-ml.so.1 }
gpus: { enabled: "on" }
api: { socket: ${socket} }
state: { dir: ${dir}/state }
collateral: { dir: ${dir}/cache }
schedule: { cron: "0 0 1 1 *", jitterSec: 0 }
`,
    );
    const d = startDaemon(['--config', config], {
      LD_PRELOAD: join(fakesDir, 'sevguest-shim.so'),
      SEVGUEST_SHIM_REPORT: join(vectorsDir, 'snp', 'trustee_snp_test-report.bin'),
      SEVGUEST_SHIM_CERTS: join(vectorsDir, 'snp', 'synthetic_certtable_gcp_milan_rfc4122_pagepadded.bin'),
      SEVGUEST_SHIM_LOG: shimLog,
      FAKE_NVML_GPUS: '2',
      FAKE_NVML_REPORT_FILE: join(vectorsDir, 'nvidia', 'nvtrust', 'hopper-550', 'hopperAttestationReport.txt'),
      FAKE_NVML_CHAIN_FILE: join(vectorsDir, 'nvidia', 'nvtrust', 'hopper-550', 'hopperCertChain.txt'),
      FAKE_NVML_READY_LOG: readyLog,
    });
    try {
      const cycle = await d.waitForLog((l) => Boolean(l.cycle), 60_000);
      // Real evidence whose REPORT_DATA / nonce cannot match this agent's fresh binding.
      expect(cycle.status).toBe('contraindicated');
      expect(cycle.devices).toEqual({ cpu0: 'contraindicated', gpu0: 'contraindicated', gpu1: 'contraindicated' });
      const failed = (cycle.failed as string[]).join('\n');
      expect(failed).toMatch(/snp\.(signature|report-data)/);
      expect(failed).toMatch(/gpu\.nonce/);
      expect(cycle.gpuReady).toBe(false);
      expect((await import('node:fs')).readFileSync(shimLog, 'utf8')).toMatch(/ioctl/);
      expect(existsSync(readyLog)).toBe(false);
      const health = await callApi(socket, 'GET', '/v1/health');
      expect(health.status).toBe(503);
      expect((health.json() as { status: string }).status).toBe('failing');
      const status = (await callApi(socket, 'GET', '/v1/status')).json() as Record<string, any>;
      expect(status.tee).toEqual({ kind: 'snp', source: 'sev-guest', simulated: false });
      expect(status.gpus.readyState).toBe(false);
      expect(status.consecutiveFailures).toBeGreaterThanOrEqual(1);
      expect(status.nextAttestation.reason).toBe('retry');
      expect(status.collateral).toMatchObject({ dir: `${dir}/cache`, online: false });
    } finally {
      d.child.kill('SIGTERM');
      await d.exit;
    }
  }, 90_000);
});
