// prepack: record the commit the package is built from in build-info.json (read by `cvm-agent --version`).
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';

// SOURCE_COMMIT names the commit where the tree being packed is not a git checkout (a build system's copy).
let commit = process.env.SOURCE_COMMIT ?? 'unknown';
if (!process.env.SOURCE_COMMIT)
  try {
    commit = execFileSync('git', ['rev-parse', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    // not a git checkout: the package says "unknown"
  }
writeFileSync('build-info.json', `${JSON.stringify({ commit })}\n`);
