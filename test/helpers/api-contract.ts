/**
 * The local API's contract (docs/openapi.yaml) as a test oracle: `checkResponse` says what is wrong
 * with one real response (undeclared status for the path and method, wrong content type, a body
 * that does not match its schema, a server-sent event that matches none). Schemas are checked by the
 * agent's own JSON Schema interpreter (agent/link/json-schema.ts) after local `$ref`s are resolved
 * here; a keyword it does not know fails at load instead of being ignored.
 *
 * Pure apart from `loadContract` (which reads the file) and the recorded violations, which the
 * e2e/adversarial setup (test/helpers/api-contract-setup.ts) turns into a failed test.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { assertSupported, validate, type Schema } from '../../agent/link/json-schema.js';
import { repoRoot } from './paths.js';

export const CONTRACT_FILE = join(repoRoot, 'docs', 'openapi.yaml');

/** Annotations OpenAPI 3.1 / 2020-12 allows that the interpreter need not know (they never constrain). */
const ANNOTATIONS = new Set(['format', 'examples', 'example', 'deprecated', 'readOnly', 'writeOnly', 'contentMediaType', 'contentEncoding']);

type Json = unknown;

export interface MediaType {
  schema: Schema;
  /** Server-sent event name -> schema of its data (`x-events`). */
  events?: Record<string, Schema>;
}

export interface ResponseSpec {
  content: Record<string, MediaType>;
  headers: string[];
}

export interface Operation {
  method: string;
  path: string;
  authorization: string | undefined;
  parameters: { name: string; in: string; required: boolean; schema: Schema }[];
  responses: Record<string, ResponseSpec>;
}

export interface Contract {
  operations: Operation[];
  unrouted: { anyRequest: Record<string, ResponseSpec>; unknownPath: Record<string, ResponseSpec>; unknownMethod: Record<string, ResponseSpec> };
  /** Every problem schema: its status and the `type` URIs it allows. */
  problems: { name: string; status: number; types: string[] }[];
}

/** Resolves local JSON-pointer `$ref`s (no cycles in this document) and drops annotation keywords. */
export function resolveRefs(root: Json, node: Json, seen: string[] = []): Json {
  if (Array.isArray(node)) return node.map((n) => resolveRefs(root, n, seen));
  if (typeof node !== 'object' || node === null) return node;
  const o = node as Record<string, Json>;
  if (typeof o.$ref === 'string') {
    const ref = o.$ref;
    if (!ref.startsWith('#/')) throw new Error(`only local $refs are supported: ${ref}`);
    if (seen.includes(ref)) throw new Error(`$ref cycle: ${[...seen, ref].join(' -> ')}`);
    let target: Json = root;
    for (const part of ref.slice(2).split('/')) {
      const key = part.replace(/~1/g, '/').replace(/~0/g, '~');
      if (typeof target !== 'object' || target === null || !Object.hasOwn(target, key)) throw new Error(`unresolvable $ref ${ref}`);
      target = (target as Record<string, Json>)[key];
    }
    // Siblings of $ref may only annotate (a constraining sibling would need allOf semantics).
    const siblings = Object.keys(o).filter((k) => k !== '$ref' && k !== 'description' && k !== 'summary' && !ANNOTATIONS.has(k));
    if (siblings.length) throw new Error(`$ref ${ref} has constraining siblings: ${siblings.join(', ')}`);
    return resolveRefs(root, target, [...seen, ref]);
  }
  const out: Record<string, Json> = {};
  for (const [k, v] of Object.entries(o)) {
    // Maps of names to schemas: a member may be called "format" without being the keyword.
    if (k === 'properties' || k === 'x-events' || k === 'schemas') {
      out[k] = Object.fromEntries(Object.entries(v as Record<string, Json>).map(([name, s]) => [name, resolveRefs(root, s, seen)]));
      continue;
    }
    if (ANNOTATIONS.has(k)) continue;
    out[k] = resolveRefs(root, v, seen);
  }
  return out;
}

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

function responsesOf(raw: Record<string, Json> | undefined, where: string): Record<string, ResponseSpec> {
  const out: Record<string, ResponseSpec> = {};
  for (const [status, r] of Object.entries(raw ?? {})) {
    if (!/^[1-5]\d\d$/.test(status)) throw new Error(`${where}: response key ${status} is not an explicit status code (no ranges, no default)`);
    const resp = r as { content?: Record<string, { schema?: Schema; 'x-events'?: Record<string, Schema> }>; headers?: Record<string, unknown> };
    const content: Record<string, MediaType> = {};
    for (const [type, m] of Object.entries(resp.content ?? {})) {
      if (!m.schema) throw new Error(`${where} ${status} ${type}: no schema`);
      assertSupported(m.schema, `${where}/${status}/${type}`);
      for (const [name, s] of Object.entries(m['x-events'] ?? {})) assertSupported(s, `${where}/${status}/${type}/x-events/${name}`);
      content[type] = { schema: m.schema, ...(m['x-events'] ? { events: m['x-events'] } : {}) };
    }
    out[status] = { content, headers: Object.keys(resp.headers ?? {}).map((h) => h.toLowerCase()) };
  }
  return out;
}

/** The contract from parsed OpenAPI (a document, not a file: unit tests pass their own). */
export function contractFrom(doc: Json): Contract {
  const d = resolveRefs(doc, doc) as {
    openapi: string;
    paths: Record<string, Record<string, Json>>;
    'x-unrouted-responses': Record<string, { responses: Record<string, Json> }>;
    components?: { schemas?: Record<string, Schema> };
  };
  if (!/^3\.1\.\d+$/.test(d.openapi)) throw new Error(`not OpenAPI 3.1: ${d.openapi}`);
  const operations: Operation[] = [];
  for (const [path, item] of Object.entries(d.paths)) {
    for (const [method, op] of Object.entries(item)) {
      if (!METHODS.includes(method)) throw new Error(`${path}: unexpected key ${method}`);
      const o = op as { 'x-authorization'?: string; parameters?: Operation['parameters']; responses: Record<string, Json> };
      const parameters = (o.parameters ?? []).map((p) => {
        assertSupported(p.schema, `${path}/${method}/parameters/${p.name}`);
        return { name: p.name, in: p.in, required: Boolean(p.required), schema: p.schema };
      });
      operations.push({
        method: method.toUpperCase(),
        path,
        authorization: o['x-authorization'],
        parameters,
        responses: responsesOf(o.responses, `${method.toUpperCase()} ${path}`),
      });
    }
  }
  const u = d['x-unrouted-responses'];
  const problems: Contract['problems'] = [];
  for (const [name, s] of Object.entries(d.components?.schemas ?? {})) {
    if (!name.endsWith('Problem')) continue;
    const status = s.properties?.status?.const;
    const type = s.properties?.type;
    const types = (type?.enum ?? (type && 'const' in type ? [type.const] : [])) as string[];
    if (typeof status !== 'number' || types.length === 0) throw new Error(`problem schema ${name} needs a const status and its type URIs`);
    problems.push({ name, status, types });
  }
  return {
    operations,
    unrouted: {
      anyRequest: responsesOf(u?.anyRequest?.responses, 'x-unrouted-responses/anyRequest'),
      unknownPath: responsesOf(u?.unknownPath?.responses, 'x-unrouted-responses/unknownPath'),
      unknownMethod: responsesOf(u?.unknownMethod?.responses, 'x-unrouted-responses/unknownMethod'),
    },
    problems,
  };
}

let cached: Contract | undefined;
export function loadContract(): Contract {
  cached ??= contractFrom(parse(readFileSync(CONTRACT_FILE, 'utf8')));
  return cached;
}

/** A path template (/v1/secrets/{name}) as a matcher, its parameters checked by their schemas. */
export function matchPath(op: Pick<Operation, 'path' | 'parameters'>, pathname: string): boolean {
  const names: string[] = [];
  const source = op.path.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{([^}]+)\}/g, (_m, name: string) => (names.push(name), '([^/]+)'));
  const m = new RegExp(`^${source}$`).exec(pathname);
  if (!m) return false;
  return names.every((name, i) => {
    const p = op.parameters.find((x) => x.in === 'path' && x.name === name);
    let value: string;
    try {
      value = decodeURIComponent(m[i + 1]!);
    } catch {
      return false;
    }
    return p !== undefined && validate(p.schema, value) === undefined;
  });
}

/** One response as a client saw it. `body` undefined: not read (a stream cut short). */
export interface SeenResponse {
  method: string;
  /** The request target as sent (origin-form, or whatever a hostile client sent). */
  target: string;
  status: number;
  contentType: string;
  /** Lower-case header names present, when the client kept them. */
  headers?: string[];
  body?: Buffer | string;
  /** The socket it came from (see stubService). */
  socket?: string;
}

/** The responses allowed for a request, in the order they are tried, and what was matched. */
export function allowedResponses(c: Contract, method: string, target: string): { where: string; responses: Record<string, ResponseSpec> }[] {
  const out = [{ where: 'x-unrouted-responses anyRequest', responses: c.unrouted.anyRequest }];
  // Only an origin-form target reaches routing (agent/api/api-server.ts parseTarget).
  if (!target.startsWith('/')) return out;
  const pathname = target.split('?')[0]!;
  const onPath = c.operations.filter((o) => matchPath(o, pathname));
  if (onPath.length === 0) return [{ where: 'x-unrouted-responses unknownPath', responses: c.unrouted.unknownPath }, ...out];
  const op = onPath.find((o) => o.method === method.toUpperCase());
  if (!op) return [{ where: 'x-unrouted-responses unknownMethod', responses: c.unrouted.unknownMethod }, ...out];
  return [{ where: `${op.method} ${op.path}`, responses: op.responses }, ...out];
}

const mediaType = (contentType: string) => contentType.split(';')[0]!.trim().toLowerCase();

/** Server-sent events in `text` (complete frames only): name and parsed data. */
export function parseEvents(text: string): { event: string; data: unknown; error?: string }[] {
  const out: { event: string; data: unknown; error?: string }[] = [];
  const frames = text.split('\n\n');
  frames.pop(); // an unterminated last frame is not an event yet
  for (const frame of frames) {
    let event = 'message';
    const data: string[] = [];
    for (const line of frame.split('\n')) {
      if (line.startsWith(':')) continue;
      const i = line.indexOf(':');
      const k = i < 0 ? line : line.slice(0, i);
      const v = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
      if (k === 'event') event = v;
      else if (k === 'data') data.push(v);
    }
    if (data.length === 0) continue; // retry:, comments, id-only frames carry no event
    try {
      out.push({ event, data: JSON.parse(data.join('\n')) });
    } catch {
      out.push({ event, data: undefined, error: 'data is not JSON' });
    }
  }
  return out;
}

/** One server-sent event's data against the operation's `x-events`. */
export function checkEvent(events: Record<string, Schema> | undefined, event: string, data: unknown): string | undefined {
  const schema = events?.[event];
  if (!schema) return `event "${event}" is not declared (x-events: ${Object.keys(events ?? {}).join(', ')})`;
  const e = validate(schema, data);
  return e ? `event "${event}": ${e}` : undefined;
}

/** Everything wrong with one response; [] when the contract declares it exactly. */
export function checkResponse(c: Contract, r: SeenResponse): string[] {
  const label = `${r.method} ${r.target.slice(0, 80)} -> ${r.status}`;
  const candidates = allowedResponses(c, r.method, r.target);
  const declared = candidates.filter((x) => x.responses[String(r.status)]);
  if (declared.length === 0) return [`${label}: status ${r.status} is not declared for ${candidates.map((x) => x.where).join(' or ')}`];
  const failures: string[] = [];
  for (const { where, responses } of declared) {
    const spec = responses[String(r.status)]!;
    const problems = checkAgainst(spec, r);
    if (problems.length === 0) return [];
    failures.push(...problems.map((p) => `${label} (${where}): ${p}`));
  }
  return failures;
}

function checkAgainst(spec: ResponseSpec, r: SeenResponse): string[] {
  const type = mediaType(r.contentType);
  const declaredTypes = Object.keys(spec.content);
  if (declaredTypes.length === 0) return r.body !== undefined && r.body.length > 0 ? ['a body where none is declared'] : [];
  const media = spec.content[type];
  if (!media) return [`content-type "${r.contentType}" is not declared (${declaredTypes.join(', ')})`];
  const errors: string[] = [];
  if (r.headers) for (const h of spec.headers) if (!r.headers.includes(h)) errors.push(`header ${h} is missing`);
  if (r.body === undefined) return errors;
  const text = typeof r.body === 'string' ? r.body : r.body.toString('utf8');
  if (type === 'application/json' || type.endsWith('+json')) {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      return [...errors, 'body is not JSON'];
    }
    const e = validate(media.schema, value);
    if (e) errors.push(`body ${e}`);
  } else if (type === 'text/event-stream') {
    for (const ev of parseEvents(text)) {
      const e = ev.error ? `event "${ev.event}": ${ev.error}` : checkEvent(media.events, ev.event, ev.data);
      if (e) errors.push(e);
    }
  }
  return errors;
}

/** Violations seen since the last `takeViolations()`: a client may swallow a thrown error (the CLI does). */
const violations: string[] = [];

/** Sockets served by the real API server over a stub ApiService (see stubService). */
const stubs = new Set<string>();

/**
 * Marks `socket` as the real API server (agent/api/api-server.ts) in front of a test's stub service:
 * routing, authorization, statuses, content types and problem bodies are still the server's own and
 * are checked; a 2xx body (or event) is the stub's invention and is not.
 */
export function stubService(socket: string): void {
  stubs.add(socket);
}

function judged(r: SeenResponse): SeenResponse {
  if (r.socket === undefined || !stubs.has(r.socket) || r.status < 200 || r.status > 299) return r;
  const { body: _ignored, ...rest } = r;
  return rest;
}

export function takeViolations(): string[] {
  return violations.splice(0);
}

/** Records and throws when `r` breaks the contract. */
export function assertConforms(r: SeenResponse): void {
  const problems = noteConformance(r);
  if (problems.length) throw new Error(`response outside docs/openapi.yaml:\n${problems.join('\n')}`);
}

/** Records what is wrong with `r` (for callbacks, where a throw would escape the test), and returns it. */
export function noteConformance(r: SeenResponse): string[] {
  const problems = checkResponse(loadContract(), judged(r));
  violations.push(...problems);
  return problems;
}

/** Records an event of a 200 stream on `target` that its operation's `x-events` does not declare. */
export function noteEventConformance(method: string, target: string, event: string, data: unknown, socket?: string): void {
  if (socket !== undefined && stubs.has(socket)) return;
  const c = loadContract();
  const pathname = target.split('?')[0]!;
  const op = c.operations.find((o) => o.method === method && matchPath(o, pathname));
  const media = op?.responses['200']?.content['text/event-stream'];
  const e = media ? checkEvent(media.events, event, data) : `${method} ${pathname} declares no 200 event stream`;
  if (e) violations.push(`${method} ${pathname}: ${e}`);
}

/** The request line of raw request bytes, or undefined when there is none to read. */
export function requestLine(bytes: string | Buffer | (string | Buffer)[]): { method: string; target: string } | undefined {
  const text = (Array.isArray(bytes) ? Buffer.concat(bytes.map((b) => Buffer.from(b))) : Buffer.from(bytes)).toString('latin1');
  const m = /^([A-Z]+) (\S+) HTTP\/1\.[01]\r\n/.exec(text);
  return m ? { method: m[1]!, target: m[2]! } : undefined;
}

/**
 * A raw HTTP/1.1 answer (head and what followed it) as a SeenResponse: only the first response, and
 * only when it arrived whole (Content-Length bytes); undefined otherwise (nothing to judge).
 */
export function parseRawResponse(request: { method: string; target: string } | undefined, head: string, rest: string): SeenResponse | undefined {
  const status = /^HTTP\/1\.1 (\d{3}) /.exec(head);
  if (!status) return undefined;
  const headers = new Map<string, string>();
  for (const line of head.split('\r\n').slice(1)) {
    const i = line.indexOf(':');
    if (i > 0) headers.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim());
  }
  const length = headers.get('content-length');
  let body: string | undefined = rest;
  if (length !== undefined)
    body = Buffer.byteLength(rest, 'latin1') >= Number(length) ? Buffer.from(rest, 'latin1').subarray(0, Number(length)).toString('utf8') : undefined;
  else if (headers.get('transfer-encoding')) body = undefined; // a stream: not judged from raw bytes
  return {
    method: request?.method ?? '',
    // No request line (garbage bytes): only the answers valid for any request apply.
    target: request?.target ?? '',
    status: Number(status[1]),
    contentType: headers.get('content-type') ?? '',
    headers: [...headers.keys()],
    ...(body === undefined ? {} : { body }),
  };
}
