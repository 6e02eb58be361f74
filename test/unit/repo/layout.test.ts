/**
 * The layout rules a new engineer relies on to find things (docs/architecture.md "Files and tests"):
 * a file's basename says what it holds and never repeats inside agent/ (index.ts only as a folder's
 * entry point that re-exports), and test/unit mirrors the source folders.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../../helpers/paths.js';

function files(dir: string, suffix: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...files(path, suffix));
    else if (name.endsWith(suffix)) out.push(path);
  }
  return out;
}

const agentDir = join(repoRoot, 'agent');
const unitDir = join(repoRoot, 'test', 'unit');

/** Strip comments, then what is left of an entry point must be imports and re-exports only. */
function onlyReExports(source: string): boolean {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const statements = code
    .split(/;\s*\n|\n(?=\s*(?:export|import)\b)/)
    .map((s) => s.trim())
    .filter(Boolean);
  return statements.every((s) => /^(export (type )?(\*|\{)[\s\S]*from\s+['"][^'"]+['"];?$|import\b)/.test(s));
}

describe('file names in agent/', () => {
  const sources = files(agentDir, '.ts');

  it('no basename repeats, except index.ts entry points', () => {
    const byName = new Map<string, string[]>();
    for (const f of sources) byName.set(basename(f), [...(byName.get(basename(f)) ?? []), relative(agentDir, f)]);
    const repeated = [...byName].filter(([name, paths]) => name !== 'index.ts' && paths.length > 1);
    expect(repeated).toEqual([]);
  });

  it('every index.ts only re-exports its folder (an entry point, not a hiding place for code)', () => {
    const indexes = sources.filter((f) => basename(f) === 'index.ts');
    expect(indexes.length).toBeGreaterThan(0);
    for (const f of indexes) expect(onlyReExports(readFileSync(f, 'utf8')), relative(repoRoot, f)).toBe(true);
  });

  it('the entry-point rule can fail', () => {
    expect(onlyReExports("export * from './a.js';\nexport { b } from './b.js';")).toBe(true);
    expect(onlyReExports("export * from './a.js';\nexport function load() { return 1; }")).toBe(false);
  });
});

describe('errors in agent/', () => {
  it('are typed (agent/errors.ts, a code from the closed union), never a bare Error', () => {
    // controller/web/fleet-script.ts is the fleet page's browser script, shipped as text.
    const bare = files(agentDir, '.ts')
      .filter((f) => !f.endsWith(join('controller', 'web', 'fleet-script.ts')))
      .flatMap((f) =>
        readFileSync(f, 'utf8')
          .split('\n')
          .map((line, i) => ({ where: `${relative(repoRoot, f)}:${i + 1}`, line }))
          .filter(({ line }) => /\bthrow new (Error|TypeError|RangeError)\(/.test(line)),
      )
      .map(({ where }) => where);
    expect(bare).toEqual([]);
  });
});

describe('test/unit mirrors agent/', () => {
  it('each folder under test/unit is a folder of agent/ (or repo/ and tools/ for the repository itself)', () => {
    const dirs = files(unitDir, '.test.ts').map((f) => relative(unitDir, join(f, '..')));
    const strays = [...new Set(dirs)].filter((d) => d !== '' && !/^(repo|tools)(\/|$)/.test(d) && !existsSync(join(agentDir, d)));
    expect(strays).toEqual([]);
  });

  it('no test file sits loose in test/unit except the one for agent/errors.ts', () => {
    const loose = readdirSync(unitDir).filter((n) => n.endsWith('.ts'));
    expect(loose).toEqual(['errors.test.ts']);
  });
});
