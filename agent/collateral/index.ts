/** Collateral layer: on-disk cache, classification, freshness, export bundles and optional online fetchers. */
export type * from './collateral-types.js';
export { COLLATERAL_KINDS } from './collateral-types.js';
export { keyPath, checkKey, describeKey, sameKey } from './keys.js';
export { classify, derToPem, MAX_ITEM_BYTES, type ClassifyHint } from './classify.js';
export { freshness, type FreshnessOptions } from './freshness.js';
export { buildBundle, parseBundle, BUNDLE_FORMAT } from './bundle.js';
export {
  CollateralStore,
  defaultCollateralDir,
  keyFromPath,
  DEFAULT_COLLATERAL_DIR,
  META_SUFFIX,
  type Fetched,
  type GetOrFetchOptions,
  type CollateralResult,
  type ListResult,
  type Origin,
} from './store.js';
export { httpRequest, CollateralFetchError, parseRetryAfter, type HttpOptions, type FetchFailure } from './fetch/http.js';
export { fetchVcek, fetchCertChain, fetchCrl, vcekPath, KDS_BASE_URL, type KdsOptions } from './fetch/kds.js';
export { fetchImdsCertification, parseImdsCertification, IMDS_BASE_URL, type ImdsOptions } from './fetch/imds.js';
export { fetchRim, RIM_SERVICE_BASE_URL, type RimServiceOptions } from './fetch/rim.js';
export { fetchOcsp, buildOcspRequest, certIdFor, ocspKey, NVIDIA_OCSP_URL, type CertId, type OcspFetchOptions } from './fetch/ocsp-fetch.js';
export { gatherCollateral, type GatherOptions, type GatheredCollateral } from './resolve.js';
