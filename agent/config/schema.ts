/**
 * The daemon's configuration: one YAML file (default /etc/cvm-agent/config.yaml), every key optional.
 * `loadConfig` validates against the schema below and fills defaults; errors name the key.
 * docs/config.md documents every key; keep the two in step.
 */
import { readYaml } from './yaml.js';
import { bool, dict, int, list, obj, oneOf, Problems, problemsError, str, type Schema } from './validate.js';
import { LISTEN_ADDRESS, LISTEN_ADDRESS_HINT, parseListenAddress } from './listen-address.js';

const absPath = str({ pattern: /^\//, hint: 'an absolute path' });
const cronExpr = str({ pattern: /^(\S+\s+){4,5}\S+$/, hint: 'a cron expression with 5 or 6 fields' });
const principal = list(str({ pattern: /^([a-z_][a-z0-9_-]*[$]?|\d+)$/, hint: 'a user/group name or numeric id' }));
const endpointNames = /^(health|status|attest|evidence|token|secrets|metrics|events)$/;
/** What a trust-loss trigger does (agent/daemon/consequences.ts; docs/config.md "Consequences"). */
const trustAction = oneOf(['drop-secrets', 'withhold-token', 'clear-gpu-ready', 'units'] as const);
const actionList = list(trustAction, 4);
// systemd unit names (systemd.unit(5)): a plain name with an explicit type suffix, so nothing that
// could read as a systemctl option or a glob reaches the command line.
const unitName = str({
  pattern: /^[A-Za-z0-9][A-Za-z0-9:_.@\\-]{0,200}\.(service|target|socket|timer|path|mount|scope|slice)$/,
  hint: 'a systemd unit name such as "inference.service"',
});

export const configSchema = obj({
  tee: oneOf(['auto', 'snp', 'tsm', 'azure', 'simulated'] as const),
  simulation: obj({
    gpus: int(0, 16),
    dir: absPath,
    nvml: bool(),
    ppcie: bool(),
  }),
  devices: obj({
    sevGuest: absPath,
    tsmRoot: absPath,
    tpm: absPath,
    nvmlLibrary: absPath,
  }),
  gpus: obj({
    enabled: oneOf(['auto', 'on', 'off'] as const),
    setReadyState: bool(),
  }),
  schedule: obj({
    cron: cronExpr,
    jitterSec: int(0, 3600),
    attestAtStart: bool(),
    stepTimeoutSec: int(1, 600),
    retry: obj({ initialSec: int(1, 3600), maxSec: int(1, 86400) }),
  }),
  api: obj({
    socket: absPath,
    maxRequestBytes: int(256, 1 << 20),
    requestTimeoutMs: int(100, 600_000),
    authorization: dict(
      obj({ uids: principal, gids: principal }),
      endpointNames,
      'an endpoint name (health, status, attest, evidence, token, secrets, metrics, events)',
    ),
    events: obj({
      maxSubscribers: int(1, 1024),
      maxBufferedBytes: int(4096, 16 << 20),
      heartbeatSec: int(1, 3600),
    }),
  }),
  health: obj({
    maxAgeSec: int(1, 366 * 86_400),
  }),
  consequences: obj({
    cycleFailed: actionList,
    controllerContraindicated: actionList,
    tokenExpired: actionList,
    attestationStale: actionList,
    units: obj({ stop: list(unitName, 64), start: list(unitName, 64), timeoutSec: int(1, 600) }),
    systemctl: absPath,
  }),
  controller: obj({
    url: str({ pattern: /^wss?:\/\//, hint: 'a ws:// or wss:// URL' }),
    urls: list(str({ pattern: /^wss?:\/\//, hint: 'a ws:// or wss:// URL' }), 16),
    agentId: str({ pattern: /^[A-Za-z0-9._-]{1,128}$/, hint: 'an id of letters, digits, ".", "_" or "-"' }),
    tokenFile: absPath,
    caFile: absPath,
    certFile: absPath,
    keyFile: absPath,
    tokenKey: absPath,
    insecure: bool(),
  }),
  collateral: obj({
    dir: absPath,
    online: bool(),
    timeoutMs: int(100, 120_000),
  }),
  policy: obj({
    file: absPath,
    allowDebug: bool(),
  }),
  state: obj({
    dir: absPath,
    historySize: int(1, 10_000),
  }),
  log: obj({
    level: oneOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const),
  }),
  metrics: obj({
    listen: str({ pattern: LISTEN_ADDRESS, hint: LISTEN_ADDRESS_HINT }),
  }),
});

export type TrustActionName = 'drop-secrets' | 'withhold-token' | 'clear-gpu-ready' | 'units';

type Parsed<S> = S extends Schema<infer T> ? T : never;
export type RawConfig = Parsed<typeof configSchema>;

/** Defaults: what a production install needs with an empty file. */
export const DEFAULTS = {
  tee: 'auto',
  /** ppcie: a simulated HGX protected-PCIe system (8 GPUs + 4 NVSwitches, agent/simulation/switch-sim.ts); gpus then defaults to 8. */
  simulation: { gpus: 2, dir: '/var/lib/cvm-agent/simulation', nvml: false, ppcie: false },
  devices: { sevGuest: '/dev/sev-guest', tsmRoot: '/sys/kernel/config/tsm/report', tpm: '/dev/tpmrm0', nvmlLibrary: undefined as string | undefined },
  gpus: { enabled: 'auto', setReadyState: true },
  schedule: { cron: '*/10 * * * *', jitterSec: 30, attestAtStart: true, stepTimeoutSec: 60, retry: { initialSec: 5, maxSec: 300 } },
  api: {
    socket: '/run/cvm-agent/api.sock',
    maxRequestBytes: 16 * 1024,
    requestTimeoutMs: 30_000,
    authorization: {} as Record<string, { uids?: string[]; gids?: string[] }>,
    events: { maxSubscribers: 32, maxBufferedBytes: 256 * 1024, heartbeatSec: 15 },
  },
  /** maxAgeSec unset: 2 x the schedule's longest interval + retry.maxSec + jitterSec (agent/daemon/health.ts). */
  health: { maxAgeSec: undefined as number | undefined },
  /**
   * Fail closed: losing trust locally, from the controller, or by staleness withdraws everything the
   * agent controls. An expired controller token only stops the token being served, because with
   * the reference controller's defaults (tokenTtlSec 300 < challengeIntervalSec 600) tokens lapse
   * between challenges in normal operation. docs/config.md "Consequences".
   */
  consequences: {
    cycleFailed: ['drop-secrets', 'withhold-token', 'clear-gpu-ready', 'units'] as TrustActionName[],
    controllerContraindicated: ['drop-secrets', 'withhold-token', 'clear-gpu-ready', 'units'] as TrustActionName[],
    tokenExpired: ['withhold-token'] as TrustActionName[],
    attestationStale: ['drop-secrets', 'withhold-token', 'clear-gpu-ready', 'units'] as TrustActionName[],
    units: { stop: [] as string[], start: [] as string[], timeoutSec: 60 },
    systemctl: '/usr/bin/systemctl',
  },
  controller: {
    url: undefined as string | undefined,
    /** Controller replicas, tried in turn (the first is also `url`). */
    urls: undefined as string[] | undefined,
    agentId: undefined as string | undefined,
    tokenFile: undefined as string | undefined,
    caFile: undefined as string | undefined,
    certFile: undefined as string | undefined,
    keyFile: undefined as string | undefined,
    tokenKey: undefined as string | undefined,
    insecure: false,
  },
  collateral: { dir: '/var/cache/cvm-agent', online: false, timeoutMs: 10_000 },
  policy: { file: undefined as string | undefined, allowDebug: false },
  state: { dir: '/var/lib/cvm-agent', historySize: 100 },
  log: { level: 'info' },
  /** listen unset: /metrics only on the API socket, no TCP listener. */
  metrics: { listen: undefined as string | undefined },
} as const;

type Widen<T> = T extends string
  ? string
  : T extends number
    ? number
    : T extends boolean
      ? boolean
      : T extends object
        ? { -readonly [K in keyof T]: Widen<T[K]> }
        : T;
export type Config = Widen<typeof DEFAULTS>;

function merge(defaults: Record<string, unknown>, raw: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...defaults };
  for (const [k, v] of Object.entries(raw)) {
    const d = defaults[k];
    out[k] =
      d && typeof d === 'object' && !Array.isArray(d) && v && typeof v === 'object' && !Array.isArray(v) && k !== 'authorization'
        ? merge(d as Record<string, unknown>, v as Record<string, unknown>)
        : v;
  }
  return out;
}

/** Parse and validate config text; throws ConfigError listing every problem found. */
export function parseConfig(text: string, source = 'config'): Config {
  const doc = readYaml(text, source);
  const problems = new Problems();
  const raw = configSchema.check(doc ?? {}, '', problems);
  const errors = problems.lines;
  if (raw && raw.schedule?.retry && (raw.schedule.retry.initialSec ?? 0) > (raw.schedule.retry.maxSec ?? Infinity)) {
    errors.push('schedule.retry: initialSec must not exceed maxSec');
  }
  if (raw?.metrics?.listen !== undefined) {
    const a = parseListenAddress(raw.metrics.listen);
    if ('error' in a) errors.push(`metrics.listen: ${a.error}`);
  }
  if (raw?.simulation?.ppcie === true) {
    // An HGX system is 8 GPUs and 4 NVSwitches (agent/verify/nvidia/ppcie-topology.ts HGX_PPCIE_TOPOLOGY).
    if (raw.simulation.gpus !== undefined && raw.simulation.gpus !== 8)
      errors.push(`simulation.ppcie: a simulated HGX PPCIe system has 8 GPUs; simulation.gpus is ${raw.simulation.gpus} (leave it out or set 8)`);
    if (raw.gpus?.enabled === 'off') errors.push('simulation.ppcie: the NVSwitches are attested with the GPUs, and gpus.enabled is "off"');
  }
  const c = raw?.controller;
  if (c?.url !== undefined && c.urls !== undefined) errors.push('controller.urls: set either controller.url or controller.urls (a list of replicas), not both');
  if (c?.urls !== undefined && c.urls.length === 0) errors.push('controller.urls: must list at least one URL');
  const urls = c?.urls?.length ? c.urls : c?.url !== undefined ? [c.url] : [];
  if (urls.length > 0) {
    const key = c?.urls ? 'controller.urls' : 'controller.url';
    // Fail closed at load: a link whose verdicts cannot be authenticated must not start.
    const plain = urls.some((u) => /^ws:\/\//i.test(u));
    if (plain && c?.insecure !== true)
      errors.push(`${key}: ws:// is unencrypted and unauthenticated; use wss:// (or set controller.insecure: true, for loopback tests and demos only)`);
    if (!c?.tokenKey && (plain || !c?.caFile))
      errors.push(
        "controller.tokenKey: required to authenticate verdicts (the controller's public token key, PEM or JWK/JWKS), unless the url is wss:// with controller.caFile (the key then comes in welcome)",
      );
  }
  if (errors.length > 0 || !raw) {
    throw problemsError(source, errors);
  }
  const cfg = merge(DEFAULTS as unknown as Record<string, unknown>, raw as Record<string, unknown>) as unknown as Config;
  if (cfg.simulation.ppcie && raw.simulation?.gpus === undefined) cfg.simulation = { ...cfg.simulation, gpus: 8 };
  // controller.url is the first of controller.urls: what reads controller.url (the doctor, the
  // daemon's "is a controller configured") sees the first replica.
  if (cfg.controller.urls?.length) cfg.controller.url = cfg.controller.urls[0];
  return cfg;
}
