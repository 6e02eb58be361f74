/**
 * JSON Canonicalization Scheme (RFC 8785): the byte string that every party hashes when binding
 * a nonce, the agent key and GPU reports together. Keys sorted by UTF-16 code units (RFC 8785 §3.2.3),
 * numbers in ECMAScript shortest form (§3.2.2.3, which JSON.stringify implements), strings escaped
 * as JSON.stringify does (§3.2.2.2 matches ECMA-262 QuoteJSONString), except that a lone surrogate
 * is an error (§3.2.2.2 note: it MUST terminate the canonicalisation), where JSON.stringify would
 * write it as a \udxxx escape.
 */
import { ParseError } from '../errors.js';

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** A high surrogate not followed by a low one, or a low one not preceded by a high one. */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

function quote(s: string): string {
  if (LONE_SURROGATE.test(s)) throw new ParseError('JCS: a string holds a lone surrogate, which is not Unicode (RFC 8785 §3.2.2.2)');
  return JSON.stringify(s);
}

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
      return quote(value);
    case 'object': {
      if (Array.isArray(value)) return `[${value.map((v) => encode(v, depth + 1)).join(',')}]`;
      const obj = value as Record<string, unknown>;
      // Code-unit order, not locale order: plain < comparison on JS strings is exactly that.
      const keys = Object.keys(obj)
        .filter((k) => obj[k] !== undefined)
        .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      return `{${keys.map((k) => `${quote(k)}:${encode(obj[k], depth + 1)}`).join(',')}}`;
    }
    default:
      throw new ParseError(`JCS: cannot canonicalize a ${typeof value}`);
  }
}
