/**
 * Strict YAML for configuration files: size-bounded, duplicate keys rejected, and warnings (unknown
 * tags, ...) treated as errors: nothing in a security daemon's config is ignored silently.
 */
import { parseDocument } from 'yaml';
import { ConfigError } from '../errors.js';

export const MAX_CONFIG_BYTES = 1024 * 1024;

export function readYaml(text: string, source: string): unknown {
  if (text.length > MAX_CONFIG_BYTES) throw new ConfigError(`${source}: larger than 1 MiB`);
  try {
    const parsed = parseDocument(text, { prettyErrors: true, logLevel: 'silent', uniqueKeys: true });
    const problems = [...parsed.errors, ...parsed.warnings];
    if (problems.length > 0) throw problems[0];
    return parsed.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw new ConfigError(`${source}: not valid YAML: ${(err as Error).message}`, { cause: err });
  }
}
