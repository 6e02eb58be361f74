/** RFC 9457 problem details: every API error is application/problem+json with a stable type. */
import type { ServerResponse } from 'node:http';

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail?: string;
  [extension: string]: unknown;
}

const BASE = 'https://cvm-agent.dev/problems/';

export function problem(status: number, slug: string, title: string, detail?: string, ext: Record<string, unknown> = {}): Problem {
  return { type: `${BASE}${slug}`, title, status, ...(detail === undefined ? {} : { detail }), ...ext };
}

export function sendProblem(res: ServerResponse, p: Problem): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify(p);
  res.writeHead(p.status, { 'content-type': 'application/problem+json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
}

export function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
}
