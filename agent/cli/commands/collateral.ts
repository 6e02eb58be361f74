/**
 * `cvm-agent collateral import|list|export`: manage the offline collateral cache (agent/collateral/).
 * Thin edge: read files, classify + store, print; the store and classifier do the work.
 */
import { mkdir, readdir, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { CollateralError, CvmError, ParseError, UsageError } from '../../errors.js';
import { writeFileAtomic } from '../../util/atomic-file.js';
import { InputFileError, readBounded } from '../../util/bounded-read.js';
import { buildBundle, CollateralStore, defaultCollateralDir, describeKey, freshness, META_SUFFIX, type StoredEntry } from '../../collateral/index.js';
import { EXIT, parseOptions, type CliIO, type Command } from '../command.js';

const dirHelp = `  --dir DIR        the cache directory (default: $CACHE_DIRECTORY, else /var/cache/cvm-agent)`;

const importUsage = `Usage: cvm-agent collateral import FILE... [--dir DIR] [--rim-id ID]

Recognize each FILE and store it in the collateral cache, no flags needed. Accepted: AMD VCEK/VLEK
(DER or PEM), ASK/ASVK/ARK cert_chain PEM, AMD KDS CRLs (DER/PEM; a file name containing "vlek" marks
a VLEK-chain CRL), NVIDIA RIM XML (driver RIM ids come from the content; VBIOS RIMs need a file name
NV_GPU_VBIOS_<project>_<sku>_<chip>_<version>.xml or <project>_<sku>_<chip>_<version>_PROD.swidtag, or
--rim-id), RIM service JSON, OCSP responses (DER), the Azure IMDS THIM certification JSON, a bundle
written by "collateral export --out FILE.json", and a directory written by "collateral export --out DIR".
Nothing imported is trusted: verification still checks chains against the pinned roots.

Options:
${dirHelp}
  --rim-id ID      the RIM id of the (single) RIM being imported
  -h, --help       show this help

Exit codes: 0 all stored, 1 some files stored and some failed, 2 usage error or nothing recognized.
`;

const listUsage = `Usage: cvm-agent collateral list [--dir DIR] [--at ISO8601] [--max-age-days N] [--json]

List the cached collateral: kind, key, freshness (fresh | stale | expired, and why) and size.

Options:
${dirHelp}
  --at ISO8601       judge freshness at this time (default: now)
  --max-age-days N   call entries fetched more than N days ago stale
  --json             print a JSON array
  -h, --help         show this help

Exit codes: 0 listed, 1 some cache files are unreadable or damaged (named on stderr), 2 usage error.
`;

const exportUsage = `Usage: cvm-agent collateral export --out FILE.json|DIR [--dir DIR]

Copy the cache for another machine (e.g. an air-gapped one): --out FILE.json writes one JSON bundle
(base64 entries with their metadata), any other --out writes the cache layout into that directory.
Both can be read back with "cvm-agent collateral import".

Options:
${dirHelp}
  --out PATH       FILE.json for a bundle, otherwise a directory (required)
  -h, --help       show this help

Exit codes: 0 exported, 1 some entries could not be read (named on stderr), 2 usage error.
`;

function storeFrom(dir: string | undefined, io: CliIO): CollateralStore {
  return new CollateralStore(resolve(io.cwd, dir ?? defaultCollateralDir(io.env)));
}

interface Input {
  file: string;
  display: string;
  origin?: { source: string; fetchedAt: string };
}

/** A directory (an export) expands to its data files, with their sidecars' origin when readable. */
async function expand(path: string, display: string, depth = 0): Promise<Input[]> {
  const st = await stat(path);
  if (!st.isDirectory()) return [{ file: path, display }];
  if (depth > 6) return [];
  const out: Input[] = [];
  for (const d of (await readdir(path, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
    if (d.name.startsWith('.') || d.name.endsWith(META_SUFFIX)) continue;
    const p = join(path, d.name);
    if (d.isDirectory()) out.push(...(await expand(p, join(display, d.name), depth + 1)));
    else if (d.isFile()) {
      const input: Input = { file: p, display: join(display, d.name) };
      try {
        const m = JSON.parse((await readBounded(p + META_SUFFIX, 'collateralMeta')).toString('utf8')) as { source?: unknown; fetchedAt?: unknown };
        if (typeof m.source === 'string' && typeof m.fetchedAt === 'string' && !Number.isNaN(Date.parse(m.fetchedAt)))
          input.origin = { source: m.source, fetchedAt: m.fetchedAt };
      } catch {
        // no usable sidecar: treat as a fresh import
      }
      out.push(input);
    }
  }
  return out;
}

export const collateralImport: Command = {
  path: ['collateral', 'import'],
  usage: importUsage,
  async run(argv, io) {
    const { values, positionals } = parseOptions(argv, { dir: { type: 'string' }, 'rim-id': { type: 'string' } }, true);
    if (positionals.length === 0) throw new UsageError('no FILE given');
    const store = storeFrom(values.dir, io);
    let stored = 0;
    let unrecognized = 0;
    let failed = 0;
    for (const arg of positionals) {
      let inputs: Input[];
      try {
        inputs = await expand(resolve(io.cwd, arg), arg);
      } catch (err) {
        io.stderr.write(`cvm-agent collateral import: ${arg}: cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}\n`);
        unrecognized++;
        continue;
      }
      for (const input of inputs) {
        try {
          const bytes = await readBounded(input.file, 'collateral', { streams: true });
          const origin = input.origin ?? { source: `import:${basename(input.file)}`, fetchedAt: new Date().toISOString() };
          const entries = await store.putBytes(bytes, origin, {
            fileName: basename(input.file),
            ...(values['rim-id'] !== undefined ? { rimId: values['rim-id'] } : {}),
          });
          for (const e of entries) io.stdout.write(`${input.display}: stored ${describeKey(e.meta.key)} -> ${e.file}\n`);
          stored += entries.length;
        } catch (err) {
          if (err instanceof ParseError || err instanceof CollateralError) {
            unrecognized++;
            io.stderr.write(`cvm-agent collateral import: ${input.display}: not imported: ${err instanceof InputFileError ? err.reason : err.message}\n`);
          } else if ((err as NodeJS.ErrnoException).code !== undefined || err instanceof CvmError) {
            failed++;
            io.stderr.write(`cvm-agent collateral import: ${input.display}: ${(err as Error).message}\n`);
          } else {
            throw err;
          }
        }
      }
    }
    if (unrecognized + failed === 0) return EXIT.OK;
    if (stored === 0 && failed === 0) return EXIT.USAGE;
    return EXIT.FAILED;
  },
};

function entryRow(e: StoredEntry, at: Date, maxAgeMs: number | undefined) {
  const f = freshness(e.meta, at, maxAgeMs === undefined ? {} : { maxAgeMs });
  return {
    kind: e.meta.kind,
    key: describeKey(e.meta.key),
    path: e.meta.path,
    freshness: f.state,
    reason: f.reason,
    size: e.meta.size,
    fetchedAt: e.meta.fetchedAt,
    source: e.meta.source,
    ...(e.meta.description ? { description: e.meta.description } : {}),
  };
}

export const collateralList: Command = {
  path: ['collateral', 'list'],
  usage: listUsage,
  async run(argv, io) {
    const { values } = parseOptions(argv, { dir: { type: 'string' }, at: { type: 'string' }, 'max-age-days': { type: 'string' }, json: { type: 'boolean' } });
    const at = values.at === undefined ? new Date() : new Date(values.at);
    if (Number.isNaN(at.getTime())) throw new UsageError(`--at "${values.at}" is not an ISO 8601 time`);
    let maxAgeMs: number | undefined;
    if (values['max-age-days'] !== undefined) {
      const n = Number(values['max-age-days']);
      if (!Number.isFinite(n) || n < 0) throw new UsageError(`--max-age-days "${values['max-age-days']}" is not a non-negative number`);
      maxAgeMs = n * 86_400_000;
    }
    const store = storeFrom(values.dir, io);
    const { entries, problems } = await store.list();
    const rows = entries.map((e) => entryRow(e, at, maxAgeMs));
    if (values.json) io.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
    else if (rows.length === 0) io.stdout.write(`no collateral in ${store.dir}\n`);
    else {
      const w = (k: 'kind' | 'key' | 'freshness') => Math.max(k.length, ...rows.map((r) => r[k].length));
      const [wk, wkey, wf] = [w('kind'), w('key'), w('freshness')];
      io.stdout.write(`${'KIND'.padEnd(wk)}  ${'KEY'.padEnd(wkey)}  ${'FRESHNESS'.padEnd(wf)}  ${'SIZE'.padStart(7)}  REASON\n`);
      for (const r of rows)
        io.stdout.write(`${r.kind.padEnd(wk)}  ${r.key.padEnd(wkey)}  ${r.freshness.padEnd(wf)}  ${String(r.size).padStart(7)}  ${r.reason}\n`);
    }
    for (const p of problems) io.stderr.write(`cvm-agent collateral list: ${p}\n`);
    return problems.length > 0 ? EXIT.FAILED : EXIT.OK;
  },
};

export const collateralExport: Command = {
  path: ['collateral', 'export'],
  usage: exportUsage,
  async run(argv, io) {
    const { values } = parseOptions(argv, { dir: { type: 'string' }, out: { type: 'string' } });
    if (values.out === undefined || values.out === '') throw new UsageError('--out FILE.json|DIR is required');
    const store = storeFrom(values.dir, io);
    const out = resolve(io.cwd, values.out);
    if (out === store.dir || out.startsWith(`${store.dir}/`)) throw new UsageError(`--out ${values.out} lies inside the cache directory ${store.dir}`);
    const { entries, problems } = await store.list();
    for (const p of problems) io.stderr.write(`cvm-agent collateral export: skipped ${p}\n`);
    if (out.toLowerCase().endsWith('.json')) {
      await mkdir(dirname(out), { recursive: true });
      await writeFileAtomic(out, buildBundle(entries, new Date()), 0o644);
      io.stdout.write(`exported ${entries.length} entries to bundle ${out}\n`);
    } else {
      for (const e of entries) {
        const file = join(out, ...e.meta.path.split('/'));
        await mkdir(dirname(file), { recursive: true });
        await writeFileAtomic(file, e.data, 0o644);
        await writeFileAtomic(file + META_SUFFIX, `${JSON.stringify(e.meta, null, 2)}\n`, 0o644);
      }
      io.stdout.write(`exported ${entries.length} entries to directory ${out}\n`);
    }
    return problems.length > 0 ? EXIT.FAILED : EXIT.OK;
  },
};
