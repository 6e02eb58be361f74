/**
 * A clean copy of this checkout for packaging tests: the tracked and new (not ignored) files, the
 * built addon, and node_modules as a link to ours. `npm pack` (whose prepack rebuilds dist/) and
 * `npm run package:deb` then run there, so the repository's own dist/, which other tests use
 * concurrently, is never rewritten under them.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, statSync, chmodSync, symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { repoRoot } from './paths.js';

export function stageCheckout(dir: string, opts: { linkNodeModules?: boolean } = {}): string {
  const ls = spawnSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: repoRoot, encoding: 'utf8' });
  if (ls.status !== 0) throw new Error(`git ls-files failed: ${ls.stderr}`);
  for (const f of ls.stdout.split('\0').filter(Boolean)) {
    if (f === 'node_modules') continue; // a link in git worktrees
    const src = join(repoRoot, f);
    let st;
    try {
      st = statSync(src);
    } catch {
      continue;
    } // deleted in the work tree
    if (!st.isFile()) continue;
    mkdirSync(dirname(join(dir, f)), { recursive: true });
    copyFileSync(src, join(dir, f));
    chmodSync(join(dir, f), st.mode & 0o755);
  }
  mkdirSync(join(dir, 'build', 'Release'), { recursive: true });
  copyFileSync(join(repoRoot, 'build', 'Release', 'cvm_native.node'), join(dir, 'build', 'Release', 'cvm_native.node'));
  if (opts.linkNodeModules !== false) symlinkSync(join(repoRoot, 'node_modules'), join(dir, 'node_modules'));
  return dir;
}
