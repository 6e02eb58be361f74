/**
 * Which commit this copy of cvm-agent was built from, for `--version` and bug reports. A packed
 * tarball or .deb carries `build-info.json` at the package root (written by `npm pack`'s prepack
 * step, tools/write-build-info.mjs); a git checkout answers from its own `.git` by reading files, so
 * `--version` never spawns git.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const COMMIT = /^[0-9a-f]{40}$/;

function readSmall(path: string): string | undefined {
  try {
    const text = readFileSync(path, 'utf8');
    return text.length <= 4096 ? text : undefined;
  } catch {
    return undefined; // absent or unreadable: try the next source
  }
}

/** The commit `HEAD` names in a git directory: a detached id, or a branch through loose or packed refs. */
export function commitFromGitDir(gitDir: string): string | undefined {
  const head = readSmall(join(gitDir, 'HEAD'))?.trim();
  if (!head) return undefined;
  if (COMMIT.test(head)) return head;
  const ref = /^ref: (refs\/[\w./-]+)$/.exec(head)?.[1];
  if (!ref || ref.includes('..')) return undefined;
  // A worktree's git directory keeps HEAD; its branches live in the common directory.
  const common = readSmall(join(gitDir, 'commondir'))?.trim();
  const refDirs = common ? [gitDir, common.startsWith('/') ? common : join(gitDir, common)] : [gitDir];
  for (const dir of refDirs) {
    const loose = readSmall(join(dir, ref))?.trim();
    if (loose && COMMIT.test(loose)) return loose;
    const packed = packedRef(dir, ref);
    if (packed) return packed;
  }
  return undefined;
}

function packedRef(gitDir: string, ref: string): string | undefined {
  let packed: string;
  try {
    packed = readFileSync(join(gitDir, 'packed-refs'), 'utf8');
  } catch {
    return undefined;
  }
  for (const line of packed.split('\n')) {
    const [id, name] = line.split(' ');
    if (name === ref && id && COMMIT.test(id)) return id;
  }
  return undefined;
}

/** `.git` is a directory in a clone and a file (`gitdir: …`) in a worktree. */
function gitDirOf(root: string): string | undefined {
  const pointer = readSmall(join(root, '.git'));
  if (pointer === undefined) return join(root, '.git');
  const dir = /^gitdir: (.+)$/m.exec(pointer)?.[1]?.trim();
  return dir ? (dir.startsWith('/') ? dir : join(root, dir)) : undefined;
}

/** The build's commit, or "unknown" (a tarball made without the prepack step, a copied tree). */
export function buildCommit(root: string): string {
  const info = readSmall(join(root, 'build-info.json'));
  if (info !== undefined) {
    try {
      const commit = (JSON.parse(info) as { commit?: unknown }).commit;
      if (typeof commit === 'string' && COMMIT.test(commit)) return commit;
    } catch {
      // a damaged build-info.json: fall through to git, then "unknown"
    }
  }
  const gitDir = gitDirOf(root);
  return (gitDir && commitFromGitDir(gitDir)) ?? 'unknown';
}
