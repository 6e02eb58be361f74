/**
 * JSON Canonicalization Scheme (RFC 8785): the byte string that every party hashes when binding
 * a nonce, the agent key and GPU reports together. Keys sorted by UTF-16 code units (RFC 8785 §3.2.3),
 * numbers in ECMAScript shortest form (§3.2.2.3, which JSON.stringify implements), strings escaped
 * as JSON.stringify does (§3.2.2.2 matches ECMA-262 QuoteJSONString).
 */
import { ParseError } from '../errors.js';

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

export function canonicalize(value: unknown): string {
  return encode(value, 0);
}

function encode(value: unknown, depth: number): string {
  if (depth > 64) throw new ParseError('JCS: nesting deeper than 64');
  if (value === null) return 'null';
  switch (typeof value) {
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw new ParseError('JCS: NaN and Infinity are not JSON');
      return JSON.stringify(value);
    case 'string':
      return JSON.stringify(value);
    case 'object': {
      if (Array.isArray(value)) return `[${value.map((v) => encode(v, depth + 1)).join(',')}]`;
      const obj = value as Record<string, unknown>;
      // Code-unit order, not locale order: plain < comparison on JS strings is exactly that.
      const keys = Object.keys(obj)
        .filter((k) => obj[k] !== undefined)
        .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      return `{${keys.map((k) => `${JSON.stringify(k)}:${encode(obj[k], depth + 1)}`).join(',')}}`;
    }
    default:
      throw new ParseError(`JCS: cannot canonicalize a ${typeof value}`);
  }
}
