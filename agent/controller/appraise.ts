/**
 * The controller's appraisal of one evidence message: parse the bundle as hostile input, verify it
 * with the shared verifier factory (attest/verifier.ts; binding recomputed from the CHALLENGE nonce, the bundle's agent id
 * — which must be the session's — and teePubKey; every device verified against the policy), and build the EAR. Never throws for bad
 * evidence: every problem is a failed named check, so the agent is told why.
 */
import { timingSafeEqual } from 'node:crypto';
import { parseBundle, type EvidenceBundle } from '../formats/evidence-bundle.js';
import { createVerifier, type VerifyExtras } from '../attest/verifier.js';
import { buildEar, type DeviceResult, type Ear } from '../appraise/ear.js';
import { fail, pass, resultOf, statusOf, type Check, type TrustStatus } from '../formats/checks.js';
import { CvmError } from '../errors.js';
import type { SnpPolicy } from '../appraise/snp-policy.js';
import type { GpuPolicy } from '../appraise/gpu-policy.js';
import type { PublicJwk } from '../formats/nonce-binding.js';
import type { CollateralStore } from '../collateral/store.js';

/**
 * The simulated roots and collateral for one appraisal (simulation/controller-trust.ts `SimulationRoots`,
 * reached by dynamic import only when simulation.trust is true); throws when the roots are unusable.
 */
export interface SimulationTrustSource {
  trust(at: Date, needs: { gpus: boolean; switches: boolean }): Promise<Required<Pick<VerifyExtras, 'simulation' | 'cpuCollateral' | 'gpuCollateral'>>>;
}

export interface AppraisalContext {
  snpPolicy?: SnpPolicy;
  gpuPolicy?: GpuPolicy;
  /** Present only when simulation.trust is true. */
  simulation?: SimulationTrustSource;
  /** Collateral cache for real evidence (config collateral.dir), fetching only when online. */
  collateral?: { store: CollateralStore; online: boolean; timeoutMs: number };
  policyId: string;
  build: string;
}

export interface Appraisal {
  devices: DeviceResult[];
  ear: Ear;
  status: TrustStatus;
  simulated: boolean;
  /** The bundle's teePubKey, set only when every device verified (status affirming or warning). */
  verifiedKey?: PublicJwk;
  bundle?: EvidenceBundle;
}

const same = (a: Buffer, b: Buffer) => a.length === b.length && timingSafeEqual(a, b);

function publicJwkBytes(j: PublicJwk): Buffer {
  return Buffer.from(JSON.stringify([j.kty, j.crv, j.x, j.y]));
}

function single(id: string, checks: Check[], ctx: AppraisalContext): DeviceResult[] {
  return [{ id, policyId: ctx.policyId, result: resultOf(checks, undefined) }];
}

export async function appraiseEvidence(
  bundleJson: unknown,
  nonce: Buffer,
  at: Date,
  ctx: AppraisalContext,
  helloKey?: PublicJwk,
  /** The session's agent id: the bundle must be bound to it (binding.agent-id). */
  agentId?: string,
): Promise<Appraisal> {
  let devices: DeviceResult[];
  let bundle: EvidenceBundle | undefined;
  try {
    bundle = parseBundle(bundleJson);
  } catch (err) {
    if (!(err instanceof CvmError)) throw err;
    devices = single('bundle', [fail('bundle.parse', `${err.message}; send bundleToJson(EvidenceBundle)`)], ctx);
  }
  if (bundle) {
    // The same verifier factory as the daemon's; the challenge binding and simulation trust are per call.
    const extras: VerifyExtras = { expectedNonce: nonce, ...(agentId !== undefined ? { expectedAgentId: agentId } : {}) };
    let simProblem: string | undefined;
    if (ctx.simulation) {
      try {
        const t = await ctx.simulation.trust(at, { gpus: bundle.gpus.length > 0, switches: (bundle.switches?.length ?? 0) > 0 });
        extras.simulation = t.simulation;
        extras.cpuCollateral = t.cpuCollateral;
        extras.gpuCollateral = t.gpuCollateral;
      } catch (err) {
        simProblem = (err as Error).message;
      }
    }
    if (simProblem !== undefined) {
      devices = single('cpu0', [fail('controller.simulation', `simulation is trusted but its roots are unusable: ${simProblem}`)], ctx);
    } else {
      const verifier = createVerifier({
        policyId: ctx.policyId,
        ...(ctx.snpPolicy ? { snpPolicy: ctx.snpPolicy } : {}),
        ...(ctx.gpuPolicy ? { gpuPolicy: ctx.gpuPolicy } : {}),
        ...(ctx.collateral ? { collateral: ctx.collateral } : {}),
      });
      devices = (await verifier(bundle, at, extras)).devices;
      if (helloKey) {
        // The key the agent announced in hello is the one its events are signed with: it must be the attested one.
        const keyCheck = same(publicJwkBytes(helloKey), publicJwkBytes(bundle.teePubKey))
          ? pass('link.tee-key', "the bundle's teePubKey is the key the agent announced in hello")
          : fail('link.tee-key', "the bundle's teePubKey differs from the key announced in hello: evidence from another process or a swapped key");
        devices = devices.map((d) => (d.id === 'cpu0' ? { ...d, result: resultOf([keyCheck, ...d.result.checks], d.result.claims, d.result.simulated) } : d));
      }
    }
  }
  const all = devices!;
  const ear = buildEar(all, { at, nonce, build: ctx.build, includeClaims: true });
  const status = ear['ear.status'];
  const simulated = all.some((d) => d.result.simulated);
  const appraisal: Appraisal = { devices: all, ear, status, simulated };
  if (bundle) appraisal.bundle = bundle;
  if (bundle && (status === 'affirming' || status === 'warning') && all.every((d) => d.result.ok)) appraisal.verifiedKey = bundle.teePubKey;
  return appraisal;
}

/** Per-device status, for the registry and the fleet page. */
export function deviceStatuses(a: Appraisal): Record<string, TrustStatus> {
  return Object.fromEntries(a.devices.map((d) => [d.id, statusOf(d.result.checks)]));
}
