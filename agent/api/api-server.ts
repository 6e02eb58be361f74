/**
 * The local API: HTTP/1.1 over the Unix socket. Thin: parse, authorize by the peer's kernel
 * credentials, delegate to the service, answer JSON or RFC 9457 problems. Request size, time and
 * connection count are bounded; no endpoint ever returns a private key; nothing a peer sends can end
 * the process.
 */
import { createServer, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { authorize, type AuthorizationTable, type Endpoint, type PeerCredentials } from './authz.js';
import { problem, sendJson, sendProblem } from './problem.js';
import { CvmError, InternalError } from '../errors.js';
import { nonceFromHex, WIRE_NONCE } from '../util/nonce-hex.js';

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
  /** Why token() has none, when the service knows better than "none issued or expired". */
  noTokenReason?(): string | undefined;
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
  /** Simultaneous connections; more are closed at accept (default DEFAULT_MAX_CONNECTIONS). */
  maxConnections?: number;
}

const peers = new WeakMap<Socket, PeerCredentials | undefined>();

function parseNonce(text: unknown, required: boolean): Uint8Array | undefined {
  if (text === undefined || text === null || text === '') {
    if (required) throw new HttpError(400, 'nonce-required', 'nonce required', 'pass ?nonce=<8..64 bytes as hex>');
    return undefined;
  }
  const nonce = nonceFromHex(text, WIRE_NONCE);
  if (!nonce) throw new HttpError(400, 'bad-nonce', 'invalid nonce', 'the nonce must be 8 to 64 bytes, hex encoded');
  return nonce;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly slug: string,
    readonly title: string,
    readonly detail?: string,
  ) {
    super(title);
  }
}

async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? '0');
  if (declared > limit) throw new HttpError(413, 'too-large', 'request body too large', `at most ${limit} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > limit) throw new HttpError(413, 'too-large', 'request body too large', `at most ${limit} bytes`);
      chunks.push(chunk);
    }
  } catch (err) {
    if (err instanceof HttpError) throw err;
    // The peer hung up or sent a malformed body: its problem, not an internal error to log.
    throw new HttpError(400, 'aborted', 'request body incomplete', 'the connection closed or the body was malformed before it ended');
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

/** The parsed request target: origin-form only (RFC 9112 §3.2.1). */
export interface Target {
  pathname: string;
  searchParams: URLSearchParams;
}

/**
 * origin-form = absolute-path [ "?" query ] (RFC 9112 §3.2.1), with RFC 3986 §3.3 pchar segments and
 * the §3.4 query. Absolute-form (`http://host/x`), authority-form (CONNECT) and asterisk-form
 * (`OPTIONS *`) are refused: a Unix-socket API has no use for them, and a URL parser run on
 * attacker-chosen absolute URLs is what used to throw. Linear: every segment starts at a "/" that
 * the segment itself cannot contain.
 */
const ORIGIN_FORM = /^(?:\/(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})*)+(?:\?(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?]|%[0-9A-Fa-f]{2})*)?$/;

export function parseTarget(raw: string | undefined): Target {
  if (raw === undefined || !ORIGIN_FORM.test(raw)) {
    throw new HttpError(
      400,
      'bad-target',
      'invalid request target',
      'send an origin-form target: a path such as /v1/health, optionally with ?query, not a full URL',
    );
  }
  const q = raw.indexOf('?');
  // URLSearchParams never throws; malformed %-escapes stay literal and then fail validation.
  return q < 0 ? { pathname: raw, searchParams: new URLSearchParams() } : { pathname: raw.slice(0, q), searchParams: new URLSearchParams(raw.slice(q + 1)) };
}

interface Context {
  service: ApiService;
  req: IncomingMessage;
  res: ServerResponse;
  target: Target;
  match: RegExpMatchArray;
  peer: PeerCredentials | undefined;
  opts: ApiOptions;
}

interface Route {
  method: 'GET' | 'POST';
  pattern: RegExp;
  endpoint: Endpoint;
  handle(ctx: Context): Promise<void>;
}

const routes: Route[] = [
  {
    method: 'GET',
    pattern: /^\/v1\/health$/,
    endpoint: 'health',
    async handle({ service, res }) {
      const h = await service.health();
      sendJson(res, h.status === 'failing' ? 503 : 200, h);
    },
  },
  {
    method: 'GET',
    pattern: /^\/v1\/status$/,
    endpoint: 'status',
    async handle({ service, res }) {
      const v = await service.status();
      if (v instanceof RawJson) {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': v.body.length, 'cache-control': 'no-store' });
        res.end(v.body);
      } else sendJson(res, 200, v);
    },
  },
  {
    method: 'POST',
    pattern: /^\/v1\/attest$/,
    endpoint: 'attest',
    async handle({ service, req, res, peer, opts }) {
      const body = parseJsonBody(await readBody(req, opts.maxRequestBytes));
      for (const k of Object.keys(body)) if (k !== 'nonce') throw new HttpError(400, 'bad-request', `unknown field "${k}"`);
      const nonce = parseNonce(body.nonce, false);
      if (nonce) {
        // A caller nonce makes this evidence endpoint: the same relay risk, the same rule.
        const d = authorize('evidence', peer, opts.authorization);
        if (!d.allowed) throw new HttpError(403, 'forbidden', 'not authorized', `a caller nonce needs the evidence authorization: ${d.reason}`);
      }
      sendJson(res, 200, await service.attest(nonce));
    },
  },
  {
    method: 'GET',
    pattern: /^\/v1\/evidence$/,
    endpoint: 'evidence',
    async handle({ service, res, target }) {
      sendJson(res, 200, await service.evidence(parseNonce(target.searchParams.get('nonce'), true)!));
    },
  },
  {
    method: 'GET',
    pattern: /^\/v1\/token$/,
    endpoint: 'token',
    async handle({ service, res }) {
      const t = await service.token();
      if (!t)
        throw new HttpError(404, 'no-token', 'no valid controller token', service.noTokenReason?.() ?? 'the controller has not issued a token, or it expired');
      sendJson(res, 200, t);
    },
  },
  {
    method: 'GET',
    pattern: /^\/v1\/secrets\/([A-Za-z0-9._-]{1,128})$/,
    endpoint: 'secrets',
    async handle({ service, res, match }) {
      const value = await service.secret(match[1]!);
      if (!value) throw new HttpError(404, 'no-secret', 'secret not released', `no secret "${match[1]}" was released to this attested VM`);
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': value.length, 'cache-control': 'no-store' });
      res.end(Buffer.from(value));
    },
  },
  {
    method: 'GET',
    pattern: /^\/v1\/events$/,
    endpoint: 'events',
    async handle({ service, req, res }) {
      if (!service.events) throw new HttpError(404, 'not-found', 'no event stream');
      service.events(req, res);
    },
  },
  {
    method: 'GET',
    pattern: /^\/metrics$/,
    endpoint: 'metrics',
    async handle({ service, res }) {
      const m = await service.metrics();
      res.writeHead(200, { 'content-type': m.contentType, 'content-length': Buffer.byteLength(m.body) });
      res.end(m.body);
    },
  },
];

/** Method, path pattern and authorization rule of every route (docs/openapi.yaml must list exactly these). */
export function listRoutes(): { method: Route['method']; pattern: RegExp; endpoint: Endpoint }[] {
  return routes.map(({ method, pattern, endpoint }) => ({ method, pattern, endpoint }));
}

/** Connections beyond this are closed at accept: bounds the descriptors a peer can pin. */
export const DEFAULT_MAX_CONNECTIONS = 256;

/** Parser errors (clientError) by Node's code: the status and problem to answer before closing. */
const CLIENT_ERRORS: Record<string, [number, string, string]> = {
  HPE_HEADER_OVERFLOW: [431, 'headers-too-large', 'request headers too large'],
  HPE_CHUNK_EXTENSIONS_OVERFLOW: [413, 'too-large', 'chunk extensions too large'],
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'timeout', 'request timeout'],
  ERR_HTTP_HEADERS_TIMEOUT: [408, 'timeout', 'request timeout'],
};

/** Never throws: whatever happens while answering one peer stays with that peer. */
function safely(what: string, opts: ApiOptions, fn: () => void): void {
  try {
    fn();
  } catch (err) {
    try {
      opts.onError?.(err, what);
    } catch {
      // a failing logger must not take the process down either
    }
  }
}

/**
 * Nothing a peer sends may end the process (issue: "one request kills the daemon"): every listener
 * below is wrapped, the async request path has a terminal catch, and parser errors, aborted
 * connections and accept failures are answered or logged instead of thrown.
 */
export function createApiServer(service: ApiService, opts: ApiOptions): Server {
  const server = createServer({ requestTimeout: opts.requestTimeoutMs, headersTimeout: Math.min(opts.requestTimeoutMs, 10_000), maxHeaderSize: 8192 });
  server.maxConnections = opts.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  server.on('connection', (socket: Socket) => {
    // Credentials are read once per connection: the kernel records them at connect().
    let cred: PeerCredentials | undefined;
    try {
      cred = opts.peerCredentials?.(socket);
    } catch {
      cred = undefined;
    }
    peers.set(socket, cred);
  });
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    let path = (req.url ?? '').slice(0, 256);
    const fail = (err: unknown) => {
      safely('request', opts, () => opts.onError?.(err, path));
      res.destroy();
    };
    try {
      const started = performance.now();
      const peer = peers.get(req.socket);
      req.on('error', () => undefined); // aborted by the peer: the body reader sees it as a rejection
      res.on('error', () => undefined);
      res.on('finish', () =>
        safely('access log', opts, () => opts.onAccess?.({ method: req.method ?? '', path, status: res.statusCode, peer, ms: performance.now() - started })),
      );
      dispatch(service, req, res, peer, opts, (p) => (path = p)).catch(fail);
    } catch (err) {
      fail(err);
    }
  });
  const rawProblem = (socket: Socket, status: number, slug: string, title: string, detail?: string) => {
    const body = JSON.stringify(problem(status, slug, title, detail));
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-type: application/problem+json\r\ncontent-length: ${Buffer.byteLength(body)}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n${body}`,
    );
  };
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    safely('clientError', opts, () => {
      // As Node's default handler: answer only if nothing of a response went out on this connection.
      const inFlight = (socket as unknown as { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
      if (err.code !== 'ECONNRESET' && socket.writable && !inFlight?.headersSent) {
        const [status, slug, title] = CLIENT_ERRORS[err.code ?? ''] ?? [400, 'bad-request', 'malformed HTTP request'];
        rawProblem(socket, status, slug, title);
      }
      socket.destroy();
    });
  });
  // CONNECT carries an authority-form target: not origin-form, so 400 like any other.
  server.on('connect', (_req: IncomingMessage, socket: Socket) => {
    safely('connect', opts, () => {
      socket.on('error', () => undefined);
      if (socket.writable) rawProblem(socket, 400, 'bad-target', 'invalid request target', 'CONNECT is not supported');
      socket.destroy();
    });
  });
  server.on('checkExpectation', (_req: IncomingMessage, res: ServerResponse) => {
    safely('checkExpectation', opts, () => {
      res.on('error', () => undefined);
      sendProblem(res, problem(417, 'expectation-failed', 'unsupported Expect header', 'only "Expect: 100-continue" is supported'));
    });
  });
  // Accept failures (EMFILE/ENFILE when a peer holds many connections) arrive here, not as throws.
  server.on('error', (err) => safely('server', opts, () => opts.onError?.(err, '(accept)')));
  return server;
}

async function dispatch(
  service: ApiService,
  req: IncomingMessage,
  res: ServerResponse,
  peer: PeerCredentials | undefined,
  opts: ApiOptions,
  setPath: (p: string) => void,
) {
  let pathname = '(invalid target)';
  try {
    const target = parseTarget(req.url);
    pathname = target.pathname;
    setPath(pathname);
    const candidates = routes.filter((r) => r.pattern.test(pathname));
    if (candidates.length === 0)
      throw new HttpError(404, 'not-found', 'no such endpoint', `${pathname.slice(0, 128)} is not part of the API (see docs/api.md)`);
    const route = candidates.find((r) => r.method === req.method);
    if (!route) {
      res.setHeader('allow', candidates.map((r) => r.method).join(', '));
      throw new HttpError(405, 'method-not-allowed', `${String(req.method).slice(0, 32)} is not allowed on ${pathname}`);
    }
    const decision = authorize(route.endpoint, peer, opts.authorization);
    if (!decision.allowed) throw new HttpError(403, 'forbidden', 'not authorized', decision.reason);
    await route.handle({ service, req, res, target, match: pathname.match(route.pattern)!, peer, opts });
  } catch (err) {
    // A body left unread (refused as too large, or never asked for) would be parsed as the next
    // request on this connection: close it after the answer instead.
    if (!req.complete && !res.headersSent) res.setHeader('connection', 'close');
    if (err instanceof HttpError) sendProblem(res, problem(err.status, err.slug, err.title, err.detail));
    else if (err instanceof CvmError && !(err instanceof InternalError))
      sendProblem(res, problem(503, 'unavailable', 'the agent could not complete the request', err.message, { code: err.code }));
    else {
      opts.onError?.(err, pathname);
      sendProblem(res, problem(500, 'internal', 'internal error', 'see the agent log'));
    }
  }
}
