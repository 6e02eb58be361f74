/**
 * The SEV-SNP appraisal policy: what a verified report must additionally satisfy (debug, migration
 * agent, SMT, VMPL, minimum TCB, allowed measurements, host data, ID/author keys, firmware, guest SVN).
 * Validated strictly at load with the config's declarative validator (config/validate.ts): unknown
 * keys, wrong types and empty keys are ConfigErrors naming the key, so a typo can never silently
 * disable a check. Keys are documented in docs/policy-snp.md.
 */
import { readYamlMapping } from '../config/yaml.js';
import { at, bool, checkOrThrowFirst, int, list, obj, typeName, type Schema } from '../config/validate.js';

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
/** Policy messages name the kind and the key: `SNP policy key "minTcb.snp": must be ...`. */
export const policyKey =
  (kind: string) =>
  (path: string): string =>
    `${kind} policy key "${at(path)}"`;

/** Policy lists have no length cap of their own: the file's size cap bounds them. */
export const UNCAPPED = Number.POSITIVE_INFINITY;

/** A digest or host data: hex of exactly `bytes` bytes, "0x" and case tolerated, kept as lowercase hex. */
const hex = (bytes: number): Schema<string> => ({
  describe: `${bytes * 2} hex digits (${bytes} bytes)`,
  check(v, path, problems) {
    const s = typeof v === 'string' ? v.trim().replace(/^0x/i, '').toLowerCase() : undefined;
    if (s === undefined || !/^[0-9a-f]*$/.test(s) || s.length !== bytes * 2) {
      problems.add(path, `must be ${this.describe}, got ${typeof v === 'string' ? `"${v}"` : typeName(v)}`);
      return undefined;
    }
    return s;
  },
});

/** Allow-lists of digests: a list, or one digest standing for a one-item list. */
const hexList = (bytes: number) => list(hex(bytes), UNCAPPED, { single: 'string', describe: 'a list of hex strings' });

const spl = int(0, 255);
const firmwareParts = obj({ major: spl, minor: spl, build: spl }, { nulls: 'value' });

/** Minimum firmware: "major.minor[.build]" or a mapping with major, minor and optionally build. */
const firmware: Schema<FirmwareVersionMin> = {
  describe: '"major.minor" or "major.minor.build"',
  check(v, path, problems) {
    let parts: { major?: number; minor?: number; build?: number } | undefined;
    if (typeof v === 'string') {
      const m = v.trim().match(/^(\d{1,3})\.(\d{1,3})(?:\.(\d{1,3}))?$/);
      if (!m) {
        problems.add(path, `must be ${this.describe}, got "${v}"`);
        return undefined;
      }
      const [major, minor, build] = [m[1], m[2], m[3]].map((x) => (x === undefined ? undefined : spl.check(Number(x), path, problems)));
      if (major === undefined || minor === undefined || (m[3] !== undefined && build === undefined)) return undefined;
      parts = { major, minor, ...(build === undefined ? {} : { build }) };
    } else {
      parts = firmwareParts.check(v, path, problems);
      if (!parts) return undefined;
      const o = v as Record<string, unknown>;
      if (!Object.hasOwn(o, 'major') || !Object.hasOwn(o, 'minor') || o.major === undefined || o.minor === undefined) {
        problems.add(path, 'needs major and minor');
        return undefined;
      }
    }
    if (parts.major === undefined || parts.minor === undefined) return undefined;
    return parts.build === undefined ? { major: parts.major, minor: parts.minor } : { major: parts.major, minor: parts.minor, build: parts.build };
  },
};

/** The policy's keys and their checks; null is a value here (an empty key must not silently mean "any"). */
const snpPolicySchema = obj(
  {
    allowDebug: bool(),
    allowMigrationAgent: bool(),
    allowSmt: bool(),
    vmpl: list(int(0, 3), UNCAPPED, { single: 'item', nonEmpty: 'empty list would reject every report' }),
    minTcb: obj({ bootloader: spl, tee: spl, snp: spl, microcode: spl, fmc: spl }, { nulls: 'value' }),
    measurements: hexList(48),
    hostData: hex(32),
    idKeyDigests: hexList(48),
    authorKeyDigests: hexList(48),
    minFirmware: firmware,
    minGuestSvn: int(0, 0xffffffff),
  } satisfies Record<(typeof SNP_POLICY_KEYS)[number], Schema<unknown>>,
  { nulls: 'value' },
);

/** Validate an already-decoded policy object (e.g. the `snp` section of the policy file; prefix "snp."). */
export function snpPolicyFrom(value: unknown, prefix = ''): SnpPolicy {
  const policy: SnpPolicy = { ...DEFAULT_SNP_POLICY, vmpl: [0], minTcb: {}, measurements: [], idKeyDigests: [], authorKeyDigests: [] };
  if (value === null || value === undefined) return policy;
  const o = checkOrThrowFirst(snpPolicySchema, value, prefix.replace(/\.$/, ''), policyKey('SNP'));
  if (o.allowDebug !== undefined) policy.allowDebug = o.allowDebug;
  if (o.allowMigrationAgent !== undefined) policy.allowMigrationAgent = o.allowMigrationAgent;
  if (o.allowSmt !== undefined) policy.allowSmt = o.allowSmt;
  if (o.vmpl !== undefined) policy.vmpl = [...new Set(o.vmpl)].sort();
  if (o.minTcb !== undefined) policy.minTcb = o.minTcb;
  if (o.measurements !== undefined) policy.measurements = o.measurements;
  if (o.idKeyDigests !== undefined) policy.idKeyDigests = o.idKeyDigests;
  if (o.authorKeyDigests !== undefined) policy.authorKeyDigests = o.authorKeyDigests;
  if (o.minGuestSvn !== undefined) policy.minGuestSvn = o.minGuestSvn;
  if (o.hostData !== undefined) policy.hostData = o.hostData;
  if (o.minFirmware !== undefined) policy.minFirmware = o.minFirmware;
  return policy;
}

/** Keys whose values are digests: read as their YAML source text (config/yaml.ts readYamlMapping). */
export const SNP_HEX_KEYS: ReadonlySet<string> = new Set(['measurements', 'hostData', 'idKeyDigests', 'authorKeyDigests']);

/**
 * Parse a policy file (YAML or JSON; JSON is YAML). The file must hold a mapping: an empty or
 * comment-only file is an error, not "no allow-lists" (write {} for every default).
 */
export function parseSnpPolicy(text: string, source = 'SNP policy'): SnpPolicy {
  return snpPolicyFrom(readYamlMapping(text, source, { textKeys: SNP_HEX_KEYS }));
}
