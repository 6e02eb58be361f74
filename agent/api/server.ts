/**
 * The local API (DESIGN.md "Local API"): HTTP/1.1 over the Unix socket. Thin: parse, authorize by
 * SO_PEERCRED, delegate to the service, answer JSON or RFC 9457 problems. Request size and time are
 * bounded; no endpoint ever returns a private key.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { authorize, type AuthorizationTable, type Endpoint, type PeerCredentials } from './authz.js';
import { problem, sendJson, sendProblem } from './problem.js';
import { CvmError } from '../errors.js';

/** A JSON body serialized once and reused (hot endpoints cache it between state changes). */
export class RawJson {
  constructor(readonly body: Buffer) {}
}

export interface ApiService {
  health(): Promise<{ status: 'ok' | 'degraded' | 'failing'; reasons: string[] }>;
  status(): Promise<unknown | RawJson>;
  attest(nonce: Uint8Array | undefined): Promise<unknown>;
  evidence(nonce: Uint8Array): Promise<unknown>;
  token(): Promise<{ token: string; expiresAt: string } | undefined>;
  secret(name: string): Promise<Uint8Array | undefined>;
  metrics(): Promise<{ contentType: string; body: string }>;
  /** GET /v1/events (agent/api/events-stream.ts): takes over the response; throws CvmError to refuse. */
  events?(req: IncomingMessage, res: ServerResponse): void;
}

export interface ApiOptions {
  authorization: AuthorizationTable;
  maxRequestBytes: number;
  requestTimeoutMs: number;
  /** SO_PEERCRED of an accepted connection (the addon); undefined when unavailable. */
  peerCredentials?: (socket: Socket) => PeerCredentials | undefined;
  /** Called for every request after it is answered (for access logs). */
  onAccess?: (entry: { method: string; path: string; status: number; peer: PeerCredentials | undefined; ms: number }) => void;
  /** Unexpected errors (answered as a bare 500 so nothing internal leaks to the peer). */
  onError?: (err: unknown, path: string) => void;
}

const NONCE_HEX = /^[0-9a-fA-F]{16,128}$/;
const peers = new WeakMap<Socket, PeerCredentials | undefined>();

function parseNonce(text: unknown, required: boolean): Uint8Array | undefined {
  if (text === undefined || text === null || text === '') {
    if (required) throw new HttpError(400, 'nonce-required', 'nonce required', 'pass ?nonce=<16..64 bytes as hex>');
    return undefined;
  }
  if (typeof text !== 'string' || !NONCE_HEX.test(text) || text.length % 2 !== 0) {
    throw new HttpError(400, 'bad-nonce', 'invalid nonce', 'the nonce must be 8 to 64 bytes, hex encoded');
  }
  return Buffer.from(text, 'hex');
}

class HttpError extends Error {
  constructor(readonly status: number, readonly slug: string, readonly title: string, readonly detail?: string) {
    super(title);
  }
}

async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? '0');
  if (declared > limit) throw new HttpError(413, 'too-large', 'request body too large', `at most ${limit} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new HttpError(413, 'too-large', 'request body too large', `at most ${limit} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

function parseJsonBody(body: Buffer): Record<string, unknown> {
  if (body.length === 0) return {};
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    throw new HttpError(400, 'bad-json', 'request body is not valid JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new HttpError(400, 'bad-json', 'request body must be a JSON object');
  return value as Record<string, unknown>;
}

interface Route {
  method: 'GET' | 'POST';
  pattern: RegExp;
  endpoint: Endpoint;
  handle(service: ApiService, req: IncomingMessage, res: ServerResponse, url: URL, match: RegExpMatchArray, opts: ApiOptions): Promise<void>;
}

const routes: Route[] = [
  {
    method: 'GET', pattern: /^\/v1\/health$/, endpoint: 'health',
    async handle(s, _req, res) {
      const h = await s.health();
      sendJson(res, h.status === 'failing' ? 503 : 200, h);
    },
  },
  {
    method: 'GET', pattern: /^\/v1\/status$/, endpoint: 'status',
    async handle(s, _req, res) {
      const v = await s.status();
      if (v instanceof RawJson) {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': v.body.length, 'cache-control': 'no-store' });
        res.end(v.body);
      } else sendJson(res, 200, v);
    },
  },
  {
    method: 'POST', pattern: /^\/v1\/attest$/, endpoint: 'attest',
    async handle(s, req, res, _url, _m, opts) {
      const body = parseJsonBody(await readBody(req, opts.maxRequestBytes));
      for (const k of Object.keys(body)) if (k !== 'nonce') throw new HttpError(400, 'bad-request', `unknown field "${k}"`);
      sendJson(res, 200, await s.attest(parseNonce(body.nonce, false)));
    },
  },
  {
    method: 'GET', pattern: /^\/v1\/evidence$/, endpoint: 'evidence',
    async handle(s, _req, res, url) { sendJson(res, 200, await s.evidence(parseNonce(url.searchParams.get('nonce'), true)!)); },
  },
  {
    method: 'GET', pattern: /^\/v1\/token$/, endpoint: 'token',
    async handle(s, _req, res) {
      const t = await s.token();
      if (!t) throw new HttpError(404, 'no-token', 'no valid controller token', 'the controller has not issued a token, or it expired');
      sendJson(res, 200, t);
    },
  },
  {
    method: 'GET', pattern: /^\/v1\/secrets\/([A-Za-z0-9._-]{1,128})$/, endpoint: 'secrets',
    async handle(s, _req, res, _url, m) {
      const value = await s.secret(m[1]!);
      if (!value) throw new HttpError(404, 'no-secret', 'secret not released', `no secret "${m[1]}" was released to this attested VM`);
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': value.length, 'cache-control': 'no-store' });
      res.end(Buffer.from(value));
    },
  },
  {
    method: 'GET', pattern: /^\/v1\/events$/, endpoint: 'events',
    async handle(s, req, res) {
      if (!s.events) throw new HttpError(404, 'not-found', 'no event stream');
      s.events(req, res);
    },
  },
  {
    method: 'GET', pattern: /^\/metrics$/, endpoint: 'metrics',
    async handle(s, _req, res) {
      const m = await s.metrics();
      res.writeHead(200, { 'content-type': m.contentType, 'content-length': Buffer.byteLength(m.body) });
      res.end(m.body);
    },
  },
];

export function createApiServer(service: ApiService, opts: ApiOptions): Server {
  const server = createServer({ requestTimeout: opts.requestTimeoutMs, headersTimeout: Math.min(opts.requestTimeoutMs, 10_000), maxHeaderSize: 8192 });
  server.on('connection', (socket: Socket) => {
    // Credentials are read once per connection (reference/node-daemon.md §3).
    let cred: PeerCredentials | undefined;
    try {
      cred = opts.peerCredentials?.(socket);
    } catch {
      cred = undefined;
    }
    peers.set(socket, cred);
  });
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const started = performance.now();
    const peer = peers.get(req.socket);
    const url = new URL(req.url ?? '/', 'http://localhost');
    res.on('finish', () => opts.onAccess?.({ method: req.method ?? '', path: url.pathname, status: res.statusCode, peer, ms: performance.now() - started }));
    void dispatch(service, req, res, url, peer, opts);
  });
  return server;
}

async function dispatch(service: ApiService, req: IncomingMessage, res: ServerResponse, url: URL, peer: PeerCredentials | undefined, opts: ApiOptions) {
  try {
    const candidates = routes.filter((r) => r.pattern.test(url.pathname));
    if (candidates.length === 0) throw new HttpError(404, 'not-found', 'no such endpoint', `${url.pathname} is not part of the API (see docs/api.md)`);
    const route = candidates.find((r) => r.method === req.method);
    if (!route) {
      res.setHeader('allow', candidates.map((r) => r.method).join(', '));
      throw new HttpError(405, 'method-not-allowed', `${req.method} is not allowed on ${url.pathname}`);
    }
    const decision = authorize(route.endpoint, peer, opts.authorization);
    if (!decision.allowed) throw new HttpError(403, 'forbidden', 'not authorized', decision.reason);
    await route.handle(service, req, res, url, url.pathname.match(route.pattern)!, opts);
  } catch (err) {
    if (err instanceof HttpError) sendProblem(res, problem(err.status, err.slug, err.title, err.detail));
    else if (err instanceof CvmError) sendProblem(res, problem(503, 'unavailable', 'the agent could not complete the request', err.message, { code: err.code }));
    else {
      opts.onError?.(err, url.pathname);
      sendProblem(res, problem(500, 'internal', 'internal error', 'see the agent log'));
    }
  }
}
