/**
 * Citations point at public sources only. The project's private notes folder (next to the repository,
 * never part of it) must not be cited from tracked code or docs: no `reference/<name>.md`, no path into
 * that folder, and none of its file names (DESIGN.md, the reference notes) unless the repository itself
 * has a file of that name. Constants and formats cite the public specification or source file instead.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, join, sep } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../../helpers/paths.js';

const SCOPE = ['agent', 'test', 'bench', 'tools', 'docs', 'systemd', 'native', '.ci', 'README.md'];

/** File names of the private notes folder; a mention is only wrong while the repository has no such file. */
const PRIVATE_NOTE_FILES = ['DESIGN.md', 'snp.md', 'nvidia-gpu.md', 'node-daemon.md', 'agents.md'];

const REFERENCE_DOC = /\breference\/[a-z0-9-]+\.md\b/;
/** ../shared, /work/shared, shared/reference|vectors|DESIGN|notes, or `shared/` quoted as a folder. */
const SHARED_PATH = /\.\.\/shared\b|\/work\/shared\b|(?:^|[^\w.-])shared\/(?:reference|vectors|DESIGN|notes)\b|`shared\/`/;
/** This file names what it looks for, so it is the one file the scan skips. */
// This file and the doc-paths test quote the forbidden forms on purpose.
const SELF = new Set(['test/unit/repo/citations.test.ts', 'test/unit/repo/doc-paths.test.ts']);

function scopeFiles(): string[] {
  try {
    const out = execFileSync('git', ['ls-files', '-z', '--', ...SCOPE], { cwd: repoRoot, encoding: 'utf8' });
    return out.split('\0').filter((f) => f !== '');
  } catch {
    // Not a git checkout (e.g. an unpacked tarball): walk the same folders instead.
    const files: string[] = [];
    const walk = (rel: string): void => {
      const abs = join(repoRoot, rel);
      let st: ReturnType<typeof statSync>;
      try {
        st = statSync(abs);
      } catch {
        return;
      }
      if (st.isFile()) files.push(rel.split(sep).join('/'));
      else if (st.isDirectory() && basename(rel) !== 'node_modules') for (const e of readdirSync(abs)) walk(join(rel, e));
    };
    for (const s of SCOPE) walk(s);
    return files;
  }
}

/** Test-vector data files are byte-exact copies of public files; their README is documentation and is checked. */
function inScope(file: string): boolean {
  return !SELF.has(file) && !(file.startsWith('test/vectors/') && !file.endsWith('.md'));
}

/** The offending lines of one text, as "line: text". */
function findPrivateCitations(text: string, privateNames: readonly string[]): string[] {
  const nameRe = privateNames.length > 0 ? new RegExp(`(?:^|[^\\w./-])(?:${privateNames.map((n) => n.replace(/[.]/g, '\\.')).join('|')})\\b`) : undefined;
  const hits: string[] = [];
  text.split('\n').forEach((line, i) => {
    if (REFERENCE_DOC.test(line) || SHARED_PATH.test(line) || nameRe?.test(line)) hits.push(`${i + 1}: ${line.trim()}`);
  });
  return hits;
}

describe('citations', () => {
  it('flags references to the private notes folder and passes public citations', () => {
    const names = ['DESIGN.md', 'snp.md'];
    const bad = [
      ' * Offsets: reference/snp.md §3 table.',
      ' * Layout: shared/reference/snp.md §1.4.',
      ' * See ../shared/vectors/README.md.',
      ' * The one fresh nonce (DESIGN.md "Binding").',
      ' * Turin hwID is 8 bytes (snp.md §4.2).',
      ' * (paths relative to `shared/`).',
    ];
    for (const line of bad) expect(findPrivateCitations(line, names), line).toHaveLength(1);
    const good = [
      ' * Offsets: AMD SEV-SNP ABI #56860 rev 1.55 §7.3 Table 22 ATTESTATION_REPORT.',
      ' * GHCB #56421 rev 2.03 §4.1.8.1; go-sev-guest abi/abi.go; test/vectors/snp/README.md §4.',
      ' * See docs/policy-snp.md and docs/architecture.md "One attestation cycle".',
      ' * A shared secret, shared/ state in memory, the sharedKey field.',
    ];
    for (const line of good) expect(findPrivateCitations(line, names), line).toEqual([]);
  });

  it('no tracked file in scope cites the private notes folder', () => {
    const files = scopeFiles();
    expect(files.length).toBeGreaterThan(50);
    const present = new Set(files.map((f) => basename(f)));
    const privateNames = PRIVATE_NOTE_FILES.filter((n) => !present.has(n));
    const offenders: string[] = [];
    for (const file of files.filter(inScope)) {
      const buf = readFileSync(join(repoRoot, file));
      if (buf.includes(0)) continue; // binary
      for (const hit of findPrivateCitations(buf.toString('utf8'), privateNames)) offenders.push(`${file}:${hit}`);
    }
    expect(offenders, 'cite the public specification or source file instead').toEqual([]);
  });
});
