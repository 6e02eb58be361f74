/**
 * One agent connection on the controller side: hello -> welcome (version negotiation, resumeFrom,
 * ack window), challenges (on connect and every challengeIntervalSec), evidence -> appraisal ->
 * verdict (signed EAR + secrets sealed to the verified key), events (strict seq order, signature
 * checked with an ATTESTED key, acked after they are persisted: ./event-stream.ts). Messages are
 * handled one at a time in arrival order.
 * Backpressure, not refusal: over the message rates, or with too much queued, the session stops
 * reading the socket for a while (TCP then slows the agent down) instead of closing. Every close
 * first writes and acks what was stored.
 * Nothing an agent sends can throw out of here: bad input is answered with an error message and,
 * when it breaks the protocol, a close code (agent/link/protocol.ts CLOSE).
 *
 * Identity (docs/controller.md "Agent identity"): the hello's agent id must be allowed by the link's
 * credential; evidence must be bound to that id and carry a proof signed by the session key over the
 * challenge (possession of the attested key in THIS session) or it gets no verdict; secrets restricted
 * to ids go only to sessions whose credential proves the id; a second session for an id replaces the
 * first only when it proves the same identity (see Controller.admit). A contender's events are held
 * (within the same window and byte bounds) and stored only once it is the agent's live session.
 */
import { randomUUID } from 'node:crypto';
import type { WebSocket } from 'ws';
import type { Logger } from 'pino';
import {
  CLOSE,
  decodeMessage,
  describeOffer,
  encodeMessage,
  negotiateVersion,
  SUPPORTED_VERSIONS,
  type ControllerMessage,
  type EventMessage,
  type EvidenceMessage,
  type HelloMessage,
} from '../link/protocol.js';
import { checkEvidenceProof } from '../link/proof.js';
import { credentialFor, type Credential } from './auth.js';
import { ChallengeBook, type Challenge } from './challenges.js';
import { TokenBucket } from './rate-limit.js';
import { EventStream, type HeldBudget, type StreamOutcome } from './event-stream.js';
import { appraiseEvidence, deviceStatuses, type AppraisalContext } from './appraise.js';
import { releaseDecision, sealSecrets, secretDigests, secretsFor, type ConfiguredSecret } from './secret-release.js';
import { boundedInventory, keyThumbprint, type AgentRegistry } from './registry.js';
import type { TokenSigner } from './signer.js';
import { AGENT_ID, type ControllerLimits, type ReleaseRule } from './config.js';
import type { PublicJwk } from '../formats/nonce-binding.js';
import { failedChecks } from '../formats/checks.js';
import type { ControllerMetrics } from './controller-metrics.js';
import type { LeaseHolder } from './store/controller-store.js';

export interface SessionDeps {
  registry: AgentRegistry;
  signer: TokenSigner;
  appraisal: AppraisalContext;
  secrets: readonly ConfiguredSecret[];
  releaseSecretsOn: ReleaseRule;
  tokenTtlSec: number;
  challengeTtlSec: number;
  challengeIntervalSec: number;
  heartbeatSec: number;
  limits: ControllerLimits;
  /** Bytes of held events over all sessions (limits.heldBytesTotal). */
  heldBudget: HeldBudget;
  log: Logger;
  now: () => Date;
  /** Agent ids some configured token is bound to: an unbound credential may not use them. */
  boundIds: ReadonlySet<string>;
  /** Token signing keys sent in welcome (agents trust them only over TLS with a pinned CA/SPKI). */
  tokenKeys: { keys: PublicJwk[] };
  /**
   * Register `session` as the live session of `agentId`: 'claimed' (it is, any earlier one is closed),
   * 'contender' (an attested session of the same identity is live: this one replaces it once its own
   * evidence attests a key in this session, see promote) or 'refused' (another identity holds the id).
   */
  admit: (agentId: string, session: LinkSession) => 'claimed' | 'contender' | 'refused';
  /** A contender proved an attested key for the agent in its session: it replaces the live session. */
  promote: (agentId: string, session: LinkSession) => void;
  /** A session of this controller is the live one of `agentId` (then the local rules decide). */
  hasLocal: (agentId: string) => boolean;
  /** Resolves once `agentId` has no live session, or after `ms`. */
  released: (agentId: string, ms: number) => Promise<void>;
  release: (agentId: string, session: LinkSession) => void;
  /** Verdicts, verification time, events stored and secrets released (GET /metrics). */
  metrics?: ControllerMetrics;
}

const HANDSHAKE_TIMEOUT_MS = 10_000;

function connectedElsewhere(agentId: string, bound: boolean): string {
  return `agent "${agentId}" is connected on another link; a second session replaces it only with a credential bound to this id${bound ? '' : ' (this one is not)'} and, once the first is attested, by attesting in the new session`;
}
/** How long a hello waits for an earlier session of the same id to go (a reconnect racing its own close). */
const ADMIT_WAIT_MS = 5_000;

/** At most this many queued messages share one state write and ack. */
const MAX_BATCH = 64;
/**
 * ...and at most this long (controller clock): on a starved machine 64 messages can take seconds, and
 * a stream that keeps the queue busy (a promoted contender draining what it held while the agent
 * keeps sending) would otherwise get no write and no ack until it pauses.
 */
const MAX_BATCH_MS = 200;
/** Stop reading the socket while this much is received and not yet handled (resume at half). */
const MAX_QUEUED_MESSAGES = 512;
const MAX_QUEUED_BYTES = 8 * 1024 * 1024;
/** A close waits this long for the state write and ack of what was stored. */
const CLOSE_FLUSH_MS = 2000;

export class LinkSession {
  agentId: string | undefined;
  /** The link's credential proves agentId (a token bound to it, a client certificate naming it). */
  boundToId = false;
  /** Evidence with a valid proof of possession verified in this session (its key is attested). */
  attested = false;
  /** Registered as the agent's live session (a contender is not, until it is promoted). */
  private claimed = false;
  /** This session's id in the agent's lease (replicas sharing a store). */
  readonly id = randomUUID();
  /** A contender whose agent's live session is on another replica (see remoteAdmit). */
  private remoteContender = false;
  private leaseTriedAt = 0;
  private hello: HelloMessage | undefined;
  /** Created at hello, bound to the agent id and session key. */
  private book: ChallengeBook | undefined;
  private readonly bucket: TokenBucket;
  private readonly eventBucket: TokenBucket;
  private queue: Promise<void> = Promise.resolve();
  /** Messages received and not yet handled (including the one being handled), and their bytes. */
  private backlog = 0;
  private backlogBytes = 0;
  private unsaved = false;
  private unacked = false;
  private batched = 0;
  /** When the first message of the batch waiting for its write and ack was handled (controller clock, ms). */
  private batchSince: number | undefined;
  private stream: EventStream | undefined;
  private timers: NodeJS.Timeout[] = [];
  /** No more input is handled (a close is under way). */
  private closing = false;
  /** The close frame was sent: nothing more is sent. */
  private closed = false;
  private alive = true;
  /** Reading is paused: until this time for the rates, and while the queue is too long. */
  private pausedUntil = 0;
  private pausedForBacklog = false;
  private pauseTimer: NodeJS.Timeout | undefined;
  private readPaused = false;
  private pausedSincePing = false;

  constructor(
    private readonly ws: WebSocket,
    private readonly deps: SessionDeps,
    /** What authenticated this link (bound token id, client certificate names). */
    private readonly credential: Credential,
    readonly peer: string,
    /** Label of the credential this link authenticated with (never the secret): ids per credential are bounded. */
    private readonly credentialLabel = 'anonymous',
  ) {
    this.bucket = new TokenBucket(deps.limits.messagesPerSec, deps.limits.burst, deps.now().getTime());
    // An agent may send its whole window at once.
    this.eventBucket = new TokenBucket(deps.limits.eventsPerSec, Math.max(deps.limits.window, 1), deps.now().getTime());
    ws.on('message', (data, isBinary) => this.onRaw(data as Buffer | Buffer[], isBinary));
    ws.on('close', () => this.onClose());
    ws.on('error', (err) => deps.log.warn({ peer, agentId: this.agentId, err: err.message }, 'link socket error'));
    ws.on('pong', () => {
      this.alive = true;
    });
    this.timers.push(
      setTimeout(() => {
        if (!this.hello) this.close(CLOSE.HANDSHAKE_TIMEOUT, 'no hello within 10 s');
      }, HANDSHAKE_TIMEOUT_MS),
    );
    this.timers.push(
      setInterval(() => {
        // Dead-peer detection: no pong since the last ping -> terminate (ws README "How to detect and close broken connections?"). While we
        // are the ones not reading, a pong cannot arrive: not the peer's fault.
        if (this.readPaused || this.pausedSincePing) this.alive = true;
        this.pausedSincePing = false;
        if (!this.alive) {
          deps.log.warn({ agentId: this.agentId, peer }, 'agent missed a heartbeat; terminating the link');
          ws.terminate();
          return;
        }
        this.alive = false;
        ws.ping();
      }, deps.heartbeatSec * 1000),
    );
  }

  /** A close is under way or done: the session handles no more input and is on its way out. */
  get isClosed(): boolean {
    return this.closing;
  }

  /**
   * Close the link, after writing and acking what was stored (bounded by CLOSE_FLUSH_MS): otherwise
   * the agent would resend, after every close, events this controller already has.
   */
  close(code: number, reason: string): void {
    if (this.closing) return;
    this.closing = true;
    this.clearTimers();
    this.resumeReading();
    const finish = () => {
      if (this.closed) return;
      this.closed = true;
      try {
        this.ws.close(code, reason.slice(0, 120));
      } catch {
        this.ws.terminate();
      }
    };
    const guard = setTimeout(finish, CLOSE_FLUSH_MS);
    this.queue = this.queue
      .then(() => this.flushEvents(true))
      .catch((err: unknown) =>
        this.deps.log.warn(
          { agentId: this.agentId, err: err instanceof Error ? err.message : String(err) },
          'state not written before closing the link (the agent resends)',
        ),
      )
      .finally(() => {
        clearTimeout(guard);
        finish();
      });
  }

  private clearTimers(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers = [];
    if (this.pauseTimer) clearTimeout(this.pauseTimer);
    this.pauseTimer = undefined;
  }

  private onClose(): void {
    this.closing = true;
    this.closed = true;
    this.clearTimers();
    this.stream?.release();
    if (this.agentId) {
      this.deps.release(this.agentId, this);
      this.deps.log.info({ agentId: this.agentId }, 'agent disconnected');
    }
  }

  private send(message: ControllerMessage): void {
    if (this.closed) return;
    this.ws.send(encodeMessage('controller->agent', message));
  }

  private refuse(code: string, message: string, closeCode?: number, challengeId?: string): void {
    this.deps.log.warn({ agentId: this.agentId, peer: this.peer, code }, message);
    this.send({ type: 'error', code, message: message.slice(0, 4096), ...(challengeId ? { challengeId } : {}) });
    if (closeCode !== undefined) this.close(closeCode, message);
  }

  /** Stop reading the socket (TCP flow control then holds the agent back); see resumeReading. */
  private updateReading(): void {
    if (this.closing) return;
    const now = this.deps.now().getTime();
    const rateWait = this.pausedUntil - now;
    if (this.pausedForBacklog || rateWait > 0) {
      if (!this.readPaused) {
        this.readPaused = true;
        this.pausedSincePing = true;
        this.ws.pause();
      }
      if (rateWait > 0 && !this.pauseTimer) {
        this.pauseTimer = setTimeout(() => {
          this.pauseTimer = undefined;
          this.updateReading();
        }, rateWait);
      }
      return;
    }
    this.resumeReading();
  }

  private resumeReading(): void {
    if (!this.readPaused) return;
    this.readPaused = false;
    this.ws.resume();
  }

  private onRaw(data: Buffer | Buffer[], isBinary: boolean): void {
    if (this.closing) return;
    const size = Array.isArray(data) ? data.reduce((n, b) => n + b.length, 0) : data.length;
    if (isBinary) {
      this.refuse('bad-message', 'binary frames are not part of the protocol; send JSON text', CLOSE.PROTOCOL_ERROR);
      return;
    }
    const decoded = decodeMessage(data, 'agent->controller');
    if (!decoded.ok) {
      if (decoded.unknown) {
        this.deps.log.info({ agentId: this.agentId, type: decoded.type }, 'ignoring a message of unknown type');
        return;
      }
      this.refuse('bad-message', decoded.error, CLOSE.PROTOCOL_ERROR);
      return;
    }
    const msg = decoded.message;
    // Over the rate: not a refusal, a pause in reading (the message that arrived is still handled).
    const now = this.deps.now().getTime();
    const wait = (msg.type === 'event' ? this.eventBucket : this.bucket).pauseAfter(now);
    if (wait > 0) this.pausedUntil = Math.max(this.pausedUntil, now + wait);
    // One message at a time, in order; a handler failure is logged and closes the link, never the process.
    this.backlog++;
    this.backlogBytes += size;
    if (this.backlog > MAX_QUEUED_MESSAGES || this.backlogBytes > MAX_QUEUED_BYTES) this.pausedForBacklog = true;
    this.updateReading();
    this.queue = this.queue
      .then(async () => {
        await this.dispatch(msg, size);
        await this.flushEvents();
      })
      .catch((err: unknown) => {
        this.deps.log.error({ agentId: this.agentId, err: err instanceof Error ? err.message : String(err) }, 'internal error handling an agent message');
        this.refuse('internal-error', 'the controller failed to handle this message; see its log', CLOSE.GOING_AWAY);
      })
      .finally(() => {
        this.backlog--;
        this.backlogBytes -= size;
        if (this.pausedForBacklog && this.backlog <= MAX_QUEUED_MESSAGES / 2 && this.backlogBytes <= MAX_QUEUED_BYTES / 2) {
          this.pausedForBacklog = false;
          this.updateReading();
        }
      });
  }

  /**
   * Persist recorded events and ack them once per burst: while more messages are already queued,
   * the write waits for the last of them (an event is acked only after it is on disk, so a crash
   * in between just makes the agent resend it).
   */
  private async flushEvents(force = false): Promise<void> {
    if (this.agentId === undefined) return;
    if (!force && this.backlog > 1) {
      // Bounded: a continuous stream still gets a write and an ack every MAX_BATCH messages or MAX_BATCH_MS.
      const now = this.deps.now().getTime();
      this.batchSince ??= now;
      if (++this.batched < MAX_BATCH && now - this.batchSince < MAX_BATCH_MS) return;
    }
    this.batched = 0;
    this.batchSince = undefined;
    const registry = this.deps.registry;
    if (this.unsaved || registry.hasPending(this.agentId)) {
      this.unsaved = false;
      await registry.persist(this.agentId);
    }
    if (this.unacked) {
      this.unacked = false;
      // Only what the store has committed: an ack never runs ahead of the write.
      this.send({ type: 'ack', seq: registry.ackableSeq(this.agentId) });
    }
  }

  /** Apply what the event stream did: mark the write and the ack, report problems, close if asked. */
  private applyOutcome(out: StreamOutcome): void {
    if (out.changed) this.unsaved = true;
    if (out.ack) this.unacked = true;
    for (const p of out.problems) this.refuse(p.code, p.message);
    if (out.close) this.refuse(out.close.code === CLOSE.TRY_AGAIN_LATER ? 'busy' : 'window-exceeded', out.close.reason, out.close.code);
  }

  /** Resolves once the message being handled (if any) is done: its state persisted, its ack sent. */
  drained(): Promise<void> {
    return this.queue.then(
      () => undefined,
      () => undefined,
    );
  }

  private async dispatch(
    msg: HelloMessage | EvidenceMessage | EventMessage | { type: 'error'; code: string; message: string; challengeId?: string },
    size: number,
  ): Promise<void> {
    if (this.closing) return;
    const now = this.deps.now();
    if (msg.type === 'hello') return this.onHello(msg, now);
    if (!this.hello || !this.agentId) return this.refuse('hello-required', `"${msg.type}" before hello`, CLOSE.PROTOCOL_ERROR);
    // A contender takes the slot as soon as the earlier session is gone (and stores what it held).
    if (!this.claimed && (await this.tryClaim(now))) await this.drainEvents(now);
    this.deps.registry.touch(this.agentId, now);
    if (msg.type === 'evidence') return this.onEvidence(msg, now);
    if (msg.type === 'event') {
      // A contender's stream only holds (bounded): one event stream per agent is stored at a time.
      if (this.stream) this.applyOutcome(await this.stream.receive(msg, size, now));
      return;
    }
    this.deps.log.warn({ agentId: this.agentId, code: msg.code, challengeId: msg.challengeId }, `agent error: ${msg.message}`);
  }

  private async onHello(msg: HelloMessage, now: Date): Promise<void> {
    if (this.hello) return this.refuse('unexpected-hello', 'hello was already received on this connection', CLOSE.PROTOCOL_ERROR);
    if (!AGENT_ID.test(msg.agentId))
      return this.refuse('bad-agent-id', 'agentId must be 1..128 of letters, digits, ".", "_", ":", "@", "-" (and not "." or "..")', CLOSE.PROTOCOL_ERROR);
    const cred = credentialFor(this.credential, msg.agentId);
    if (!cred.ok) return this.refuse('forbidden', cred.reason, CLOSE.FORBIDDEN);
    if (!cred.bound && this.deps.boundIds.has(msg.agentId)) {
      return this.refuse('forbidden', `agent id "${msg.agentId}" has a token bound to it; a credential not bound to it cannot use it`, CLOSE.FORBIDDEN);
    }
    const version = negotiateVersion(msg.protocol);
    if (version === undefined) {
      return this.refuse(
        'version-mismatch',
        `no common protocol version: agent offers ${describeOffer(msg.protocol)}, controller speaks ${describeOffer(SUPPORTED_VERSIONS)}`,
        CLOSE.VERSION_MISMATCH,
      );
    }
    const limits = this.deps.limits;
    const sessionKid = keyThumbprint(msg.teePubKey);
    if (this.closing) return;
    this.boundToId = cred.bound;
    const registry = this.deps.registry;
    const tooMany = () =>
      this.refuse(
        'too-many-agents',
        `this credential already speaks for ${limits.agentsPerCredential} agent ids (limits.agentsPerCredential); "${msg.agentId}" is refused`,
        CLOSE.FORBIDDEN,
      );
    // The per-credential cap is checked right before each admission (no await in between), and the id
    // is counted for the credential only once the session is admitted: a refused link takes no place.
    if (!registry.mayAdmit(this.credentialLabel, msg.agentId, limits.agentsPerCredential)) return tooMany();
    // Replicas sharing a store: the same rules over every replica, through the agent's lease.
    const leases = registry.store.leases;
    let leased = false;
    if (leases && !this.deps.hasLocal(msg.agentId)) {
      const remote = await this.remoteAdmit(msg.agentId);
      if (this.closing) return;
      if (remote === 'refused') return this.refuse('agent-connected', connectedElsewhere(msg.agentId, this.boundToId), CLOSE.FORBIDDEN);
      this.remoteContender = remote === 'contender';
      leased = remote === 'leased';
      // No session of this replica holds the agent: start from the stored record (another replica
      // may have moved it on; a contender's welcome.resumeFrom comes from it too).
      await registry.refresh(msg.agentId);
      if (this.closing) return;
      if (!registry.mayAdmit(this.credentialLabel, msg.agentId, limits.agentsPerCredential)) return tooMany();
    }
    let admitted = this.remoteContender ? 'contender' : this.deps.admit(msg.agentId, this);
    if (admitted === 'refused') {
      // Often the same agent reconnecting before its old connection's close was seen: give that a moment.
      await this.deps.released(msg.agentId, ADMIT_WAIT_MS);
      if (this.closing) return;
      if (!registry.mayAdmit(this.credentialLabel, msg.agentId, limits.agentsPerCredential)) return tooMany();
      admitted = this.deps.admit(msg.agentId, this);
    }
    if (admitted === 'refused') return this.refuse('agent-connected', connectedElsewhere(msg.agentId, this.boundToId), CLOSE.FORBIDDEN);
    if (admitted === 'claimed' && leases) {
      // The local rules let this session replace a session of this replica: its lease is ours to take.
      if (!leased) {
        await this.takeLease(msg.agentId, true);
        await registry.refresh(msg.agentId);
        if (this.closing) return;
      }
    }
    registry.admit(this.credentialLabel, msg.agentId, limits.agentsPerCredential);
    this.book = new ChallengeBook(
      this.deps.challengeTtlSec * 1000,
      { agentId: msg.agentId, sessionKid, replica: registry.store.replicaId },
      registry.store.challenges,
    );
    this.stream = new EventStream({
      agentId: msg.agentId,
      sessionKid,
      registry,
      maxHeld: limits.window,
      maxHeldBytes: limits.heldBytesPerAgent,
      budget: this.deps.heldBudget,
      log: this.deps.log,
      live: false,
      onStored: () => this.deps.metrics?.countEventStored(),
    });
    this.hello = msg;
    this.agentId = msg.agentId;
    if (admitted === 'claimed') this.onClaimed(now, false);
    const rec = registry.get(msg.agentId);
    this.deps.log.info(
      {
        agentId: msg.agentId,
        version: msg.version,
        protocol: version,
        peer: this.peer,
        resumeFrom: msg.resumeFrom,
        lastSeq: rec.lastSeq,
        bound: this.boundToId,
        contender: admitted === 'contender',
      },
      'agent connected',
    );
    this.send({
      type: 'welcome',
      protocol: version,
      heartbeatSec: this.deps.heartbeatSec,
      attestIntervalSec: this.deps.challengeIntervalSec,
      resumeFrom: rec.lastSeq + 1,
      window: limits.window,
      windowBytes: limits.heldBytesPerAgent,
      tokenKeys: this.deps.tokenKeys,
    });
    this.challenge(now);
    this.timers.push(setInterval(() => this.challenge(this.deps.now()), this.deps.challengeIntervalSec * 1000));
  }

  /**
   * This session became the agent's live one: record what its hello said, and let its event stream
   * store. A promoted contender acks what is stored by then, so events it sent that another link
   * stored meanwhile leave the agent's window (written first: the ack must not run ahead of the disk).
   */
  private onClaimed(now: Date, promoted: boolean): void {
    this.claimed = true;
    const agentId = this.agentId!;
    const registry = this.deps.registry;
    registry.setLiveCredential(agentId, this.credentialLabel);
    const rec = registry.get(agentId);
    rec.version = this.hello!.version;
    rec.inventory = boundedInventory(this.hello!.inventory);
    registry.touch(agentId, now);
    if (this.stream) this.stream.live = true;
    if (promoted) {
      this.unsaved = true;
      this.unacked = true;
    }
  }

  /** A contender whose earlier session is gone takes the slot; true when it did. */
  private async tryClaim(now: Date): Promise<boolean> {
    const agentId = this.agentId!;
    const leases = this.deps.registry.store.leases;
    if (this.remoteContender && leases) {
      // The live session is on another replica: its lease must be free first (asked at most once a second).
      if (now.getTime() - this.leaseTriedAt < 1000) return false;
      this.leaseTriedAt = now.getTime();
      if (!(await leases.acquire(agentId, this.leaseHolder(), false)).ok || this.closing) return false;
      this.remoteContender = false;
    }
    if (this.deps.admit(agentId, this) !== 'claimed') return false;
    if (leases) {
      await this.takeLease(agentId, true);
      await this.deps.registry.refresh(agentId);
    }
    this.onClaimed(now, true);
    return true;
  }

  private leaseHolder(): LeaseHolder {
    return { replica: this.deps.registry.store.replicaId, sessionId: this.id, bound: this.boundToId, attested: this.attested };
  }

  /** Hold the agent's lease for this session (a takeover the identity rules allowed, when forced). */
  private async takeLease(agentId: string, force: boolean): Promise<boolean> {
    const leases = this.deps.registry.store.leases;
    if (!leases) return true;
    return (await leases.acquire(agentId, this.leaseHolder(), force)).ok;
  }

  /**
   * Admission over the replicas sharing the store (Controller.admit's rules, held in the agent's
   * lease): 'leased' when the lease is free, expired, this replica's, or held by an unattested session
   * whose credential is bound like this one's; 'contender' when a session bound like this one has
   * attested (this one takes over once it attests here); else 'refused', after waiting up to
   * ADMIT_WAIT_MS for the lease to come free (the same agent reconnecting to another replica).
   */
  private async remoteAdmit(agentId: string): Promise<'leased' | 'contender' | 'refused'> {
    const leases = this.deps.registry.store.leases!;
    const deadline = Date.now() + ADMIT_WAIT_MS;
    for (;;) {
      const r = await leases.acquire(agentId, this.leaseHolder(), false);
      if (r.ok) return 'leased';
      if (r.holder.bound && this.boundToId) {
        if (r.holder.attested) return 'contender';
        if ((await leases.acquire(agentId, this.leaseHolder(), true)).ok) return 'leased';
      }
      if (this.closing || Date.now() > deadline) return 'refused';
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }

  /** Issue a fresh challenge (also used by the server's "challenge now"). */
  challenge(now: Date): Challenge | undefined {
    if (this.closed || !this.hello || !this.book) return undefined;
    const { challenge: c, stored } = this.book.issue(now);
    // Sent once stored: any replica sharing the store can then take the answer.
    stored.then(
      () => this.send({ type: 'challenge', id: c.id, nonce: c.nonce.toString('hex'), expiresAt: c.expiresAt.toISOString() }),
      (err: unknown) =>
        this.deps.log.warn(
          { agentId: this.agentId, err: err instanceof Error ? err.message : String(err) },
          'challenge not stored, so not sent (the next interval issues another)',
        ),
    );
    return c;
  }

  private async onEvidence(msg: EvidenceMessage, now: Date): Promise<void> {
    const agentId = this.agentId!;
    const registry = this.deps.registry;
    const taken = await this.book!.take(msg.challengeId, now);
    if (!taken.ok) {
      registry.get(agentId).lastRejection = { at: now.toISOString(), code: taken.code, message: taken.message };
      await registry.persist(agentId);
      return this.refuse(taken.code, taken.message, undefined, msg.challengeId);
    }
    // Possession of the session key, over the challenge issued on this connection: without it the
    // bundle may be another VM's evidence relayed through its local API. No verdict at all then.
    const proof = await checkEvidenceProof(msg.proof, this.hello!.teePubKey, {
      agentId,
      challengeId: msg.challengeId,
      nonce: taken.challenge.nonce.toString('hex'),
    });
    if (!proof.ok) {
      if (registry.has(agentId)) registry.get(agentId).lastRejection = { at: now.toISOString(), code: 'bad-proof', message: proof.reason };
      return this.refuse(
        'bad-proof',
        `evidence for challenge ${msg.challengeId} has no valid proof of possession of the hello key: ${proof.reason}; no verdict`,
        CLOSE.FORBIDDEN,
        msg.challengeId,
      );
    }
    const started = performance.now();
    const appraisal = await appraiseEvidence(msg.bundle, taken.challenge.nonce, now, this.deps.appraisal, this.hello!.teePubKey, agentId);
    const verificationSec = (performance.now() - started) / 1000;
    const devices = Object.entries(deviceStatuses(appraisal)).map(([id, status]) => ({ id, status }));
    // Secrets only to a key proven by this very bundle, and only when every device earns it.
    const decision = appraisal.verifiedKey
      ? releaseDecision(devices, this.deps.releaseSecretsOn)
      : { release: false, reason: `secrets withheld: the evidence did not verify (${appraisal.status})` };
    const secrets =
      decision.release && appraisal.verifiedKey ? await sealSecrets(secretsFor(agentId, this.deps.secrets, this.boundToId), appraisal.verifiedKey) : [];
    const { token, expiresAt } = await this.deps.signer.sign(appraisal.ear, {
      subject: agentId,
      ttlSec: this.deps.tokenTtlSec,
      ...(appraisal.verifiedKey ? { confirmationKey: appraisal.verifiedKey } : {}),
      // The agent accepts only JWEs whose hash the signed token lists (agent/link/verdict.ts).
      ...(secrets.length > 0 ? { claims: { 'cvm.secrets': secretDigests(secrets) } } : {}),
    });
    if (appraisal.verifiedKey) {
      const leases = registry.store.leases;
      this.attested = true;
      if (!this.claimed && leases) {
        // A contender takes the agent over every replica, then starts from the stored record.
        await this.takeLease(agentId, true);
        this.remoteContender = false;
        await registry.refresh(agentId);
      } else if (leases) {
        await leases.markAttested(agentId, this.id);
      }
      await registry.rememberKey(agentId, appraisal.verifiedKey, now);
      if (this.stream) this.stream.keyAttestedHere = true;
      // A contender that attested its key in its own session replaces the live session.
      if (!this.claimed) {
        this.deps.promote(agentId, this);
        this.onClaimed(now, true);
      }
    }
    const rec = registry.get(agentId);
    const verdict = {
      challengeId: msg.challengeId,
      at: now.toISOString(),
      status: appraisal.status,
      simulated: appraisal.simulated,
      devices: Object.fromEntries(devices.map((d) => [d.id, d.status])),
      secretsReleased: secrets.map((s) => s.name),
      secretsDecision: decision.reason,
      tokenExpiresAt: expiresAt.toISOString(),
      ...(appraisal.bundle ? { teeKind: appraisal.bundle.cpu.kind, gpuCount: appraisal.bundle.gpus.length } : {}),
      ear: appraisal.ear,
    };
    const jkt = appraisal.verifiedKey ? keyThumbprint(appraisal.verifiedKey) : '';
    const releases = secrets.map((s) => ({
      agentId,
      secret: s.name,
      at: verdict.at,
      challengeId: msg.challengeId,
      status: appraisal.status,
      jkt,
      replica: registry.store.replicaId,
    }));
    registry.recordVerdict(agentId, verdict, releases);
    if (appraisal.status === 'contraindicated' || appraisal.status === 'none') {
      const failed = appraisal.devices.flatMap((d) => failedChecks(d.result.checks).map((c) => `${d.id} ${c.name}`));
      rec.lastRejection = { at: now.toISOString(), code: 'evidence-rejected', message: `failed checks: ${failed.slice(0, 8).join(', ') || '(none recorded)'}` };
    }
    await registry.persist(agentId);
    // A verdict that does not vouch for the agent is a warning (`journalctl -p warning` shows it);
    // "secretsReleased", not "secrets": the logger redacts any field named secrets.
    const level = appraisal.status === 'contraindicated' || appraisal.status === 'none' ? 'warn' : 'info';
    this.deps.log[level](
      {
        agentId,
        challengeId: msg.challengeId,
        status: appraisal.status,
        simulated: appraisal.simulated,
        devices: verdict.devices,
        secretsReleased: verdict.secretsReleased,
      },
      `verdict ${appraisal.status.toUpperCase()}${appraisal.simulated ? ' (SIMULATED)' : ''}: ${decision.reason}`,
    );
    this.send({ type: 'verdict', challengeId: msg.challengeId, token, ...(secrets.length > 0 ? { secrets } : {}) });
    this.deps.metrics?.recordVerdict(appraisal.status, verificationSec, secrets.length);
    if (this.claimed) await this.drainEvents(now);
  }

  /** After a verdict: held events may now verify (their key was attested) or be declared unverifiable. */
  private async drainEvents(now: Date): Promise<void> {
    if (this.stream) this.applyOutcome(await this.stream.drain(now));
  }
}
