/**
 * The reference controller's configuration (docs/controller.md): one YAML file, every key optional,
 * validated with the same tiny schema validator as the agent config so each error names its key.
 * `parseControllerConfig` is pure (text in, validated config out); `loadControllerConfig` does the
 * file I/O (token files, policies, TLS material, signing key, secret files) at the edge.
 */
import { createHash } from 'node:crypto';
import { InputFileError, readBounded, type InputKind } from '../util/bounded-read.js';
import { dirname, isAbsolute, resolve } from 'node:path';
import { readYaml } from '../config/yaml.js';
import { ConfigError } from '../errors.js';
import { bool, int, list, obj, oneOf, Problems, problemsError, str, type Schema } from '../config/validate.js';
import { parseSnpPolicy, snpPolicyFrom, type SnpPolicy } from '../appraise/snp-policy.js';
import { gpuPolicyFrom, parseGpuPolicy, type GpuPolicy } from '../appraise/gpu-policy.js';
import { AGENT_ID } from '../formats/nonce-binding.js';

/** Agent ids become file names in stateDir: keep them to a safe alphabet (and never "." / ".."). */
export { AGENT_ID };
const agentId = str({ pattern: AGENT_ID, hint: 'an agent id of letters, digits, ".", "_", ":", "@" or "-" (1..128)' });
const path = str({ hint: 'a file path' });
const sha256Hex = str({ pattern: /^[0-9a-fA-F]{64}$/, hint: 'the SHA-256 of the token as 64 hex digits' });

/** Which appraisal outcome releases secrets (see docs/controller.md "Secret release"). */
export type ReleaseRule = 'affirming' | 'warning';

export const controllerSchema = obj({
  listen: obj({ host: str({ hint: 'a host name or address' }), port: int(0, 65535) }),
  tls: obj({ cert: path, key: path, clientCa: path, requireClientCert: bool() }),
  agents: obj({
    tokens: list(obj({ agentId, sha256: sha256Hex, file: path }), 10_000),
  }),
  policy: obj({ snp: path, gpu: path }),
  signingKey: path,
  publishedKeys: list(path, 8),
  tokenTtlSec: int(10, 86_400),
  challengeIntervalSec: int(5, 86_400),
  challengeTtlSec: int(1, 3600),
  secrets: list(
    obj({
      name: str({ pattern: /^[A-Za-z0-9._-]{1,128}$/, hint: 'a secret name of letters, digits, ".", "_" or "-"' }),
      file: path,
      value: str(),
      agents: list(agentId),
    }),
    1000,
  ),
  releaseSecretsOn: oneOf(['affirming', 'warning'] as const),
  simulation: obj({ trust: bool(), dir: path }),
  collateral: obj({ dir: path, online: bool(), timeoutMs: int(100, 120_000) }),
  stateDir: path,
  store: obj({
    url: str({ hint: 'a postgres:// URL' }),
    replica: str({ pattern: /^[A-Za-z0-9._:@-]{1,64}$/, hint: 'a replica name of letters, digits, ".", "_", ":", "@" or "-" (1..64)' }),
    poolSize: int(1, 1000),
    leaseTtlSec: int(3, 600),
    retention: obj({
      // At least registry.ts HASH_WINDOW (256): the seqs whose hashes the record keeps.
      eventsPerAgent: int(256, 100_000_000),
      verdictsPerAgent: int(1, 10_000_000),
      releaseDays: int(1, 36_500),
      releases: int(1000, 1_000_000_000),
      releaseLogBytes: int(64 * 1024, 64 * 1024 * 1024 * 1024),
      pruneIntervalSec: int(10, 86_400),
    }),
  }),
  limits: obj({
    messagesPerSec: int(1, 10_000),
    burst: int(1, 100_000),
    maxConnections: int(1, 100_000),
    eventsPerSec: int(1, 100_000),
    window: int(1, 65_535),
    heldBytesPerAgent: int(1024 * 1024, 1024 * 1024 * 1024),
    heldBytesTotal: int(1024 * 1024, 64 * 1024 * 1024 * 1024),
    agentsPerCredential: int(1, 1_000_000),
  }),
  log: obj({ level: oneOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const) }),
});

type Parsed<S> = S extends Schema<infer T> ? T : never;
export type RawControllerConfig = Parsed<typeof controllerSchema>;

export interface TokenEntry {
  /** When set, the token may only be used by this agent id. */
  agentId?: string;
  /** SHA-256 of the token (or a file holding the token; hashed at load). */
  sha256?: string;
  file?: string;
}

export interface SecretEntry {
  name: string;
  file?: string;
  value?: string;
  /** Allow-list of agent ids; absent = every attested agent. */
  agents?: string[];
}

/** The validated config with defaults filled and relative paths resolved against the config file. */
export interface ControllerConfig {
  listen: { host: string; port: number };
  tls?: { cert: string; key: string; clientCa?: string; requireClientCert: boolean };
  tokens: TokenEntry[];
  policy: { snp?: string; gpu?: string };
  signingKey?: string;
  /** Further token keys published (JWKS, welcome), never used to sign: the next key before a rotation, the previous one after it. */
  publishedKeys: string[];
  tokenTtlSec: number;
  challengeIntervalSec: number;
  challengeTtlSec: number;
  secrets: SecretEntry[];
  releaseSecretsOn: ReleaseRule;
  simulation: { trust: boolean; dir?: string };
  /** Collateral cache for real-hardware evidence (VCEK/VLEK, CRLs, RIMs, OCSP); see docs/collateral.md. */
  collateral?: { dir: string; online: boolean; timeoutMs: number };
  stateDir?: string;
  /** PostgreSQL instead of stateDir (store/postgres-store.ts); `replica` names this controller in what it stores. */
  store?: { url: string; replica?: string; poolSize?: number; leaseTtlSec?: number };
  /** How much history the store keeps (store.retention): every ledger has a bound. */
  retention: StoreRetention;
  limits: ControllerLimits;
  logLevel: string;
}

/**
 * The store's bounds (`store.retention`, docs/controller.md "Retention"). PostgreSQL: a periodic prune
 * (one replica at a time, under an advisory lock) keeps per agent the events of its newest
 * `eventsPerAgent` seqs (with their gaps and alarms) and its newest `verdictsPerAgent` verdicts (and
 * any verdict a kept secret release names), and the release audit younger than `releaseDays` and at
 * most `releases` rows. The embedded store: `secret-releases.jsonl` moves to `secret-releases.jsonl.1`
 * (replacing it) when it would pass `releaseLogBytes`.
 */
export interface StoreRetention {
  eventsPerAgent: number;
  verdictsPerAgent: number;
  releaseDays: number;
  releases: number;
  releaseLogBytes: number;
  pruneIntervalSec: number;
}

export interface ControllerLimits {
  /** Per-link rate of non-event messages (token bucket); over it the controller stops reading for a while. */
  messagesPerSec: number;
  burst: number;
  maxConnections: number;
  /** Per-link rate of event messages (bucket depth: `window`); over it the controller stops reading for a while. */
  eventsPerSec: number;
  /** Ack window announced in welcome: event messages an agent may have unacknowledged. */
  window: number;
  /** Bytes of events held per agent while they wait for their turn or their key (welcome.windowBytes). */
  heldBytesPerAgent: number;
  /** Bytes of held events over all links together. */
  heldBytesTotal: number;
  /** Distinct agent ids one credential (token, client certificate) may speak for. */
  agentsPerCredential: number;
}

export const CONTROLLER_DEFAULTS = {
  host: '127.0.0.1',
  port: 8443,
  tokenTtlSec: 300,
  challengeIntervalSec: 600,
  challengeTtlSec: 60,
  retention: {
    eventsPerAgent: 100_000,
    verdictsPerAgent: 1000,
    releaseDays: 400,
    releases: 10_000_000,
    releaseLogBytes: 64 * 1024 * 1024,
    pruneIntervalSec: 600,
  },
  limits: {
    messagesPerSec: 20,
    burst: 60,
    maxConnections: 1000,
    eventsPerSec: 1000,
    window: 256,
    heldBytesPerAgent: 8 * 1024 * 1024,
    heldBytesTotal: 256 * 1024 * 1024,
    agentsPerCredential: 1000,
  },
} as const;

/** Parse and validate config text; relative paths resolve against `baseDir`. Throws ConfigError listing every problem. */
export function parseControllerConfig(text: string, source = 'controller config', baseDir = '.'): ControllerConfig {
  const doc = readYaml(text, source);
  const problems = new Problems();
  const raw = controllerSchema.check(doc ?? {}, '', problems);
  const errors = problems.lines;
  if (raw) crossChecks(raw, errors);
  if (errors.length > 0 || !raw) {
    throw problemsError(source, errors);
  }
  const p = (x: string | undefined) => (x === undefined ? undefined : isAbsolute(x) ? x : resolve(baseDir, x));
  const d = CONTROLLER_DEFAULTS;
  const cfg: ControllerConfig = {
    listen: { host: raw.listen?.host ?? d.host, port: raw.listen?.port ?? d.port },
    tokens: (raw.agents?.tokens ?? []).map((t) => ({
      ...(t.agentId ? { agentId: t.agentId } : {}),
      ...(t.sha256 ? { sha256: t.sha256.toLowerCase() } : {}),
      ...(t.file ? { file: p(t.file)! } : {}),
    })),
    policy: { ...(raw.policy?.snp ? { snp: p(raw.policy.snp)! } : {}), ...(raw.policy?.gpu ? { gpu: p(raw.policy.gpu)! } : {}) },
    publishedKeys: [],
    tokenTtlSec: raw.tokenTtlSec ?? d.tokenTtlSec,
    challengeIntervalSec: raw.challengeIntervalSec ?? d.challengeIntervalSec,
    challengeTtlSec: raw.challengeTtlSec ?? d.challengeTtlSec,
    secrets: (raw.secrets ?? []).map((s) => ({
      name: s.name!,
      ...(s.file ? { file: p(s.file)! } : {}),
      ...(s.value !== undefined ? { value: s.value } : {}),
      ...(s.agents ? { agents: s.agents } : {}),
    })),
    releaseSecretsOn: raw.releaseSecretsOn ?? 'affirming',
    simulation: { trust: raw.simulation?.trust ?? false, ...(raw.simulation?.dir ? { dir: p(raw.simulation.dir)! } : {}) },
    retention: { ...d.retention, ...raw.store?.retention },
    limits: { ...d.limits, ...raw.limits },
    logLevel: raw.log?.level ?? 'info',
  };
  if (raw.tls)
    cfg.tls = {
      cert: p(raw.tls.cert)!,
      key: p(raw.tls.key)!,
      ...(raw.tls.clientCa ? { clientCa: p(raw.tls.clientCa)! } : {}),
      requireClientCert: raw.tls.requireClientCert ?? false,
    };
  if (raw.signingKey) cfg.signingKey = p(raw.signingKey)!;
  cfg.publishedKeys = (raw.publishedKeys ?? []).map((f) => p(f)!);
  if (raw.stateDir) cfg.stateDir = p(raw.stateDir)!;
  if (raw.store?.url)
    cfg.store = {
      url: raw.store.url,
      ...(raw.store.replica ? { replica: raw.store.replica } : {}),
      ...(raw.store.poolSize ? { poolSize: raw.store.poolSize } : {}),
      ...(raw.store.leaseTtlSec ? { leaseTtlSec: raw.store.leaseTtlSec } : {}),
    };
  if (raw.collateral?.dir)
    cfg.collateral = { dir: p(raw.collateral.dir)!, online: raw.collateral.online ?? false, timeoutMs: raw.collateral.timeoutMs ?? 10_000 };
  return cfg;
}

/** Rules that span keys (the schema checks one value at a time). */
function crossChecks(raw: RawControllerConfig, errors: string[]): void {
  (raw.agents?.tokens ?? []).forEach((t, i) => {
    if ((t.sha256 === undefined) === (t.file === undefined)) errors.push(`agents.tokens[${i}]: needs exactly one of sha256 or file`);
  });
  const names = new Set<string>();
  (raw.secrets ?? []).forEach((s, i) => {
    if (s.name === undefined) errors.push(`secrets[${i}].name: required`);
    else if (names.has(s.name)) errors.push(`secrets[${i}].name: "${s.name}" is listed twice`);
    else names.add(s.name);
    if ((s.file === undefined) === (s.value === undefined)) errors.push(`secrets[${i}]: needs exactly one of file or value`);
  });
  // A secret restricted to agent ids goes only to sessions whose credential proves the id. An unbound
  // (fleet) token proves none, yet lets its holder say any id in hello: refuse the combination.
  const unbound = (raw.agents?.tokens ?? []).findIndex((t) => t.agentId === undefined);
  const restricted = (raw.secrets ?? []).findIndex((s) => s.agents !== undefined);
  if (unbound >= 0 && restricted >= 0) {
    errors.push(
      `secrets[${restricted}].agents: restricts a secret to agent ids, but agents.tokens[${unbound}] is not bound to an agent id, so its holder could claim any id; ` +
        'give every token an agentId (or use client certificates that name the agent), or drop the allow-list',
    );
  }
  // `store` without url is the embedded store with its own retention; the other keys need PostgreSQL.
  const needsUrl = raw.store && (raw.store.url !== undefined || Object.keys(raw.store).some((k) => k !== 'retention'));
  if (raw.store && needsUrl) {
    const why = storeUrlProblem(raw.store.url);
    if (why) errors.push(`store.url: ${why}`);
    if (raw.stateDir !== undefined) errors.push('stateDir: not used with store.url (agent state is in the database); remove one of them');
  }
  if (raw.tls && (raw.tls.cert === undefined || raw.tls.key === undefined)) errors.push('tls: needs both cert and key');
  if (raw.tls?.requireClientCert && !raw.tls.clientCa) errors.push('tls.requireClientCert: needs tls.clientCa (the CA that issues agent certificates)');
  if ((raw.publishedKeys?.length ?? 0) > 0 && raw.signingKey === undefined)
    errors.push('publishedKeys: needs signingKey (the published keys are the next or previous signing key of a rotation)');
  if (raw.simulation?.trust && !raw.simulation.dir)
    errors.push('simulation.dir: required when simulation.trust is true (the directory holding the simulated test roots)');
  if (raw.limits?.burst !== undefined && raw.limits.messagesPerSec !== undefined && raw.limits.burst < raw.limits.messagesPerSec) {
    errors.push('limits.burst: must be at least limits.messagesPerSec');
  }
  const perAgent = raw.limits?.heldBytesPerAgent ?? CONTROLLER_DEFAULTS.limits.heldBytesPerAgent;
  if ((raw.limits?.heldBytesTotal ?? CONTROLLER_DEFAULTS.limits.heldBytesTotal) < perAgent) {
    errors.push('limits.heldBytesTotal: must be at least limits.heldBytesPerAgent');
  }
}

/**
 * Why `url` is not a PostgreSQL connection URL, or undefined when it is. The messages never repeat
 * the URL (it may hold a password).
 */
export function storeUrlProblem(url: string | undefined): string | undefined {
  if (url === undefined) return 'required (postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE)';
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return 'not a URL (expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE; the value is not shown, it may hold a password)';
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') return `must be a postgres:// or postgresql:// URL, got a ${u.protocol}// URL`;
  if (u.pathname.length <= 1 && !u.searchParams.has('host')) return 'names no database (postgres://USER@HOST/DATABASE)';
  return undefined;
}

/** What the server needs at run time, with every referenced file read and checked. */
export interface ResolvedController {
  config: ControllerConfig;
  /** SHA-256 digests of the accepted bearer tokens (the tokens themselves are never kept). */
  tokens: { agentId?: string; sha256: Buffer }[];
  snpPolicy?: SnpPolicy;
  gpuPolicy?: GpuPolicy;
  tls?: { cert: Buffer; key: Buffer; ca?: Buffer; requireClientCert: boolean };
  signingKeyPem?: string;
  /** The publishedKeys files (public or private EC P-384 PEM). */
  publishedKeyPems: string[];
  secrets: { name: string; value: Buffer; agents?: string[] }[];
}

/** A file the config names, capped by its kind before it is read (util/bounded-read.ts); any failure is a ConfigError naming the key. */
async function readText(file: string, what: string, kind: InputKind): Promise<Buffer> {
  try {
    return await readBounded(file, kind);
  } catch (err) {
    if (err instanceof InputFileError) throw new ConfigError(`${what}: ${err.message}`, { cause: err });
    throw new ConfigError(`${what}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
}

/** Token files hold the token itself (one line); trailing whitespace is not part of it. */
export function tokenDigest(token: string | Buffer): Buffer {
  return createHash('sha256')
    .update(typeof token === 'string' ? token : token.toString('utf8'))
    .digest();
}

export async function resolveControllerConfig(config: ControllerConfig): Promise<ResolvedController> {
  const tokens = await Promise.all(
    config.tokens.map(async (t, i) => {
      const sha256 = t.sha256
        ? Buffer.from(t.sha256, 'hex')
        : tokenDigest((await readText(t.file!, `agents.tokens[${i}].file`, 'token')).toString('utf8').trim());
      return { ...(t.agentId ? { agentId: t.agentId } : {}), sha256 };
    }),
  );
  const out: ResolvedController = { config, tokens, secrets: [], publishedKeyPems: [] };
  if (config.policy.snp) {
    const text = (await readText(config.policy.snp, 'policy.snp', 'policy')).toString('utf8');
    out.snpPolicy = wrapPolicy(() => parseSnpPolicy(text), 'policy.snp', config.policy.snp);
  } else out.snpPolicy = snpPolicyFrom(undefined);
  if (config.policy.gpu) {
    const text = (await readText(config.policy.gpu, 'policy.gpu', 'policy')).toString('utf8');
    out.gpuPolicy = wrapPolicy(() => parseGpuPolicy(text), 'policy.gpu', config.policy.gpu);
  } else out.gpuPolicy = gpuPolicyFrom(undefined);
  if (config.tls) {
    out.tls = {
      cert: await readText(config.tls.cert, 'tls.cert', 'certificate'),
      key: await readText(config.tls.key, 'tls.key', 'privateKey'),
      ...(config.tls.clientCa ? { ca: await readText(config.tls.clientCa, 'tls.clientCa', 'certificate') } : {}),
      requireClientCert: config.tls.requireClientCert,
    };
  }
  if (config.signingKey) out.signingKeyPem = (await readText(config.signingKey, 'signingKey', 'privateKey')).toString('utf8');
  for (const [i, f] of config.publishedKeys.entries()) out.publishedKeyPems.push((await readText(f, `publishedKeys[${i}]`, 'privateKey')).toString('utf8'));
  for (const [i, s] of config.secrets.entries()) {
    const value = s.file ? await readText(s.file, `secrets[${i}].file`, 'secret') : Buffer.from(s.value ?? '', 'utf8');
    out.secrets.push({ name: s.name, value, ...(s.agents ? { agents: s.agents } : {}) });
  }
  return out;
}

function wrapPolicy<T>(parse: () => T, key: string, file: string): T {
  try {
    return parse();
  } catch (err) {
    throw new ConfigError(`${key} (${file}): ${(err as Error).message}`, { cause: err });
  }
}

/** Read, parse and resolve a config file (relative paths inside it resolve against its directory). */
export async function loadControllerConfig(file: string | undefined): Promise<ResolvedController> {
  if (file === undefined) return resolveControllerConfig(parseControllerConfig('', 'controller config (defaults)'));
  const text = (await readText(file, 'controller config', 'config')).toString('utf8');
  return resolveControllerConfig(parseControllerConfig(text, file, dirname(resolve(file))));
}
