/**
 * Appraisal of one verified GPU against a GpuPolicy (agent/appraise/gpu-policy.ts), in the spirit of
 * go-sev-guest's validate/ beside verify/: the verifier (agent/verify/nvidia/gpu-verify.ts) says what
 * the evidence proves; these rules say whether that is acceptable. Pure: the verifier's checks plus
 * the facts they established in, the appraised checks out. Never imports the verifiers; the two are
 * composed by agent/attest/verify-and-appraise.ts.
 *
 * The policy tightens checks in place (a verified architecture or version that the policy does not
 * allow; a missing nonce under requireNonce) and adds the NVML CC-state checks gpu.cc.mode /
 * gpu.cc.devtools / gpu.cc.environment right after gpu.vbios-version, because "attestation passed"
 * alone does not mean "CC on" (Dstack-TEE/dstack#778).
 */
import { fail, pass, warn, type Check } from '../formats/checks.js';
import type { GpuPolicy } from './gpu-policy.js';

/** What the verifier established about one GPU whose report parsed. */
export interface GpuFacts {
  /** Architecture from the device chain (undefined when the chain does not say). */
  arch: string | undefined;
  /** Versions from the signed report's opaque data. */
  driverVersion: string | undefined;
  vbiosVersion: string | undefined;
  /** NVML's CC state, when supplied (not signed by the GPU). */
  cc: { ccEnabled: boolean; devToolsMode: boolean; environment: string } | undefined;
  /** Whether the verifier was given a nonce to check freshness against. */
  nonceGiven: boolean;
  /** Whether the GPU chains to the simulation root (simulation explicitly enabled). */
  simulated: boolean;
}

function allowedVersion(check: Check, what: string, reported: string | undefined, allowed: readonly string[], caseInsensitive: boolean): Check {
  // Only a version the verifier accepted is appraised; its own failures (missing, NVML disagrees) stand.
  if (!check.ok || reported === undefined || allowed.length === 0) return check;
  const norm = (s: string) => (caseInsensitive ? s.toUpperCase() : s);
  return allowed.map(norm).includes(norm(reported))
    ? check
    : fail(check.name, `${what} ${reported} is not in the policy's allowed list (${allowed.join(', ')})`);
}

/** The gpu.cc.* checks for NVML's CC state (none when it is absent and the policy does not require it). */
export function gpuCcChecks(cc: GpuFacts['cc'], simulated: boolean, policy: GpuPolicy): Check[] {
  if (!cc) return policy.requireCcState ? [fail('gpu.cc.mode', 'NVML confidential-computing state not supplied, and the policy requires it')] : [];
  const checks: Check[] = [];
  checks.push(
    cc.ccEnabled || !policy.requireCcMode
      ? cc.ccEnabled
        ? pass('gpu.cc.mode', 'CC mode is on')
        : warn('gpu.cc.mode', 'CC mode is off (allowed by policy requireCcMode: false)')
      : fail('gpu.cc.mode', 'CC mode is off: the GPU does not protect guest data; enable CC mode on the host'),
  );
  checks.push(
    !cc.devToolsMode
      ? pass('gpu.cc.devtools', 'devtools mode is off')
      : policy.allowDevtools
        ? warn('gpu.cc.devtools', 'devtools mode is on (allowed by policy allowDevtools)')
        : fail('gpu.cc.devtools', 'devtools mode is on: the GPU is debuggable; disable it or set allowDevtools in the GPU policy'),
  );
  // A simulated GPU (already flagged gpu.simulated) honestly reports the "sim" environment.
  const envOk = policy.environments.includes(cc.environment as 'prod') || (simulated && cc.environment === 'sim');
  checks.push(
    envOk
      ? pass('gpu.cc.environment', `CC environment ${cc.environment}`)
      : fail('gpu.cc.environment', `CC environment "${cc.environment}" is not allowed (policy: ${policy.environments.join(', ')})`),
  );
  return checks;
}

/** The verifier's checks for one GPU (report parsed) appraised against the policy, in the verifier's order. */
export function appraiseGpuChecks(checks: readonly Check[], facts: GpuFacts, policy: GpuPolicy): Check[] {
  const out: Check[] = [];
  for (const c of checks) {
    if (c.name === 'gpu.arch' && c.ok && facts.arch !== undefined && !(policy.architectures as readonly string[]).includes(facts.arch)) {
      out.push(fail('gpu.arch', `${facts.arch} is not an allowed architecture (policy: ${policy.architectures.join(', ')})`));
    } else if (c.name === 'gpu.nonce' && !facts.nonceGiven && policy.requireNonce) {
      out.push(fail('gpu.nonce', c.detail));
    } else if (c.name === 'gpu.driver-version') {
      out.push(allowedVersion(c, 'driver', facts.driverVersion, policy.driverVersions, false));
    } else if (c.name === 'gpu.vbios-version') {
      out.push(allowedVersion(c, 'VBIOS', facts.vbiosVersion, policy.vbiosVersions, true));
      out.push(...gpuCcChecks(facts.cc, facts.simulated, policy));
    } else out.push(c);
  }
  return out;
}
