/**
 * Triggers "attestationStale" and "tokenExpired", end to end. Before: health never looked at the age
 * of the last success. Now: with health.maxAgeSec 4 and no cycle after the first, the attestation
 * goes stale (degraded, secrets dropped, ready state cleared, units stopped); the controller's
 * 10-second token then expires (withheld, degraded); a passing cycle clears staleness and a new
 * verdict clears the expiry, each recovery explicit.
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

describe('consequences of a stale attestation and an expired controller token', () => {
  let ctl: ControllerFixture;
  let agent: AgentFixture;
  let sub: Subscription;
  const ready = () => readFileSync(agent.readyFile, 'utf8').trim();

  beforeAll(async () => {
    const dir = await agentDir();
    ctl = await startController({ simDir: join(dir, 'sim'), tokenTtlSec: 10 });
    sub = undefined as unknown as Subscription;
    agent = await startAgent({ dir, controllerYaml: ctl.agentYaml, extra: 'health: { maxAgeSec: 4 }' });
    await until('the event stream', async () => (sub = await subscribe(agent.socket, { 'last-event-id': '0' })).status === 200);
  }, 180_000);

  afterAll(async () => {
    sub?.close();
    await agent?.stop();
    await ctl?.close();
  });

  it('no successful cycle within health.maxAgeSec: degraded, and the stale consequences apply', async () => {
    const t = await sub.waitFor((e) => e.event === 'trust' && e.data.kind === 'trigger' && e.data.trigger === 'attestationStale', 60_000);
    expect(t.data.detail).toMatch(/bound 4 s/);
    await sub.waitFor(
      (e) => e.event === 'trust' && e.data.trigger === 'attestationStale' && e.data.action === 'units' && /start quarantine.service/.test(e.data.detail),
    );
    const health = (await agent.api('GET', '/v1/health')).json();
    expect(health.status).toBe('degraded');
    expect(health.reasons.join('\n')).toMatch(/is older than the bound of 4 s/);
    const status = (await agent.api('GET', '/v1/status')).json();
    expect(status.trust.trusted).toBe(false);
    expect(status.trust.summary).toMatch(/the attestation is stale/);
    expect(status.gpus.readyState).toBe(false);
    expect(ready()).toBe('0');
    expect((await agent.api('GET', '/v1/secrets/model-key')).status).toBe(503);
    expect(agent.systemctlCalls()).toEqual(expect.arrayContaining(['stop -- inference.service']));
    const m = (await agent.api('GET', '/metrics')).body.toString();
    expect(m).toMatch(/cvm_trust_trigger_active\{trigger="attestationStale"\} 1/);
  }, 90_000);

  it('the controller token expires: tokenExpired is raised, the token withheld, the CLI exits 1', async () => {
    const t = await sub.waitFor((e) => e.event === 'trust' && e.data.kind === 'trigger' && e.data.trigger === 'tokenExpired', 60_000);
    expect(t.data.detail).toMatch(/expired at/);
    const health = (await agent.api('GET', '/v1/health')).json();
    expect(health.reasons.join('\n')).toMatch(/token expired at/);
    const c = io();
    expect(await main(['token'], { ...c.io, env: { CVM_AGENT_SOCKET: agent.socket } })).toBe(1);
  }, 60_000);

  it('a passing cycle clears staleness and re-sets the ready state; the expired token stays withheld', async () => {
    // A bound long enough that the rest of the test cannot go stale again.
    writeFileSync(agent.config, readFileSync(agent.config, 'utf8').replace('health: { maxAgeSec: 4 }', 'health: { maxAgeSec: 3600 }'));
    agent.daemon.child.kill('SIGHUP');
    await agent.daemon.waitForLog((l) => l.msg === 'configuration reloaded');
    expect((await agent.api('POST', '/v1/attest', {})).json().ok).toBe(true);
    await sub.waitFor((e) => e.event === 'trust' && e.data.kind === 'recovery' && e.data.trigger === 'attestationStale');
    const regate = await sub.waitFor((e) => e.event === 'trust' && e.data.action === 'clear-gpu-ready' && e.data.phase === 'undo');
    expect(regate.data.outcome).toBe('done');
    expect(ready()).toBe('1');
    const status = (await agent.api('GET', '/v1/status')).json();
    expect(status.trust.trusted).toBe(false);
    expect(status.trust.summary).toMatch(/the controller token expired/);
    expect(status.trust.enforcement.token).toMatch(/withheld \(tokenExpired\)/);
    expect((await agent.api('GET', '/v1/token')).status).toBe(503);
  }, 60_000);

  it('a new verdict clears the expiry: token served, trusted again', async () => {
    await ctl.restart();
    await sub.waitFor((e) => e.event === 'trust' && e.data.kind === 'recovery' && e.data.trigger === 'tokenExpired', 90_000);
    await sub.waitFor((e) => e.event === 'state' && e.data.trusted === true);
    const c = io();
    expect(await main(['token'], { ...c.io, env: { CVM_AGENT_SOCKET: agent.socket } })).toBe(0);
    expect((await agent.api('GET', '/v1/health')).json().status).toBe('ok');
  }, 120_000);
});
