/**
 * The consequences engine on its own: per-trigger action lists, overlapping triggers (an action is
 * applied once and undone only when the last trigger needing it clears), units reversed only where
 * the agent acted, failures recorded, and the ready state restored only through the re-gate.
 */
import { describe, expect, it } from 'vitest';
import { Consequences, parseConsequenceState, type ConsequencePolicy, type TrustTransition } from '../../../agent/daemon/consequences.js';
import type { UnitControl } from '../../../agent/daemon/unit-control.js';

const ALL = ['drop-secrets', 'withhold-token', 'clear-gpu-ready', 'units'] as const;

function policy(over: Partial<ConsequencePolicy['triggers']> = {}, units = { stop: ['inference.service'], start: [] as string[] }): ConsequencePolicy {
  return {
    triggers: { cycleFailed: [...ALL], controllerContraindicated: [...ALL], tokenExpired: ['withhold-token'], attestationStale: [...ALL], ...over },
    units,
  };
}

function harness(p = policy(), gpuOpts: { refuseClear?: boolean; ready?: boolean } = {}) {
  const log: TrustTransition[] = [];
  const calls: string[] = [];
  const failing = new Set<string>();
  let ready = gpuOpts.ready ?? true;
  let secrets = 2;
  const regates: Date[] = [];
  const units: UnitControl = {
    run: async (verb, unit) => {
      calls.push(`${verb} ${unit}`);
      return failing.has(unit)
        ? { ok: false, detail: `systemctl ${verb} ${unit} failed: Access denied` }
        : { ok: true, detail: `systemctl ${verb} ${unit}: done` };
    },
  };
  const c = new Consequences(p, {
    dropSecrets: () => {
      const n = secrets;
      secrets = 0;
      return n;
    },
    gpu: {
      getReadyState: async () => ready,
      setReadyState: async (v) => {
        if (!v && gpuOpts.refuseClear) throw new Error('NVML_ERROR_INVALID_ARGUMENT');
        ready = v;
      },
    },
    regateGpus: async (since) => {
      regates.push(since);
      ready = true;
      return { set: true, reason: 'set again' };
    },
    units,
    record: (t) => log.push(t),
  });
  return { c, log, calls, failing, regates, ready: () => ready, secrets: () => secrets };
}

const actions = (log: TrustTransition[], phase: 'apply' | 'undo') =>
  log.filter((t) => t.kind === 'action' && t.phase === phase).map((t) => `${t.action}:${t.outcome}`);

describe('Consequences', () => {
  it('applies every action of a trigger once, in order, and undoes them on recovery', async () => {
    const h = harness();
    await h.c.activate('cycleFailed', 'gpu1 failed');
    expect(h.log[0]).toMatchObject({ kind: 'trigger', trigger: 'cycleFailed', detail: 'gpu1 failed' });
    expect(actions(h.log, 'apply')).toEqual(['drop-secrets:done', 'withhold-token:done', 'clear-gpu-ready:done', 'units:done']);
    expect(h.secrets()).toBe(0);
    expect(h.ready()).toBe(false);
    expect(h.calls).toEqual(['stop inference.service']);
    expect(h.c.holds('drop-secrets')?.trigger).toBe('cycleFailed');
    // Still failing: nothing is applied twice.
    await h.c.activate('cycleFailed', 'still failing');
    expect(actions(h.log, 'apply')).toHaveLength(4);
    expect(h.c.list()[0]!.detail).toBe('still failing');
    await h.c.clear('cycleFailed', 'passed');
    expect(h.log.find((t) => t.kind === 'recovery')).toMatchObject({ trigger: 'cycleFailed', detail: 'passed' });
    expect(actions(h.log, 'undo')).toEqual(['drop-secrets:done', 'withhold-token:done', 'clear-gpu-ready:done', 'units:done']);
    expect(h.regates).toHaveLength(1);
    expect(h.calls).toEqual(['stop inference.service', 'start inference.service']);
    expect(h.c.holds('drop-secrets')).toBeUndefined();
  });

  it('refuses from the moment a trigger activates, before its actions have run', () => {
    const h = harness();
    void h.c.activate('controllerContraindicated', 'verdict');
    expect(h.c.holds('withhold-token')?.trigger).toBe('controllerContraindicated');
  });

  it('overlapping triggers: an action is undone only when the last trigger needing it clears', async () => {
    const h = harness();
    await h.c.activate('tokenExpired', 'expired');
    expect(actions(h.log, 'apply')).toEqual(['withhold-token:done']);
    await h.c.activate('controllerContraindicated', 'contraindicated');
    expect(actions(h.log, 'apply')).toEqual(['withhold-token:done', 'drop-secrets:done', 'clear-gpu-ready:done', 'units:done']);
    await h.c.clear('controllerContraindicated', 'affirming');
    // withhold-token stays: tokenExpired still needs it.
    expect(actions(h.log, 'undo')).toEqual(['drop-secrets:done', 'clear-gpu-ready:done', 'units:done']);
    expect(h.c.holds('withhold-token')?.trigger).toBe('tokenExpired');
    await h.c.clear('tokenExpired', 'new token');
    expect(actions(h.log, 'undo')).toEqual(['drop-secrets:done', 'clear-gpu-ready:done', 'units:done', 'withhold-token:done']);
  });

  it('a trigger configured with no actions only notifies', async () => {
    const h = harness(policy({ cycleFailed: [] }));
    await h.c.activate('cycleFailed', 'x');
    expect(h.log.map((t) => t.kind)).toEqual(['trigger']);
    expect(h.ready()).toBe(true);
    expect(h.c.holds('drop-secrets')).toBeUndefined();
  });

  it('records a driver that refuses the clear as failed, and keeps the hold (no re-set until recovery)', async () => {
    const h = harness(policy(), { refuseClear: true });
    await h.c.activate('cycleFailed', 'x');
    const t = h.log.find((x) => x.action === 'clear-gpu-ready')!;
    expect(t.outcome).toBe('failed');
    expect(t.detail).toMatch(/keep accepting new work until the VM reboots/);
    expect(h.c.holds('clear-gpu-ready')?.trigger).toBe('cycleFailed');
  });

  it('already not ready: done without a write', async () => {
    const h = harness(policy(), { ready: false });
    await h.c.activate('attestationStale', 'old');
    expect(h.log.find((x) => x.action === 'clear-gpu-ready')).toMatchObject({ outcome: 'done', detail: expect.stringMatching(/already reports/) });
  });

  it('restarts only the units it stopped, and reports a unit systemd refused', async () => {
    const h = harness(policy({}, { stop: ['inference.service', 'batch.service'], start: ['quarantine.service'] }));
    h.failing.add('batch.service');
    await h.c.activate('cycleFailed', 'x');
    expect(actions(h.log, 'apply').filter((a) => a.startsWith('units'))).toEqual(['units:done', 'units:failed', 'units:done']);
    h.failing.clear();
    await h.c.clear('cycleFailed', 'ok');
    expect(h.calls).toEqual(['stop inference.service', 'stop batch.service', 'start quarantine.service', 'start inference.service', 'stop quarantine.service']);
  });

  it('a reload that removes an action undoes it; one that adds an action applies it', async () => {
    const h = harness(policy({ cycleFailed: ['withhold-token'] }));
    await h.c.activate('cycleFailed', 'x');
    expect(actions(h.log, 'apply')).toEqual(['withhold-token:done']);
    await h.c.setPolicy(policy({ cycleFailed: ['withhold-token', 'drop-secrets'] }));
    expect(actions(h.log, 'apply')).toEqual(['withhold-token:done', 'drop-secrets:done']);
    await h.c.setPolicy(policy({ cycleFailed: [] }));
    expect(actions(h.log, 'undo')).toEqual(['drop-secrets:done', 'withhold-token:done']);
  });

  it('transitions run one at a time in the order they were requested', async () => {
    const h = harness();
    const p1 = h.c.activate('cycleFailed', 'a');
    const p2 = h.c.clear('cycleFailed', 'b');
    const p3 = h.c.activate('cycleFailed', 'c');
    await Promise.all([p1, p2, p3]);
    expect(h.log.filter((t) => t.kind !== 'action').map((t) => `${t.kind}:${t.detail}`)).toEqual(['trigger:a', 'recovery:b', 'trigger:c']);
    expect(h.c.isActive('cycleFailed')).toBe(true);
    expect(h.ready()).toBe(false);
  });

  it('state() round-trips through parseConsequenceState and restore(); restored actions are not re-applied', async () => {
    const h = harness();
    await h.c.activate('cycleFailed', 'x');
    const saved = parseConsequenceState(JSON.parse(JSON.stringify(h.c.state())));
    expect(saved.active.map((a) => a.trigger)).toEqual(['cycleFailed']);
    expect(saved.stoppedUnits).toEqual(['inference.service']);
    const next = harness();
    next.c.restore(saved);
    await next.c.reconcileNow();
    expect(next.log).toEqual([]); // nothing applied twice
    expect(next.c.holds('withhold-token')?.trigger).toBe('cycleFailed');
    await next.c.clear('cycleFailed', 'ok');
    expect(next.calls).toEqual(['start inference.service']);
  });

  it('restore() can drop triggers that can no longer clear; what nothing needs is then undone', async () => {
    const h = harness();
    await h.c.activate('controllerContraindicated', 'x');
    const next = harness();
    next.c.restore(h.c.state(), (t) => t !== 'controllerContraindicated');
    await next.c.reconcileNow();
    expect(actions(next.log, 'undo')).toEqual(['drop-secrets:done', 'withhold-token:done', 'clear-gpu-ready:done', 'units:done']);
    expect(next.calls).toEqual(['start inference.service']);
  });

  it('parseConsequenceState refuses anything unexpected', () => {
    const ok = { version: 1, active: [], applied: [], stoppedUnits: [], startedUnits: [] };
    expect(parseConsequenceState(ok)).toEqual(ok);
    expect(() => parseConsequenceState({ ...ok, version: 2 })).toThrow(/version/);
    expect(() => parseConsequenceState({ ...ok, extra: 1 })).toThrow(/unexpected key/);
    expect(() => parseConsequenceState({ ...ok, active: [{ trigger: 'reboot', since: '2026-01-01T00:00:00Z', detail: '' }] })).toThrow(/unknown/);
    expect(() => parseConsequenceState({ ...ok, applied: [{ action: 'rm', at: '2026-01-01T00:00:00Z' }] })).toThrow(/unknown/);
    expect(() => parseConsequenceState({ ...ok, startedUnits: ['-x.service'] })).toThrow(/unit name/);
  });
});
