/**
 * Restarting the agent must not launder lost trust: the triggers in force, the actions applied and
 * the units the agent stopped are kept in <state.dir>/consequences.json. After a restart the trigger
 * still holds (health failing, not trusted) until what clears it happens, and recovery still starts
 * the unit the previous process stopped. A tampered state file is refused, not trusted.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { agentDir, startAgent, until } from '../helpers/trust-fixture.js';

describe('lost trust survives a restart', () => {
  it('a failed cycle before the restart still holds after it; the recovery starts the unit stopped before', async () => {
    const dir = await agentDir();
    const first = await startAgent({ dir, env: { FAKE_NVML_CC_1: 'off' } });
    try {
      await until('the unit stopped', () => first.systemctlCalls().includes('stop -- inference.service'), 90_000);
      await until('state persisted', () =>
        JSON.parse(readFileSync(join(dir, 'state', 'consequences.json'), 'utf8')).stoppedUnits.includes('inference.service'),
      );
    } finally {
      await first.stop();
    }
    // Still broken after the restart: the carried-over trigger holds, nothing is undone or redone.
    const second = await startAgent({ dir, env: { FAKE_NVML_CC_1: 'off' }, schedule: 'schedule: { cron: "0 0 1 1 *", jitterSec: 0, attestAtStart: false }' });
    try {
      await second.daemon.waitForLog((l) => l.msg === 'trust state carried over from before the restart', 60_000);
      const status = await until('status', async () => (await second.api('GET', '/v1/status')).json());
      expect(status.trust.trusted).toBe(false);
      expect(status.trust.triggers.map((t: { trigger: string }) => t.trigger)).toEqual(['cycleFailed']);
      const health = (await second.api('GET', '/v1/health')).json();
      expect(health.status).toBe('failing');
      expect(health.reasons[0]).toMatch(/before the restart failed/);
      expect((await second.api('GET', '/v1/token')).status).toBe(503);
      expect(second.systemctlCalls().filter((c) => c.includes('inference'))).toEqual(['stop -- inference.service']);
      // Fixed: the next passing cycle recovers, and starts what the previous process stopped.
      second.setHardware({ FAKE_NVML_CC_1: 'on' });
      expect((await second.api('POST', '/v1/attest', {})).json().ok).toBe(true);
      await until('the unit started again', () => second.systemctlCalls().includes('start -- inference.service'));
      await until('trusted', async () => (await second.api('GET', '/v1/status')).json().trust.trusted === true);
      expect(readFileSync(second.readyFile, 'utf8').trim()).toBe('1');
      // Trusted as soon as the trigger clears; the recovery's actions (the quarantine unit stopped
      // after inference.service started) and the state file's write follow it: wait for the file.
      const persisted = await until('the recovered state persisted', () => {
        const s = JSON.parse(readFileSync(join(dir, 'state', 'consequences.json'), 'utf8'));
        return s.active.length + s.applied.length + s.stoppedUnits.length + s.startedUnits.length === 0 ? s : undefined;
      });
      expect(persisted).toMatchObject({
        active: [],
        applied: [],
        stoppedUnits: [],
        startedUnits: [],
      });
    } finally {
      await second.stop();
    }
  }, 240_000);

  it('a tampered state file is refused with a log line, never trusted', async () => {
    const dir = await agentDir();
    const { mkdirSync } = await import('node:fs');
    mkdirSync(join(dir, 'state'), { recursive: true });
    writeFileSync(
      join(dir, 'state', 'consequences.json'),
      JSON.stringify({ version: 1, active: [], applied: [], stoppedUnits: ['--now; rm -rf /'], startedUnits: [] }),
    );
    const agent = await startAgent({ dir });
    try {
      const refused = await agent.daemon.waitForLog((l) => l.msg === 'consequences state invalid: starting without it', 60_000);
      expect(String(refused.err)).toMatch(/stoppedUnits\[0\]: expected a unit name/);
      await until('the first cycle', () => agent.daemon.logs.some((l) => typeof l.cycle === 'string'), 60_000);
      expect(agent.systemctlCalls()).toEqual([]);
    } finally {
      await agent.stop();
    }
  }, 120_000);
});
