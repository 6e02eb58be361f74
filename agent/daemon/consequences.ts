/**
 * What the agent does when trust is lost, and undoes when it is restored (docs/config.md
 * "Consequences"). Four triggers, each with its own configured list of actions:
 *
 *   cycleFailed                the last local attestation cycle did not pass
 *   controllerContraindicated  the controller's latest verdict is not affirming/warning
 *   tokenExpired               the controller's token expired and no new verdict came
 *   attestationStale           no successful cycle within health.maxAgeSec
 *
 * Actions: drop-secrets (zero and forget released secrets; /v1/secrets refuses while held),
 * withhold-token (/v1/token refuses while held), clear-gpu-ready (NVML ready state to 0 where the
 * driver allows it; never set again until a full cycle passes after the clear), units (stop
 * consequences.units.stop, start consequences.units.start). Notification to /v1/events subscribers
 * happens for every transition, whatever the actions.
 *
 * An action is applied when the first trigger that lists it becomes active and undone when the last
 * such trigger clears, so overlapping triggers never double-apply or undo early. Transitions run one
 * at a time, in order. Every transition and action is logged, counted, persisted and published.
 */
import type { TrustActionName } from '../config/schema.js';
import type { UnitControl } from './unit-control.js';
import { ParseError } from '../errors.js';
import { jsonReader } from '../util/json-fields.js';

export const TRIGGERS = ['cycleFailed', 'controllerContraindicated', 'tokenExpired', 'attestationStale'] as const;
export type Trigger = (typeof TRIGGERS)[number];
export const ACTIONS: readonly TrustActionName[] = ['drop-secrets', 'withhold-token', 'clear-gpu-ready', 'units'];

export interface ConsequencePolicy {
  triggers: Record<Trigger, readonly TrustActionName[]>;
  units: { stop: readonly string[]; start: readonly string[] };
}

export interface TrustTransition {
  at: string;
  kind: 'trigger' | 'recovery' | 'action';
  trigger: Trigger;
  action?: TrustActionName;
  phase?: 'apply' | 'undo';
  outcome?: 'done' | 'failed' | 'skipped';
  detail: string;
}

export interface ConsequenceEffects {
  /** Zero and forget every released secret; returns how many there were. */
  dropSecrets(): number;
  /** The GPUs' ready state (absent: no GPUs, or the config leaves the ready state alone). */
  gpu?: { getReadyState(): Promise<boolean>; setReadyState(ready: boolean): Promise<void> };
  /**
   * Recovery of clear-gpu-ready: set the ready state again if a full cycle that started after
   * `clearedAt` passed; otherwise say why not (the next passing cycle's gate will set it).
   */
  regateGpus(clearedAt: Date): Promise<{ set: boolean; reason: string }>;
  units: UnitControl;
  /** Each transition, after it happened (log, metrics, trust history, event stream). */
  record(t: TrustTransition): void;
  /** The state to keep across restarts, after every change (written to the state directory). */
  persist?(state: ConsequenceState): void;
  now?: () => Date;
}

/**
 * What must survive a restart: lost trust stays lost until what clears it happens, and units the
 * agent stopped are started again on recovery even if the agent restarted in between.
 */
export interface ConsequenceState {
  version: 1;
  active: { trigger: Trigger; since: string; detail: string }[];
  applied: { action: TrustActionName; at: string }[];
  stoppedUnits: string[];
  startedUnits: string[];
}

const MAX_UNITS = 128;

/** Strict reading of a persisted state (the state directory is not trusted); throws on anything odd. */
export function parseConsequenceState(v: unknown): ConsequenceState {
  const read = jsonReader(
    (where, problem) => {
      throw new ParseError(`${where}: ${problem}`);
    },
    {
      object: 'expected an object',
      string: 'expected a string',
      array: (max) => `expected an array of at most ${max}`,
      unexpectedKey: (k) => `unexpected key ${JSON.stringify(k.slice(0, 32))}`,
    },
  );
  const obj = (x: unknown, keys: string[], where: string): Record<string, unknown> => read.obj(x, where, keys);
  const arr = (x: unknown, where: string, max: number): unknown[] => read.arr(x, where, max);
  const time = (x: unknown, where: string): string => {
    if (typeof x !== 'string' || x.length > 64 || !Number.isFinite(Date.parse(x))) throw new ParseError(`${where}: expected a timestamp`);
    return x;
  };
  const unit = (x: unknown, where: string): string => {
    if (typeof x !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9:_.@\\-]{0,200}\.[a-z]+$/.test(x)) throw new ParseError(`${where}: expected a unit name`);
    return x;
  };
  const o = obj(v, ['version', 'active', 'applied', 'stoppedUnits', 'startedUnits'], 'state');
  if (o.version !== 1) throw new ParseError('state.version: expected 1');
  return {
    version: 1,
    active: arr(o.active, 'state.active', TRIGGERS.length).map((a, i) => {
      const x = obj(a, ['trigger', 'since', 'detail'], `state.active[${i}]`);
      if (!(TRIGGERS as readonly string[]).includes(x.trigger as string)) throw new ParseError(`state.active[${i}].trigger: unknown`);
      if (typeof x.detail !== 'string' || x.detail.length > 4096) throw new ParseError(`state.active[${i}].detail: expected a string`);
      return { trigger: x.trigger as Trigger, since: time(x.since, `state.active[${i}].since`), detail: x.detail };
    }),
    applied: arr(o.applied, 'state.applied', ACTIONS.length).map((a, i) => {
      const x = obj(a, ['action', 'at'], `state.applied[${i}]`);
      if (!(ACTIONS as readonly string[]).includes(x.action as string)) throw new ParseError(`state.applied[${i}].action: unknown`);
      return { action: x.action as TrustActionName, at: time(x.at, `state.applied[${i}].at`) };
    }),
    stoppedUnits: arr(o.stoppedUnits, 'state.stoppedUnits', MAX_UNITS).map((u, i) => unit(u, `state.stoppedUnits[${i}]`)),
    startedUnits: arr(o.startedUnits, 'state.startedUnits', MAX_UNITS).map((u, i) => unit(u, `state.startedUnits[${i}]`)),
  };
}

export interface ActiveTrigger {
  trigger: Trigger;
  since: string;
  detail: string;
  actions: TrustActionName[];
}

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

export class Consequences {
  private readonly active = new Map<Trigger, { since: Date; detail: string }>();
  /** Actions in force, with when they were applied. */
  private readonly applied = new Map<TrustActionName, Date>();
  /** Units this agent stopped / started, so recovery reverses exactly those. */
  private readonly stoppedUnits = new Set<string>();
  private readonly startedUnits = new Set<string>();
  private queue: Promise<void> = Promise.resolve();
  private readonly now: () => Date;

  constructor(
    private policy: ConsequencePolicy,
    private readonly effects: ConsequenceEffects,
  ) {
    this.now = effects.now ?? (() => new Date());
  }

  state(): ConsequenceState {
    return {
      version: 1,
      active: [...this.active].map(([trigger, a]) => ({ trigger, since: a.since.toISOString(), detail: a.detail })),
      applied: [...this.applied].map(([action, at]) => ({ action, at: at.toISOString() })),
      stoppedUnits: [...this.stoppedUnits],
      startedUnits: [...this.startedUnits],
    };
  }

  /**
   * After a restart: the triggers that were active stay active (until what clears them happens),
   * actions in force stay in force, and the units acted on are remembered. `keep` drops triggers
   * that can no longer clear (e.g. controller triggers when no controller is configured any more);
   * call reconcileNow() afterwards to undo what nothing needs.
   */
  restore(s: ConsequenceState, keep: (t: Trigger) => boolean = () => true): void {
    for (const a of s.active) if (keep(a.trigger)) this.active.set(a.trigger, { since: new Date(a.since), detail: a.detail });
    for (const a of s.applied) this.applied.set(a.action, new Date(a.at));
    for (const u of s.stoppedUnits) this.stoppedUnits.add(u);
    for (const u of s.startedUnits) this.startedUnits.add(u);
  }

  /** Apply/undo whatever the current triggers and policy call for (after a restore). */
  reconcileNow(cause: Trigger = 'cycleFailed'): Promise<void> {
    return this.enqueue(() => this.reconcile(cause));
  }

  /** A reload's new policy: actions now needed are applied, actions no longer needed are undone. */
  setPolicy(policy: ConsequencePolicy): Promise<void> {
    return this.enqueue(async () => {
      this.policy = policy;
      const first = [...this.active.keys()][0];
      if (first) await this.reconcile(first);
    });
  }

  /**
   * The trigger is (still) true. The first activation records it at once (so refusals start now)
   * and applies its actions in order behind any transition still running.
   */
  activate(trigger: Trigger, detail: string): Promise<void> {
    const current = this.active.get(trigger);
    if (current) {
      current.detail = detail; // the latest reason, for status
      return this.queue;
    }
    this.active.set(trigger, { since: this.now(), detail });
    this.emit({ kind: 'trigger', trigger, detail });
    this.persist();
    return this.enqueue(() => this.reconcile(trigger));
  }

  /** The trigger is no longer true: record the recovery and undo what no other trigger still needs. */
  clear(trigger: Trigger, detail: string): Promise<void> {
    if (!this.active.delete(trigger)) return this.queue;
    this.emit({ kind: 'recovery', trigger, detail });
    this.persist();
    return this.enqueue(() => this.reconcile(trigger));
  }

  isActive(trigger: Trigger): boolean {
    return this.active.has(trigger);
  }

  /** The active trigger that holds this action in force, if any (a reason for refusing or not setting). */
  holds(action: TrustActionName): ActiveTrigger | undefined {
    return this.list().find((t) => t.actions.includes(action));
  }

  list(): ActiveTrigger[] {
    return [...this.active].map(([trigger, a]) => ({ trigger, since: a.since.toISOString(), detail: a.detail, actions: [...this.policy.triggers[trigger]] }));
  }

  /** What is in force now, for status: action -> since. */
  inForce(): Partial<Record<TrustActionName, string>> {
    return Object.fromEntries([...this.applied].map(([a, at]) => [a, at.toISOString()]));
  }

  unitsActedOn(): { stopped: string[]; started: string[] } {
    return { stopped: [...this.stoppedUnits], started: [...this.startedUnits] };
  }

  /** Resolves when every transition requested so far has finished. */
  settled(): Promise<void> {
    return this.queue;
  }

  private persist(): void {
    try {
      this.effects.persist?.(this.state());
    } catch {
      // Persisting must never stop a consequence from being carried out.
    }
  }

  private enqueue(fn: () => Promise<void>): Promise<void> {
    const run = async () => {
      try {
        await fn();
      } finally {
        this.persist();
      }
    };
    const next = this.queue.then(run, run);
    this.queue = next.catch(() => undefined);
    return next;
  }

  private needed(action: TrustActionName): boolean {
    for (const t of this.active.keys()) if (this.policy.triggers[t].includes(action)) return true;
    return false;
  }

  /** Apply what is needed and not in force, undo what is in force and not needed; fixed order. */
  private async reconcile(cause: Trigger): Promise<void> {
    for (const action of ACTIONS) {
      const need = this.needed(action);
      if (need && !this.applied.has(action)) {
        this.applied.set(action, this.now());
        await this.apply(cause, action);
      } else if (!need && this.applied.has(action)) {
        const since = this.applied.get(action)!;
        this.applied.delete(action);
        await this.undo(cause, action, since);
      }
    }
  }

  private emit(t: Omit<TrustTransition, 'at'>): void {
    try {
      this.effects.record({ at: this.now().toISOString(), ...t });
    } catch {
      // Recording must never stop a consequence from being carried out.
    }
  }

  private action(trigger: Trigger, action: TrustActionName, phase: 'apply' | 'undo', outcome: 'done' | 'failed' | 'skipped', detail: string): void {
    this.emit({ kind: 'action', trigger, action, phase, outcome, detail });
  }

  private async apply(trigger: Trigger, action: TrustActionName): Promise<void> {
    switch (action) {
      case 'drop-secrets': {
        const n = this.effects.dropSecrets();
        return this.action(
          trigger,
          action,
          'apply',
          'done',
          `dropped ${n} released secret(s) from memory; /v1/secrets refuses until trust is restored and the controller releases them again`,
        );
      }
      case 'withhold-token':
        return this.action(trigger, action, 'apply', 'done', '/v1/token no longer serves the controller token');
      case 'clear-gpu-ready':
        return this.clearGpuReady(trigger);
      case 'units':
        return this.applyUnits(trigger);
    }
  }

  private async clearGpuReady(trigger: Trigger): Promise<void> {
    const gpu = this.effects.gpu;
    if (!gpu) return this.action(trigger, 'clear-gpu-ready', 'apply', 'skipped', 'no GPU ready state to clear (no GPUs, or gpus.setReadyState is false)');
    try {
      if (!(await gpu.getReadyState())) {
        return this.action(
          trigger,
          'clear-gpu-ready',
          'apply',
          'done',
          'the driver already reports the GPUs as not accepting new work; it will not be set until a full cycle passes',
        );
      }
      await gpu.setReadyState(false);
      const after = await gpu.getReadyState();
      if (after)
        return this.action(trigger, 'clear-gpu-ready', 'apply', 'failed', 'the driver accepted the clear but still reports the GPUs as accepting work');
      return this.action(
        trigger,
        'clear-gpu-ready',
        'apply',
        'done',
        'GPU ready state cleared through NVML: the GPUs refuse new work; work already running on them continues (the driver cannot stop it)',
      );
    } catch (err) {
      return this.action(
        trigger,
        'clear-gpu-ready',
        'apply',
        'failed',
        `the driver refused to clear the GPU ready state (${message(err)}): the GPUs keep accepting new work until the VM reboots; stop the workload (consequences.units)`,
      );
    }
  }

  private async applyUnits(trigger: Trigger): Promise<void> {
    const { stop, start } = this.policy.units;
    if (stop.length === 0 && start.length === 0)
      return this.action(trigger, 'units', 'apply', 'skipped', 'no units configured (consequences.units.stop/start)');
    for (const unit of stop) {
      const r = await this.effects.units.run('stop', unit);
      if (r.ok) this.stoppedUnits.add(unit);
      this.action(trigger, 'units', 'apply', r.ok ? 'done' : 'failed', r.detail);
    }
    for (const unit of start) {
      const r = await this.effects.units.run('start', unit);
      if (r.ok) this.startedUnits.add(unit);
      this.action(trigger, 'units', 'apply', r.ok ? 'done' : 'failed', r.detail);
    }
  }

  private async undo(trigger: Trigger, action: TrustActionName, since: Date): Promise<void> {
    switch (action) {
      case 'drop-secrets':
        return this.action(trigger, action, 'undo', 'done', 'secrets are served again once the controller releases them (its next affirming verdict)');
      case 'withhold-token':
        return this.action(trigger, action, 'undo', 'done', '/v1/token serves the controller token again while it is valid');
      case 'clear-gpu-ready': {
        if (!this.effects.gpu) return this.action(trigger, action, 'undo', 'skipped', 'no GPU ready state to restore');
        try {
          const r = await this.effects.regateGpus(since);
          return this.action(trigger, action, 'undo', r.set ? 'done' : 'skipped', r.reason);
        } catch (err) {
          return this.action(trigger, action, 'undo', 'failed', `could not set the GPU ready state again: ${message(err)}`);
        }
      }
      case 'units': {
        if (this.stoppedUnits.size === 0 && this.startedUnits.size === 0)
          return this.action(trigger, action, 'undo', 'skipped', 'no units were stopped or started by the agent');
        // Only what the agent itself stopped is started again (and vice versa).
        for (const unit of [...this.stoppedUnits]) {
          const r = await this.effects.units.run('start', unit);
          if (r.ok) this.stoppedUnits.delete(unit);
          this.action(trigger, action, 'undo', r.ok ? 'done' : 'failed', r.detail);
        }
        for (const unit of [...this.startedUnits]) {
          const r = await this.effects.units.run('stop', unit);
          if (r.ok) this.startedUnits.delete(unit);
          this.action(trigger, action, 'undo', r.ok ? 'done' : 'failed', r.detail);
        }
      }
    }
  }
}
