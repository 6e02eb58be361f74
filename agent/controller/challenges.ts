/**
 * Challenges of one connection. Each is a fresh random 32-byte nonce with an id and an expiry,
 * bound to the agent id and the session key (hello.teePubKey) of the connection that issued it, and
 * recorded in the controller's store (store/controller-store.ts ChallengeStore) before it is sent.
 * Evidence may answer it ONCE (over every connection and every replica sharing the store) and only
 * before it expires; replays and late answers are rejected with a reason. Time and randomness are
 * injected so tests can drive them.
 */
import { randomBytes } from 'node:crypto';
import type { ChallengeStore, StoredChallenge } from './store/controller-store.js';
import { MemoryChallenges } from './store/memory-challenges.js';

export type Challenge = StoredChallenge;

export type TakeResult =
  | { ok: true; challenge: Challenge }
  | { ok: false; code: 'unknown-challenge' | 'replayed-challenge' | 'expired-challenge'; message: string };

export const NONCE_BYTES = 32;

/** Who challenges are issued to on this connection. */
export interface ChallengeBinding {
  agentId: string;
  sessionKid: string;
  /** The issuing controller replica. */
  replica: string;
}

export class ChallengeBook {
  private issued = 0;

  constructor(
    private readonly ttlMs: number,
    private readonly binding: ChallengeBinding,
    private readonly store: ChallengeStore = new MemoryChallenges(),
    private readonly random: (n: number) => Buffer = randomBytes,
  ) {}

  /** A new challenge, and the promise of its being stored (send it only after that). */
  issue(now: Date): { challenge: Challenge; stored: Promise<void> } {
    const challenge: Challenge = {
      id: this.random(12).toString('base64url'),
      nonce: this.random(NONCE_BYTES),
      agentId: this.binding.agentId,
      sessionKid: this.binding.sessionKid,
      issuedAt: now,
      expiresAt: new Date(now.getTime() + this.ttlMs),
      replica: this.binding.replica,
    };
    this.issued++;
    return { challenge, stored: this.store.put(challenge) };
  }

  /** Consume the challenge `id`: succeeds at most once, and only before expiresAt. */
  take(id: string, now: Date): Promise<TakeResult> {
    return this.store.consume(id, this.binding.agentId, this.binding.sessionKid, now, this.binding.replica);
  }

  /** Challenges issued on this connection. */
  get count(): number {
    return this.issued;
  }
}
