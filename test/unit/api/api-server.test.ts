import { afterEach, describe, expect, it } from 'vitest';
import { request } from 'node:http';
import { createServer as createNetServer, type Server } from 'node:net';
import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { createApiServer, parseTarget, type ApiService } from '../../../agent/api/api-server.js';
import { listenUnix, takeActivationFds } from '../../../agent/api/listen.js';
import { FC_RUNS } from '../../helpers/paths.js';
import { authorize, parseIdDatabase, resolveTable } from '../../../agent/api/authz.js';

function call(socketPath: string, method: string, path: string, body?: string): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method, path, headers: body ? { 'content-type': 'application/json' } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const service: ApiService = {
  health: async () => ({ status: 'ok', reasons: [] }),
  status: async () => ({ tee: 'simulated' }),
  attest: async (nonce) => ({ nonce: nonce ? Buffer.from(nonce).toString('hex') : null }),
  evidence: async (nonce) => ({ nonce: Buffer.from(nonce).toString('hex') }),
  token: async () => undefined,
  secret: async (name) => (name === 'model-key' ? Buffer.from('s3cret') : undefined),
  metrics: async () => ({ contentType: 'text/plain; version=0.0.4', body: 'cvm_up 1\n' }),
};

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

async function start(peer: { pid: number; uid: number; gid: number } | undefined, table = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'cvm-api-'));
  const path = join(dir, 'api.sock');
  const server = createApiServer(service, { authorization: table, maxRequestBytes: 1024, requestTimeoutMs: 5000, peerCredentials: () => peer });
  servers.push(server);
  await listenUnix(server, { path, env: {} });
  return path;
}

describe('local API over a Unix socket', () => {
  it('creates the socket with mode 0660 and answers health and status', async () => {
    const path = await start({ pid: 1, uid: 1000, gid: 1000 });
    expect(statSync(path).mode & 0o777).toBe(0o660);
    const h = await call(path, 'GET', '/v1/health');
    expect(h.status).toBe(200);
    expect(JSON.parse(h.body)).toEqual({ status: 'ok', reasons: [] });
    expect(JSON.parse((await call(path, 'GET', '/v1/status')).body)).toEqual({ tee: 'simulated' });
  });

  it('answers RFC 9457 problems for unknown paths, wrong methods, bad nonces and big bodies', async () => {
    const path = await start({ pid: 1, uid: 0, gid: 0 });
    const nf = await call(path, 'GET', '/v1/nothing');
    expect(nf.status).toBe(404);
    expect(nf.headers['content-type']).toBe('application/problem+json');
    expect(JSON.parse(nf.body)).toMatchObject({ status: 404, title: 'no such endpoint' });
    const wm = await call(path, 'DELETE', '/v1/status');
    expect(wm.status).toBe(405);
    expect(wm.headers.allow).toBe('GET');
    expect((await call(path, 'GET', '/v1/evidence')).status).toBe(400);
    expect((await call(path, 'GET', '/v1/evidence?nonce=zz')).status).toBe(400);
    expect(JSON.parse((await call(path, 'GET', '/v1/evidence?nonce=00112233445566778899')).body)).toEqual({ nonce: '00112233445566778899' });
    expect((await call(path, 'POST', '/v1/attest', 'x'.repeat(4096))).status).toBe(413);
    expect((await call(path, 'POST', '/v1/attest', '{"nonce": 5}')).status).toBe(400);
    expect((await call(path, 'POST', '/v1/attest', '{"evil": 1}')).status).toBe(400);
    expect((await call(path, 'POST', '/v1/attest', '[1,2]')).status).toBe(400);
    expect(JSON.parse((await call(path, 'POST', '/v1/attest', '{"nonce":"0011223344556677"}')).body)).toEqual({ nonce: '0011223344556677' });
    expect((await call(path, 'GET', '/v1/token')).status).toBe(404);
  });

  it('releases secrets only to allow-listed peers, never by default', async () => {
    const denied = await start({ pid: 1, uid: 0, gid: 0 });
    expect((await call(denied, 'GET', '/v1/secrets/model-key')).status).toBe(403);
    const allowed = await start({ pid: 1, uid: 1234, gid: 50 }, { secrets: { uids: [1234] } });
    const r = await call(allowed, 'GET', '/v1/secrets/model-key');
    expect(r.status).toBe(200);
    expect(r.body).toBe('s3cret');
    expect((await call(allowed, 'GET', '/v1/secrets/other')).status).toBe(404);
    const other = await start({ pid: 1, uid: 4321, gid: 51 }, { secrets: { uids: [1234] }, status: { gids: [50] } });
    expect((await call(other, 'GET', '/v1/secrets/model-key')).status).toBe(403);
    expect(JSON.parse((await call(other, 'GET', '/v1/status')).body).detail).toContain('uid 4321');
  });

  it('replaces a stale socket but refuses a live one or a regular file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cvm-api-'));
    const path = join(dir, 'api.sock');
    const live = createNetServer();
    servers.push(live);
    await new Promise<void>((r) => live.listen(path, r));
    const s1 = createApiServer(service, { authorization: {}, maxRequestBytes: 1024, requestTimeoutMs: 1000 });
    await expect(listenUnix(s1, { path, env: {} })).rejects.toThrow(/another process/);
    // A stale socket: a listener that died without unlinking (simulated by closing a server whose fd we keep the file of).
    const stalePath = join(dir, 'stale.sock');
    const stale = createNetServer();
    await new Promise<void>((r) => stale.listen(stalePath, r));
    // Node unlinks on close; recreate the stale file by listening and destroying the handle without close.
    (stale as unknown as { _handle: { close(): void } })._handle.close();
    const s2 = createApiServer(service, { authorization: {}, maxRequestBytes: 1024, requestTimeoutMs: 1000 });
    servers.push(s2);
    await listenUnix(s2, { path: stalePath, env: {} });
    expect((await call(stalePath, 'GET', '/v1/health')).status).toBe(200);
    const filePath = join(dir, 'file.sock');
    writeFileSync(filePath, 'not a socket');
    await expect(
      listenUnix(createApiServer(service, { authorization: {}, maxRequestBytes: 1, requestTimeoutMs: 1000 }), { path: filePath, env: {} }),
    ).rejects.toThrow(/not a socket/);
  });
});

describe('authorization table', () => {
  it('resolves names from passwd/group text and reports unknown names', () => {
    const users = parseIdDatabase('root:x:0:0::/root:/bin/sh\ninference:x:1001:1001::/home/inference:/bin/sh\n');
    const groups = parseIdDatabase('root:x:0:\nmodels:x:2000:inference\n');
    const { table, errors } = resolveTable({ secrets: { uids: ['inference', '1500'], gids: ['models', 'nogroup'] } }, users, groups);
    expect(table.secrets).toEqual({ uids: [1001, 1500], gids: [2000] });
    expect(errors).toEqual(['api.authorization.secrets.gids: unknown group "nogroup"']);
  });

  it('denies restricted endpoints when credentials are unknown and lets root read but not take secrets', () => {
    expect(authorize('status', undefined, {}).allowed).toBe(true);
    expect(authorize('secrets', undefined, {}).allowed).toBe(false);
    expect(authorize('status', { pid: 1, uid: 7, gid: 7 }, { status: { uids: [8] } }).allowed).toBe(false);
    expect(authorize('status', { pid: 1, uid: 0, gid: 0 }, { status: { uids: [8] } }).allowed).toBe(true);
    expect(authorize('secrets', { pid: 1, uid: 0, gid: 0 }, {}).allowed).toBe(false);
  });

  it('matches gids against the primary gid and every supplementary group, and says which', () => {
    const table = { status: { gids: [50] } };
    expect(authorize('status', { pid: 1, uid: 7, gid: 7, groups: [49, 50] }, table, 99)).toEqual({
      allowed: true,
      reason: 'supplementary group 50 is allow-listed',
    });
    expect(authorize('status', { pid: 1, uid: 7, gid: 50, groups: [] }, table, 99).reason).toBe('gid 50 is allow-listed');
    expect(authorize('status', { pid: 1, uid: 7, gid: 7, groups: [49] }, table, 99)).toEqual({
      allowed: false,
      reason: 'uid 7 / gid 7 / groups 49 is not allow-listed for status',
    });
    expect(authorize('status', { pid: 1, uid: 7, gid: 7 }, table, 99).reason).toContain('supplementary groups unknown');
    // A uid rule says nothing about groups.
    expect(authorize('secrets', { pid: 1, uid: 7, gid: 7, groups: [1234] }, { secrets: { uids: [1234] } }, 99).allowed).toBe(false);
  });

  it('defaults evidence to root and the agent user; a caller nonce on attest needs the same', async () => {
    expect(authorize('evidence', { pid: 1, uid: 7, gid: 7, groups: [] }, {}, 99).allowed).toBe(false);
    expect(authorize('evidence', { pid: 1, uid: 99, gid: 7, groups: [] }, {}, 99).allowed).toBe(true);
    expect(authorize('attest', { pid: 1, uid: 7, gid: 7, groups: [] }, {}, 99).allowed).toBe(true);
    const path = await start({ pid: 1, uid: 4321, gid: 51 });
    expect((await call(path, 'GET', '/v1/evidence?nonce=00112233445566778899')).status).toBe(403);
    const withNonce = await call(path, 'POST', '/v1/attest', '{"nonce":"0011223344556677"}');
    expect(withNonce.status).toBe(403);
    expect(JSON.parse(withNonce.body).detail).toMatch(/^a caller nonce needs the evidence authorization: uid 4321/);
    expect(JSON.parse((await call(path, 'POST', '/v1/attest', '{}')).body)).toEqual({ nonce: null });
    const granted = await start({ pid: 1, uid: 4321, gid: 51 }, { evidence: { gids: [51] } });
    expect((await call(granted, 'GET', '/v1/evidence?nonce=00112233445566778899')).status).toBe(200);
    expect((await call(granted, 'POST', '/v1/attest', '{"nonce":"0011223344556677"}')).status).toBe(200);
  });

  it('takes socket-activation fds only when LISTEN_PID is ours, and consumes the variables', () => {
    const env: NodeJS.ProcessEnv = { LISTEN_FDS: '1', LISTEN_PID: String(process.pid), LISTEN_FDNAMES: 'api' };
    expect(takeActivationFds(env)).toEqual({ fds: [3], names: ['api'] });
    expect(env.LISTEN_FDS).toBeUndefined();
    expect(takeActivationFds({ LISTEN_FDS: '1', LISTEN_PID: '1' })).toBeUndefined();
  });
});

describe('request targets (RFC 9112 origin-form only)', () => {
  it('accepts paths with an optional query, and splits them without decoding the path', () => {
    expect(parseTarget('/v1/health')).toMatchObject({ pathname: '/v1/health' });
    const t = parseTarget('/v1/evidence?nonce=ab&x=%41');
    expect(t.pathname).toBe('/v1/evidence');
    expect(t.searchParams.get('nonce')).toBe('ab');
    expect(t.searchParams.get('x')).toBe('A');
    expect(parseTarget('/v1/secrets/%2e%2e').pathname).toBe('/v1/secrets/%2e%2e'); // never matches a route
    expect(parseTarget("/a:b@c!$&'()*+,;=-._~/?/?").pathname).toBe("/a:b@c!$&'()*+,;=-._~/");
  });

  it.each([
    'http://[',
    'http://a:99999/x',
    '//[/x',
    'http://localhost/v1/health',
    '*',
    'localhost:80',
    '',
    'v1/health',
    '/v1/health#frag',
    '/a b',
    '/%zz',
    '/%4',
    '/\\',
    '/v1?%',
    '/\u00e9',
    '/\u0000',
  ])('refuses %j with a 400 problem', (target) => {
    expect(() => parseTarget(target)).toThrow(expect.objectContaining({ status: 400, slug: 'bad-target' }));
  });

  it('never throws anything but a 400 for any string, and what it accepts starts with "/"', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.stringMatching(/^[/?%:@a-z0-9[\]#.]{0,40}$/)), (raw) => {
        try {
          const t = parseTarget(raw);
          expect(t.pathname.startsWith('/')).toBe(true);
          expect(raw.startsWith(t.pathname)).toBe(true);
        } catch (err) {
          expect(err).toMatchObject({ status: 400, slug: 'bad-target' });
        }
      }),
      { numRuns: Math.min(FC_RUNS, 10_000) },
    );
  });
});
