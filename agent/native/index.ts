/**
 * Loads the native addon (build/Release/cvm_native.node via node-gyp-build).
 * The addon is optional at import time: a machine without a build still runs the pure parts
 * (verification, simulation); the functions that need it throw a typed DeviceError.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';
import { DeviceError } from '../errors.js';

const require = createRequire(import.meta.url);

function packageRoot(): string {
  // agent/native/index.ts (source) or dist/native/index.js (build): walk up to package.json.
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'binding.gyp'))) return dir;
    dir = dirname(dir);
  }
  throw new DeviceError('ERR_NATIVE_UNAVAILABLE', 'cannot locate the cvm-agent package root for the native addon');
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
    `native addon not built or not loadable (run "npm run build:native"): ${cached.error?.message ?? 'unknown error'}`,
    {},
    { cause: cached.error },
  );
}
