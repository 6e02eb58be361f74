/**
 * How usable a cached item is at a given time, so results can say so instead of silently using old
 * collateral (docs/collateral.md "Freshness"; trustee#1142 shows an offline path that silently skips CRLs).
 *   expired: outside a validity date the object itself carries (certificate notBefore/notAfter, CRL or
 *            OCSP nextUpdate; OCSP without nextUpdate: thisUpdate + 1 h as NVIDIA's SDK cache TTL,
 *            attestation-sdk nv_ocsp.h); for a RIM, its signer chain's window.
 *   stale:   still inside its dates but older than the configured maximum age for its kind.
 *   fresh:   otherwise.
 * Pure: metadata + time in.
 */
import { DEFAULT_NEXT_UPDATE_TTL_SECONDS } from '../verify/nvidia/ocsp-check.js';
import type { CollateralKind, CollateralMeta, Freshness } from './collateral-types.js';

export interface FreshnessOptions {
  /** Maximum age since fetchedAt, in ms: one number for every kind, or per kind. Absent: no age limit. */
  maxAgeMs?: number | Partial<Record<CollateralKind, number>>;
}

const d = (s: string | undefined): Date | undefined => (s === undefined || Number.isNaN(Date.parse(s)) ? undefined : new Date(s));

function maxAgeFor(kind: CollateralKind, opts: FreshnessOptions): number | undefined {
  const m = opts.maxAgeMs;
  return typeof m === 'number' ? m : m?.[kind];
}

function human(ms: number): string {
  const h = ms / 3_600_000;
  return h >= 48 ? `${Math.floor(h / 24)} days` : h >= 1 ? `${Math.floor(h)} h` : `${Math.max(0, Math.floor(ms / 60_000))} min`;
}

export function freshness(
  meta: Pick<CollateralMeta, 'kind' | 'fetchedAt' | 'notBefore' | 'notAfter' | 'thisUpdate' | 'nextUpdate'>,
  at: Date,
  opts: FreshnessOptions = {},
): Freshness {
  const t = at.getTime();
  const what = meta.kind === 'rim' ? 'RIM signer chain' : meta.kind === 'crl' ? 'CRL' : meta.kind === 'ocsp' ? 'OCSP response' : 'certificate';
  const refetch = 'fetch a current one or import it with "cvm-agent collateral import FILE"';
  const notBefore = d(meta.notBefore);
  const notAfter = d(meta.notAfter);
  if (notBefore && t < notBefore.getTime()) return { state: 'expired', reason: `${what} is not valid before ${notBefore.toISOString()}` };
  if (notAfter && t > notAfter.getTime()) return { state: 'expired', reason: `${what} expired at ${notAfter.toISOString()}; ${refetch}` };
  const thisUpdate = d(meta.thisUpdate);
  let nextUpdate = d(meta.nextUpdate);
  if (!nextUpdate && meta.kind === 'ocsp' && thisUpdate) nextUpdate = new Date(thisUpdate.getTime() + DEFAULT_NEXT_UPDATE_TTL_SECONDS * 1000);
  if (thisUpdate && t < thisUpdate.getTime()) return { state: 'expired', reason: `${what} thisUpdate ${thisUpdate.toISOString()} is in the future` };
  if (nextUpdate && t > nextUpdate.getTime()) return { state: 'expired', reason: `${what} passed its nextUpdate ${nextUpdate.toISOString()}; ${refetch}` };
  const fetchedAt = d(meta.fetchedAt);
  const maxAge = maxAgeFor(meta.kind, opts);
  if (maxAge !== undefined && fetchedAt && t - fetchedAt.getTime() > maxAge) {
    return {
      state: 'stale',
      reason: `fetched ${human(t - fetchedAt.getTime())} ago (${fetchedAt.toISOString()}), older than the ${human(maxAge)} limit; ${refetch}`,
    };
  }
  const until = nextUpdate ?? notAfter;
  return { state: 'fresh', reason: until ? `valid until ${until.toISOString()}` : 'no expiry date' };
}
