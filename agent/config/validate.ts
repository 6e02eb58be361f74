/**
 * A tiny declarative validator for the YAML config: each schema node checks one value and reports
 * errors with the dotted key path, so "schedule.jitterSec: must be an integer between 0 and 3600"
 * tells the operator exactly what to fix. Unknown keys are errors (typos must not pass silently).
 * Keys are looked up as own properties only, so "__proto__", "constructor" or "toString" in a file
 * are unknown keys like any other, never a path into Object.prototype.
 */
import { ConfigError } from '../errors.js';

export interface Schema<T> {
  /** Human description of what is expected, used in error messages. */
  describe: string;
  check(value: unknown, path: string, errors: string[]): T | undefined;
}

const at = (path: string) => (path === '' ? '(top level)' : path);

export const str = (opts: { pattern?: RegExp; hint?: string; nonEmpty?: boolean } = {}): Schema<string> => ({
  describe: opts.hint ?? 'a string',
  check(v, path, errors) {
    if (typeof v !== 'string' || (opts.nonEmpty !== false && v.length === 0)) {
      errors.push(`${at(path)}: must be ${this.describe}`);
      return undefined;
    }
    if (opts.pattern && !opts.pattern.test(v)) {
      errors.push(`${at(path)}: must be ${this.describe}, got "${v}"`);
      return undefined;
    }
    return v;
  },
});

export const int = (min: number, max: number): Schema<number> => ({
  describe: `an integer between ${min} and ${max}`,
  check(v, path, errors) {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      errors.push(`${at(path)}: must be ${this.describe}, got ${JSON.stringify(v)}`);
      return undefined;
    }
    return v;
  },
});

export const bool = (): Schema<boolean> => ({
  describe: 'true or false',
  check(v, path, errors) {
    if (typeof v !== 'boolean') {
      errors.push(`${at(path)}: must be true or false, got ${JSON.stringify(v)}`);
      return undefined;
    }
    return v;
  },
});

export const oneOf = <const V extends string>(values: readonly V[]): Schema<V> => ({
  describe: `one of ${values.map((x) => `"${x}"`).join(', ')}`,
  check(v, path, errors) {
    if (typeof v !== 'string' || !(values as readonly string[]).includes(v)) {
      errors.push(`${at(path)}: must be ${this.describe}, got ${JSON.stringify(v)}`);
      return undefined;
    }
    return v as V;
  },
});

export const list = <T>(item: Schema<T>, maxItems = 1024): Schema<T[]> => ({
  describe: `a list of ${item.describe}`,
  check(v, path, errors) {
    if (!Array.isArray(v) || v.length > maxItems) {
      errors.push(`${at(path)}: must be ${this.describe} (at most ${maxItems})`);
      return undefined;
    }
    const out: T[] = [];
    v.forEach((x, i) => {
      const r = item.check(x, `${path}[${i}]`, errors);
      if (r !== undefined) out.push(r);
    });
    return out;
  },
});

/** A map with free-form keys (matching keyPattern) and uniform values. */
export const dict = <T>(value: Schema<T>, keyPattern: RegExp, keyHint: string): Schema<Record<string, T>> => ({
  describe: `a mapping of ${keyHint} to ${value.describe}`,
  check(v, path, errors) {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) {
      errors.push(`${at(path)}: must be ${this.describe}`);
      return undefined;
    }
    const out: Record<string, T> = {};
    for (const [k, x] of Object.entries(v)) {
      if (!keyPattern.test(k) || k === '__proto__') {
        errors.push(`${path}.${k}: "${k}" is not ${keyHint}`);
        continue;
      }
      const r = value.check(x, `${path}.${k}`, errors);
      if (r !== undefined) out[k] = r;
    }
    return out;
  },
});

type Shape = Record<string, Schema<unknown>>;
type Out<S extends Shape> = { [K in keyof S]?: S[K] extends Schema<infer T> ? T : never };

export const obj = <S extends Shape>(shape: S): Schema<Out<S>> => ({
  describe: 'a mapping',
  check(v, path, errors) {
    if (v === null || v === undefined) return {} as Out<S>;
    if (typeof v !== 'object' || Array.isArray(v)) {
      errors.push(`${at(path)}: must be a mapping of keys to values`);
      return undefined;
    }
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      const child = Object.hasOwn(shape, k) ? shape[k] : undefined;
      const childPath = path === '' ? k : `${path}.${k}`;
      if (!child) {
        errors.push(`${childPath}: unknown key (known keys: ${Object.keys(shape).join(', ')})`);
        continue;
      }
      if (x === null || x === undefined) continue; // an empty key means "use the default"
      const r = child.check(x, childPath, errors);
      if (r !== undefined) out[k] = r;
    }
    return out as Out<S>;
  },
});

/** Problems listed in one error; a hostile file with 60,000 unknown keys gets a short message. */
export const MAX_LISTED_PROBLEMS = 50;

/** One ConfigError listing every problem (up to MAX_LISTED_PROBLEMS), so an operator fixes a file in one pass. */
export function problemsError(source: string, errors: readonly string[]): ConfigError {
  const listed = errors.slice(0, MAX_LISTED_PROBLEMS);
  const more = errors.length > listed.length ? `\n  - ... and ${errors.length - listed.length} more` : '';
  return new ConfigError(`${source}: ${errors.length} problem${errors.length === 1 ? '' : 's'}:\n  - ${listed.join('\n  - ')}${more}`);
}
