/**
 * A hostile local client for the agent's Unix socket: raw bytes with no HTTP client in between, and
 * requests made by a child process running as another uid with chosen primary and supplementary
 * groups (the kernel records them at connect(), which is what SO_PEERCRED / SO_PEERGROUPS report).
 */
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { assertConforms, parseRawResponse, requestLine } from './api-contract.js';

export interface RawAnswer {
  /** The status line's code, or 0 when the server closed without answering. */
  status: number;
  head: string;
  body: string;
}

/**
 * Writes `bytes`, then half-closes (or, with `abortAfterMs`, destroys the socket after that long) and
 * collects whatever comes back until the server closes or `timeoutMs` passes. The first response,
 * when it arrived whole, must be one docs/openapi.yaml declares for the first request line sent.
 */
export function sendRaw(
  socketPath: string,
  bytes: string | Buffer | (string | Buffer)[],
  opts: { abortAfterMs?: number; timeoutMs?: number; keepOpen?: boolean } = {},
): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const s = connect(socketPath);
    const chunks: Buffer[] = [];
    let settled = false;
    const finish = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      s.destroy();
      const text = Buffer.concat(chunks).toString('latin1');
      const split = text.indexOf('\r\n\r\n');
      const head = split < 0 ? text : text.slice(0, split);
      const m = /^HTTP\/1\.1 (\d{3}) /.exec(head);
      const body = split < 0 ? '' : text.slice(split + 4);
      const seen = split < 0 ? undefined : parseRawResponse(requestLine(bytes), head, body);
      try {
        if (seen) assertConforms({ ...seen, socket: socketPath });
      } catch (err) {
        reject(err);
        return;
      }
      resolve({ status: m ? Number(m[1]) : 0, head, body });
    };
    const timer = setTimeout(finish, opts.timeoutMs ?? 30_000);
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('close', finish);
    s.on('error', (err: NodeJS.ErrnoException) => {
      // The server may reset a connection it refuses; only failing to connect at all is an error here.
      if (chunks.length === 0 && (err.code === 'ENOENT' || err.code === 'ECONNREFUSED')) {
        settled = true;
        clearTimeout(timer);
        reject(err);
      } else finish();
    });
    s.on('connect', () => {
      for (const b of Array.isArray(bytes) ? bytes : [bytes]) s.write(b);
      if (opts.abortAfterMs !== undefined) setTimeout(() => s.destroy(), opts.abortAfterMs);
      else if (!opts.keepOpen) s.end();
    });
  });
}

/** An HTTP/1.1 request as raw text. */
export function rawRequest(method: string, target: string, headers: Record<string, string> = {}, body = ''): string {
  const lines = [`${method} ${target} HTTP/1.1`, 'Host: localhost', ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
  if (body && !Object.keys(headers).some((k) => /^(content-length|transfer-encoding)$/i.test(k))) lines.push(`Content-Length: ${Buffer.byteLength(body)}`);
  return `${lines.join('\r\n')}\r\n\r\n${body}`;
}

export interface Identity {
  uid: number;
  gid: number;
  /** Supplementary groups; [] for none. */
  groups: number[];
}

/**
 * One request made by a child process that drops to `who` before connecting (as root it can set any
 * ids; Node's spawn uid/gid options would clear the supplementary groups). Resolves the status code
 * and body, once the response is checked against docs/openapi.yaml.
 */
export function requestAs(who: Identity, socketPath: string, method: 'GET' | 'POST', path: string, body?: string): Promise<{ status: number; body: string }> {
  const script = `
    process.setgroups(${JSON.stringify(who.groups)});
    process.setgid(${who.gid});
    process.setuid(${who.uid});
    const body = ${JSON.stringify(body ?? null)};
    const req = require('node:http').request({ socketPath: ${JSON.stringify(socketPath)}, method: ${JSON.stringify(method)}, path: ${JSON.stringify(path)},
      headers: body === null ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (r) => {
      let b = ''; r.setEncoding('utf8'); r.on('data', (d) => (b += d)); r.on('end', () => console.log(JSON.stringify({ status: r.statusCode, contentType: r.headers['content-type'] || '', headers: Object.keys(r.headers), body: b })));
    });
    req.on('error', (e) => console.log(JSON.stringify({ error: e.code || e.message })));
    req.end(body === null ? undefined : body);`;
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, ['-e', script], { cwd: '/', stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    c.stderr.on('data', (d: Buffer) => (err += d.toString()));
    c.on('error', reject);
    c.on('exit', () => {
      let r: { status?: number; contentType?: string; headers?: string[]; body?: string; error?: string };
      try {
        r = JSON.parse(out.trim()) as typeof r;
      } catch {
        return reject(new Error(`client ${JSON.stringify(who)} printed ${JSON.stringify(out)} ${err}`));
      }
      if (r.status === undefined) return reject(new Error(`client ${JSON.stringify(who)}: ${r.error}`));
      try {
        assertConforms({
          method,
          target: path,
          status: r.status,
          contentType: r.contentType ?? '',
          headers: r.headers ?? [],
          body: r.body ?? '',
          socket: socketPath,
        });
      } catch (e) {
        return reject(e);
      }
      resolve({ status: r.status, body: r.body ?? '' });
    });
  });
}

/** True while `pid` exists (signal 0 probes without delivering anything). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
