/**
 * On-disk collateral cache. One file per item under a fixed layout (keys.ts keyPath), each with a JSON
 * sidecar `<file>.meta.json` {fetchedAt, source, sha256, validity dates}. Writes are atomic (temp +
 * fsync + rename), reads check the sha256, and `getOrFetch` is offline-first: it uses the cache and
 * only calls the network when the caller turned online fetching on.
 */
import { createHash } from 'node:crypto';
import { mkdir, readdir, stat } from 'node:fs/promises';
import { basename, dirname, join, relative, sep } from 'node:path';
import { CollateralError, CvmError } from '../errors.js';
import { writeFileAtomic } from '../util/atomic-file.js';
import { InputFileError, readBounded, type InputKind } from '../util/bounded-read.js';
import type { SnpProduct } from '../formats/snp-abi/index.js';
import type { ClassifyHint, ClassifiedWithOrigin } from './classify.js';
import { freshness, type FreshnessOptions } from './freshness.js';
import { checkKey, describeKey, keyPath } from './keys.js';
import type { ClassifiedItem, CollateralKey, CollateralMeta, Freshness, KdsChain, StoredEntry } from './collateral-types.js';
import { stringField } from '../util/json-fields.js';
import { KDS_BASE_URL, kdsCertChainPath, kdsCrlPath, kdsUrl } from '../util/kds-url.js';

export const META_SUFFIX = '.meta.json';

/**
 * The classifier (it parses certificates, CRLs, OCSP responses and RIMs), loaded on first use: a
 * daemon whose cache holds only entries with sidecars, or a simulated one, never loads those parsers.
 */
async function loadClassify(): Promise<typeof import('./classify.js').classify> {
  return (await import('./classify.js')).classify;
}

/** The read cap for a cache entry, by what its key says it holds (util/bounded-read.ts). */
function capFor(key: CollateralKey): InputKind {
  switch (key.kind) {
    case 'crl':
      return 'crl';
    case 'rim':
      return 'rim';
    case 'ocsp':
      return 'ocsp';
    default:
      return 'certificate';
  }
}

/** A cache entry's bytes; over its cap or not a regular file is a CollateralError, I/O errors propagate as is (ENOENT). */
async function readCached(file: string, key: CollateralKey): Promise<Buffer> {
  try {
    return await readBounded(file, capFor(key));
  } catch (err) {
    if (err instanceof InputFileError) throw new CollateralError(`cache file ${err.message}; remove it or re-import it`, { cause: err });
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw err;
    throw new CollateralError(`cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
}
export const DEFAULT_COLLATERAL_DIR = '/var/cache/cvm-agent';

/** --dir, else systemd's $CACHE_DIRECTORY (first of a colon-separated list), else /var/cache/cvm-agent. */
export function defaultCollateralDir(env: NodeJS.ProcessEnv): string {
  const fromSystemd = env.CACHE_DIRECTORY?.split(':')[0];
  return fromSystemd && fromSystemd.length > 0 ? fromSystemd : DEFAULT_COLLATERAL_DIR;
}

export interface Origin {
  /** A URL, "import:<file>", ... */
  source: string;
  /** Default: now. */
  fetchedAt?: Date | string;
}

/** What the network side of getOrFetch returns: raw bytes as served, and where they came from. */
export interface Fetched {
  bytes: Uint8Array;
  source: string;
  /** Passed to classify (e.g. the CRL chain or RIM id the request was for). */
  hint?: ClassifyHint;
}

export interface GetOrFetchOptions {
  /** Online fetching is OFF unless the caller says so (offline-first). */
  online?: boolean;
  /** Time for freshness; default now. */
  at?: Date;
  freshness?: FreshnessOptions;
}

export interface CollateralResult {
  entry: StoredEntry;
  freshness: Freshness;
  origin: 'cache' | 'network';
  /** Set when a refresh was attempted and failed, and the cached copy is returned instead. */
  fetchError?: string;
}

export interface ListResult {
  entries: StoredEntry[];
  /** Files that could not be read or do not match their metadata, with the reason. */
  problems: string[];
}

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const hex = (v: Uint8Array | string | bigint, width = 0): string =>
  typeof v === 'string' ? v.toLowerCase() : typeof v === 'bigint' ? v.toString(16).padStart(width, '0') : Buffer.from(v).toString('hex');

export class CollateralStore {
  readonly dir: string;

  constructor(dir: string) {
    if (typeof dir !== 'string' || dir.length === 0) throw new CollateralError('collateral store: no directory given');
    this.dir = dir;
  }

  /** Absolute data-file path for a key (validated components only). */
  fileFor(key: CollateralKey): string {
    return join(this.dir, ...keyPath(key).split('/'));
  }

  /** Store one classified item with its metadata; returns the stored entry. */
  async put(item: ClassifiedItem, origin: Origin): Promise<StoredEntry> {
    const key = checkKey(item.key);
    const path = keyPath(key);
    const file = this.fileFor(key);
    const fetchedAt = origin.fetchedAt === undefined ? new Date() : new Date(origin.fetchedAt);
    if (Number.isNaN(fetchedAt.getTime())) throw new CollateralError(`collateral store: invalid fetchedAt for ${path}`);
    const meta: CollateralMeta = {
      version: 1,
      kind: key.kind,
      key,
      path,
      fetchedAt: fetchedAt.toISOString(),
      source: origin.source.slice(0, 512),
      sha256: sha256(item.data),
      size: item.data.length,
      description: item.description,
      ...item.validity,
    };
    await mkdir(dirname(file), { recursive: true, mode: 0o755 });
    // Collateral is public data; 0644 lets other local verifiers read the cache.
    await writeFileAtomic(file, item.data, 0o644);
    await writeFileAtomic(file + META_SUFFIX, `${JSON.stringify(meta, null, 2)}\n`, 0o644);
    return { meta, data: item.data, file };
  }

  /** Classify bytes (a file, a server answer) and store everything recognized in them. */
  async putBytes(bytes: Uint8Array, origin: Origin, hint: ClassifyHint = {}): Promise<StoredEntry[]> {
    const items = (await loadClassify())(bytes, hint);
    const out: StoredEntry[] = [];
    for (const item of items) out.push(await this.put(item, itemOrigin(item, origin)));
    return out;
  }

  /** The cached entry, or undefined when absent. A damaged entry is a CollateralError. */
  async get(key: CollateralKey): Promise<StoredEntry | undefined> {
    const file = this.fileFor(key);
    let data: Buffer;
    try {
      data = await readCached(file, key);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    return this.entryFrom(file, data, keyPath(key));
  }

  private async entryFrom(file: string, data: Buffer, path: string): Promise<StoredEntry> {
    let meta: CollateralMeta | undefined;
    try {
      meta = parseMeta(JSON.parse((await readBounded(file + META_SUFFIX, 'collateralMeta')).toString('utf8')));
    } catch (err) {
      // A sidecar over its cap (InputFileError, a CvmError) is as unusable as a garbled one.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' && !(err instanceof SyntaxError) && !(err instanceof CvmError)) throw err;
      meta = undefined;
    }
    if (meta === undefined) {
      // Dropped in by hand (no or unreadable sidecar): describe it from its bytes, dated by mtime.
      const item = (await loadClassify())(data, { fileName: basename(file) }).find((i) => keyPath(i.key) === path);
      if (!item) throw new CollateralError(`cache file ${file} does not hold the collateral its path names; remove it or re-import it`);
      const { mtime } = await stat(file);
      return {
        meta: {
          version: 1,
          kind: item.key.kind,
          key: item.key,
          path,
          fetchedAt: mtime.toISOString(),
          source: 'unknown (no metadata)',
          sha256: sha256(data),
          size: data.length,
          description: item.description,
          ...item.validity,
        },
        data,
        file,
      };
    }
    if (meta.path !== path) throw new CollateralError(`cache metadata ${file}${META_SUFFIX} names ${meta.path}; remove the entry and re-import it`);
    if (meta.sha256 !== sha256(data))
      throw new CollateralError(`cache entry ${path} is corrupt (sha256 differs from its metadata); re-import it with "cvm-agent collateral import FILE"`);
    return { meta, data, file };
  }

  async getVcek(product: SnpProduct, hwId: Uint8Array | string, tcb: bigint | string): Promise<StoredEntry | undefined> {
    // Turin VCEKs are keyed by the first 8 bytes of CHIP_ID (AMD #57230; virtee/snpguest src/fetch.rs).
    let h = hex(hwId);
    if (product === 'Turin' && h.length === 128) h = h.slice(0, 16);
    return this.get({ kind: 'vcek', product, hwId: h, tcb: hex(tcb, 16) });
  }
  getVlek(product: SnpProduct, tcb: bigint | string) {
    return this.get({ kind: 'vlek', product, tcb: hex(tcb, 16) });
  }
  getCa(kind: 'ask' | 'asvk' | 'ark', product: SnpProduct) {
    return this.get({ kind, product });
  }
  getCrl(product: SnpProduct, chain: KdsChain) {
    return this.get({ kind: 'crl', product, chain });
  }
  getRim(id: string) {
    return this.get({ kind: 'rim', id });
  }
  getOcsp(issuerKeyHash: Uint8Array | string, serial: bigint | string) {
    return this.get({ kind: 'ocsp', issuerKeyHash: hex(issuerKeyHash), serial: hex(serial) });
  }

  /** Every entry under the store, sorted by path; unreadable ones are reported, not fatal. */
  async list(): Promise<ListResult> {
    const entries: StoredEntry[] = [];
    const problems: string[] = [];
    for (const file of await walk(this.dir)) {
      if (file.endsWith(META_SUFFIX) || basename(file).startsWith('.')) continue;
      const rel = relative(this.dir, file).split(sep).join('/');
      try {
        const key = keyFromPath(rel);
        entries.push(await this.entryFrom(file, await readCached(file, key), keyPath(key)));
      } catch (err) {
        if (!(err instanceof CvmError)) throw err;
        problems.push(`${rel}: ${err.message}`);
      }
    }
    // Code-unit order: the same on every machine, and no ICU collator in the daemon (status calls this).
    entries.sort((a, b) => (a.meta.path < b.meta.path ? -1 : a.meta.path > b.meta.path ? 1 : 0));
    return { entries, problems };
  }

  /**
   * Cache first. A fresh cached entry is returned as is. Otherwise, with online fetching on, `fetch`
   * is called, its answer classified and stored (it must contain the requested key); if that fails and
   * a cached copy exists, the cached copy is returned with its (stale/expired) freshness and the error.
   * With online fetching off, `fetch` is never called: a missing entry is a CollateralError saying how
   * to import it.
   */
  async getOrFetch(key: CollateralKey, fetch: () => Promise<Fetched>, opts: GetOrFetchOptions = {}): Promise<CollateralResult> {
    const at = opts.at ?? new Date();
    const cached = await this.get(key).catch((err: unknown) => {
      if (err instanceof CollateralError && opts.online) return undefined; // damaged: refetch
      throw err;
    });
    const cachedResult = cached ? { entry: cached, freshness: freshness(cached.meta, at, opts.freshness), origin: 'cache' as const } : undefined;
    if (cachedResult && cachedResult.freshness.state === 'fresh') return cachedResult;
    if (!opts.online) {
      if (cachedResult) return cachedResult;
      throw new CollateralError(
        `${describeKey(key)} is not in the collateral cache ${this.dir} and online fetching is off; obtain it (e.g. ${suggestion(key)}) and import it with "cvm-agent collateral import FILE --dir ${this.dir}"`,
      );
    }
    try {
      const got = await fetch();
      const stored = await this.putBytes(got.bytes, { source: got.source, fetchedAt: new Date() }, got.hint);
      const entry = stored.find((e) => e.meta.path === keyPath(key));
      if (!entry)
        throw new CollateralError(
          `${got.source} did not return ${describeKey(key)} (got ${stored.map((e) => describeKey(e.meta.key)).join(', ') || 'nothing usable'})`,
        );
      return { entry, freshness: freshness(entry.meta, at, opts.freshness), origin: 'network' };
    } catch (err) {
      if (cachedResult && err instanceof CvmError) return { ...cachedResult, fetchError: err.message };
      throw err;
    }
  }
}

function itemOrigin(item: ClassifiedWithOrigin, fallback: Origin): Origin {
  return item.origin ? { source: item.origin.source, fetchedAt: item.origin.fetchedAt } : fallback;
}

function suggestion(key: CollateralKey): string {
  switch (key.kind) {
    case 'vcek':
      return `${KDS_BASE_URL}/vcek/v1/${key.product}/<hwID>?blSPL=…, or the Azure IMDS THIM endpoint`;
    case 'vlek':
      return 'the SNP extended report certificate table (VLEKs are not public)';
    case 'ask':
    case 'ark':
      return kdsUrl(kdsCertChainPath(key.product, 'vcek'));
    case 'asvk':
      return kdsUrl(kdsCertChainPath(key.product, 'vlek'));
    case 'crl':
      return kdsUrl(kdsCrlPath(key.product, key.chain));
    case 'rim':
      return `https://rim.attestation.nvidia.com/v1/rim/${key.id}`;
    case 'ocsp':
      return "the issuer's OCSP responder, e.g. http://ocsp.ndis.nvidia.com";
  }
}

/** Inverse of keyPath, for listing: only paths of the documented layout are accepted. */
export function keyFromPath(rel: string): CollateralKey {
  const p = rel.split('/');
  let m: RegExpExecArray | null;
  const bad = (): never => {
    throw new CollateralError("not a collateral path of this store's layout");
  };
  if (p[0] === 'amd' && p.length >= 3) {
    const product = p[1];
    if (p.length === 5 && p[2] === 'vcek' && (m = /^([0-9a-f]{16})\.der$/.exec(p[4]!))) return checkKey({ kind: 'vcek', product, hwId: p[3], tcb: m[1] });
    if (p.length === 4 && p[2] === 'vlek' && (m = /^([0-9a-f]{16})\.der$/.exec(p[3]!))) return checkKey({ kind: 'vlek', product, tcb: m[1] });
    if (p.length === 3 && (m = /^(ask|asvk|ark)\.pem$/.exec(p[2]!))) return checkKey({ kind: m[1], product });
    if (p.length === 3 && (m = /^crl-(vcek|vlek)\.der$/.exec(p[2]!))) return checkKey({ kind: 'crl', product, chain: m[1] });
  }
  if (p[0] === 'nvidia' && p.length === 3) {
    if (p[1] === 'rim' && (m = /^(.+)\.xml$/.exec(p[2]!))) return checkKey({ kind: 'rim', id: m[1] });
    if (p[1] === 'ocsp' && (m = /^([0-9a-f]+)-([0-9a-f]+)\.der$/.exec(p[2]!))) return checkKey({ kind: 'ocsp', issuerKeyHash: m[1], serial: m[2] });
  }
  return bad();
}

function parseMeta(v: unknown): CollateralMeta {
  if (typeof v !== 'object' || v === null) throw new CollateralError('metadata is not an object');
  const o = v as Record<string, unknown>;
  const key = checkKey(o.key);
  const str = (k: string): string | undefined => stringField(o, k);
  const fetchedAt = str('fetchedAt');
  const sum = str('sha256');
  if (o.version !== 1 || fetchedAt === undefined || sum === undefined || typeof o.size !== 'number') throw new CollateralError('metadata is incomplete');
  const meta: CollateralMeta = {
    version: 1,
    kind: key.kind,
    key,
    path: keyPath(key),
    fetchedAt,
    source: str('source') ?? 'unknown',
    sha256: sum,
    size: o.size,
  };
  for (const k of ['notBefore', 'notAfter', 'thisUpdate', 'nextUpdate', 'description'] as const) {
    const s = str(k);
    if (s !== undefined) meta[k] = s;
  }
  return meta;
}

async function walk(dir: string, depth = 0): Promise<string[]> {
  if (depth > 6) return [];
  let names;
  try {
    names = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new CollateralError(`cannot list ${dir}: ${(err as Error).message}`, { cause: err });
  }
  const out: string[] = [];
  for (const d of names) {
    const p = join(dir, d.name);
    if (d.isDirectory()) out.push(...(await walk(p, depth + 1)));
    else if (d.isFile()) out.push(p);
  }
  return out;
}
