/**
 * A small JSON Schema (draft 2020-12) interpreter for the subset the link protocol uses, so the
 * published schemas (docs/protocol.md) and the validator can never drift apart: the schemas ARE the
 * validator. Supported keywords: type, const, enum, properties, required, additionalProperties,
 * minProperties/maxProperties, items, minItems/maxItems, minLength/maxLength, pattern,
 * minimum/maximum, anyOf, description/title/$id/$schema (annotations).
 *
 * Why not ajv: ~40 schema objects with plain keywords; a 100-line interpreter has no code generation
 * (ajv compiles schemas to JS with `new Function`), no dependency, and every path is under our tests.
 * Lengths count UTF-16 code units (JSON Schema counts code points): never laxer than the spec.
 * Never throws on any input value; an unsupported keyword in a schema throws at module load (tests).
 */
import { InternalError } from '../errors.js';

export type JsonType = 'object' | 'array' | 'string' | 'integer' | 'number' | 'boolean' | 'null';

export interface Schema {
  $schema?: string;
  $id?: string;
  title?: string;
  description?: string;
  type?: JsonType | JsonType[];
  const?: unknown;
  enum?: readonly unknown[];
  properties?: Record<string, Schema>;
  required?: readonly string[];
  additionalProperties?: boolean | Schema;
  minProperties?: number;
  maxProperties?: number;
  items?: Schema;
  minItems?: number;
  maxItems?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  minimum?: number;
  maximum?: number;
  anyOf?: Schema[];
}

const KNOWN = new Set<string>([
  '$schema',
  '$id',
  'title',
  'description',
  'type',
  'const',
  'enum',
  'properties',
  'required',
  'additionalProperties',
  'minProperties',
  'maxProperties',
  'items',
  'minItems',
  'maxItems',
  'minLength',
  'maxLength',
  'pattern',
  'minimum',
  'maximum',
  'anyOf',
]);

/** Throws if a schema uses a keyword this interpreter would silently ignore (an ignored keyword fails open). */
export function assertSupported(schema: Schema, path = '#'): void {
  for (const k of Object.keys(schema)) if (!KNOWN.has(k)) throw new InternalError(`schema ${path}: unsupported keyword ${k}`);
  for (const [k, s] of Object.entries(schema.properties ?? {})) assertSupported(s, `${path}/properties/${k}`);
  if (typeof schema.additionalProperties === 'object') assertSupported(schema.additionalProperties, `${path}/additionalProperties`);
  if (schema.items) assertSupported(schema.items, `${path}/items`);
  schema.anyOf?.forEach((s, i) => assertSupported(s, `${path}/anyOf/${i}`));
}

function typeOf(v: unknown): JsonType | 'other' {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  switch (typeof v) {
    case 'string':
      return 'string';
    case 'boolean':
      return 'boolean';
    case 'number':
      return Number.isFinite(v) ? (Number.isInteger(v) ? 'integer' : 'number') : 'other';
    case 'object':
      return 'object';
    default:
      return 'other';
  }
}

const regexCache = new Map<string, RegExp>();
function regex(p: string): RegExp {
  let r = regexCache.get(p);
  if (!r) {
    r = new RegExp(p, 'u');
    regexCache.set(p, r);
  }
  return r;
}

const show = (v: unknown) => {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 40 ? `${s.slice(0, 40)}…` : s;
};

/** The first violation as "<JSON pointer>: <reason>", or undefined when the value is valid. */
export function validate(schema: Schema, value: unknown, path = ''): string | undefined {
  const at = path === '' ? '/' : path;
  const t = typeOf(value);
  if (schema.type !== undefined) {
    const types = Array.isArray(schema.type) ? schema.type : [schema.type];
    const ok = types.some((want) => want === t || (want === 'number' && t === 'integer'));
    if (!ok) return `${at}: must be ${types.join(' or ')}`;
  }
  if ('const' in schema && value !== schema.const) return `${at}: must be ${show(schema.const)}`;
  if (schema.enum && !schema.enum.includes(value)) return `${at}: must be one of ${schema.enum.map(show).join(', ')}`;
  if (t === 'string') {
    const s = value as string;
    if (schema.minLength !== undefined && s.length < schema.minLength) return `${at}: must be at least ${schema.minLength} characters`;
    if (schema.maxLength !== undefined && s.length > schema.maxLength) return `${at}: must be at most ${schema.maxLength} characters`;
    if (schema.pattern !== undefined && !regex(schema.pattern).test(s)) return `${at}: must match ${schema.pattern}`;
  }
  if (t === 'integer' || t === 'number') {
    const n = value as number;
    if (schema.minimum !== undefined && n < schema.minimum) return `${at}: must be >= ${schema.minimum}`;
    if (schema.maximum !== undefined && n > schema.maximum) return `${at}: must be <= ${schema.maximum}`;
  }
  if (t === 'array') {
    const a = value as unknown[];
    if (schema.minItems !== undefined && a.length < schema.minItems) return `${at}: must have at least ${schema.minItems} items`;
    if (schema.maxItems !== undefined && a.length > schema.maxItems) return `${at}: must have at most ${schema.maxItems} items`;
    if (schema.items) {
      for (let i = 0; i < a.length; i++) {
        const e = validate(schema.items, a[i], `${path}/${i}`);
        if (e) return e;
      }
    }
  }
  if (t === 'object') {
    const o = value as Record<string, unknown>;
    const keys = Object.keys(o);
    if (schema.minProperties !== undefined && keys.length < schema.minProperties) return `${at}: must have at least ${schema.minProperties} members`;
    if (schema.maxProperties !== undefined && keys.length > schema.maxProperties) return `${at}: must have at most ${schema.maxProperties} members`;
    for (const r of schema.required ?? []) if (!Object.hasOwn(o, r)) return `${at}: missing required member "${r}"`;
    const props = schema.properties ?? {};
    for (const k of keys) {
      const sub = Object.hasOwn(props, k) ? props[k] : undefined;
      const childPath = `${path}/${k.replace(/~/g, '~0').replace(/\//g, '~1')}`;
      if (sub) {
        const e = validate(sub, o[k], childPath);
        if (e) return e;
      } else if (schema.additionalProperties === false) {
        return `${childPath}: unknown member`;
      } else if (typeof schema.additionalProperties === 'object') {
        const e = validate(schema.additionalProperties, o[k], childPath);
        if (e) return e;
      }
    }
  }
  if (schema.anyOf) {
    const errors: string[] = [];
    for (const s of schema.anyOf) {
      const e = validate(s, value, path);
      if (!e) return undefined;
      errors.push(e);
    }
    return `${at}: matches no alternative (${errors.join('; ')})`;
  }
  return undefined;
}
