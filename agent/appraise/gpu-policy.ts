/**
 * The NVIDIA GPU appraisal policy: what a verified GPU must additionally satisfy (CC mode on, devtools
 * off, production environment, architectures, driver/VBIOS allow-lists, OCSP tolerance).
 * "Attestation passed" alone does not mean "CC on" (reference/nvidia-gpu.md §6 item 7), so the NVML
 * CC state is checked as named checks gpu.cc.mode / gpu.cc.devtools / gpu.cc.environment.
 * Validated strictly at load: unknown keys and wrong types are ConfigErrors naming the key.
 */
import { ConfigError } from '../errors.js';
import { policyYamlToJs } from './snp-policy.js';

export type GpuArchName = 'hopper' | 'blackwell';
/** nvmlConfComputeSystemState_t.environment (§1.3): 0 UNAVAILABLE, 1 SIM, 2 PROD. */
export type CcEnvironmentName = 'unavailable' | 'sim' | 'prod';

export interface GpuPolicy {
  /** Require ccFeature == ENABLED when NVML reports the CC state. Default true. */
  requireCcMode: boolean;
  /** Accept devToolsMode == ON (debuggable GPU). Default false. */
  allowDevtools: boolean;
  /** Accepted CC environments. Default ["prod"]. */
  environments: CcEnvironmentName[];
  /** Fail when NVML's CC state is not supplied (in-guest attestation always supplies it). Default false, for offline verification. */
  requireCcState: boolean;
  /** Accepted architectures. Default both. */
  architectures: GpuArchName[];
  /** Allowed driver versions (exact strings). Empty = any that has a valid RIM. */
  driverVersions: string[];
  /** Allowed VBIOS versions (exact, upper-case). Empty = any that has a valid RIM. */
  vbiosVersions: string[];
  /** Tolerate OCSP "revoked: certificateHold" (nvtrust --allow_hold_cert). Default false. */
  allowHoldCert: boolean;
  /** Accept OCSP responses up to this many seconds past nextUpdate. Default 0. */
  ocspGraceSeconds: number;
  /** Require a nonce to be given for the freshness check (gpu.nonce fails instead of warning). Default false. */
  requireNonce: boolean;
}

export const DEFAULT_GPU_POLICY: Readonly<GpuPolicy> = Object.freeze({
  requireCcMode: true,
  allowDevtools: false,
  environments: ['prod'],
  requireCcState: false,
  architectures: ['hopper', 'blackwell'],
  driverVersions: [],
  vbiosVersions: [],
  allowHoldCert: false,
  ocspGraceSeconds: 0,
  requireNonce: false,
}) as Readonly<GpuPolicy>;

/** The keys of a flat policy file of this kind (also used to recognise one where a combined file is expected). */
export const GPU_POLICY_KEYS = [
  'requireCcMode',
  'allowDevtools',
  'environments',
  'requireCcState',
  'architectures',
  'driverVersions',
  'vbiosVersions',
  'allowHoldCert',
  'ocspGraceSeconds',
  'requireNonce',
] as const;
const typeName = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);

function bool(v: unknown, key: string): boolean {
  if (typeof v !== 'boolean') throw new ConfigError(`GPU policy key "${key}": expected true or false, got ${typeName(v)}`);
  return v;
}

function stringList<T extends string>(v: unknown, key: string, allowed?: readonly T[]): T[] {
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list)) throw new ConfigError(`GPU policy key "${key}": expected a list of strings, got ${typeName(v)}`);
  return list.map((item, i) => {
    if (typeof item !== 'string' || item.length === 0)
      throw new ConfigError(`GPU policy key "${key}[${i}]": expected a non-empty string, got ${typeName(item)}`);
    const s = allowed ? item.toLowerCase() : item;
    if (allowed && !(allowed as readonly string[]).includes(s))
      throw new ConfigError(`GPU policy key "${key}[${i}]": "${item}" is not one of ${allowed.join(', ')}`);
    return s as T;
  });
}

/** Validate an already-decoded policy object (e.g. the `gpu` section of the agent config). */
export function gpuPolicyFrom(value: unknown, prefix = ''): GpuPolicy {
  const policy: GpuPolicy = {
    ...DEFAULT_GPU_POLICY,
    environments: [...DEFAULT_GPU_POLICY.environments],
    architectures: [...DEFAULT_GPU_POLICY.architectures],
    driverVersions: [],
    vbiosVersions: [],
  };
  if (value === null || value === undefined) return policy;
  if (typeof value !== 'object' || Array.isArray(value))
    throw new ConfigError(`GPU policy${prefix ? ` "${prefix}"` : ''}: expected a mapping, got ${typeName(value)}`);
  const o = value as Record<string, unknown>;
  const k = (name: string) => `${prefix}${name}`;
  for (const key of Object.keys(o)) {
    if (!(GPU_POLICY_KEYS as readonly string[]).includes(key))
      throw new ConfigError(`GPU policy key "${k(key)}": unknown key (allowed: ${GPU_POLICY_KEYS.join(', ')})`);
  }
  for (const key of ['requireCcMode', 'allowDevtools', 'requireCcState', 'allowHoldCert', 'requireNonce'] as const) {
    if (o[key] !== undefined) policy[key] = bool(o[key], k(key));
  }
  if (o.environments !== undefined) {
    policy.environments = stringList(o.environments, k('environments'), ['unavailable', 'sim', 'prod'] as const);
    if (policy.environments.length === 0) throw new ConfigError(`GPU policy key "${k('environments')}": empty list would reject every GPU`);
  }
  if (o.architectures !== undefined) {
    policy.architectures = stringList(o.architectures, k('architectures'), ['hopper', 'blackwell'] as const);
    if (policy.architectures.length === 0) throw new ConfigError(`GPU policy key "${k('architectures')}": empty list would reject every GPU`);
  }
  if (o.driverVersions !== undefined) policy.driverVersions = stringList(o.driverVersions, k('driverVersions'));
  if (o.vbiosVersions !== undefined) policy.vbiosVersions = stringList(o.vbiosVersions, k('vbiosVersions')).map((s) => s.toUpperCase());
  if (o.ocspGraceSeconds !== undefined) {
    const v = o.ocspGraceSeconds;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 30 * 86400) {
      throw new ConfigError(`GPU policy key "${k('ocspGraceSeconds')}": expected an integer 0..${30 * 86400}, got ${typeof v === 'number' ? v : typeName(v)}`);
    }
    policy.ocspGraceSeconds = v;
  }
  return policy;
}

/** Parse a policy file (YAML or JSON): a mapping; empty or comment-only is an error (write {} for the defaults). */
export function parseGpuPolicy(text: string, source = 'GPU policy'): GpuPolicy {
  return gpuPolicyFrom(policyYamlToJs(text, source));
}
