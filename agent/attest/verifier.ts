/**
 * The one verifier factory, used by the daemon (its own evidence, every cycle) and by the controller
 * (an agent's evidence, per challenge): policies and policy id fixed at creation; collateral from the
 * cache (fetched only when online) for real evidence; per-call extras (the challenge binding, the
 * simulation trust of the moment) applied last. Then verifyBundle, in this thread or, for the daemon,
 * in its verification worker (`verifyWith`).
 */
import type { CollateralStore } from '../collateral/store.js';
import type { GpuPolicy } from '../appraise/gpu-policy.js';
import type { SnpPolicy } from '../appraise/snp-policy.js';
import type { EvidenceBundle } from '../formats/evidence-bundle.js';
import type { BundleResult, BundleVerifyOptions } from './verify-bundle.js';

export interface VerifierConfig {
  snpPolicy?: SnpPolicy;
  gpuPolicy?: GpuPolicy;
  /** The policy id reported in the EAR (verifyBundle's default when absent). */
  policyId?: string;
  /** Collateral for real (non-simulated) bundles: the cache, and whether it may fetch. */
  collateral?: { store: CollateralStore; online: boolean; timeoutMs: number };
  /**
   * What runs verifyBundle once the options are formed: the daemon hands it to its verification worker
   * (attest/verify-thread.ts); default verifyBundle in this thread (the controller, the CLI).
   */
  verifyWith?: (bundle: EvidenceBundle, opts: BundleVerifyOptions) => BundleResult | Promise<BundleResult>;
}

/** Options that vary per verification (binding expectations, simulation trust at `at`). */
export type VerifyExtras = Partial<Omit<BundleVerifyOptions, 'at' | 'snpPolicy' | 'gpuPolicy' | 'policyId'>>;

export type BundleVerifier = (bundle: EvidenceBundle, at: Date, extras?: VerifyExtras) => Promise<BundleResult>;

export function createVerifier(c: VerifierConfig): BundleVerifier {
  return async (bundle, at, extras = {}) => {
    let opts: BundleVerifyOptions = { at };
    if (c.policyId !== undefined) opts.policyId = c.policyId;
    if (c.snpPolicy) opts.snpPolicy = c.snpPolicy;
    if (c.gpuPolicy) opts.gpuPolicy = c.gpuPolicy;
    if (c.collateral && !bundle.simulated) {
      const { gatherCollateral } = await resolveModule();
      opts = { ...opts, ...(await gatherCollateral(c.collateral.store, bundle, { at, online: c.collateral.online, timeoutMs: c.collateral.timeoutMs })) };
    }
    return (c.verifyWith ?? (await inThread()))(bundle, { ...opts, ...extras });
  };
}

/**
 * verifyBundle for verification in this thread, loaded on first use: a daemon that verifies in its
 * worker (`verifyWith`) never loads the verifiers (signatures, chains, RIM XML) into its main thread.
 * Likewise collateral/resolve.ts (it parses reports and chains to name the collateral they need) is
 * imported only for real evidence with a collateral cache, never for simulated evidence.
 */
async function inThread(): Promise<typeof import('./verify-bundle.js').verifyBundle> {
  return (await verifyBundleModule()).verifyBundle;
}

/**
 * A module imported once: a dynamic import() of a loaded module still resolves its specifier on every
 * call, through the loader hooks when there are any (under tsx, up to ~0.4 ms of a controller's verdict).
 * A failed import is not kept, so the next call tries again.
 */
function importOnce<T>(load: () => Promise<T>): () => Promise<T> {
  let loading: Promise<T> | undefined;
  return () => {
    loading ??= load().catch((err: unknown) => {
      loading = undefined;
      throw err;
    });
    return loading;
  };
}

const verifyBundleModule = importOnce(() => import('./verify-bundle.js'));
const resolveModule = importOnce(() => import('../collateral/resolve.js'));
