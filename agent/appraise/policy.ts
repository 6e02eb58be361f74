/**
 * The appraisal policy file (config `policy.file`): one YAML document with an id and a section per
 * device kind, each validated by its own module so errors name the exact key:
 *
 *   id: prod-2026-11
 *   snp: { minTcb: {snp: 23}, measurements: [...] }   # docs/policy-snp.md
 *   gpu: { allowDevtools: false, environments: [prod] }  # GpuPolicy keys
 */
import { ConfigError } from '../errors.js';
import { policyYamlToJs, snpPolicyFrom, type SnpPolicy } from './snp-policy.js';
import { gpuPolicyFrom, type GpuPolicy } from './gpu-policy.js';

export interface AppraisalPolicy {
  id: string;
  snp: SnpPolicy;
  gpu: GpuPolicy;
}

export const DEFAULT_POLICY_ID = 'cvm-agent/default';

export function defaultPolicy(): AppraisalPolicy {
  return { id: DEFAULT_POLICY_ID, snp: snpPolicyFrom(undefined), gpu: gpuPolicyFrom(undefined) };
}

export function parsePolicyFile(text: string, source = 'policy'): AppraisalPolicy {
  const doc = policyYamlToJs(text, source) ?? {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigError(`${source}: must be a mapping with id, snp and gpu keys`);
  const o = doc as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!['id', 'snp', 'gpu'].includes(k)) throw new ConfigError(`${source}: unknown key "${k}" (allowed: id, snp, gpu)`);
  if (o.id !== undefined && (typeof o.id !== 'string' || !/^[\w./:-]{1,128}$/.test(o.id))) throw new ConfigError(`${source}: "id" must be a short identifier`);
  return { id: (o.id as string | undefined) ?? DEFAULT_POLICY_ID, snp: snpPolicyFrom(o.snp, 'snp.'), gpu: gpuPolicyFrom(o.gpu, 'gpu.') };
}
