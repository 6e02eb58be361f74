/**
 * Outstanding challenges of one connection. Each is a fresh random 32-byte nonce with an id and an
 * expiry; evidence may answer it ONCE and only before it expires (replays and late answers are
 * rejected with a reason). Time and randomness are injected so tests can drive them.
 */
import { randomBytes } from 'node:crypto';

export interface Challenge {
  id: string;
  nonce: Buffer;
  issuedAt: Date;
  expiresAt: Date;
}

export type TakeResult =
  | { ok: true; challenge: Challenge }
  | { ok: false; code: 'unknown-challenge' | 'replayed-challenge' | 'expired-challenge'; message: string };

export const NONCE_BYTES = 32;
/** Ids of answered/expired challenges remembered to tell a replay from an unknown id. */
const SPENT_MEMORY = 256;
/** Outstanding challenges per connection; the oldest is dropped beyond this. */
const MAX_OUTSTANDING = 16;

export class ChallengeBook {
  private readonly open = new Map<string, Challenge>();
  private readonly spent = new Map<string, 'answered' | 'expired'>();

  constructor(
    private readonly ttlMs: number,
    private readonly random: (n: number) => Buffer = randomBytes,
  ) {}

  issue(now: Date): Challenge {
    this.sweep(now);
    const challenge: Challenge = {
      id: this.random(12).toString('base64url'),
      nonce: this.random(NONCE_BYTES),
      issuedAt: now,
      expiresAt: new Date(now.getTime() + this.ttlMs),
    };
    this.open.set(challenge.id, challenge);
    while (this.open.size > MAX_OUTSTANDING) {
      const oldest = this.open.keys().next().value as string;
      this.open.delete(oldest);
      this.remember(oldest, 'expired');
    }
    return challenge;
  }

  /** Consume the challenge `id`: succeeds at most once, and only before expiresAt. */
  take(id: string, now: Date): TakeResult {
    const c = this.open.get(id);
    if (!c) {
      const was = this.spent.get(id);
      if (was === 'answered')
        return { ok: false, code: 'replayed-challenge', message: `challenge ${id} was already answered; evidence is accepted once per challenge` };
      if (was === 'expired')
        return { ok: false, code: 'expired-challenge', message: `challenge ${id} expired before it was answered; wait for the next challenge` };
      return { ok: false, code: 'unknown-challenge', message: `challenge ${id} was not issued on this connection` };
    }
    this.open.delete(id);
    if (now.getTime() > c.expiresAt.getTime()) {
      this.remember(id, 'expired');
      return {
        ok: false,
        code: 'expired-challenge',
        message: `challenge ${id} expired at ${c.expiresAt.toISOString()}; the answer came ${now.getTime() - c.expiresAt.getTime()} ms late`,
      };
    }
    this.remember(id, 'answered');
    return { ok: true, challenge: c };
  }

  outstanding(): number {
    return this.open.size;
  }

  private sweep(now: Date): void {
    for (const [id, c] of this.open) {
      if (now.getTime() > c.expiresAt.getTime()) {
        this.open.delete(id);
        this.remember(id, 'expired');
      }
    }
  }

  private remember(id: string, how: 'answered' | 'expired'): void {
    this.spent.set(id, how);
    while (this.spent.size > SPENT_MEMORY) this.spent.delete(this.spent.keys().next().value as string);
  }
}
