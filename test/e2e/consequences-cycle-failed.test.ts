/**
 * Trigger "cycleFailed", end to end: a real agent on the simulated TEE whose GPU driver is the fake
 * libnvidia-ml, linked to the reference controller over loopback, a workload subscribed to
 * /v1/events, and a fake systemctl. CC goes off on gpu1 while the agent runs: the failure must be
 * reported under gpu1 (not cpu0), and every consequence must happen: secrets dropped, token
 * withheld, the driver's ready state cleared (read back from the driver), inference.service
 * stopped, subscribers told, metrics and the trust history updated. Then CC comes back and the
 * recovery must be as explicit.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  agentDir,
  startAgent,
  startController,
  subscribe,
  until,
  type AgentFixture,
  type ControllerFixture,
  type Subscription,
} from '../helpers/trust-fixture.js';
import { main } from '../../agent/cli/main.js';

function io() {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { stdout: { write: (s: string) => out.push(s) }, stderr: { write: (s: string) => err.push(s) }, env: {}, cwd: process.cwd() } };
}

const metric = (text: string, series: string) => {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
};

describe('consequences of a failed local cycle (CC off on gpu1)', () => {
  let ctl: ControllerFixture;
  let agent: AgentFixture;
  let sub: Subscription;

  beforeAll(async () => {
    const dir = await agentDir();
    ctl = await startController({ simDir: join(dir, 'sim'), challengeIntervalSec: 5 });
    agent = await startAgent({ dir, controllerYaml: ctl.agentYaml });
    // Trusted first: the controller released the secret, the gate set the driver's ready state.
    await until('the secret released', async () => (await agent.api('GET', '/v1/secrets/model-key')).status === 200, 90_000);
    await until('the ready state set in the driver', () => existsSync(agent.readyFile) && readFileSync(agent.readyFile, 'utf8').trim() === '1');
    sub = await subscribe(agent.socket);
  }, 180_000);

  afterAll(async () => {
    sub?.close();
    await agent?.stop();
    await ctl?.close();
  });

  it('starts trusted, and says so', async () => {
    expect(sub.status).toBe(200);
    const first = await sub.waitFor((e) => e.event === 'state');
    expect(first.data.trusted).toBe(true);
    const status = (await agent.api('GET', '/v1/status')).json();
    expect(status.trust.trusted).toBe(true);
    expect(status.trust.summary).toMatch(/^TRUSTED/);
    expect(status.gpus.readyState).toBe(true);
    expect((await agent.api('GET', '/v1/token')).status).toBe(200);
  });

  it('a failed cycle is attributed to gpu1 and triggers every consequence', async () => {
    agent.setHardware({ FAKE_NVML_CC_1: 'off' });
    const r = (await agent.api('POST', '/v1/attest', {})).json();
    expect(r.ok).toBe(false);
    expect(r.ear.submods.cpu0['ear.status']).toBe('affirming');
    expect(r.ear.submods.gpu0['ear.status']).toBe('affirming');
    expect(r.ear.submods.gpu1['ear.status']).toBe('contraindicated');
    expect(r.ear.submods.gpu1['cvm.checks']).toContainEqual(expect.objectContaining({ name: 'gpu.cc.mode', ok: false }));

    // The workload hears it: the trigger, each action, and a state that says not trusted.
    await sub.waitFor((e) => e.event === 'trust' && e.data.kind === 'trigger' && e.data.trigger === 'cycleFailed');
    await sub.waitFor((e) => e.event === 'trust' && e.data.action === 'units' && e.data.phase === 'apply' && /stop inference.service/.test(e.data.detail));
    await sub.waitFor((e) => e.event === 'trust' && e.data.action === 'units' && e.data.phase === 'apply' && /start quarantine.service/.test(e.data.detail));
    const cleared = await sub.waitFor((e) => e.event === 'trust' && e.data.action === 'clear-gpu-ready' && e.data.phase === 'apply');
    expect(cleared.data.outcome).toBe('done');
    expect(cleared.data.detail).toMatch(/work already running on them continues/);
    await sub.waitFor((e) => e.event === 'state' && e.data.trusted === false);

    // The driver really stopped accepting work (another process reads the same state).
    expect(readFileSync(agent.readyFile, 'utf8').trim()).toBe('0');
    expect(agent.readyWrites().at(-1)).toBe('0');
    expect(agent.systemctlCalls()).toEqual(expect.arrayContaining(['stop -- inference.service', 'start -- quarantine.service']));

    // Secrets and token withheld; the CLI fails closed.
    const secret = await agent.api('GET', '/v1/secrets/model-key');
    expect(secret.status).toBe(503);
    expect(secret.json().code).toBe('ERR_TRUST_LOST');
    expect((await agent.api('GET', '/v1/token')).status).toBe(503);
    const tok = io();
    expect(await main(['token'], { ...tok.io, env: { CVM_AGENT_SOCKET: agent.socket } })).toBe(1);
    expect(tok.out.join('')).toBe('');
    expect(tok.err.join('')).toMatch(/withheld: trust is lost \(cycleFailed/);

    // Health and status tell the truth, with the failure under gpu1.
    const health = await agent.api('GET', '/v1/health');
    expect(health.status).toBe(503);
    expect(health.json().status).toBe('failing');
    expect(health.json().reasons.join('\n')).toMatch(/gpu1: gpu\.cc\.mode/);
    expect(health.json().reasons.join('\n')).not.toMatch(/cpu0:/);
    const status = (await agent.api('GET', '/v1/status')).json();
    expect(status.trust.trusted).toBe(false);
    expect(status.trust.summary).toMatch(/NOT TRUSTED: the last local attestation failed/);
    expect(status.trust.enforcement.secrets).toMatch(/withheld/);
    expect(status.gpus.readyState).toBe(false);
    expect(status.lastAttestation.devices.gpu1.status).toBe('contraindicated');
    expect(status.lastAttestation.devices.cpu0.status).toBe('affirming');
    expect(status.trust.history.map((h: any) => h.action ?? h.kind)).toEqual(
      expect.arrayContaining(['trigger', 'drop-secrets', 'withhold-token', 'clear-gpu-ready', 'units']),
    );
    const table = io();
    expect(await main(['status', '--table'], { ...table.io, env: { CVM_AGENT_SOCKET: agent.socket } })).toBe(1);
    expect(table.out.join('')).toMatch(/trust\s+NOT TRUSTED: the last local attestation failed/);
    expect(table.out.join('')).toMatch(/gpu1\s+contraindicated\s+FAILED gpu\.cc\.mode/);
    expect(table.out.join('')).toMatch(/gpu ready\s+NOT accepting work \(read from the driver/);

    const m = (await agent.api('GET', '/metrics')).body.toString();
    expect(metric(m, 'cvm_trust_trigger_active{trigger="cycleFailed"}')).toBe(1);
    expect(metric(m, 'cvm_trust_actions_total{trigger="cycleFailed",action="clear-gpu-ready",phase="apply",outcome="done"}')).toBe(1);
    expect(metric(m, 'cvm_trust_actions_total{trigger="cycleFailed",action="drop-secrets",phase="apply",outcome="done"}')).toBe(1);
    expect(metric(m, 'cvm_trust_actions_total{trigger="cycleFailed",action="units",phase="apply",outcome="done"}')).toBe(2);
    expect(metric(m, 'cvm_gpu_ready_state')).toBe(0);
    expect(metric(m, 'cvm_trusted')).toBe(0);
    expect(metric(m, 'cvm_device_status{device="gpu1",status="contraindicated"}')).toBe(1);
    expect(metric(m, 'cvm_device_status{device="cpu0",status="affirming"}')).toBe(1);
    // The trust log is written after the entry is shown (one coalesced write in flight): wait for the file.
    const persisted = () => JSON.parse(readFileSync(join(agent.dir, 'state', 'trust-log.json'), 'utf8'));
    await until(
      'trust-log.json records clear-gpu-ready done',
      () => persisted().entries.some((e: any) => e.action === 'clear-gpu-ready' && e.outcome === 'done'),
      10_000,
    );
  }, 120_000);

  it('secrets the controller releases while trust is lost are dropped at once', async () => {
    const verdicts = () => agent.daemon.logs.filter((l) => l.msg === 'controller verdict received').length;
    const before = verdicts();
    // The controller challenges every 5 s; the bundle lacks gpu1, and the reference controller still releases.
    await until('another controller verdict', () => verdicts() > before, 60_000);
    await until('the release dropped', () => agent.daemon.logs.some((l) => l.msg === 'secrets released while trust is lost were dropped'), 60_000);
    expect((await agent.api('GET', '/v1/secrets/model-key')).status).toBe(503);
    // And the driver refuses to be set ready while a GPU's CC is off (the gate never even tries).
    expect(readFileSync(agent.readyFile, 'utf8').trim()).toBe('0');
  }, 90_000);

  it('recovers explicitly on the next passing cycle', async () => {
    agent.setHardware({});
    const r = (await agent.api('POST', '/v1/attest', {})).json();
    expect(r.ok).toBe(true);
    await sub.waitFor((e) => e.event === 'trust' && e.data.kind === 'recovery' && e.data.trigger === 'cycleFailed');
    const regate = await sub.waitFor((e) => e.event === 'trust' && e.data.action === 'clear-gpu-ready' && e.data.phase === 'undo');
    expect(regate.data.outcome).toBe('done');
    await sub.waitFor((e) => e.event === 'trust' && e.data.action === 'units' && e.data.phase === 'undo' && /start inference.service/.test(e.data.detail));
    await sub.waitFor((e) => e.event === 'trust' && e.data.action === 'units' && e.data.phase === 'undo' && /stop quarantine.service/.test(e.data.detail));
    await sub.waitFor((e) => e.event === 'state' && e.data.trusted === true);
    expect(readFileSync(agent.readyFile, 'utf8').trim()).toBe('1');
    expect(agent.systemctlCalls().slice(-2)).toEqual(['start -- inference.service', 'stop -- quarantine.service']);
    expect((await agent.api('GET', '/v1/token')).status).toBe(200);
    await until('the secret released again', async () => (await agent.api('GET', '/v1/secrets/model-key')).status === 200, 60_000);
    const health = (await agent.api('GET', '/v1/health')).json();
    expect(health.status).toBe('ok');
    const status = (await agent.api('GET', '/v1/status')).json();
    expect(status.trust.trusted).toBe(true);
    expect(status.gpus.readyState).toBe(true);
    const m = (await agent.api('GET', '/metrics')).body.toString();
    expect(metric(m, 'cvm_trust_trigger_active{trigger="cycleFailed"}')).toBe(0);
    expect(metric(m, 'cvm_trust_actions_total{trigger="cycleFailed",action="clear-gpu-ready",phase="undo",outcome="done"}')).toBe(1);
    expect(metric(m, 'cvm_gpu_ready_state')).toBe(1);
    expect(metric(m, 'cvm_trusted')).toBe(1);
  }, 120_000);
});
