/**
 * Challenges of the embedded store: in this process's memory (one controller, so every session that
 * could answer a challenge runs here). Bound to the agent id and session key they were issued to;
 * answered at most once, only before they expire. Bounded: at most MAX_OUTSTANDING open challenges
 * per agent (the oldest is dropped, as expired) and MAX_REMEMBERED challenges in all (the oldest
 * answered or expired ones are forgotten first; then a replay of them reads as unknown).
 */
import type { ChallengeStore, ConsumeResult, StoredChallenge } from './controller-store.js';

export const MAX_OUTSTANDING = 16;
export const MAX_REMEMBERED = 65_536;

interface Entry {
  c: StoredChallenge;
  state: 'open' | 'answered' | 'expired';
}

export class MemoryChallenges implements ChallengeStore {
  private readonly entries = new Map<string, Entry>();
  private readonly openByAgent = new Map<string, string[]>();

  async put(c: StoredChallenge): Promise<void> {
    this.putNow(c);
  }

  /** put, synchronously (the entry is in place when this returns). */
  putNow(c: StoredChallenge): void {
    this.sweep(c.agentId, c.issuedAt);
    this.entries.set(c.id, { c, state: 'open' });
    const open = [...(this.openByAgent.get(c.agentId) ?? []), c.id];
    while (open.length > MAX_OUTSTANDING) this.settle(open.shift()!, 'expired');
    this.openByAgent.set(c.agentId, open);
    this.bound();
  }

  async consume(id: string, agentId: string, sessionKid: string, now: Date): Promise<ConsumeResult> {
    return this.consumeNow(id, agentId, sessionKid, now);
  }

  consumeNow(id: string, agentId: string, sessionKid: string, now: Date): ConsumeResult {
    const e = this.entries.get(id);
    if (!e || e.c.agentId !== agentId || e.c.sessionKid !== sessionKid) {
      return { ok: false, code: 'unknown-challenge', message: `challenge ${id} was not issued to this agent and session key` };
    }
    if (e.state === 'answered') return { ok: false, code: 'replayed-challenge', message: replayed(id) };
    if (e.state === 'expired') return { ok: false, code: 'expired-challenge', message: expiredBefore(id) };
    if (now.getTime() > e.c.expiresAt.getTime()) {
      this.settle(id, 'expired');
      return { ok: false, code: 'expired-challenge', message: expiredLate(e.c, now) };
    }
    this.settle(id, 'answered');
    return { ok: true, challenge: e.c };
  }

  /** Open challenges of `agentId` (tests). */
  outstanding(agentId: string): number {
    return this.openByAgent.get(agentId)?.length ?? 0;
  }

  private settle(id: string, state: 'answered' | 'expired'): void {
    const e = this.entries.get(id);
    if (!e) return;
    e.state = state;
    // Re-insert: the Map's order is then the order in which entries stopped being open.
    this.entries.delete(id);
    this.entries.set(id, e);
    const open = this.openByAgent.get(e.c.agentId)?.filter((x) => x !== id) ?? [];
    if (open.length > 0) this.openByAgent.set(e.c.agentId, open);
    else this.openByAgent.delete(e.c.agentId);
  }

  /** Settle the agent's own expired challenges (others' are judged by time when answered). */
  private sweep(agentId: string, now: Date): void {
    for (const id of this.openByAgent.get(agentId) ?? []) {
      const e = this.entries.get(id);
      if (e && now.getTime() > e.c.expiresAt.getTime()) this.settle(id, 'expired');
    }
  }

  private bound(): void {
    if (this.entries.size <= MAX_REMEMBERED) return;
    for (const [id, e] of this.entries) {
      if (this.entries.size <= MAX_REMEMBERED) break;
      if (e.state !== 'open') this.entries.delete(id);
    }
    // Still over: the oldest open ones go (their agents get a new challenge at the next interval).
    for (const [id] of this.entries) {
      if (this.entries.size <= MAX_REMEMBERED) break;
      this.settle(id, 'expired');
      this.entries.delete(id);
    }
  }
}

export function replayed(id: string): string {
  return `challenge ${id} was already answered; evidence is accepted once per challenge`;
}

export function expiredBefore(id: string): string {
  return `challenge ${id} expired before it was answered; wait for the next challenge`;
}

export function expiredLate(c: { id: string; expiresAt: Date }, now: Date): string {
  return `challenge ${c.id} expired at ${c.expiresAt.toISOString()}; the answer came ${now.getTime() - c.expiresAt.getTime()} ms late`;
}
