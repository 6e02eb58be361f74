/**
 * Gather the collateral one evidence bundle needs from the cache (and, only when the caller turns
 * online fetching on, from AMD KDS / Azure IMDS / the NVIDIA RIM service / NVIDIA OCSP), for
 * verifyBundle. Offline-first and explicit about staleness (docs/collateral.md,
 * docs/collateral.md): every lookup becomes part of a named check (collateral.vcek, collateral.crl,
 * collateral.rim, collateral.ocsp) that says where the item came from, how fresh it is, and how to fix
 * a miss. Missing collateral never throws: the verifier fails closed (or warns) with its own reason.
 *
 * Check levels:
 *   pass  found and fresh (or fetched just now); also an offline miss of optional revocation data
 *         (CRL, OCSP), because snp.revocation / gpu.revocation already warn about it and one warning
 *         is enough; the pass carries the fix.
 *   warn  stale, expired (passed on: the verifier judges the dates itself), a refresh that failed,
 *         or a failed fetch of optional revocation data.
 *   fail  required collateral (VCEK/VLEK, RIM) that could not be found: verification cannot succeed
 *         without it, and this check names the fix.
 */
import { CvmError, CollateralError } from '../errors.js';
import { isAllZero } from '../util/bytes.js';
import { fail, pass, warn, type Check } from '../formats/checks.js';
import { parseSnpReport, tcbFor, type SnpProduct, type SnpReport } from '../formats/snp-abi/index.js';
import { parseHclReport } from '../formats/azure/hcl.js';
import { parseGpuReport } from '../verify/nvidia/gpu-report.js';
import { parsePemChain } from '../verify/nvidia/device-chain.js';
import type { Certificate } from '../formats/x509/certificate.js';
import { archFromChain, normaliseArch } from '../verify/nvidia/gpu-verify.js';
import { driverRimId, vbiosRimId } from '../verify/nvidia/rim/ids.js';
import type { EvidenceBundle, GpuBundleEntry, SwitchBundleEntry } from '../formats/evidence-bundle.js';
import { parseSwitchReport } from '../verify/nvidia/switch-report.js';
import { switchBiosRimId } from '../verify/nvidia/switch-verify.js';
import { classify } from './classify.js';
import type { FreshnessOptions } from './freshness.js';
import { describeKey, keyPath, PRODUCTS } from './keys.js';
import type { CollateralResult, CollateralStore, Fetched } from './store.js';
import type { CollateralKey, KdsChain } from './collateral-types.js';
import type { HttpOptions } from './fetch/http.js';
import { fetchCrl, fetchVcek } from './fetch/kds.js';
import { fetchImdsCertification } from './fetch/imds.js';
import { fetchRim } from './fetch/rim.js';
import { certIdFor, fetchOcsp, ocspKey } from './fetch/ocsp-fetch.js';

export interface GatherOptions {
  /** Verification time: freshness is judged at this instant. */
  at: Date;
  /** Fetch what the cache lacks or holds stale (config collateral.online). Default false. */
  online?: boolean;
  /** Deadline of each fetch, retries included (config collateral.timeoutMs). */
  timeoutMs?: number;
  /** Service base URLs (tests point them at loopback). ocsp is the responder URL itself. */
  urls?: { kds?: string; imds?: string; rim?: string; ocsp?: string };
  /** Maximum age per kind; without it nothing is "stale", only expired. */
  freshness?: FreshnessOptions;
  /** Retry/backoff knobs for every fetcher. */
  http?: Omit<HttpOptions, 'timeoutMs' | 'signal'>;
  /** NVIDIA service key for the RIM service and OCSP, when the deployment has one. */
  nvidiaServiceKey?: string;
}

export interface GatheredCollateral {
  cpuCollateral: { certificates: Uint8Array[]; crls: Uint8Array[] };
  gpuCollateral: { rims: { byId: Map<string, string> }; ocsp: Uint8Array[] };
  /** Per device: cpu, per GPU index, and per NVSwitch index (bundles with switches only). */
  collateralChecks: { cpu: Check[]; gpu: Record<number, Check[]>; switch?: Record<number, Check[]> };
}

type Level = 'pass' | 'warn' | 'fail';
interface Outcome {
  level: Level;
  text: string;
}
interface Lookup extends Outcome {
  data?: Buffer;
  key?: CollateralKey;
}

const ENABLE_ONLINE = 'or set collateral.online: true to let the agent fetch it';
const RANK: Record<Level, number> = { pass: 0, warn: 1, fail: 2 };

/** One named check from the outcomes of every lookup it covers: the worst level wins. */
function combine(name: string, parts: Outcome[]): Check | undefined {
  if (parts.length === 0) return undefined;
  const worst = parts.reduce<Level>((w, p) => (RANK[p.level] > RANK[w] ? p.level : w), 'pass');
  const detail = parts.map((p) => p.text).join('; ');
  return worst === 'fail' ? fail(name, detail) : worst === 'warn' ? warn(name, detail) : pass(name, detail);
}

const errText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** When the entry became stale: fetchedAt + the configured maximum age for its kind. */
function staleSince(r: CollateralResult, f: FreshnessOptions | undefined): string | undefined {
  const m = f?.maxAgeMs;
  const max = typeof m === 'number' ? m : m?.[r.entry.meta.kind];
  const t = Date.parse(r.entry.meta.fetchedAt);
  return max === undefined || Number.isNaN(t) ? undefined : new Date(t + max).toISOString();
}

/** Describe a lookup that returned an entry (fresh, stale or expired; from the cache or the network). */
function describeResult(r: CollateralResult, opts: GatherOptions, expiredNote: string): Lookup {
  const what = describeKey(r.entry.meta.key);
  const from = r.origin === 'network' ? `fetched from ${r.entry.meta.source}` : `from the cache (${r.entry.meta.source}, fetched ${r.entry.meta.fetchedAt})`;
  const refresh = r.fetchError
    ? `; refreshing it failed: ${r.fetchError}`
    : opts.online
      ? ''
      : `; import a current copy with "cvm-agent collateral import FILE" ${ENABLE_ONLINE}`;
  const base = { data: r.entry.data, key: r.entry.meta.key };
  switch (r.freshness.state) {
    case 'fresh':
      return { ...base, level: 'pass', text: `${what} ${from}, ${r.freshness.reason}` };
    case 'stale': {
      const since = staleSince(r, opts.freshness);
      return { ...base, level: 'warn', text: `${what} is stale${since ? ` since ${since}` : ''} (${r.freshness.reason}); used ${from}${refresh}` };
    }
    case 'expired':
      return { ...base, level: 'warn', text: `${what} is expired (${r.freshness.reason}); passed to the verifier, which ${expiredNote}; ${from}${refresh}` };
  }
}

interface LookupSpec {
  key: CollateralKey;
  fetch: () => Promise<Fetched>;
  /** Required collateral fails when missing; optional collateral is only reported. */
  required: boolean;
  /** What the verifier does with an expired copy, for the message. */
  expiredNote: string;
}

class Gatherer {
  /** One lookup per cache key per gather, shared by every device that needs it (RIMs, OCSP of shared intermediates). */
  private readonly memo = new Map<string, Promise<Lookup>>();

  constructor(
    readonly store: CollateralStore,
    readonly opts: GatherOptions,
  ) {}

  get online(): boolean {
    return this.opts.online === true;
  }

  http(): HttpOptions {
    return { ...this.opts.http, ...(this.opts.timeoutMs !== undefined ? { timeoutMs: this.opts.timeoutMs } : {}) };
  }

  lookup(spec: LookupSpec): Promise<Lookup> {
    let id: string;
    try {
      id = keyPath(spec.key);
    } catch (err) {
      // A key derived from hostile evidence that names no valid cache entry (a driver version "545..0"
      // makes a RIM id with ".."): a failed lookup with its reason, never a throw out of the gather.
      if (!(err instanceof CollateralError)) throw err;
      return Promise.resolve({ level: spec.required ? 'fail' : 'warn', text: errText(err) });
    }
    let hit = this.memo.get(id);
    if (!hit) {
      hit = this.doLookup(spec);
      this.memo.set(id, hit);
    }
    return hit;
  }

  private async doLookup(spec: LookupSpec): Promise<Lookup> {
    try {
      const r = await this.store.getOrFetch(spec.key, spec.fetch, {
        online: this.online,
        at: this.opts.at,
        ...(this.opts.freshness ? { freshness: this.opts.freshness } : {}),
      });
      return describeResult(r, this.opts, spec.expiredNote);
    } catch (err) {
      // Any failure (cache damage, network, a read-only cache dir) is reported, never thrown: the
      // verifier then fails closed or warns for lack of the item.
      if (this.online) return { level: spec.required ? 'fail' : 'warn', text: errText(err), key: spec.key };
      // Offline: a plain miss of optional revocation data is already a verifier warning; a damaged entry is not.
      const plainMiss = !(await this.cached(spec.key));
      return { level: spec.required ? 'fail' : plainMiss ? 'pass' : 'warn', text: `${errText(err)} ${ENABLE_ONLINE}`, key: spec.key };
    }
  }

  /** Cache only, no freshness judgement: used to find which product a v2 report's VCEK is cached under. */
  async cached(key: CollateralKey): Promise<boolean> {
    try {
      return (await this.store.get(key)) !== undefined;
    } catch {
      return true; // damaged: let lookup() report it
    }
  }
}

// ---------------------------------------------------------------------------------------------- CPU

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}

function vcekKey(product: SnpProduct, r: SnpReport): CollateralKey {
  // Turin VCEKs are keyed by the first 8 bytes of CHIP_ID (AMD #57230; virtee/snpguest src/fetch.rs).
  const hwId = product === 'Turin' ? hex(r.chipId.subarray(0, 8)) : hex(r.chipId);
  return { kind: 'vcek', product, hwId, tcb: r.reportedTcb.raw.toString(16).padStart(16, '0') };
}

function vlekKey(product: SnpProduct, r: SnpReport): CollateralKey {
  return { kind: 'vlek', product, tcb: r.reportedTcb.raw.toString(16).padStart(16, '0') };
}

/** The endorsement key (and its product) the bundle itself carries, if any. */
function carriedLeaf(certs: readonly Uint8Array[]): { kind: 'vcek' | 'vlek'; product: SnpProduct } | undefined {
  for (const der of certs) {
    try {
      for (const item of classify(der)) {
        if (item.key.kind === 'vcek' || item.key.kind === 'vlek') return { kind: item.key.kind, product: item.key.product };
      }
    } catch (err) {
      if (!(err instanceof CvmError)) throw err;
    }
  }
  return undefined;
}

function embeddedSnpReport(bundle: EvidenceBundle): SnpReport | undefined {
  try {
    return parseSnpReport(bundle.cpu.kind === 'snp' ? bundle.cpu.report : parseHclReport(bundle.cpu.report).snpReport);
  } catch (err) {
    if (!(err instanceof CvmError)) throw err;
    return undefined; // the verifier reports the malformed report itself
  }
}

async function gatherCpu(g: Gatherer, bundle: EvidenceBundle): Promise<{ certificates: Uint8Array[]; crls: Uint8Array[]; checks: Check[] }> {
  const out = { certificates: [] as Uint8Array[], crls: [] as Uint8Array[], checks: [] as Check[] };
  const r = embeddedSnpReport(bundle);
  if (!r) return out;
  const kind = r.signerInfo.signingKeyName;
  if (kind !== 'vcek' && kind !== 'vlek') return out; // not signed by an endorsement key: snp.cert.endorsement-key fails
  const label = kind.toUpperCase();
  const carried = carriedLeaf(bundle.cpu.certificates);
  let product: SnpProduct | undefined = r.product ?? carried?.product;

  if (!carried) {
    const leaf = kind === 'vcek' ? await findVcek(g, bundle, r) : await findVlek(g, r);
    const check = combine('collateral.vcek', [leaf]);
    if (check) out.checks.push(check);
    if (leaf.data) {
      out.certificates.push(leaf.data);
      if (leaf.key && (leaf.key.kind === 'vcek' || leaf.key.kind === 'vlek')) product ??= leaf.key.product;
    }
  }

  if (product) {
    const chain: KdsChain = kind;
    const crl = await g.lookup({
      key: { kind: 'crl', product, chain },
      fetch: () => fetchCrl(product, chain, { ...g.http(), ...(g.opts.urls?.kds ? { baseUrl: g.opts.urls.kds } : {}) }),
      required: false,
      expiredNote: 'rejects a CRL past its nextUpdate (snp.revocation)',
    });
    if (crl.data) out.crls.push(crl.data);
    out.checks.push(combine('collateral.crl', [crl])!);
  } else {
    out.checks.push(pass('collateral.crl', `${label} chain CRL not looked up: the product line is unknown without the ${label} (see snp.product)`));
  }
  return out;
}

/** v3+: the report's product. v2 (no CPUID): whichever product the cache holds the VCEK under, else the candidates by TCB layout. */
async function vcekCandidates(g: Gatherer, r: SnpReport): Promise<SnpProduct[]> {
  if (r.product) return [r.product];
  const inCache: SnpProduct[] = [];
  for (const p of PRODUCTS) if (await g.cached(vcekKey(p, r))) inCache.push(p);
  if (inCache.length > 0) return inCache;
  return r.tcbLayout === 'turin' ? ['Turin'] : ['Milan', 'Genoa'];
}

async function findVcek(g: Gatherer, bundle: EvidenceBundle, r: SnpReport): Promise<Lookup> {
  if (isAllZero(r.chipId)) {
    return {
      level: 'fail',
      text: 'the report is VCEK-signed but CHIP_ID is masked (all zero), so the VCEK cannot be looked up by chip; supply the VCEK with the evidence (extended report certificate table)',
    };
  }
  const azure = bundle.cpu.kind === 'azure-snp-vtpm';
  const products = await vcekCandidates(g, r);
  const misses: Lookup[] = [];
  for (const product of products) {
    const key = vcekKey(product, r);
    const res = await g.lookup({
      key,
      fetch: () => fetchVcekFor(g, product, r, key, azure),
      required: true,
      expiredNote: 'fails an expired certificate (snp.cert.validity)',
    });
    if (res.data) return res;
    misses.push(res);
  }
  if (misses.length === 1) return misses[0]!;
  // v2 report without a cached VCEK: one message for every product tried.
  const tcb = r.reportedTcb.raw.toString(16).padStart(16, '0');
  return {
    level: 'fail',
    text: `no VCEK for CHIP_ID ${hex(r.chipId).slice(0, 16)}… TCB ${tcb} under any of ${products.join(', ')} (a version 2 report names no product): ${misses.map((m) => m.text).join(' | ')}`,
  };
}

/** Azure: the host's IMDS THIM endpoint first (it caches this VM's VCEK), then AMD KDS. */
async function fetchVcekFor(g: Gatherer, product: SnpProduct, r: SnpReport, key: CollateralKey, azure: boolean): Promise<Fetched> {
  const kds = () =>
    fetchVcek(product, r.chipId, tcbFor(r.reportedTcb.raw, product), { ...g.http(), ...(g.opts.urls?.kds ? { baseUrl: g.opts.urls.kds } : {}) });
  if (!azure) return kds();
  let imdsProblem: string;
  try {
    const got = await fetchImdsCertification({
      ...g.http(),
      timeoutMs: Math.min(g.opts.timeoutMs ?? 5_000, 5_000),
      ...(g.opts.urls?.imds ? { baseUrl: g.opts.urls.imds } : {}),
    });
    if (classify(got.bytes).some((i) => keyPath(i.key) === keyPath(key))) return got;
    imdsProblem = `IMDS answered with a VCEK for another TCB or chip than ${describeKey(key)}`;
  } catch (err) {
    imdsProblem = `IMDS: ${errText(err)}`;
  }
  try {
    return await kds();
  } catch (err) {
    throw new CollateralError(`${imdsProblem}; AMD KDS: ${errText(err)}`, { cause: err });
  }
}

async function findVlek(g: Gatherer, r: SnpReport): Promise<Lookup> {
  const products = r.product ? [r.product] : PRODUCTS;
  const misses: Lookup[] = [];
  for (const product of products) {
    if (!r.product && !(await g.cached(vlekKey(product, r)))) continue;
    const res = await g.lookup({
      key: vlekKey(product, r),
      // The KDS hands out VLEKs only to cloud providers (docs/collateral.md "Not done yet").
      fetch: () =>
        Promise.reject(
          new CollateralError(
            'VLEKs are not fetched (the KDS needs cloud-provider credentials); they come with the evidence (extended report certificate table)',
          ),
        ),
      required: true,
      expiredNote: 'fails an expired certificate (snp.cert.validity)',
    });
    if (res.data) return res;
    misses.push(res);
  }
  if (misses.length === 1) return misses[0]!;
  return {
    level: 'fail',
    text: `the report is VLEK-signed and no VLEK for TCB ${r.reportedTcb.raw.toString(16).padStart(16, '0')} is in the collateral cache; VLEKs come with the evidence (extended report certificate table) or are imported with "cvm-agent collateral import FILE"`,
  };
}

// ---------------------------------------------------------------------------------------------- GPU

/** RIM ids from the report's opaque data, exactly as verifyGpuReport names them (gpu-verify.ts step 9). */
function rimIds(entry: GpuBundleEntry, certs: Certificate[] | undefined): { ids: string[]; problems: string[] } {
  const ids: string[] = [];
  const problems: string[] = [];
  let o;
  try {
    o = parseGpuReport(entry.report).opaque;
  } catch (err) {
    if (!(err instanceof CvmError)) throw err;
    return { ids, problems }; // gpu.report.parse fails on its own
  }
  const fromChain = certs ? archFromChain(certs) : undefined;
  const claimed = normaliseArch(entry.arch);
  const arch = fromChain ?? (claimed === 'hopper' || claimed === 'blackwell' ? claimed : undefined);
  try {
    if (o.driverVersion !== undefined && arch) ids.push(driverRimId(o.driverVersion, arch, o.chipInfo));
    else problems.push('driver RIM id unknown (no driver version in the report, or unknown architecture)');
  } catch (err) {
    if (!(err instanceof CvmError)) throw err;
    problems.push(err.message);
  }
  try {
    if (o.project !== undefined && o.projectSku !== undefined && o.chipSku !== undefined && o.vbiosVersion !== undefined) {
      ids.push(vbiosRimId({ project: o.project, projectSku: o.projectSku, chipSku: o.chipSku, vbiosVersion: o.vbiosVersion }));
    } else problems.push('VBIOS RIM id unknown (the report lacks PROJECT / PROJECT_SKU / CHIP_SKU / VBIOS_VERSION)');
  } catch (err) {
    if (!(err instanceof CvmError)) throw err;
    problems.push(err.message);
  }
  return { ids, problems };
}

async function gatherGpu(g: Gatherer, entry: GpuBundleEntry, byId: Map<string, string>, ocsp: Map<string, Buffer>): Promise<Check[]> {
  const certs = chainOf(entry); // undefined: gpu.chain fails on its own
  const { ids } = rimIds(entry, certs);
  return gatherNvidia(g, certs, ids, byId, ocsp, 'gpu');
}

/**
 * An NVSwitch (LS10): its one VBIOS RIM, named from the report's VBIOS_VERSION exactly as verifySwitchReport
 * names it (switch-verify.ts switchBiosRimId; nvtrust nvswitch_admin_utils.py get_vbios_rim_file_id), and
 * OCSP for its chain's intermediates, as for a GPU. A report that does not parse gets no RIM lookup:
 * switch.report.parse fails on its own.
 */
async function gatherSwitch(g: Gatherer, entry: SwitchBundleEntry, byId: Map<string, string>, ocsp: Map<string, Buffer>): Promise<Check[]> {
  const ids: string[] = [];
  try {
    const v = parseSwitchReport(entry.report).opaque.vbiosVersion;
    if (v !== undefined) ids.push(switchBiosRimId(v));
  } catch (err) {
    if (!(err instanceof CvmError)) throw err;
  }
  return gatherNvidia(g, chainOf(entry), ids, byId, ocsp, 'switch');
}

function chainOf(entry: { certChainPem: string }): Certificate[] | undefined {
  try {
    return parsePemChain(entry.certChainPem);
  } catch (err) {
    if (!(err instanceof CvmError)) throw err;
    return undefined;
  }
}

/** RIMs by id and OCSP answers for a device chain (GPU or NVSwitch); `prefix` names the verifier's checks in the notes. */
async function gatherNvidia(
  g: Gatherer,
  certs: Certificate[] | undefined,
  ids: string[],
  byId: Map<string, string>,
  ocsp: Map<string, Buffer>,
  prefix: 'gpu' | 'switch',
): Promise<Check[]> {
  const checks: Check[] = [];
  const rimKey = g.opts.nvidiaServiceKey ? { serviceKey: g.opts.nvidiaServiceKey } : {};
  const rims = await Promise.all(
    ids.map((id) =>
      g.lookup({
        key: { kind: 'rim', id },
        fetch: () => fetchRim(id, { ...g.http(), ...rimKey, ...(g.opts.urls?.rim ? { baseUrl: g.opts.urls.rim } : {}) }),
        required: true,
        expiredNote: `rejects a RIM whose signing chain has expired (${prefix}.rim.*)`,
      }),
    ),
  );
  rims.forEach((res, i) => {
    if (res.data) byId.set(ids[i]!, res.data.toString('utf8'));
  });
  const rimCheck = combine('collateral.rim', rims);
  if (rimCheck) checks.push(rimCheck);

  // OCSP for the certificates the verifier checks: the chain's intermediates, positions 1 .. n-2
  // (nvtrust cc_admin_utils.py ocsp_certificate_chain_validation; gpu-verify.ts step 10), each against the next certificate up.
  const pairs = certs && certs.length >= 3 ? certs.slice(1, -1).map((cert, i) => ({ cert, issuer: certs[i + 2]! })) : [];
  const responses = await Promise.all(
    pairs.map(async ({ cert, issuer }): Promise<Lookup> => {
      let key: CollateralKey;
      try {
        key = ocspKey(certIdFor(cert.der, issuer.der));
      } catch (err) {
        if (!(err instanceof CvmError)) throw err;
        return { level: 'pass', text: `no OCSP lookup for "${cert.cn}": ${err.message} (${prefix}.chain reports the broken link)` };
      }
      return g.lookup({
        key,
        fetch: () => fetchOcsp(cert.der, issuer.der, { ...g.http(), ...rimKey, ...(g.opts.urls?.ocsp ? { url: g.opts.urls.ocsp } : {}) }),
        required: false,
        expiredNote: `treats a response past its nextUpdate as unusable (${prefix}.revocation)`,
      });
    }),
  );
  for (const res of responses) if (res.data && res.key) ocsp.set(keyPath(res.key), res.data);
  const ocspCheck = combine('collateral.ocsp', responses);
  if (ocspCheck) checks.push(ocspCheck);
  return checks;
}

// --------------------------------------------------------------------------------------------- entry

/**
 * Collateral for every device of `bundle`: CPU endorsement key (when the evidence lacks it) and CRL,
 * per GPU the driver/VBIOS RIMs and OCSP responses for the device chain, per NVSwitch its VBIOS RIM
 * and OCSP responses for its chain (the switch RIMs join the GPUs' in rims.byId). Never throws for missing,
 * stale or unfetchable collateral; each lookup is reported in collateralChecks.
 */
export async function gatherCollateral(store: CollateralStore, bundle: EvidenceBundle, opts: GatherOptions): Promise<GatheredCollateral> {
  const g = new Gatherer(store, opts);
  const byId = new Map<string, string>();
  const ocsp = new Map<string, Buffer>();
  const switches = bundle.switches ?? [];
  const [cpu, gpuChecks, switchChecks] = await Promise.all([
    gatherCpu(g, bundle),
    Promise.all(bundle.gpus.map((e) => gatherGpu(g, e, byId, ocsp))),
    Promise.all(switches.map((e) => gatherSwitch(g, e, byId, ocsp))),
  ]);
  const gpu: Record<number, Check[]> = {};
  bundle.gpus.forEach((e, i) => {
    gpu[e.index] = gpuChecks[i]!;
  });
  const perSwitch: Record<number, Check[]> = {};
  switches.forEach((e, i) => {
    perSwitch[e.index] = switchChecks[i]!;
  });
  return {
    cpuCollateral: { certificates: cpu.certificates, crls: cpu.crls },
    gpuCollateral: { rims: { byId }, ocsp: [...ocsp.values()] },
    collateralChecks: { cpu: cpu.checks, gpu, ...(switches.length > 0 ? { switch: perSwitch } : {}) },
  };
}
