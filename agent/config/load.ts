/** Reading the config file: the I/O edge around the pure parseConfig. */
import { readFile } from 'node:fs/promises';
import { ConfigError } from '../errors.js';
import { parseConfig, type Config } from './schema.js';

export const DEFAULT_CONFIG_PATH = '/etc/cvm-agent/config.yaml';

/** A missing default file means "all defaults"; a missing explicitly named file is an error. */
export async function loadConfigFile(path: string | undefined): Promise<{ config: Config; path: string; found: boolean }> {
  const file = path ?? DEFAULT_CONFIG_PATH;
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && path === undefined) return { config: parseConfig(''), path: file, found: false };
    throw new ConfigError(`${file}: cannot read: ${(err as Error).message}`, { cause: err });
  }
  return { config: parseConfig(text, file), path: file, found: true };
}
