/**
 * The optional TCP listener for Prometheus (config `metrics.listen`): GET or HEAD /metrics and
 * nothing else. It is a server of its own, not the local API with fewer routes, so no endpoint of
 * the Unix-socket API (whose authorization rests on the peer's kernel credentials, which a TCP peer
 * does not have) can ever be reached over TCP: every other path is a 404. Bounded like the API:
 * header size and time, connection count; nothing a peer sends can end the process.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { problem, sendProblem } from './problem.js';

export interface MetricsListenerOptions {
  render(): Promise<{ contentType: string; body: string }>;
  /** A scrape that failed to render (answered 500); never throws back. */
  onError?: (err: unknown) => void;
  /** Simultaneous connections (default 16: a few Prometheus servers, not a crowd). */
  maxConnections?: number;
}

export const METRICS_PATH = '/metrics';

/** The target's path, without a query (Prometheus may add params; they change nothing here). */
function pathOf(url: string | undefined): string {
  const raw = url ?? '';
  const q = raw.indexOf('?');
  return q < 0 ? raw : raw.slice(0, q);
}

async function answer(o: MetricsListenerOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = pathOf(req.url);
  if (path !== METRICS_PATH) {
    return sendProblem(res, problem(404, 'not-found', 'no such endpoint', `this listener serves ${METRICS_PATH} only; the agent's API is on its Unix socket`));
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('allow', 'GET, HEAD');
    return sendProblem(res, problem(405, 'method-not-allowed', `${String(req.method).slice(0, 32)} is not allowed on ${METRICS_PATH}`));
  }
  const m = await o.render();
  res.writeHead(200, { 'content-type': m.contentType, 'content-length': Buffer.byteLength(m.body), 'cache-control': 'no-store' });
  res.end(req.method === 'HEAD' ? undefined : m.body);
}

export function createMetricsListener(o: MetricsListenerOptions): Server {
  const server = createServer({ requestTimeout: 10_000, headersTimeout: 5_000, maxHeaderSize: 8192 });
  server.maxConnections = o.maxConnections ?? 16;
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    req.on('error', () => undefined);
    res.on('error', () => undefined);
    // A request body is never read: close after answering, so it is not parsed as the next request.
    if (req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined) res.setHeader('connection', 'close');
    answer(o, req, res).catch((err: unknown) => {
      try {
        o.onError?.(err);
      } catch {
        // a failing logger must not take the process down
      }
      sendProblem(res, problem(500, 'internal', 'internal error', 'see the agent log'));
    });
  });
  server.on('clientError', (_err: Error, socket: Socket) => socket.destroy());
  server.on('connect', (_req: IncomingMessage, socket: Socket) => socket.destroy());
  // Accept failures (EMFILE) once listening; a failed listen is listenTcp's rejection instead.
  server.on('error', (err) => {
    if (server.listening) o.onError?.(err);
  });
  return server;
}

/** Listens on host:port; resolves with the bound address (port 0 picks a free one). */
export function listenTcp(server: Server, host: string, port: number): Promise<{ host: string; port: number }> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const a = server.address();
      resolve(typeof a === 'object' && a ? { host: a.address, port: a.port } : { host, port });
    });
  });
}
