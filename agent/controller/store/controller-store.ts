/**
 * The controller's state behind one interface (docs/controller.md "Deployment"), with two
 * implementations: the embedded default (`file-store.ts`: one JSON file per agent in stateDir, the
 * format the controller has always written; no server) and PostgreSQL (`postgres-store.ts`, selected
 * by `store.url`), which several controller replicas may share.
 *
 * What the store keeps:
 *  - agents: the agent record (registry.ts AgentRecord) as one document, written whole;
 *  - the ledgers written with it, in the same transaction (`AgentDelta`): events (primary key agent
 *    and seq, with the event hash: stored exactly once), gaps, alarms, attested keys, verdicts (one
 *    per challenge) and secret releases (an audit: who got which secret when, under which verdict);
 *  - challenges: nonce, agent, session key, issuing replica and expiry; `consume` succeeds once.
 * The embedded store keeps the ledgers in the agent record, bounded as before, the secret-release
 * audit as JSON lines beside it, and challenges in memory (one process, one live session per agent).
 */
import type { AgentRecord, AgentSummary, Alarm, Gap, StoredEvent, Verdict } from '../registry.js';
import type { PublicJwk } from '../../formats/nonce-binding.js';
import type { StoreRetention } from '../config.js';

/** One released secret: which agent, which secret, when, under which verdict (its challenge). */
export interface SecretRelease {
  agentId: string;
  secret: string;
  at: string;
  challengeId: string;
  /** The verdict's status and the thumbprint of the key the secret was sealed to. */
  status: string;
  jkt: string;
  /** The controller replica that released it. */
  replica: string;
}

/** Rows deleted by one prune, per table. */
export interface PruneCounts {
  events: number;
  gaps: number;
  alarms: number;
  verdicts: number;
  releases: number;
}

/** A stored event: what the agent signed, its hash (registry.ts eventHash) and when it arrived. */
export interface StoredEventRow extends StoredEvent {
  hash: string;
}

/** What changed in one agent's record since its last save (written with it, atomically). */
export interface AgentDelta {
  events: StoredEventRow[];
  gaps: Gap[];
  alarms: Alarm[];
  keys: { jkt: string; jwk: PublicJwk; at: string }[];
  verdicts: Verdict[];
  releases: SecretRelease[];
}

export function emptyDelta(): AgentDelta {
  return { events: [], gaps: [], alarms: [], keys: [], verdicts: [], releases: [] };
}

export function isEmptyDelta(d: AgentDelta): boolean {
  return d.events.length + d.gaps.length + d.alarms.length + d.keys.length + d.verdicts.length + d.releases.length === 0;
}

/** A challenge as stored: bound to the agent id and the session key (hello.teePubKey) it was issued to. */
export interface StoredChallenge {
  id: string;
  nonce: Buffer;
  agentId: string;
  /** RFC 7638 thumbprint of the hello key of the session it was issued on. */
  sessionKid: string;
  issuedAt: Date;
  expiresAt: Date;
  /** The replica that issued it (store.replicaId). */
  replica: string;
}

export type ConsumeResult =
  | { ok: true; challenge: StoredChallenge }
  | { ok: false; code: 'unknown-challenge' | 'replayed-challenge' | 'expired-challenge'; message: string };

export interface ChallengeStore {
  /** Record an issued challenge (before it is sent: any replica may then be answered with it). */
  put(c: StoredChallenge): Promise<void>;
  /**
   * Mark the challenge answered: succeeds at most once over all replicas, only before it expires,
   * and only for the agent id and session key it was issued to.
   */
  consume(id: string, agentId: string, sessionKid: string, now: Date, replica: string): Promise<ConsumeResult>;
}

/** Who holds an agent's lease: the replica and session, and what that session proved (Controller.admit's rules). */
export interface LeaseHolder {
  replica: string;
  sessionId: string;
  /** The session's credential is bound to the agent id. */
  bound: boolean;
  /** The session attested a key for the agent. */
  attested: boolean;
}

/**
 * Session leases of a shared store: at most one live session per agent id over all replicas. A lease
 * is held while its replica renews it (heartbeat); one not renewed for `ttlMs` is free. Times are the
 * database's, so the replicas' clocks do not matter.
 */
export interface LeaseStore {
  readonly ttlMs: number;
  /**
   * Take the agent's lease for `holder` when it is free, expired, already this replica's, or `force`
   * (a takeover the identity rules allow); otherwise say who holds it.
   */
  acquire(agentId: string, holder: LeaseHolder, force: boolean): Promise<{ ok: true } | { ok: false; holder: LeaseHolder }>;
  /** The session attested a key for the agent (a second session then needs to attest to take over). */
  markAttested(agentId: string, sessionId: string): Promise<void>;
  /** Renew this replica's leases of `sessions`; returns the agent ids whose lease another session took. */
  renew(replica: string, sessions: readonly { agentId: string; sessionId: string }[]): Promise<string[]>;
  /** The session ended: free the lease if it still holds it. */
  release(agentId: string, sessionId: string): Promise<void>;
  /** Agent ids with a live lease (connected to some replica). */
  liveAgents(): Promise<Set<string>>;
}

export interface ControllerStore {
  /** 'files' (embedded) or 'postgres'. */
  readonly kind: 'files' | 'postgres';
  /** Several controllers may use it at once (a database): records are re-read when a session starts. */
  readonly shared: boolean;
  /** This controller's name in what it stores (issuing replica of challenges, releasing replica). */
  readonly replicaId: string;
  /** Records are written (false: memory only, nothing survives a restart). */
  readonly durable: boolean;
  readonly challenges: ChallengeStore;
  /** Session leases (shared stores only: one process keeps its sessions in memory). */
  readonly leases?: LeaseStore;
  /** Every agent record (bad ones are reported and skipped). */
  loadAgents(onProblem?: (where: string, why: string) => void): Promise<AgentRecord[]>;
  /** Every agent's fleet-list summary as stored (a shared store; `connected` is false: the caller knows). */
  loadSummaries?(): Promise<AgentSummary[]>;
  /** One agent's record as stored now, or undefined. */
  loadAgent(agentId: string): Promise<AgentRecord | undefined>;
  /**
   * Write `record` and `delta` atomically. `baseSeq` is the record's lastSeq as last written by this
   * controller (0 for a new record): a shared store refuses the write (StoreConflictError) when
   * another controller has moved the agent's stream on since, so two replicas never both advance it.
   */
  saveAgent(record: AgentRecord, delta: AgentDelta, baseSeq: number): Promise<void>;
  /**
   * Delete what `retention` no longer keeps (a shared store; the controller calls it every
   * retention.pruneIntervalSec). Safe with several replicas: one prunes at a time, the others skip.
   * Returns the rows deleted per table, or undefined when another replica was pruning.
   */
  prune?(retention: StoreRetention): Promise<PruneCounts | undefined>;
  close(): Promise<void>;
}
