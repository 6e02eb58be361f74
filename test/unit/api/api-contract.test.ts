/**
 * docs/openapi.yaml against the code, and the checker that holds every e2e/adversarial response to
 * it (test/helpers/api-contract.ts): every route is documented and nothing else is, every problem
 * type the server can answer is declared with its status, and the checker refuses what the document
 * does not declare.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import {
  allowedResponses,
  checkResponse,
  CONTRACT_FILE,
  contractFrom,
  loadContract,
  matchPath,
  noteConformance,
  parseEvents,
  parseRawResponse,
  requestLine,
  resolveRefs,
  stubService,
  takeViolations,
} from '../../helpers/api-contract.js';
import { repoRoot } from '../../helpers/paths.js';
import { listRoutes } from '../../../agent/api/api-server.js';
import { ENDPOINTS } from '../../../agent/api/authz.js';
import { unixSocketPath } from '../../../agent/api/listen.js';
import { ERROR_CODES } from '../../../agent/errors.js';

const contract = loadContract();
const problemJson = (slug: string, status: number, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ type: `https://cvm-agent.dev/problems/${slug}`, title: 't', status, detail: 'd', ...extra });

describe('docs/openapi.yaml and agent/api/api-server.ts', () => {
  it('is OpenAPI 3.1 whose schemas the interpreter supports in full (loading checks every keyword)', () => {
    const doc = parse(readFileSync(CONTRACT_FILE, 'utf8')) as { openapi: string };
    expect(doc.openapi).toBe('3.1.0');
    expect(contract.operations.length).toBeGreaterThan(0);
  });

  it('documents every route, with its method and authorization rule, and no route that does not exist', () => {
    const routes = listRoutes();
    const documented = contract.operations.map((o) => `${o.method} ${o.path} ${o.authorization}`).sort();
    const fromCode = routes
      .map((r) => {
        const op = contract.operations.find((o) => {
          // The path template with its parameter patterns must be the route's regular expression.
          const source = o.path.replace(/\//g, '\\/').replace(/\{([^}]+)\}/g, (_m, name: string) => {
            const p = o.parameters.find((x) => x.in === 'path' && x.name === name);
            return `(${String(p?.schema.pattern).replace(/^\^|\$$/g, '')})`;
          });
          return `^${source}$` === r.pattern.source;
        });
        expect(op, `route ${r.method} ${r.pattern} is not in docs/openapi.yaml`).toBeDefined();
        return `${r.method} ${op!.path} ${r.endpoint}`;
      })
      .sort();
    expect(documented).toEqual(fromCode);
    expect([...new Set(routes.map((r) => r.endpoint))].sort()).toEqual([...ENDPOINTS].sort());
  });

  it('declares every problem the server can answer, with its status, and none it cannot', () => {
    const source = ['agent/api/api-server.ts', 'agent/api/problem.ts'].map((f) => readFileSync(join(repoRoot, f), 'utf8')).join('\n');
    const answered = new Set<string>();
    for (const m of source.matchAll(/(?:HttpError\(|problem\(|\[)\s*(\d{3}),\s*'([a-z-]+)'/g)) answered.add(`${m[1]} ${m[2]}`);
    expect(answered.size).toBeGreaterThan(10);
    const declared = new Set(contract.problems.flatMap((p) => p.types.map((t) => `${p.status} ${t.replace('https://cvm-agent.dev/problems/', '')}`)));
    expect([...declared].sort()).toEqual([...answered].sort());
  });

  it('explains every problem type and every endpoint in docs/api.md', () => {
    const guide = readFileSync(join(repoRoot, 'docs', 'api.md'), 'utf8');
    for (const t of new Set(contract.problems.flatMap((p) => p.types))) expect(guide).toContain(t.replace('https://cvm-agent.dev/problems/', '`') + '`');
    for (const o of contract.operations) expect(guide).toContain(`${o.method} ${o.path}`);
    expect(guide).toContain('docs/openapi.yaml');
  });

  it('describes every error code the agent can put in a 503 problem', () => {
    for (const code of ERROR_CODES) {
      const body = problemJson('unavailable', 503, { code });
      expect(checkResponse(contract, { method: 'GET', target: '/v1/status', status: 503, contentType: 'application/problem+json', body })).toEqual([]);
    }
  });
});

describe('the response checker', () => {
  const ok = (r: Parameters<typeof checkResponse>[1]) => expect(checkResponse(contract, r)).toEqual([]);
  const fails = (r: Parameters<typeof checkResponse>[1], why: RegExp) => {
    const e = checkResponse(contract, r);
    expect(e.length, 'expected a violation').toBeGreaterThan(0);
    expect(e.join('\n')).toMatch(why);
  };

  it('accepts a declared status, content type and body', () => {
    ok({ method: 'GET', target: '/v1/health', status: 200, contentType: 'application/json', body: '{"status":"ok","reasons":[]}' });
    ok({ method: 'GET', target: '/v1/health', status: 503, contentType: 'application/json', body: '{"status":"failing","reasons":["x"]}' });
    ok({ method: 'GET', target: '/v1/token', status: 404, contentType: 'application/problem+json', body: problemJson('no-token', 404) });
    ok({ method: 'GET', target: '/v1/secrets/model-key', status: 200, contentType: 'application/octet-stream', body: Buffer.from([0, 1, 2]) });
    ok({ method: 'GET', target: '/metrics', status: 200, contentType: 'text/plain; version=0.0.4; charset=utf-8', body: '# HELP x\n' });
  });

  it('refuses a status the path and method do not declare', () => {
    fails({ method: 'GET', target: '/v1/health', status: 201, contentType: 'application/json', body: '{}' }, /status 201 is not declared for GET \/v1\/health/);
    fails({ method: 'GET', target: '/v1/status', status: 404, contentType: 'application/problem+json', body: problemJson('no-token', 404) }, /not declared/);
  });

  it('refuses an undeclared content type, a body off its schema, and a problem type of another status', () => {
    fails({ method: 'GET', target: '/v1/health', status: 200, contentType: 'text/html', body: '<p>' }, /content-type "text\/html" is not declared/);
    fails(
      { method: 'GET', target: '/v1/health', status: 200, contentType: 'application/json', body: '{"status":"fine","reasons":[]}' },
      /\/status: must be one of/,
    );
    fails({ method: 'GET', target: '/v1/health', status: 200, contentType: 'application/json', body: '{"status":"ok"' }, /not JSON/);
    fails(
      { method: 'GET', target: '/v1/health', status: 200, contentType: 'application/json', body: '{"status":"ok","reasons":[],"extra":1}' },
      /\/extra: unknown member/,
    );
    fails({ method: 'GET', target: '/v1/token', status: 404, contentType: 'application/problem+json', body: problemJson('no-secret', 404) }, /\/type: must be/);
    fails({ method: 'GET', target: '/v1/status', status: 503, contentType: 'application/problem+json', body: problemJson('unavailable', 503) }, /"code"/);
  });

  it('declares 404 for unknown paths, 405 (with Allow) for unknown methods, and the parser answers for any request', () => {
    ok({ method: 'GET', target: '/v1/nope', status: 404, contentType: 'application/problem+json', body: problemJson('not-found', 404) });
    fails(
      { method: 'GET', target: '/v1/nope', status: 405, contentType: 'application/problem+json', body: problemJson('method-not-allowed', 405) },
      /unknownPath/,
    );
    ok({
      method: 'DELETE',
      target: '/v1/health',
      status: 405,
      contentType: 'application/problem+json',
      headers: ['allow'],
      body: problemJson('method-not-allowed', 405),
    });
    fails(
      {
        method: 'DELETE',
        target: '/v1/health',
        status: 405,
        contentType: 'application/problem+json',
        headers: [],
        body: problemJson('method-not-allowed', 405),
      },
      /header allow is missing/,
    );
    fails(
      { method: 'DELETE', target: '/v1/health', status: 404, contentType: 'application/problem+json', body: problemJson('not-found', 404) },
      /unknownMethod/,
    );
    ok({ method: '', target: '', status: 400, contentType: 'application/problem+json', body: problemJson('bad-request', 400) });
    ok({ method: 'GET', target: 'http://[', status: 400, contentType: 'application/problem+json', body: problemJson('bad-target', 400) });
    ok({ method: 'GET', target: '/v1/health', status: 431, contentType: 'application/problem+json', body: problemJson('headers-too-large', 431) });
    fails({ method: 'GET', target: 'http://[', status: 404, contentType: 'application/problem+json', body: problemJson('not-found', 404) }, /not declared/);
    expect(allowedResponses(contract, 'GET', '/v1/secrets/a%2Fb').map((x) => x.where)).toEqual([
      'x-unrouted-responses unknownPath',
      'x-unrouted-responses anyRequest',
    ]);
  });

  it('matches path parameters by their schema', () => {
    const op = contract.operations.find((o) => o.path === '/v1/secrets/{name}')!;
    expect(matchPath(op, '/v1/secrets/model-key')).toBe(true);
    expect(matchPath(op, `/v1/secrets/${'a'.repeat(129)}`)).toBe(false);
    expect(matchPath(op, '/v1/secrets/a b')).toBe(false);
    expect(matchPath(op, '/v1/secrets/')).toBe(false);
  });

  it('checks each server-sent event against x-events', () => {
    const stream = (events: string) => ({ method: 'GET', target: '/v1/events', status: 200, contentType: 'text/event-stream; charset=utf-8', body: events });
    ok(stream('retry: 2000\n\n: keepalive\n\nid: 3\nevent: stopping\ndata: {"at":"2026-01-01T00:00:00.000Z"}\n\n'));
    fails(stream('event: surprise\ndata: {}\n\n'), /event "surprise" is not declared/);
    fails(stream('event: stopping\ndata: {"at":"yesterday"}\n\n'), /event "stopping": \/at: must match/);
    fails(stream('event: stopping\ndata: {nope\n\n'), /not JSON/);
    expect(parseEvents('event: a\ndata: 1\n\nevent: b\ndata: 2')).toEqual([{ event: 'a', data: 1 }]);
  });

  it('reads raw answers: the first response only, and only when it arrived whole', () => {
    expect(requestLine(['GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n'])).toEqual({ method: 'GET', target: '/v1/health' });
    expect(requestLine(Buffer.from([0, 1, 0xff]))).toBeUndefined();
    const body = '{"status":"ok","reasons":[]}';
    const head = `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${body.length}`;
    const seen = parseRawResponse({ method: 'GET', target: '/v1/health' }, head, `${body}HTTP/1.1 400 Bad Request\r\n`);
    expect(seen).toMatchObject({ status: 200, contentType: 'application/json', body });
    expect(parseRawResponse({ method: 'GET', target: '/v1/health' }, head, body.slice(0, 5))?.body).toBeUndefined();
    expect(parseRawResponse(undefined, 'garbage', '')).toBeUndefined();
  });
});

describe('recording violations (what fails an e2e/adversarial test in its afterEach)', () => {
  it('keeps what a client swallowed until taken, and judges a stub service by everything but its 2xx bodies', () => {
    const bad = { method: 'GET', target: '/v1/health', status: 200, contentType: 'application/json', body: '{}', socket: '/stub.sock' };
    expect(noteConformance(bad)).toHaveLength(1);
    expect(takeViolations()).toHaveLength(1);
    expect(takeViolations()).toEqual([]);
    stubService('/stub.sock');
    expect(noteConformance(bad)).toEqual([]);
    expect(noteConformance({ ...bad, status: 418 })).toHaveLength(1);
    expect(takeViolations()).toHaveLength(1);
  });
});

describe('resolving $ref', () => {
  it('inlines local references, drops annotations, and refuses what it cannot honour', () => {
    const doc = { a: { $ref: '#/b', description: 'x' }, b: { type: 'string', format: 'date-time', properties: { format: { type: 'integer' } } } };
    expect(resolveRefs(doc, doc.a)).toEqual({ type: 'string', properties: { format: { type: 'integer' } } });
    expect(() => resolveRefs(doc, { $ref: 'other.yaml#/x' })).toThrow(/only local/);
    expect(() => resolveRefs(doc, { $ref: '#/nope' })).toThrow(/unresolvable/);
    expect(() => resolveRefs(doc, { $ref: '#/b', type: 'integer' })).toThrow(/constraining siblings/);
    const loop = { x: { $ref: '#/y' }, y: { $ref: '#/x' } };
    expect(() => resolveRefs(loop, loop.x)).toThrow(/cycle/);
  });

  it('refuses a document with a keyword the interpreter would ignore, or a status range', () => {
    const base = (schema: unknown, status = '200') => ({
      openapi: '3.1.0',
      paths: { '/x': { get: { responses: { [status]: { description: '', content: { 'application/json': { schema } } } } } } },
      'x-unrouted-responses': {},
    });
    expect(() => contractFrom(base({ type: 'object', oneOf: [] }))).toThrow(/unsupported keyword oneOf/);
    expect(() => contractFrom(base({ type: 'object' }, '2XX'))).toThrow(/not an explicit status code/);
    expect(contractFrom(base({ type: 'object' })).operations).toHaveLength(1);
  });
});

describe('the socket systemd handed over (agent/api/listen.ts)', () => {
  const table = [
    'Num       RefCount Protocol Flags    Type St Inode Path',
    '0000000000000000: 00000002 00000000 00010000 0001 01 4242 /run/cvm-agent/api.sock',
    '0000000000000000: 00000003 00000000 00000000 0001 03 4243',
    '0000000000000000: 00000002 00000000 00010000 0001 01 4244 @abstract name',
    '0000000000000000: 00000002 00000000 00010000 0001 01 4245 /tmp/with space.sock',
  ].join('\n');

  it('finds the path of a socket by its inode, as /proc/net/unix lists it', () => {
    expect(unixSocketPath(table, 4242)).toBe('/run/cvm-agent/api.sock');
    expect(unixSocketPath(table, 4244)).toBe('@abstract name');
    expect(unixSocketPath(table, 4245)).toBe('/tmp/with space.sock');
    expect(unixSocketPath(table, 4243)).toBeUndefined();
    expect(unixSocketPath(table, 1)).toBeUndefined();
    expect(unixSocketPath('', 4242)).toBeUndefined();
  });
});
