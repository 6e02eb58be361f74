/**
 * EAR (EAT Attestation Results, profile tag:github.com,2023:veraison/ear) from per-device verification
 * results. Pure: results + time + nonce in, an EAR object out. Signing (agent key or controller key)
 * is the caller's business.
 *
 * Trust-vector values follow AR4SI / EAR (draft-ietf-rats-ar4si; draft-fv-rats-ear; veraison/ear trustclaim.go): 0 no claim, 2 affirming,
 * 32 warning, 96 contraindicated, 99 cryptographic validation failed.
 */
import type { Check, TrustStatus, VerificationResult } from '../formats/checks.js';

export const EAR_PROFILE = 'tag:github.com,2023:veraison/ear';

export type TrustDimension = 'instance-identity' | 'configuration' | 'executables' | 'hardware';

export interface EarSubmod {
  'ear.status': TrustStatus;
  'ear.trustworthiness-vector': Partial<Record<TrustDimension, number>>;
  'ear.appraisal-policy-id': string;
  /** Our extension: the named checks with their reasons, so a relying party sees why. */
  'cvm.checks': Check[];
  'cvm.simulated'?: true;
  'cvm.claims'?: unknown;
  /**
   * Our extension: the device (or its library) was unavailable, so there is no evidence to appraise.
   * The submod's status is then "none" (AR4SI: no claim can be made), never "contraindicated",
   * which would say the evidence showed a bad state.
   */
  'cvm.error'?: { code: string; message: string };
}

export interface Ear {
  eat_profile: typeof EAR_PROFILE;
  iat: number;
  eat_nonce?: string;
  'ear.verifier-id': { developer: string; build: string };
  /** Overall tier: the worst over all submods. */
  'ear.status': TrustStatus;
  submods: Record<string, EarSubmod>;
}

const TIER: Record<TrustStatus, number> = { none: 0, affirming: 2, warning: 32, contraindicated: 96 };

/** Which trust dimension a named check speaks to; by the check-name segments we use everywhere. */
export function dimensionOf(checkName: string): TrustDimension {
  const n = checkName.toLowerCase();
  if (/(measurement|rim|\.executables)/.test(n)) return 'executables';
  if (/(policy|\.cc\.|debug|vmpl|smt|migration|host-data|devtools|environment)/.test(n)) return 'configuration';
  if (/(tcb|firmware|revocation|driver-version|vbios-version|microcode)/.test(n)) return 'hardware';
  return 'instance-identity';
}

const isCryptoCheck = (name: string) => /(signature|chain|\.root)/.test(name);

export function trustVector(checks: readonly Check[]): Partial<Record<TrustDimension, number>> {
  const vector: Partial<Record<TrustDimension, number>> = {};
  for (const c of checks) {
    const dim = dimensionOf(c.name);
    const value = !c.ok ? (isCryptoCheck(c.name) ? 99 : 96) : c.warning ? 32 : 2;
    vector[dim] = Math.max(vector[dim] ?? 0, value);
  }
  return vector;
}

/**
 * The overall tier. By AR4SI value "none" (0) sorts below "affirming", but a device that could not be
 * appraised must never let the whole attester read as affirming: contraindicated wins, then none,
 * then warning.
 */
function worst(statuses: TrustStatus[]): TrustStatus {
  if (statuses.length === 0) return 'none';
  if (statuses.includes('contraindicated')) return 'contraindicated';
  if (statuses.includes('none')) return 'none';
  return statuses.reduce((a, b) => (TIER[b] > TIER[a] ? b : a));
}

export interface DeviceResult {
  /** "cpu0", "gpu0", ... */
  id: string;
  policyId: string;
  result: VerificationResult<unknown>;
  /** Set when the device or its library was unavailable (result.status is then "none"). */
  error?: { code: string; message: string };
}

export function buildEar(devices: readonly DeviceResult[], opts: { at: Date; nonce?: Uint8Array; build: string; includeClaims?: boolean }): Ear {
  const submods: Record<string, EarSubmod> = {};
  for (const d of devices) {
    const submod: EarSubmod = {
      'ear.status': d.result.status,
      // No evidence, no claim: an unavailable device has an empty trust vector.
      'ear.trustworthiness-vector': d.error ? {} : trustVector(d.result.checks),
      'ear.appraisal-policy-id': d.policyId,
      'cvm.checks': d.result.checks,
    };
    if (d.result.simulated) submod['cvm.simulated'] = true;
    if (opts.includeClaims) submod['cvm.claims'] = d.result.claims;
    if (d.error) submod['cvm.error'] = { code: d.error.code, message: d.error.message };
    submods[d.id] = submod;
  }
  const ear: Ear = {
    eat_profile: EAR_PROFILE,
    iat: Math.floor(opts.at.getTime() / 1000),
    'ear.verifier-id': { developer: 'cvm-agent', build: opts.build },
    'ear.status': worst(devices.map((d) => d.result.status)),
    submods,
  };
  if (opts.nonce) ear.eat_nonce = Buffer.from(opts.nonce).toString('base64url');
  return ear;
}
