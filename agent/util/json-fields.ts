/**
 * The one reader for fields of hostile JSON (evidence bundles, state files, persisted records): type
 * checks, length/count bounds and key allowlists before any value is used. Each caller keeps its own
 * wording (messages name the path the way its format's docs do), supplied once as `words`.
 */
export type JsonObject = Record<string, unknown>;

export const isJsonObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

export interface JsonWords {
  object: string;
  string: string;
  /** For a string over its bound; the `string` wording when absent. */
  tooLong?: (max: number) => string;
  array: (max: number) => string;
  unexpectedKey: (key: string) => string;
}

export interface JsonReader {
  /** An object; with `allowed`, any other own key is refused. */
  obj(v: unknown, where: string, allowed?: readonly string[]): JsonObject;
  /** A string of at most `max` UTF-16 units. */
  str(v: unknown, where: string, max: number): string;
  /** An array of at most `max` items. */
  arr(v: unknown, where: string, max: number): unknown[];
}

/** A reader that reports with `fail(where, problem)` (which throws the caller's typed error). */
export function jsonReader(fail: (where: string, problem: string) => never, words: JsonWords): JsonReader {
  return {
    obj(v, where, allowed) {
      if (!isJsonObject(v)) fail(where, words.object);
      if (allowed) for (const k of Object.keys(v)) if (!allowed.includes(k)) fail(where, words.unexpectedKey(k));
      return v;
    },
    str(v, where, max) {
      if (typeof v !== 'string') fail(where, words.string);
      if (v.length > max) fail(where, words.tooLong ? words.tooLong(max) : words.string);
      return v;
    },
    arr(v, where, max) {
      if (!Array.isArray(v) || v.length > max) fail(where, words.array(max));
      return v;
    },
  };
}

/** An own property only: never one inherited from Object.prototype ("constructor", "__proto__", ...). */
export function ownField(o: JsonObject, key: string): unknown {
  return Object.prototype.hasOwnProperty.call(o, key) ? o[key] : undefined;
}

/** A string of at most `max` UTF-16 units (for readers that drop a bad value instead of throwing). */
export const isBoundedString = (v: unknown, max: number): v is string => typeof v === 'string' && v.length <= max;

/** The own field `key` when it is a string of at most `max` units, else undefined. */
export function stringField(o: JsonObject, key: string, max = Number.POSITIVE_INFINITY): string | undefined {
  const v = ownField(o, key);
  return isBoundedString(v, max) ? v : undefined;
}

/** Whether every own key of `o` is in `allowed`. */
export const hasOnlyKeys = (o: JsonObject, allowed: readonly string[]): boolean => Object.keys(o).every((k) => allowed.includes(k));
