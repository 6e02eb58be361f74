/**
 * Docs and comments name only files that exist: every repository-relative path (`agent/...`,
 * `docs/x.md`, `test/...`, `systemd/...`, ...) in docs/*.md, README.md, the comments of the
 * TypeScript under agent/, test/, tools/ and bench/, and systemd/* and .ci/run must exist in the
 * checkout; and nothing mentions a `shared/` folder, which is not part of the repository.
 */
import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../../helpers/paths.js';

/** Top-level folders of the repository: a path starting with one of them is repository-relative. */
const ROOTS = ['agent', 'bench', 'bin', 'docs', 'native', 'packaging', 'systemd', 'test', 'tools', '.ci'];
/** Build outputs a clean checkout does not have yet (npm run build:fakes, npm run build, test/helpers/global-build.ts). */
const GENERATED = ['test/fakes/out/', 'test/built/', 'test-artifacts/'];

const PATH = new RegExp(`(?<![\\w./$~@-])((?:${ROOTS.map((r) => r.replace('.', '\\.')).join('|')})/[A-Za-z0-9_.\\-/]*)`, 'g');
const SHARED = /(?<![\w-])(?:\.\.\/)*shared\//;

/** The repository-relative paths a text names, as written (trailing punctuation removed). */
function namedPaths(text: string): string[] {
  return [...text.matchAll(PATH)].map((m) => m[1]!.replace(/[.,:;-]+$/, ''));
}

/** The comment text of a TypeScript source: block comments and `//` comments, line by line. */
function commentText(source: string): string {
  const out: string[] = [];
  let inBlock = false;
  for (const line of source.split('\n')) {
    if (inBlock) {
      out.push(line);
      inBlock = !line.includes('*/');
      continue;
    }
    // A comment starts at the beginning of a line or after white space (not in 'agent/**/*.ts' or 'http://').
    const block = line.search(/(?:^|\s)\/\*/);
    if (block >= 0) {
      const rest = line.slice(block);
      out.push(rest);
      inBlock = !rest.slice(rest.indexOf('/*') + 2).includes('*/');
      continue;
    }
    const at = line.search(/(?:^|\s)\/\//);
    if (at >= 0) out.push(line.slice(at));
  }
  return out.join('\n');
}

function walk(dir: string, keep: (f: string) => boolean): string[] {
  const abs = join(repoRoot, dir);
  if (!existsSync(abs)) return [];
  return (readdirSync(abs, { recursive: true, encoding: 'utf8' }) as string[])
    .map((f) => join(dir, f))
    .filter((f) => !f.split('/').includes('node_modules') && statSync(join(repoRoot, f)).isFile() && keep(f));
}

/** Each scanned file with the text in it that must name only real paths. */
function sources(): { file: string; text: string }[] {
  const whole = [...walk('docs', (f) => f.endsWith('.md') && !f.includes('/', 5)), 'README.md', ...walk('systemd', () => true), '.ci/run'];
  const ts = ['agent', 'test', 'tools', 'bench'].flatMap((d) => walk(d, (f) => f.endsWith('.ts')));
  return [
    ...whole.map((file) => ({ file, text: readFileSync(join(repoRoot, file), 'utf8') })),
    ...ts.map((file) => ({ file, text: commentText(readFileSync(join(repoRoot, file), 'utf8')) })),
  ];
}

// This file and the citations test quote the forbidden forms on purpose.
const SELF = new Set(['test/unit/repo/doc-paths.test.ts', 'test/unit/repo/citations.test.ts']);

describe('paths named in docs and comments', () => {
  it('finds repository-relative paths and only those', () => {
    expect(namedPaths('see docs/config.md, "API authorization"; test/system/ and `agent/link/outbox.ts`.')).toEqual([
      'docs/config.md',
      'test/system/',
      'agent/link/outbox.ts',
    ]);
    expect(namedPaths('agent/**/*.ts, agent/<layer>/x.ts')).toEqual(['agent/', 'agent/']);
    expect(namedPaths('/usr/lib/cvm-agent/bin/cvm-agent.js $(npm root -g)/cvm-agent/systemd/install.sh ./docs/x.md')).toEqual([]);
    expect(commentText("const a = 'docs/a.md'; // docs/b.md\n/**\n * test/c.ts\n */\nconst u = 'http://x/docs/d.md';")).toBe(
      ' // docs/b.md\n/**\n * test/c.ts\n */',
    );
  });

  it('every one exists in the repository (docs/*.md, README.md, comments in agent/ test/ tools/ bench/, systemd/*, .ci/run)', () => {
    const missing: string[] = [];
    for (const { file, text } of sources()) {
      if (SELF.has(file)) continue;
      for (const p of namedPaths(text)) {
        if (GENERATED.some((g) => p.startsWith(g))) continue;
        // docs/architecture.md names agent/ files by layer (`formats/x.ts`, `native/nvml.ts`): `native/`
        // is both the addon's C folder and the layer agent/native/.
        if (!existsSync(join(repoRoot, p)) && !(p.startsWith('native/') && existsSync(join(repoRoot, 'agent', p)))) missing.push(`${file}: ${p}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it('nothing mentions a shared/ folder (not part of the repository)', () => {
    const hits: string[] = [];
    for (const { file, text } of sources()) {
      if (SELF.has(file)) continue;
      text.split('\n').forEach((line, i) => {
        if (SHARED.test(line)) hits.push(`${file}:${i + 1}: ${line.trim()}`);
      });
    }
    expect(hits).toEqual([]);
  });
});
