/**
 * The addon loader finds the package root by package.json's name, wherever the package was put
 * (repository, npm install -g, /opt/cvm-agent, /usr/lib/cvm-agent), without build files.
 * Loading from an installed copy end to end: test/e2e/npm-package.test.ts and the boot test.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../../../agent/native/addon-loader.js';
import { DeviceError } from '../../../agent/errors.js';
import { repoRoot } from '../../helpers/paths.js';

const dir = mkdtempSync(join(tmpdir(), 'cvm-loader-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('packageRoot', () => {
  it('is the repository when run from source', () => {
    expect(packageRoot()).toBe(repoRoot);
  });

  it('walks up to the package.json named cvm-agent, past other package.json files, with no binding.gyp', () => {
    const root = join(dir, 'lib', 'node_modules', 'cvm-agent');
    mkdirSync(join(root, 'dist', 'native'), { recursive: true });
    writeFileSync(join(root, 'package.json'), JSON.stringify({ name: 'cvm-agent' }));
    writeFileSync(join(root, 'dist', 'package.json'), JSON.stringify({ type: 'module' })); // no name
    writeFileSync(join(root, 'dist', 'native', 'package.json'), '{ not json');
    expect(packageRoot(join(root, 'dist', 'native'))).toBe(root);
  });

  it('fails with a typed error when no cvm-agent package is above', () => {
    const other = join(dir, 'elsewhere', 'a', 'b');
    mkdirSync(other, { recursive: true });
    writeFileSync(join(dir, 'elsewhere', 'package.json'), JSON.stringify({ name: 'not-cvm-agent' }));
    let err: unknown;
    try {
      packageRoot(other);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DeviceError);
    expect((err as DeviceError).code).toBe('ERR_NATIVE_UNAVAILABLE');
    expect((err as Error).message).toMatch(/cannot locate the cvm-agent package root/);
  });
});
