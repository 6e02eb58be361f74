/**
 * Import-boundary check for agent/ (docs/architecture.md "Layers"): every top-level folder of agent/
 * has a rank; a file may import its own folder or a folder of LOWER rank, never a higher one and
 * never a sibling of the same rank (siblings stay independent, which also rules out cycles between
 * folders). Type-only and dynamic imports count: a type is a dependency too.
 *
 * simulation/ has one more rule: outside it, only dynamic `import()` (and erased `import type`) may
 * reach it, so production paths evaluate the simulated TEE only when simulation is enabled; the demo
 * stack (simulation by definition) is the one static importer.
 *
 * Run: `npm run lint:layers` (exit 0 clean, 1 violations, 2 unreadable tree). Pure core: checkLayers().
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Lowest first. Root-level files other than these are a violation: every line's layer is in its path. */
export const LAYERS: readonly (readonly string[])[] = [
  ['errors.ts'], // the error classes every layer throws
  ['util'], // pure helpers (bytes, DER, PEM, JCS, XML, bounded reads, bounded cache, log, version)
  ['formats', 'roots', 'config'], // bytes <-> structures (X.509 in formats/x509), pinned trust anchors, agent config schema
  ['native'], // the Node-API addon and its error mapping (OS boundary)
  ['evidence', 'verify', 'appraise'], // collectors, verifiers (signatures/chains), policy
  ['collateral'], // collateral store and fetchers (below the verifier factory in attest/, which gathers from it)
  ['attest', 'state', 'link', 'api'], // the cycle and the verifier factory, history, link, local API
  ['simulation'], // simulated TEE; reached from above only when simulation is enabled
  ['daemon', 'controller'], // the two processes
  ['doctor'], // `cvm-agent doctor`: read-only checks of the whole chain, reusing the daemon's preflight
  ['cli'], // commands and the demo stack
];

/**
 * Known debt, each entry "from-folder -> to-folder" with the reason it is still there. The check
 * fails on any violation not listed and on any entry that no longer matches (so the list only shrinks).
 */
export const ALLOWED_DEBT: ReadonlyMap<string, string> = new Map();

/** The one folder production code reaches only by dynamic import, and the files allowed to import it statically. */
export const DYNAMIC_ONLY = 'simulation';
export const STATIC_SIMULATION_IMPORTERS: ReadonlySet<string> = new Set(['cli/demo-stack.ts']);

export interface Violation {
  file: string;
  specifier: string;
  from: string;
  to: string;
  reason: string;
}

const rankOf = new Map<string, number>();
LAYERS.forEach((names, i) => names.forEach((n) => rankOf.set(n, i)));

/** The layer unit of a path relative to agent/: its top-level folder, or the file name at the root. */
export function unitOf(relPath: string): string {
  return relPath.split('/')[0]!;
}

/** How a module is imported: `static` loads it with the importer, `type` is erased, `dynamic` loads it when run. */
export type ImportKind = 'static' | 'type' | 'dynamic';

/** Relative static, type-only, re-export and dynamic imports with their kind; comments are ignored. */
export function importsOf(source: string): { specifier: string; kind: ImportKind }[] {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
  const out: { specifier: string; kind: ImportKind }[] = [];
  const re = /\b(?:import|export)\s+(type\s+)?(?:[\w*{}\s,$]+?\s+from\s+)?['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)/g;
  for (const m of code.matchAll(re)) {
    const specifier = m[2] ?? m[3]!;
    if (specifier.startsWith('.')) out.push({ specifier, kind: m[3] !== undefined ? 'dynamic' : m[1] ? 'type' : 'static' });
  }
  return out;
}

/** Relative specifiers of static, type-only, re-export and dynamic imports; comments are ignored. */
export function importSpecifiers(source: string): string[] {
  return importsOf(source).map((i) => i.specifier);
}

/** files: path relative to agent/ ('/'-separated) -> source text. */
export function checkLayers(
  files: ReadonlyMap<string, string>,
  debt: ReadonlyMap<string, string> = ALLOWED_DEBT,
): { violations: Violation[]; staleDebt: string[] } {
  const violations: Violation[] = [];
  const usedDebt = new Set<string>();
  for (const [file, source] of files) {
    const from = unitOf(file);
    const fromRank = rankOf.get(from);
    if (fromRank === undefined) {
      violations.push({
        file,
        specifier: '',
        from,
        to: from,
        reason: `"${from}" has no layer: move it into a layer folder or add the folder to LAYERS in tools/check-layers.ts`,
      });
      continue;
    }
    for (const { specifier, kind } of importsOf(source)) {
      const target = normalize(join(dirname(file), specifier))
        .split(sep)
        .join('/');
      if (target.startsWith('..')) {
        violations.push({ file, specifier, from, to: '(outside agent/)', reason: 'agent code must not import from outside agent/' });
        continue;
      }
      const to = unitOf(target.replace(/\.js$/, '.ts'));
      if (to === from) continue;
      const toRank = rankOf.get(to);
      let reason: string | undefined;
      if (toRank === undefined) reason = `"${to}" has no layer`;
      else if (toRank > fromRank) reason = `upward import: ${from} (layer ${fromRank}) must not import ${to} (layer ${toRank})`;
      else if (toRank === fromRank) reason = `sibling import: ${from} and ${to} share layer ${fromRank} and stay independent`;
      else if (to === DYNAMIC_ONLY && kind === 'static' && !STATIC_SIMULATION_IMPORTERS.has(file)) {
        // Not debt: a static import would evaluate the simulated TEE in every production start-up.
        violations.push({
          file,
          specifier,
          from,
          to,
          reason: `static import of ${to}/: use \`await import()\` where simulation is enabled (or \`import type\`)`,
        });
        continue;
      }
      if (!reason) continue;
      const key = `${from} -> ${to}`;
      if (debt.has(key)) {
        usedDebt.add(key);
        continue;
      }
      violations.push({ file, specifier, from, to, reason });
    }
  }
  const staleDebt = [...debt.keys()].filter((k) => !usedDebt.has(k));
  return { violations, staleDebt };
}

function readTree(root: string): Map<string, string> {
  const files = new Map<string, string>();
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts')) files.set(relative(root, p).split(sep).join('/'), readFileSync(p, 'utf8'));
    }
  };
  walk(root);
  return files;
}

function main(): number {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', 'agent');
  let files: Map<string, string>;
  try {
    files = readTree(root);
  } catch (err) {
    process.stderr.write(`lint:layers: cannot read ${root}: ${(err as Error).message}\n`);
    return 2;
  }
  const { violations, staleDebt } = checkLayers(files);
  for (const v of violations) process.stderr.write(`agent/${v.file}: import '${v.specifier}' -- ${v.reason}\n`);
  for (const k of staleDebt) process.stderr.write(`tools/check-layers.ts: ALLOWED_DEBT entry "${k}" no longer occurs; delete it\n`);
  if (violations.length || staleDebt.length) {
    process.stderr.write(`lint:layers: ${violations.length} layer violation(s), ${staleDebt.length} stale debt entr(y/ies); see docs/architecture.md\n`);
    return 1;
  }
  process.stdout.write(`lint:layers: ${files.size} files in agent/, no upward or sibling imports, ${DYNAMIC_ONLY}/ only by dynamic import\n`);
  return 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === normalize(process.argv[1])) process.exitCode = main();
