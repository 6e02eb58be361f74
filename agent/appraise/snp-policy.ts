/**
 * The SEV-SNP appraisal policy: what a verified report must additionally satisfy (debug, migration
 * agent, SMT, VMPL, minimum TCB, allowed measurements, host data, ID/author keys, firmware, guest SVN).
 * Validated strictly at load: unknown keys and wrong types are ConfigErrors naming the key, so a typo
 * can never silently disable a check. Keys are documented in docs/policy-snp.md.
 */
import { visit, isScalar, isSeq, type Scalar } from 'yaml';
import { ConfigError } from '../errors.js';
import { parseYamlDocument, requireMapping, yamlDocumentToJs } from '../config/yaml.js';

export interface SnpMinTcb {
  bootloader?: number;
  tee?: number;
  snp?: number;
  microcode?: number;
  /** Turin only. */
  fmc?: number;
}

export interface FirmwareVersionMin {
  major: number;
  minor: number;
  build?: number;
}

export interface SnpPolicy {
  /** Accept guests launched with POLICY.DEBUG = 1 (host can read guest memory). Default false. */
  allowDebug: boolean;
  /** Accept POLICY.MIGRATE_MA = 1 (a migration agent may be attached). Default false. */
  allowMigrationAgent: boolean;
  /** Accept SMT allowed by the guest policy / enabled on the platform. Default true. */
  allowSmt: boolean;
  /** Accepted VMPLs of the requesting context. Default [0]. */
  vmpl: number[];
  /** Minimum REPORTED_TCB SPLs, per component. Default: none. */
  minTcb: SnpMinTcb;
  /** Allowed launch MEASUREMENTs, lowercase hex (48 bytes each). Empty = any. */
  measurements: string[];
  /** Required HOST_DATA, lowercase hex (32 bytes). Undefined = any. */
  hostData?: string;
  /** Allowed ID_KEY_DIGESTs, lowercase hex (48 bytes each). Empty = any. */
  idKeyDigests: string[];
  /** Allowed AUTHOR_KEY_DIGESTs, lowercase hex (48 bytes each). Empty = any; non-empty also requires AUTHOR_KEY_EN. */
  authorKeyDigests: string[];
  /** Minimum CURRENT firmware version. Undefined = any. */
  minFirmware?: FirmwareVersionMin;
  /** Minimum GUEST_SVN. Default 0. */
  minGuestSvn: number;
}

export const DEFAULT_SNP_POLICY: Readonly<SnpPolicy> = Object.freeze({
  allowDebug: false,
  allowMigrationAgent: false,
  allowSmt: true,
  vmpl: [0],
  minTcb: {},
  measurements: [],
  idKeyDigests: [],
  authorKeyDigests: [],
  minGuestSvn: 0,
});

/** The keys of a flat policy file of this kind (also used to recognise one where a combined file is expected). */
export const SNP_POLICY_KEYS = [
  'allowDebug',
  'allowMigrationAgent',
  'allowSmt',
  'vmpl',
  'minTcb',
  'measurements',
  'hostData',
  'idKeyDigests',
  'authorKeyDigests',
  'minFirmware',
  'minGuestSvn',
] as const;
const TCB_KEYS = ['bootloader', 'tee', 'snp', 'microcode', 'fmc'] as const;

const typeName = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);

function bool(v: unknown, key: string): boolean {
  if (typeof v !== 'boolean') throw new ConfigError(`SNP policy key "${key}": expected true or false, got ${typeName(v)}`);
  return v;
}

function int(v: unknown, key: string, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) {
    throw new ConfigError(`SNP policy key "${key}": expected an integer 0..${max}, got ${typeof v === 'number' ? v : typeName(v)}`);
  }
  return v;
}

function hex(v: unknown, key: string, bytes: number): string {
  if (typeof v !== 'string') throw new ConfigError(`SNP policy key "${key}": expected a hex string of ${bytes} bytes, got ${typeName(v)}`);
  const s = v.trim().replace(/^0x/i, '').toLowerCase();
  if (!/^[0-9a-f]*$/.test(s) || s.length !== bytes * 2) {
    throw new ConfigError(`SNP policy key "${key}": expected ${bytes * 2} hex digits (${bytes} bytes), got "${v}"`);
  }
  return s;
}

function hexList(v: unknown, key: string, bytes: number): string[] {
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list)) throw new ConfigError(`SNP policy key "${key}": expected a list of hex strings, got ${typeName(v)}`);
  return list.map((item, i) => hex(item, `${key}[${i}]`, bytes));
}

function object(v: unknown, key: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ConfigError(`SNP policy key "${key}": expected a mapping, got ${typeName(v)}`);
  return v as Record<string, unknown>;
}

function firmware(v: unknown, key: string): FirmwareVersionMin {
  if (typeof v === 'string') {
    const m = v.trim().match(/^(\d{1,3})\.(\d{1,3})(?:\.(\d{1,3}))?$/);
    if (!m) throw new ConfigError(`SNP policy key "${key}": expected "major.minor" or "major.minor.build", got "${v}"`);
    const parts = { major: int(Number(m[1]), key, 255), minor: int(Number(m[2]), key, 255) };
    return m[3] === undefined ? parts : { ...parts, build: int(Number(m[3]), key, 255) };
  }
  const o = object(v, key);
  for (const k of Object.keys(o))
    if (!['major', 'minor', 'build'].includes(k)) throw new ConfigError(`SNP policy key "${key}.${k}": unknown key (allowed: major, minor, build)`);
  if (o.major === undefined || o.minor === undefined) throw new ConfigError(`SNP policy key "${key}": needs major and minor`);
  const parts = { major: int(o.major, `${key}.major`, 255), minor: int(o.minor, `${key}.minor`, 255) };
  return o.build === undefined ? parts : { ...parts, build: int(o.build, `${key}.build`, 255) };
}

/** Validate an already-decoded policy object (e.g. the `snp` section of the agent config). */
export function snpPolicyFrom(value: unknown, prefix = ''): SnpPolicy {
  if (value === null || value === undefined) return { ...DEFAULT_SNP_POLICY, vmpl: [0], minTcb: {}, measurements: [], idKeyDigests: [], authorKeyDigests: [] };
  const o = object(value, prefix || '(top level)');
  const k = (name: string) => `${prefix}${name}`;
  for (const key of Object.keys(o)) {
    if (!(SNP_POLICY_KEYS as readonly string[]).includes(key))
      throw new ConfigError(`SNP policy key "${k(key)}": unknown key (allowed: ${SNP_POLICY_KEYS.join(', ')})`);
  }
  const policy: SnpPolicy = {
    allowDebug: o.allowDebug === undefined ? DEFAULT_SNP_POLICY.allowDebug : bool(o.allowDebug, k('allowDebug')),
    allowMigrationAgent: o.allowMigrationAgent === undefined ? DEFAULT_SNP_POLICY.allowMigrationAgent : bool(o.allowMigrationAgent, k('allowMigrationAgent')),
    allowSmt: o.allowSmt === undefined ? DEFAULT_SNP_POLICY.allowSmt : bool(o.allowSmt, k('allowSmt')),
    vmpl: [0],
    minTcb: {},
    measurements: o.measurements === undefined ? [] : hexList(o.measurements, k('measurements'), 48),
    idKeyDigests: o.idKeyDigests === undefined ? [] : hexList(o.idKeyDigests, k('idKeyDigests'), 48),
    authorKeyDigests: o.authorKeyDigests === undefined ? [] : hexList(o.authorKeyDigests, k('authorKeyDigests'), 48),
    minGuestSvn: o.minGuestSvn === undefined ? 0 : int(o.minGuestSvn, k('minGuestSvn'), 0xffffffff),
  };
  if (o.vmpl !== undefined) {
    const list = Array.isArray(o.vmpl) ? o.vmpl : [o.vmpl];
    if (list.length === 0) throw new ConfigError(`SNP policy key "${k('vmpl')}": empty list would reject every report`);
    policy.vmpl = [...new Set(list.map((v, i) => int(v, Array.isArray(o.vmpl) ? `${k('vmpl')}[${i}]` : k('vmpl'), 3)))].sort();
  }
  if (o.minTcb !== undefined) {
    const t = object(o.minTcb, k('minTcb'));
    for (const key of Object.keys(t)) {
      if (!(TCB_KEYS as readonly string[]).includes(key))
        throw new ConfigError(`SNP policy key "${k('minTcb')}.${key}": unknown key (allowed: ${TCB_KEYS.join(', ')})`);
      policy.minTcb[key as (typeof TCB_KEYS)[number]] = int(t[key], `${k('minTcb')}.${key}`, 255);
    }
  }
  if (o.hostData !== undefined) policy.hostData = hex(o.hostData, k('hostData'), 32);
  if (o.minFirmware !== undefined) policy.minFirmware = firmware(o.minFirmware, k('minFirmware'));
  return policy;
}

const HEX_KEYS = new Set(['measurements', 'hostData', 'idKeyDigests', 'authorKeyDigests']);

/**
 * YAML resolves unquoted digests like 0xab.. or 0123.. to numbers (losing digits). For the hex keys,
 * take plain scalars as their source text so an unquoted digest means what it says.
 */
function keepHexAsText(scalar: Scalar): void {
  if (typeof scalar.value !== 'string' && typeof scalar.source === 'string') scalar.value = scalar.source;
}

/**
 * Parse a policy file (YAML or JSON; JSON is YAML). The file must hold a mapping: an empty or
 * comment-only file is an error, not "no allow-lists" (write {} for every default).
 */
export function parseSnpPolicy(text: string, source = 'SNP policy'): SnpPolicy {
  return snpPolicyFrom(policyYamlToJs(text, source));
}

/**
 * YAML/JSON policy text to a plain JS mapping, with digest-valued keys kept as their source text (see
 * keepHexAsText). Size, aliases and YAML errors are bounded as for the config (config/yaml.ts), and
 * anything but a mapping is a ConfigError. Shared by the SNP, GPU and combined policy files.
 */
export function policyYamlToJs(text: string, what: string): Record<string, unknown> {
  const doc = parseYamlDocument(text, what, { keepSourceTokens: true });
  visit(doc, {
    Pair(_, pair) {
      if (!isScalar(pair.key) || !HEX_KEYS.has(String(pair.key.value))) return;
      if (isScalar(pair.value)) keepHexAsText(pair.value);
      else if (isSeq(pair.value)) for (const item of pair.value.items) if (isScalar(item)) keepHexAsText(item);
    },
  });
  return requireMapping(doc, yamlDocumentToJs(doc, what), what);
}
