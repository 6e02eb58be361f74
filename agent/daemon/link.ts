/**
 * The daemon's side of the controller link (docs/protocol.md): answers challenges with a
 * cycle bound to the controller's nonce, runs cycles on request, caches the controller's verdict
 * token until it expires, keeps released secrets in memory only, and turns what happens in the
 * agent into signed, gap-free events in the on-disk outbox.
 */
import { join } from 'node:path';
import type { ControllerLink, LinkStatus } from '../link/link-client.js';
import type { VerifiedVerdict } from '../link/verdict.js';
import { Outbox } from '../link/outbox.js';
import { SecretStore } from '../link/secret-unwrap.js';
import type { AgentKey } from '../link/agent-key.js';
import type { CycleResult } from '../attest/attestation-cycle.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../util/log.js';
import { ConfigError, CvmError } from '../errors.js';
import { InputFileError, readBoundedText, readBoundedTextSync, type InputKind } from '../util/bounded-read.js';
import { failedChecks } from '../formats/checks.js';

export interface DaemonLinkDeps {
  config: Config;
  /** This agent's id: said in hello, bound into evidence, the `sub` its tokens must carry. */
  agentId: string;
  key: AgentKey;
  version: string;
  log: Logger;
  attest: (reason: 'controller', nonce?: Uint8Array) => Promise<CycleResult>;
  inventory?: () => Record<string, unknown>;
  env: NodeJS.ProcessEnv;
  /**
   * An authenticated controller verdict arrived (the daemon's trust state and consequences follow it).
   * keyBound false: it attests nothing about this agent's key, so no token is served from it.
   */
  onVerdict?: (v: VerdictNote) => void;
}

export interface VerdictNote {
  challengeId: string;
  status: string;
  expiresAt: Date;
  secrets: string[];
  keyBound: boolean;
}

/** Summary of a cycle as carried in events: statuses and failed check names, never evidence or secrets. */
export function cycleEventData(r: CycleResult): Record<string, unknown> {
  return {
    cycle: r.id,
    reason: r.reason,
    status: r.status,
    simulated: r.simulated,
    durationMs: r.durationMs,
    devices: Object.fromEntries(
      Object.entries(r.ear.submods).map(([id, s]) => [id, { status: s['ear.status'], failed: failedChecks(s['cvm.checks']).map((c) => c.name) }]),
    ),
    gpuReady: r.gpuReady.set,
    ...(r.error ? { error: r.error } : {}),
  };
}

async function readOptional(path: string | undefined, kind: InputKind): Promise<string | undefined> {
  if (!path) return undefined;
  try {
    return await readBoundedText(path, kind);
  } catch (err) {
    throw new ConfigError(err instanceof InputFileError ? `controller: ${err.message}` : `controller: cannot read ${path}: ${(err as Error).message}`);
  }
}

/**
 * systemd LoadCredential=controller-token, unless the config names a token file. The unit's blank
 * SetCredential= default (no token installed) means "no bearer token": TLS client certificates only.
 */
export function tokenFileFrom(config: Config, env: NodeJS.ProcessEnv): string | undefined {
  if (config.controller.tokenFile) return config.controller.tokenFile;
  if (!env.CREDENTIALS_DIRECTORY) return undefined;
  const file = join(env.CREDENTIALS_DIRECTORY, 'controller-token');
  try {
    return readBoundedTextSync(file, 'token').trim() === '' ? undefined : file;
  } catch {
    return undefined;
  }
}

export class DaemonLink {
  private token: { token: string; expiresAt: Date; challengeId: string } | undefined;
  /** Set while the latest authenticated verdict attested nothing about our key (its token is not served). */
  private unboundVerdict: string | undefined;
  private lastGpuReady: boolean | undefined;
  private lastStatus: string | undefined;

  private constructor(
    private readonly deps: DaemonLinkDeps,
    readonly outbox: Outbox,
    readonly secrets: SecretStore,
    private readonly link: ControllerLink | undefined,
  ) {}

  static async open(deps: DaemonLinkDeps): Promise<DaemonLink> {
    const { config, key, log } = deps;
    const outbox = await Outbox.open({ dir: join(config.state.dir, 'outbox'), key, log: (msg, fields) => log.warn(fields ?? {}, msg) });
    const holder: { self?: DaemonLink } = {};
    // Released secrets: decrypted by the link into this store, in memory only.
    const secrets = new SecretStore();
    let link: ControllerLink | undefined;
    if (config.controller.url) {
      // The link (WebSocket client, verdict checks) is loaded only by an agent that has a controller.
      const [{ ControllerLink }, { loadTokenKeys }] = await Promise.all([import('../link/link-client.js'), import('../link/verdict.js')]);
      const [ca, cert, keyPem] = await Promise.all([
        readOptional(config.controller.caFile, 'certificate'),
        readOptional(config.controller.certFile, 'certificate'),
        readOptional(config.controller.keyFile, 'privateKey'),
      ]);
      const tokenFile = tokenFileFrom(config, deps.env);
      const tokenKeys = config.controller.tokenKey ? await loadTokenKeys(config.controller.tokenKey) : undefined;
      link = new ControllerLink({
        url: config.controller.url,
        ...(config.controller.urls && config.controller.urls.length > 1 ? { urls: config.controller.urls.slice(1) } : {}),
        insecure: config.controller.insecure,
        ...(tokenKeys ? { tokenKeys } : {}),
        agentId: deps.agentId,
        agentVersion: deps.version,
        key,
        outbox,
        secretStore: secrets,
        ...(tokenFile ? { tokenFile } : {}),
        ...(ca || cert || keyPem ? { tls: { ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(keyPem ? { key: keyPem } : {}) } } : {}),
        ...(deps.inventory ? { inventory: deps.inventory } : {}),
        capabilities: ['snp', 'azure-snp-vtpm', 'nvidia-gpu', 'events', 'secrets'],
        log: log.child({ component: 'link' }),
        handlers: {
          onChallenge: async (nonce) => {
            const r = await deps.attest('controller', nonce);
            if (!r.bundle) throw new CvmError('ERR_CYCLE', `attestation failed: ${r.error ?? 'no evidence'}`);
            return { bundle: r.bundle, localResult: r.ear as unknown as Record<string, unknown> };
          },
          onAttestRequest: async () => {
            await deps.attest('controller');
          },
          onVerdict: (verdict, _names, verified) => holder.self?.acceptVerdict(verdict.challengeId, verdict.token, verified),
        },
      });
    }
    const self = new DaemonLink(deps, outbox, secrets, link);
    holder.self = self;
    return self;
  }

  start(): void {
    this.link?.start();
  }

  async stop(): Promise<void> {
    await this.link?.stop();
  }

  status(): (LinkStatus & { configured: true }) | { configured: false; state: 'none' } {
    return this.link ? { configured: true, ...this.link.status() } : { configured: false, state: 'none' };
  }

  /**
   * Keep the controller's EAR token while it is valid. The link has already authenticated it (signature
   * under the controller's token key, sub, eat_nonce of a challenge we answered, cnf.jkt). A verdict
   * that does not confirm our key (contraindicated) is not served, and replaces any earlier token:
   * the controller no longer vouches for this agent. Only such authenticated verdicts reach the
   * daemon's trust state (onVerdict); a rejected one never gets here.
   */
  private acceptVerdict(challengeId: string, token: string, verified: VerifiedVerdict): void {
    if (!verified.keyBound) {
      this.token = undefined;
      this.unboundVerdict = `the controller's latest verdict (${verified.status.toUpperCase()}, challenge ${challengeId}) does not attest this agent's key: its token is not served`;
      this.deps.log.warn({ challengeId, status: verified.status }, "controller verdict does not attest this agent's key: no token is served");
      this.deps.onVerdict?.({ challengeId, status: verified.status, expiresAt: verified.expiresAt, secrets: this.secrets.names(), keyBound: false });
      return;
    }
    this.token = { token, expiresAt: verified.expiresAt, challengeId };
    this.unboundVerdict = undefined;
    // A CONTRAINDICATED verdict is a warning even when it names our key.
    this.deps.log[verified.status === 'contraindicated' ? 'warn' : 'info'](
      { challengeId, expiresAt: this.token.expiresAt.toISOString(), status: verified.status, secrets: this.secrets.names() },
      'controller verdict received',
    );
    this.deps.onVerdict?.({ challengeId, status: verified.status, expiresAt: verified.expiresAt, secrets: this.secrets.names(), keyBound: true });
  }

  /** Why there is no token to serve, when the reason is a verdict that did not attest our key. */
  noTokenReason(): string | undefined {
    return this.token ? undefined : this.unboundVerdict;
  }

  currentToken(): { token: string; expiresAt: string } | undefined {
    if (!this.token || this.token.expiresAt.getTime() <= Date.now()) return undefined;
    return { token: this.token.token, expiresAt: this.token.expiresAt.toISOString() };
  }

  /** Events for every cycle, plus explicit gpu-ready and status changes. Never throws. */
  async onCycle(r: CycleResult, health: string): Promise<void> {
    const emit = (kind: Parameters<Outbox['append']>[0], data: Record<string, unknown>) =>
      this.outbox.append(kind, data).catch((err: Error) => this.deps.log.error({ err: err.message, kind }, 'could not queue an event'));
    await emit('attestation', cycleEventData(r));
    if (r.error) await emit('error', { cycle: r.id, message: r.error });
    if (this.lastGpuReady !== r.gpuReady.set) {
      this.lastGpuReady = r.gpuReady.set;
      await emit('gpu-ready', { ready: r.gpuReady.set, reason: r.gpuReady.reason });
    }
    if (this.lastStatus !== health) {
      this.lastStatus = health;
      await emit('status', { health, status: r.status });
    }
  }
}
