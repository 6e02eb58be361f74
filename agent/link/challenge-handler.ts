/**
 * What the controller asks of this agent, and the verdicts it answers with: challenges (run a cycle
 * bound to the controller's nonce and return the evidence with a proof of possession), attestation
 * requests, and verdicts with their released secrets. A verdict changes state only once it is
 * authenticated (./verdict.ts): it answers a challenge this agent answered on this connection
 * (once), its token verifies under a trusted controller token key, and every secret is listed in the
 * token.
 */
import type { JWK } from 'jose';
import type WebSocket from 'ws';
import { CvmError } from '../errors.js';
import type { LinkConnection } from './connection.js';
import { channelAuthenticates, type LinkCounters, type ResolvedLinkOptions } from './link-options.js';
import { signEvidenceProof } from './proof.js';
import type { ChallengeMessage, VerdictMessage, WelcomeMessage } from './protocol.js';
import { storeSecrets } from './secret-unwrap.js';
import { publicTokenKeys, VerdictError, verifyVerdict } from './verdict.js';

/** Challenges answered on one connection and still waiting for their verdict; the oldest is forgotten beyond this. */
const MAX_ANSWERED = 16;

export class ChallengeHandler {
  /** Challenge id -> nonce of the challenges answered on the current connection, awaiting a verdict. */
  private answered = new Map<string, Buffer>();
  /** welcome.tokenKeys, kept only when the channel authenticates the controller (wss:// + pinned CA/SPKI). */
  private welcomeTokenKeys: JWK[] | undefined;
  private activeChallenges = 0;
  private attestRunning = false;

  constructor(
    private readonly o: ResolvedLinkOptions,
    private readonly counters: LinkCounters,
    private readonly conn: LinkConnection,
  ) {}

  /** A new or closed connection: a verdict is accepted only on the connection whose challenge it answers. */
  reset(): void {
    this.answered.clear();
    this.welcomeTokenKeys = undefined;
  }

  /** Keep welcome.tokenKeys only when the channel proves they come from the controller. */
  takeWelcomeKeys(w: WelcomeMessage): void {
    if (!w.tokenKeys) return;
    if (channelAuthenticates(this.o)) {
      try {
        this.welcomeTokenKeys = publicTokenKeys(w.tokenKeys, 'welcome.tokenKeys');
      } catch (err) {
        this.o.log.warn({ err: (err as Error).message }, 'controller link: ignoring unusable welcome.tokenKeys');
      }
    } else {
      // Anything on an unauthenticated path could have written them; the pinned tokenKeys decide.
      this.o.log.debug({}, 'controller link: ignoring welcome.tokenKeys: the channel does not authenticate the controller (no pinned CA or SPKI)');
    }
  }

  async onChallenge(ws: WebSocket, c: ChallengeMessage): Promise<void> {
    this.counters.challenges++;
    const expiresAt = new Date(c.expiresAt);
    if (!(expiresAt.getTime() > this.o.now())) {
      this.conn.sendIfCurrent(ws, { type: 'error', code: 'challenge-expired', message: `challenge ${c.id} expired at ${c.expiresAt}`, challengeId: c.id });
      return;
    }
    if (this.activeChallenges >= this.o.maxConcurrentChallenges) {
      this.conn.sendIfCurrent(ws, { type: 'error', code: 'busy', message: `already answering ${this.activeChallenges} challenges`, challengeId: c.id });
      return;
    }
    this.activeChallenges++;
    try {
      const answer = await this.o.handlers.onChallenge(Buffer.from(c.nonce, 'hex'), c.id, expiresAt);
      if (this.o.now() > expiresAt.getTime()) {
        this.conn.sendIfCurrent(ws, {
          type: 'error',
          code: 'challenge-expired',
          message: `evidence for ${c.id} was ready after ${c.expiresAt}`,
          challengeId: c.id,
        });
        return;
      }
      const proof = await signEvidenceProof({ agentId: this.o.agentId, challengeId: c.id, nonce: c.nonce }, this.o.key);
      if (this.conn.sendIfCurrent(ws, { type: 'evidence', challengeId: c.id, bundle: answer.bundle, localResult: answer.localResult, proof })) {
        this.answered.delete(c.id);
        this.answered.set(c.id, Buffer.from(c.nonce, 'hex'));
        while (this.answered.size > MAX_ANSWERED) this.answered.delete(this.answered.keys().next().value as string);
      }
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.o.log.error({ challengeId: c.id, err: message }, 'attestation for a controller challenge failed');
      this.conn.sendIfCurrent(ws, { type: 'error', code: 'attestation-failed', message: message.slice(0, 4000), challengeId: c.id });
    } finally {
      this.activeChallenges--;
    }
  }

  async onAttest(): Promise<void> {
    if (this.attestRunning) return; // one request at a time; the running cycle answers it
    this.attestRunning = true;
    try {
      await this.o.handlers.onAttestRequest();
    } catch (err) {
      this.o.log.error({ err: (err as Error).message }, 'controller-requested attestation failed');
    } finally {
      this.attestRunning = false;
    }
  }

  async onVerdict(ws: WebSocket, v: VerdictMessage): Promise<void> {
    // Taken synchronously, before any await: a second verdict for the same challenge finds nothing.
    const nonce = this.answered.get(v.challengeId);
    this.answered.delete(v.challengeId);
    try {
      if (!nonce)
        throw new VerdictError(`verdict for challenge ${v.challengeId}, which this agent did not answer on this connection (unsolicited or replayed)`);
      const keys = this.o.tokenKeys?.length ? this.o.tokenKeys : (this.welcomeTokenKeys ?? []);
      const verified = await verifyVerdict(v, keys, { agentId: this.o.agentId, nonce, keyThumbprint: this.o.key.kid, now: new Date(this.o.now()) });
      let names: string[] = [];
      if (v.secrets && v.secrets.length > 0) {
        if (!this.o.secretStore) throw new CvmError('ERR_SECRET', 'secrets released but this agent has no secret store');
        names = await storeSecrets(v.secrets, this.o.key, this.o.secretStore, { challengeId: v.challengeId, at: new Date(this.o.now()) });
      }
      await this.o.handlers.onVerdict(v, names, verified);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.o.log.error({ challengeId: v.challengeId, err: message }, 'verdict could not be applied');
      this.conn.sendIfCurrent(ws, { type: 'error', code: 'verdict-rejected', message: message.slice(0, 4000), challengeId: v.challengeId });
    }
  }
}
