/**
 * Trigger "controllerContraindicated", end to end with the reference controller over loopback. The
 * local cycle passes; the controller, restarted with a policy no simulated guest meets, says
 * CONTRAINDICATED. Before: status/health said ok and `cvm-agent token` exited 0 with that token.
 * Now: health failing, secrets dropped, token withheld, the driver's ready state cleared and held,
 * units stopped, subscribers told; an affirming verdict restores all of it. With the trigger's
 * actions configured away, the token is served but `cvm-agent token` still exits 1.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
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

describe('consequences of a CONTRAINDICATED controller verdict', () => {
  let ctl: ControllerFixture;
  let agent: AgentFixture;
  let sub: Subscription;
  const ready = () => readFileSync(agent.readyFile, 'utf8').trim();
  const verdicts = (status: string) => agent.daemon.logs.filter((l) => l.msg === 'controller verdict received' && l.status === status).length;

  beforeAll(async () => {
    const dir = await agentDir();
    ctl = await startController({ simDir: join(dir, 'sim') });
    agent = await startAgent({ dir, controllerYaml: ctl.agentYaml });
    await until('the secret released', async () => (await agent.api('GET', '/v1/secrets/model-key')).status === 200, 90_000);
    await until('the driver ready', () => ready() === '1');
    sub = await subscribe(agent.socket);
  }, 180_000);

  afterAll(async () => {
    sub?.close();
    await agent?.stop();
    await ctl?.close();
  });

  it('the controller contraindicates while the local cycle passes: every consequence follows', async () => {
    await ctl.restart({ contraindicate: true });
    await sub.waitFor((e) => e.event === 'trust' && e.data.kind === 'trigger' && e.data.trigger === 'controllerContraindicated', 90_000);
    const dropped = await sub.waitFor((e) => e.event === 'trust' && e.data.action === 'drop-secrets' && e.data.phase === 'apply');
    expect(dropped.data.detail).toMatch(/dropped 1 released secret/);
    await sub.waitFor((e) => e.event === 'trust' && e.data.action === 'units' && e.data.phase === 'apply' && /stop inference.service/.test(e.data.detail));
    await sub.waitFor((e) => e.event === 'trust' && e.data.action === 'units' && e.data.phase === 'apply' && /start quarantine.service/.test(e.data.detail));

    const status = (await agent.api('GET', '/v1/status')).json();
    expect(status.lastAttestation.status).toBe('affirming'); // the local view alone would say ok
    expect(status.health.status).toBe('failing');
    expect(status.health.reasons.join('\n')).toMatch(/controller verdict CONTRAINDICATED/);
    expect(status.trust.trusted).toBe(false);
    expect(status.trust.summary).toMatch(/the controller does not trust this VM/);
    expect(status.controller.verdict.status).toBe('contraindicated');
    expect(status.gpus.readyState).toBe(false);
    expect(ready()).toBe('0');
    expect((await agent.api('GET', '/v1/health')).status).toBe(503);
    expect((await agent.api('GET', '/v1/secrets/model-key')).status).toBe(503);
    expect((await agent.api('GET', '/v1/token')).status).toBe(503);
    const h = io();
    expect(await main(['health'], { ...h.io, env: { CVM_AGENT_SOCKET: agent.socket } })).toBe(1);
    const t = io();
    expect(await main(['token'], { ...t.io, env: { CVM_AGENT_SOCKET: agent.socket } })).toBe(1);
    const table = io();
    await main(['status', '--table'], { ...table.io, env: { CVM_AGENT_SOCKET: agent.socket } });
    expect(table.out.join('')).toMatch(/NOT TRUSTED: the controller does not trust this VM/);
    expect(table.out.join('')).toMatch(/verdict CONTRAINDICATED/);
    expect(agent.systemctlCalls()).toEqual(expect.arrayContaining(['stop -- inference.service']));
  }, 120_000);

  it('a local cycle passing does not set the ready state while the controller still contraindicates', async () => {
    const r = (await agent.api('POST', '/v1/attest', {})).json();
    expect(r.ok).toBe(true);
    expect(r.gpuReady.set).toBe(false);
    expect(r.gpuReady.reason).toMatch(/held cleared while controllerContraindicated is active/);
    expect(r.gpuReadyRead.ready).toBe(false);
    expect(ready()).toBe('0');
    expect(agent.readyWrites().at(-1)).toBe('0');
  }, 60_000);

  it('an affirming verdict restores everything, explicitly', async () => {
    const before = verdicts('affirming');
    await ctl.restart({ contraindicate: false });
    await sub.waitFor((e) => e.event === 'trust' && e.data.kind === 'recovery' && e.data.trigger === 'controllerContraindicated', 90_000);
    const regate = await sub.waitFor((e) => e.event === 'trust' && e.data.action === 'clear-gpu-ready' && e.data.phase === 'undo');
    expect(regate.data.outcome).toBe('done');
    await sub.waitFor((e) => e.event === 'trust' && e.data.action === 'units' && e.data.phase === 'undo' && /stop quarantine.service/.test(e.data.detail));
    // The agent's log reaches us through its stdout, written asynchronously: not in step with the events.
    await until('the affirming verdict logged', () => verdicts('affirming') > before);
    expect(verdicts('affirming')).toBeGreaterThan(before);
    expect(ready()).toBe('1');
    expect((await agent.api('GET', '/v1/secrets/model-key')).status).toBe(200);
    const t = io();
    expect(await main(['token'], { ...t.io, env: { CVM_AGENT_SOCKET: agent.socket } })).toBe(0);
    const status = (await agent.api('GET', '/v1/status')).json();
    expect(status.health.status).toBe('ok');
    expect(status.trust.trusted).toBe(true);
    expect(agent.systemctlCalls().slice(-2)).toEqual(['start -- inference.service', 'stop -- quarantine.service']);
  }, 120_000);

  it("with no actions configured, the contraindicated verdict still serves no token (it does not attest this agent's key) and `cvm-agent token` exits 1 saying why", async () => {
    writeFileSync(agent.config, `${readFileSync(agent.config, 'utf8')}\n`.replace('consequences:\n', 'consequences:\n  controllerContraindicated: []\n'));
    agent.daemon.child.kill('SIGHUP');
    await agent.daemon.waitForLog((l) => l.msg === 'configuration reloaded');
    await ctl.restart({ contraindicate: true });
    await until(
      'the contraindicated verdict',
      async () => (await agent.api('GET', '/v1/status')).json().controller.verdict?.status === 'contraindicated',
      90_000,
    );
    // Not withheld by a consequence (none configured): the verdict's token has no cnf.jkt, so it
    // vouches for no key and is never served (docs/protocol.md "Verdict and secret authentication").
    const served = await agent.api('GET', '/v1/token');
    expect(served.status).toBe(404);
    expect(served.json().detail).toMatch(/latest verdict \(CONTRAINDICATED, challenge .*\) does not attest this agent's key/);
    const t = io();
    expect(await main(['token'], { ...t.io, env: { CVM_AGENT_SOCKET: agent.socket } })).toBe(1);
    expect(t.out.join('')).toBe('');
    expect(t.err.join('')).toMatch(/CONTRAINDICATED.*does not attest this agent's key/);
    expect((await agent.api('GET', '/v1/health')).json().status).toBe('failing');
  }, 120_000);
});
