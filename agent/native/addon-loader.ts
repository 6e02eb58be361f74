/**
 * Loads the native addon through node-gyp-build, from the cvm-agent package root: a local build
 * (build/Release/cvm_native.node) first, else a prebuilt one (prebuilds/<platform>-<arch>/*.node,
 * what `npm pack` and the .deb ship). No build files are needed at run time, so the same code works
 * from the repository, an `npm install -g` tree, /opt/cvm-agent and /usr/lib/cvm-agent.
 * The addon is optional at import time: a machine without it still runs the pure parts
 * (verification, simulation); the functions that need it throw a typed DeviceError.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';
import { DeviceError } from '../errors.js';

const require = createRequire(import.meta.url);

const PACKAGE_NAME = 'cvm-agent';
/** agent/native (source) and dist/native (build) are two levels below the root; allow some slack. */
const MAX_LEVELS = 6;

function isPackageRoot(dir: string): boolean {
  try {
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: unknown };
    return pkg.name === PACKAGE_NAME;
  } catch {
    return false; // no package.json, or not JSON: keep walking up
  }
}

/** The nearest directory above this module whose package.json is named cvm-agent. */
export function packageRoot(from = dirname(fileURLToPath(import.meta.url))): string {
  let dir = from;
  for (let i = 0; i < MAX_LEVELS; i++) {
    if (isPackageRoot(dir)) return dir;
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  throw new DeviceError('ERR_NATIVE_UNAVAILABLE', `cannot locate the cvm-agent package root (a package.json named "${PACKAGE_NAME}") above ${from}`);
}

let cached: { addon?: NativeAddon; error?: Error } | undefined;

/** Raw addon surface; each part's TypeScript wrapper narrows the types further. */
export type NativeAddon = Record<string, (...args: never[]) => unknown>;

export function loadNative(): NativeAddon {
  if (!cached) {
    try {
      const nodeGypBuild = require('node-gyp-build') as (dir: string) => NativeAddon;
      cached = { addon: nodeGypBuild(packageRoot()) };
    } catch (err) {
      cached = { error: err as Error };
    }
  }
  if (cached.addon) return cached.addon;
  throw new DeviceError(
    'ERR_NATIVE_UNAVAILABLE',
    `native addon not built or not loadable (run "npm run build:native", or reinstall a package with prebuilds/): ${firstLine(cached.error?.message ?? 'unknown error')}`,
    {},
    { cause: cached.error },
  );
}

/** node-gyp-build's "no native build" error spans lines; users get one line. */
function firstLine(s: string): string {
  return s.split('\n')[0]!.trim();
}

/** What `--version` reports about the addon: the Node-API version it was built for, or why it is absent. */
export function addonAbi(): { loaded: true; napiVersion: number | null } | { loaded: false; reason: string } {
  try {
    const v = (loadNative() as unknown as { napiVersion?: unknown }).napiVersion;
    return { loaded: true, napiVersion: typeof v === 'number' ? v : null };
  } catch (err) {
    return { loaded: false, reason: (err as Error).message };
  }
}
