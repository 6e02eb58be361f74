/**
 * The NVIDIA GPU appraisal policy: what a verified GPU must additionally satisfy (CC mode on, devtools
 * off, production environment, architectures, driver/VBIOS allow-lists, OCSP tolerance).
 * "Attestation passed" alone does not mean "CC on" (Dstack-TEE/dstack#778), so the NVML
 * CC state is checked as named checks gpu.cc.mode / gpu.cc.devtools / gpu.cc.environment.
 * Validated strictly at load with the config's declarative validator (config/validate.ts): unknown
 * keys, wrong types and empty keys are ConfigErrors naming the key.
 */
import { readYamlMapping } from '../config/yaml.js';
import { bool, checkOrThrowFirst, int, list, obj, str, typeName, type Schema } from '../config/validate.js';
import { policyKey, UNCAPPED } from './snp-policy.js';

export type GpuArchName = 'hopper' | 'blackwell';
/** nvmlConfComputeSystemState_t.environment (nvml.h NVML_CC_SYSTEM_ENVIRONMENT_*): 0 UNAVAILABLE, 1 SIM, 2 PROD. */
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
/** A name from a fixed set, case-insensitive, kept lowercase. */
const lowerOneOf = <const V extends string>(values: readonly V[]): Schema<V> => ({
  describe: `one of ${values.join(', ')}`,
  check(v, path, problems) {
    if (typeof v !== 'string' || v.length === 0) {
      problems.add(path, `must be a non-empty string, got ${typeName(v)}`);
      return undefined;
    }
    const s = v.toLowerCase();
    if (!(values as readonly string[]).includes(s)) {
      problems.add(path, `"${v}" is not ${this.describe}`);
      return undefined;
    }
    return s as V;
  },
});

/** A list of strings, or one string standing for a one-item list. */
const strings = <T>(item: Schema<T>, nonEmpty?: string) =>
  list(item, UNCAPPED, { single: 'string', describe: 'a list of strings', ...(nonEmpty ? { nonEmpty } : {}) });

/** The policy's keys and their checks; null is a value here (an empty key must not silently mean "any"). */
const gpuPolicySchema = obj(
  {
    requireCcMode: bool(),
    allowDevtools: bool(),
    environments: strings(lowerOneOf(['unavailable', 'sim', 'prod'] as const), 'empty list would reject every GPU'),
    requireCcState: bool(),
    architectures: strings(lowerOneOf(['hopper', 'blackwell'] as const), 'empty list would reject every GPU'),
    driverVersions: strings(str({ hint: 'a non-empty string' })),
    vbiosVersions: strings(str({ hint: 'a non-empty string' })),
    allowHoldCert: bool(),
    ocspGraceSeconds: int(0, 30 * 86400),
    requireNonce: bool(),
  } satisfies Record<(typeof GPU_POLICY_KEYS)[number], Schema<unknown>>,
  { nulls: 'value' },
);

/** Validate an already-decoded policy object (e.g. the `gpu` section of the policy file; prefix "gpu."). */
export function gpuPolicyFrom(value: unknown, prefix = ''): GpuPolicy {
  const policy: GpuPolicy = {
    ...DEFAULT_GPU_POLICY,
    environments: [...DEFAULT_GPU_POLICY.environments],
    architectures: [...DEFAULT_GPU_POLICY.architectures],
    driverVersions: [],
    vbiosVersions: [],
  };
  if (value === null || value === undefined) return policy;
  const o = checkOrThrowFirst(gpuPolicySchema, value, prefix.replace(/\.$/, ''), policyKey('GPU'));
  for (const key of ['requireCcMode', 'allowDevtools', 'requireCcState', 'allowHoldCert', 'requireNonce'] as const) {
    if (o[key] !== undefined) policy[key] = o[key];
  }
  if (o.environments !== undefined) policy.environments = o.environments;
  if (o.architectures !== undefined) policy.architectures = o.architectures;
  if (o.driverVersions !== undefined) policy.driverVersions = o.driverVersions;
  if (o.vbiosVersions !== undefined) policy.vbiosVersions = o.vbiosVersions.map((s) => s.toUpperCase());
  if (o.ocspGraceSeconds !== undefined) policy.ocspGraceSeconds = o.ocspGraceSeconds;
  return policy;
}

/** Parse a policy file (YAML or JSON): a mapping; empty or comment-only is an error (write {} for the defaults). */
export function parseGpuPolicy(text: string, source = 'GPU policy'): GpuPolicy {
  return gpuPolicyFrom(readYamlMapping(text, source));
}
