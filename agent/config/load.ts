/** Reading the config file: the I/O edge around the pure parseConfig. */
import { ConfigError, CvmError } from '../errors.js';
import { readBoundedText } from '../util/bounded-read.js';
import { parseConfig, type Config } from './schema.js';

export const DEFAULT_CONFIG_PATH = '/etc/cvm-agent/config.yaml';

/**
 * A missing default file means "all defaults"; a missing explicitly named file is an error. The file
 * must be a regular file within the config size limit (util/bounded-read.ts), checked before reading.
 */
export async function loadConfigFile(path: string | undefined): Promise<{ config: Config; path: string; found: boolean }> {
  const file = path ?? DEFAULT_CONFIG_PATH;
  let text: string;
  try {
    text = await readBoundedText(file, 'config');
  } catch (err) {
    if (err instanceof CvmError) throw new ConfigError(err.message, { cause: err });
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && path === undefined) return { config: parseConfig(''), path: file, found: false };
    throw new ConfigError(`${file}: cannot read: ${(err as Error).message}`, { cause: err });
  }
  return { config: parseConfig(text, file), path: file, found: true };
}
