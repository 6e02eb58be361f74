/**
 * The appraisal policy file (config `policy.file`): one YAML document with an id and a section per
 * device kind, each validated by its own module so errors name the exact key (all with the config's
 * declarative validator, config/validate.ts):
 *
 *   id: prod-2026-11
 *   snp: { minTcb: {snp: 23}, measurements: [...] }   # docs/policy-snp.md
 *   gpu: { allowDevtools: false, environments: [prod] }  # GpuPolicy keys
 */
import { ConfigError, CvmError } from '../errors.js';
import { readBoundedText } from '../util/bounded-read.js';
import { readYamlMapping } from '../config/yaml.js';
import { at, checkOrThrowFirst, obj, str, type Schema } from '../config/validate.js';
import { SNP_HEX_KEYS, SNP_POLICY_KEYS, snpPolicyFrom, type SnpPolicy } from './snp-policy.js';
import { GPU_POLICY_KEYS, gpuPolicyFrom, type GpuPolicy } from './gpu-policy.js';

export interface AppraisalPolicy {
  id: string;
  snp: SnpPolicy;
  gpu: GpuPolicy;
}

export const DEFAULT_POLICY_ID = 'cvm-agent/default';

export function defaultPolicy(): AppraisalPolicy {
  return { id: DEFAULT_POLICY_ID, snp: snpPolicyFrom(undefined), gpu: gpuPolicyFrom(undefined) };
}

/** A device section, handed as it is to snpPolicyFrom / gpuPolicyFrom (null or absent: the defaults). */
const section: Schema<unknown> = { describe: 'a mapping', check: (v) => v };

const policyFileSchema = obj(
  { id: str({ pattern: /^[\w./:-]{1,128}$/, hint: 'a short identifier (1..128 letters, digits, "_", ".", "/", ":" or "-")' }), snp: section, gpu: section },
  { nulls: 'value' },
);

/** The policy text: a mapping (empty, comment-only, null, a scalar or a list is a ConfigError). */
export function parsePolicyFile(text: string, source = 'policy'): AppraisalPolicy {
  const o = readYamlMapping(text, source, { textKeys: SNP_HEX_KEYS });
  // The flat file `cvm-agent verify snp --policy` reads is a common mix-up: say exactly how to convert it.
  const flat = Object.keys(o).filter((k) => (SNP_POLICY_KEYS as readonly string[]).includes(k) || (GPU_POLICY_KEYS as readonly string[]).includes(k));
  if (flat.length > 0) {
    throw new ConfigError(
      `${source}: this is a flat "verify --policy" file (top-level ${flat.map((k) => `"${k}"`).join(', ')}); the daemon's policy.file needs sections: "id: <name>", then the SNP keys under "snp:" and the GPU keys under "gpu:" (docs/policy-snp.md)`,
    );
  }
  const p = checkOrThrowFirst(policyFileSchema, o, '', (path) => `${source}: key "${at(path)}"`);
  return { id: p.id ?? DEFAULT_POLICY_ID, snp: snpPolicyFrom(p.snp, 'snp.'), gpu: gpuPolicyFrom(p.gpu, 'gpu.') };
}

/**
 * Read and parse the configured policy file (config `policy.file`): the daemon at start and reload,
 * and `config check`. Bounded like every input (util/bounded-read.ts); every failure is a ConfigError
 * naming the key and the file.
 */
export async function loadPolicyFile(file: string): Promise<AppraisalPolicy> {
  const source = `policy.file ${file}`;
  let text: string;
  try {
    text = await readBoundedText(file, 'policy');
  } catch (err) {
    if (err instanceof CvmError) throw new ConfigError(`policy.file ${err.message}`, { cause: err });
    throw new ConfigError(`${source}: cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
  return parsePolicyFile(text, source);
}
