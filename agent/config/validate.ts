/**
 * The one declarative validator for the files an operator writes: the agent config (config/schema.ts),
 * the controller config (controller/config.ts) and the SNP, GPU and combined policy files
 * (appraise/snp-policy.ts, appraise/gpu-policy.ts, appraise/policy.ts). Each schema node checks one
 * value and reports a problem at its dotted key path, so "schedule.jitterSec: must be an integer
 * between 0 and 3600" tells the operator exactly what to fix. Unknown keys are errors (typos must not
 * pass silently). Keys are looked up as own properties only, so "__proto__", "constructor" or
 * "toString" in a file are unknown keys like any other, never a path into Object.prototype.
 */
import { ConfigError } from '../errors.js';

/** Problems found in one file, each worded "<where>: <what>"; `where` names the key the way the file's readers expect. */
export class Problems {
  readonly lines: string[] = [];
  constructor(private readonly where: (path: string) => string = at) {}
  add(path: string, what: string): void {
    this.lines.push(`${this.where(path)}: ${what}`);
  }
}

export interface Schema<T> {
  /** Human description of what is expected, used in error messages. */
  describe: string;
  check(value: unknown, path: string, problems: Problems): T | undefined;
}

/** The config's key wording: the dotted path, "(top level)" for the document itself. */
export const at = (path: string): string => (path === '' ? '(top level)' : path);

export const str = (opts: { pattern?: RegExp; hint?: string; nonEmpty?: boolean } = {}): Schema<string> => ({
  describe: opts.hint ?? 'a string',
  check(v, path, problems) {
    if (typeof v !== 'string' || (opts.nonEmpty !== false && v.length === 0)) {
      problems.add(path, `must be ${this.describe}`);
      return undefined;
    }
    if (opts.pattern && !opts.pattern.test(v)) {
      problems.add(path, `must be ${this.describe}, got "${v}"`);
      return undefined;
    }
    return v;
  },
});

export const int = (min: number, max: number): Schema<number> => ({
  describe: `an integer between ${min} and ${max}`,
  check(v, path, problems) {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      problems.add(path, `must be ${this.describe}, got ${JSON.stringify(v)}`);
      return undefined;
    }
    return v;
  },
});

export const bool = (): Schema<boolean> => ({
  describe: 'true or false',
  check(v, path, problems) {
    if (typeof v !== 'boolean') {
      problems.add(path, `must be true or false, got ${JSON.stringify(v)}`);
      return undefined;
    }
    return v;
  },
});

export const oneOf = <const V extends string>(values: readonly V[]): Schema<V> => ({
  describe: `one of ${values.map((x) => `"${x}"`).join(', ')}`,
  check(v, path, problems) {
    if (typeof v !== 'string' || !(values as readonly string[]).includes(v)) {
      problems.add(path, `must be ${this.describe}, got ${JSON.stringify(v)}`);
      return undefined;
    }
    return v as V;
  },
});

export interface ListOptions {
  /** What the list is, for the message when the value is no list (default "a list of <item>"). */
  describe?: string;
  /**
   * A lone value as shorthand for a one-item list: 'item' checks any non-list as the item at the same
   * key; 'string' takes a string as the list's item [0].
   */
  single?: 'item' | 'string';
  /** When set, an empty list is a problem worded so (e.g. "empty list would reject every report"). */
  nonEmpty?: string;
}

export const list = <T>(item: Schema<T>, maxItems = 1024, opts: ListOptions = {}): Schema<T[]> => ({
  describe: opts.describe ?? `a list of ${item.describe}`,
  check(v, path, problems) {
    if (!Array.isArray(v) && opts.single === 'item') {
      const r = item.check(v, path, problems);
      return r === undefined ? undefined : [r];
    }
    const items = typeof v === 'string' && opts.single === 'string' ? [v] : v;
    if (!Array.isArray(items) || items.length > maxItems) {
      const cap = Number.isFinite(maxItems) ? ` (at most ${maxItems})` : '';
      problems.add(path, `must be ${this.describe}${cap}${Array.isArray(items) ? '' : `, got ${typeName(items)}`}`);
      return undefined;
    }
    if (items.length === 0 && opts.nonEmpty !== undefined) {
      problems.add(path, opts.nonEmpty);
      return undefined;
    }
    const out: T[] = [];
    items.forEach((x, i) => {
      const r = item.check(x, `${path}[${i}]`, problems);
      if (r !== undefined) out.push(r);
    });
    return out;
  },
});

/** A map with free-form keys (matching keyPattern) and uniform values. */
export const dict = <T>(value: Schema<T>, keyPattern: RegExp, keyHint: string): Schema<Record<string, T>> => ({
  describe: `a mapping of ${keyHint} to ${value.describe}`,
  check(v, path, problems) {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) {
      problems.add(path, `must be ${this.describe}`);
      return undefined;
    }
    const out: Record<string, T> = {};
    for (const [k, x] of Object.entries(v)) {
      if (!keyPattern.test(k) || k === '__proto__') {
        problems.add(`${path}.${k}`, `"${k}" is not ${keyHint}`);
        continue;
      }
      const r = value.check(x, `${path}.${k}`, problems);
      if (r !== undefined) out[k] = r;
    }
    return out;
  },
});

type Shape = Record<string, Schema<unknown>>;
type Out<S extends Shape> = { [K in keyof S]?: S[K] extends Schema<infer T> ? T : never };

export interface ObjOptions {
  /**
   * What an empty key (null) means. 'default' (configs): use the default, as if absent. 'value'
   * (policy files, where a key left empty must not silently mean "any"): null is checked like any
   * value, and is not a mapping.
   */
  nulls?: 'default' | 'value';
}

export const obj = <S extends Shape>(shape: S, opts: ObjOptions = {}): Schema<Out<S>> => ({
  describe: 'a mapping',
  check(v, path, problems) {
    const nullIsDefault = opts.nulls !== 'value';
    if (v === undefined || (v === null && nullIsDefault)) return {} as Out<S>;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) {
      problems.add(path, `must be a mapping of keys to values${nullIsDefault ? '' : `, got ${typeName(v)}`}`);
      return undefined;
    }
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      const child = Object.hasOwn(shape, k) ? shape[k] : undefined;
      const childPath = path === '' ? k : `${path}.${k}`;
      if (!child) {
        problems.add(childPath, `unknown key (known keys: ${Object.keys(shape).join(', ')})`);
        continue;
      }
      if (x === undefined || (x === null && nullIsDefault)) continue; // an empty key means "use the default"
      const r = child.check(x, childPath, problems);
      if (r !== undefined) out[k] = r;
    }
    return out as Out<S>;
  },
});

/** The kind of a value, for messages about values that are not even of the right type. */
export const typeName = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'a list' : typeof v === 'object' ? 'a mapping' : `a ${typeof v}`);

/**
 * Check a policy section: its value, or a ConfigError naming the first problem on one line (the
 * verify commands print a refusal as one line). `where` words the key, e.g. `SNP policy key "vmpl"`.
 */
export function checkOrThrowFirst<T>(schema: Schema<T>, value: unknown, path: string, where: (path: string) => string): T {
  const problems = new Problems(where);
  const out = schema.check(value, path, problems);
  if (problems.lines.length > 0 || out === undefined) throw new ConfigError(problems.lines[0] ?? `${where(path)}: ${schema.describe} expected`);
  return out;
}

/** Problems listed in one error; a hostile file with 60,000 unknown keys gets a short message. */
export const MAX_LISTED_PROBLEMS = 50;

/** One ConfigError listing every problem (up to MAX_LISTED_PROBLEMS), so an operator fixes a file in one pass. */
export function problemsError(source: string, errors: readonly string[]): ConfigError {
  const listed = errors.slice(0, MAX_LISTED_PROBLEMS);
  const more = errors.length > listed.length ? `\n  - ... and ${errors.length - listed.length} more` : '';
  return new ConfigError(`${source}: ${errors.length} problem${errors.length === 1 ? '' : 's'}:\n  - ${listed.join('\n  - ')}${more}`);
}
