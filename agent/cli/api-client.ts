/** A small HTTP client for the local API over the Unix socket (what `cvm-agent status` etc. use). */
import { request } from 'node:http';
import { DeviceError } from '../errors.js';
import { DEFAULTS } from '../config/schema.js';

export interface ApiResponse {
  status: number;
  contentType: string;
  body: Buffer;
  json(): unknown;
}

export function defaultSocket(env: NodeJS.ProcessEnv): string {
  return env.CVM_AGENT_SOCKET ?? DEFAULTS.api.socket;
}

export function callApi(socketPath: string, method: 'GET' | 'POST', path: string, body?: unknown, timeoutMs = 120_000): Promise<ApiResponse> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = request(
      { socketPath, method, path, headers: payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {} },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > 16 * 1024 * 1024) req.destroy(new Error('response larger than 16 MiB'));
          else chunks.push(c);
        });
        res.on('end', () => {
          const buf = Buffer.concat(chunks);
          resolve({
            status: res.statusCode ?? 0,
            contentType: String(res.headers['content-type'] ?? ''),
            body: buf,
            json: () => JSON.parse(buf.toString('utf8')),
          });
        });
        res.on('error', reject);
      },
    );
    // The whole exchange, not just an idle socket: a probe with --timeout 2 never waits longer.
    const timer = setTimeout(() => req.destroy(new Error(`no answer within ${formatSeconds(timeoutMs)}`)), timeoutMs);
    req.on('close', () => clearTimeout(timer));
    req.on('error', (err: NodeJS.ErrnoException) => {
      const hint =
        err.code === 'ENOENT' || err.code === 'ECONNREFUSED'
          ? ' (is the agent running? systemctl status cvm-agent)'
          : err.code === 'EACCES'
            ? ' (add yourself to the cvm-agent group)'
            : '';
      reject(new DeviceError('ERR_AGENT_UNREACHABLE', `cannot reach the agent at ${socketPath}: ${err.message}${hint}`));
    });
    req.end(payload);
  });
}

function formatSeconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(3))} s`;
}

/** The detail of an RFC 9457 problem, or the raw text. */
export function problemText(r: ApiResponse): string {
  try {
    const p = r.json() as { title?: string; detail?: string };
    return [p.title, p.detail].filter(Boolean).join(': ');
  } catch {
    return r.body.toString('utf8').slice(0, 500);
  }
}
