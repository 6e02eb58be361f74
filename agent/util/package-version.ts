/**
 * The package's version, read from package.json: the one place it is written. This file sits two
 * folders below the package root both as source (agent/util/) and compiled (dist/util/).
 */
import { readFileSync } from 'node:fs';
import { InternalError } from '../errors.js';

export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
  if (typeof pkg.version !== 'string' || pkg.version === '')
    throw new InternalError('package.json has no version string (a damaged install: reinstall cvm-agent)');
  return pkg.version;
}
