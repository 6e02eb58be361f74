/**
 * Attack: a local socket peer sends whatever bytes it likes to the agent's API, before any
 * authorization. `GET http://[ HTTP/1.1` used to throw in the request listener (new URL outside the
 * error handling) and end the daemon with exit 70, losing its in-memory secrets and token.
 *
 * Every attack runs against a real `cvm-agent run` process on the simulated TEE, over its real Unix
 * socket, under a low descriptor limit; after each one the process must still be alive and answer
 * /v1/health. The same attacks also run against the server in this process, where a throw would
 * take the test worker down.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, CLI, type DaemonProcess } from '../helpers/daemon-process.js';
import { alive, rawRequest, sendRaw } from '../helpers/local-client.js';
import { stubService } from '../helpers/api-contract.js';
import { callApi } from '../../agent/cli/api-client.js';
import { createApiServer, type ApiService } from '../../agent/api/api-server.js';
import { listenUnix } from '../../agent/api/listen.js';

interface Attack {
  name: string;
  bytes: string | Buffer | (string | Buffer)[];
  /** The status the server must answer with; undefined: it may answer anything or close. */
  status?: number;
  /** The problem type's slug, when it answers with a problem. */
  slug?: string;
  abortAfterMs?: number;
}

const GET = (target: string) => rawRequest('GET', target);

const ATTACKS: Attack[] = [
  { name: 'absolute-form target with an invalid host (http://[)', bytes: GET('http://['), status: 400, slug: 'bad-target' },
  { name: 'absolute-form target with an out-of-range port', bytes: GET('http://a:99999/x'), status: 400, slug: 'bad-target' },
  { name: 'protocol-relative target (//[/x)', bytes: GET('//[/x'), status: 400, slug: 'bad-target' },
  { name: 'a valid absolute-form target (origin-form only)', bytes: GET('http://localhost/v1/health'), status: 400, slug: 'bad-target' },
  { name: 'asterisk-form target (OPTIONS *)', bytes: rawRequest('OPTIONS', '*'), status: 400, slug: 'bad-target' },
  { name: 'authority-form target (CONNECT)', bytes: rawRequest('CONNECT', 'localhost:1'), status: 400, slug: 'bad-target' },
  { name: 'malformed percent-escape in the query', bytes: GET('/v1/evidence?nonce=%zz'), status: 400, slug: 'bad-target' },
  { name: 'backslashes and a fragment in the target', bytes: GET('/v1\\..\\health#x'), status: 400 },
  { name: 'dot segments reaching for another endpoint', bytes: GET('/v1/health/../secrets/x'), status: 404, slug: 'not-found' },
  { name: 'garbage bytes instead of a request line', bytes: Buffer.from([0x00, 0x01, 0xff, 0xfe, 0x0d, 0x0a, 0x0d, 0x0a]), status: 400, slug: 'bad-request' },
  { name: 'an HTTP/2 connection preface', bytes: 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', status: 400 },
  { name: 'a NUL byte in the target', bytes: 'GET /v1/health\0 HTTP/1.1\r\nHost: x\r\n\r\n', status: 400 },
  { name: 'headers of 64 KiB', bytes: rawRequest('GET', '/v1/health', { 'X-Pad': 'a'.repeat(64 * 1024) }), status: 431, slug: 'headers-too-large' },
  { name: 'a target of 16 KiB', bytes: GET(`/v1/health?${'a'.repeat(16 * 1024)}`), status: 431 },
  { name: 'a negative Content-Length', bytes: rawRequest('POST', '/v1/attest', { 'Content-Length': '-1' }), status: 400 },
  {
    name: 'Content-Length and Transfer-Encoding together (smuggling)',
    bytes: rawRequest('POST', '/v1/attest', { 'Content-Length': '2', 'Transfer-Encoding': 'chunked' }, '{}'),
    status: 400,
  },
  { name: 'a malformed chunk size', bytes: rawRequest('POST', '/v1/attest', { 'Transfer-Encoding': 'chunked' }, 'zz\r\n{}\r\n0\r\n\r\n'), status: 400 },
  { name: 'a declared body over the limit', bytes: rawRequest('POST', '/v1/attest', { 'Content-Length': String(1 << 30) }), status: 413 },
  { name: 'an unsupported Expect header', bytes: rawRequest('POST', '/v1/attest', { Expect: 'the-unexpected' }, '{}'), status: 417 },
  { name: 'a WebSocket upgrade', bytes: rawRequest('GET', '/v1/health', { Connection: 'Upgrade', Upgrade: 'websocket' }) },
  { name: 'a body that is not JSON', bytes: rawRequest('POST', '/v1/attest', {}, '{"nonce": '), status: 400, slug: 'bad-json' },
  { name: 'a JSON body with a __proto__ key', bytes: rawRequest('POST', '/v1/attest', {}, '{"__proto__": {"nonce": "00"}}'), status: 400 },
  { name: 'pipelined bad and good requests', bytes: GET('http://[') + GET('/v1/health') + GET('//[/x') },
  { name: 'a connection dropped half-way through the headers', bytes: 'GET /v1/health HTTP/1.1\r\nHost: x\r\nX-A', abortAfterMs: 50 },
  {
    name: 'a connection dropped half-way through a body',
    bytes: rawRequest('POST', '/v1/attest', { 'Content-Length': '4096' }, '{"nonce":"'),
    abortAfterMs: 50,
  },
  { name: 'a connection dropped while its evidence is being produced', bytes: GET(`/v1/evidence?nonce=${'ab'.repeat(32)}`), abortAfterMs: 0 },
  { name: 'a connection dropped while an attestation runs', bytes: rawRequest('POST', '/v1/attest', {}, '{}'), abortAfterMs: 0 },
];

function expectAnswer(attack: Attack, got: { status: number; head: string; body: string }) {
  if (attack.status !== undefined) {
    expect(got.status, `${attack.name}: ${got.head}`).toBe(attack.status);
    expect(got.head.toLowerCase()).toContain('content-type: application/problem+json');
    const p = JSON.parse(got.body) as { status: number; type: string };
    expect(p.status).toBe(attack.status);
    if (attack.slug) expect(p.type).toBe(`https://cvm-agent.dev/problems/${attack.slug}`);
    expect(got.body).not.toMatch(/ at .*\.(ts|js):\d+/); // no stack traces to the peer
  }
}

/** Opens n connections to the socket and waits until each has connected or been closed. */
async function openConnections(socket: string, n: number): Promise<Socket[]> {
  const held: Socket[] = [];
  for (let i = 0; i < n; i++) {
    const s = connect(socket);
    s.on('error', () => undefined);
    held.push(s);
  }
  await Promise.all(
    held.map(
      (s) =>
        new Promise<void>((r) => {
          s.once('connect', () => r());
          s.once('close', () => r());
        }),
    ),
  );
  return held;
}

describe('a hostile local client against a running daemon (cvm-agent run, simulated TEE)', () => {
  let dir: string;
  let socket: string;
  let daemon: DaemonProcess;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cvm-adv-requests-'));
    chmodSync(dir, 0o755);
    socket = join(dir, 'api.sock');
    writeFileSync(
      join(dir, 'config.yaml'),
      `tee: simulated
simulation: { gpus: 1, dir: ${dir}/sim }
api: { socket: ${socket}, maxRequestBytes: 1024 }
state: { dir: ${dir}/state }
collateral: { dir: ${dir}/cache }
schedule: { cron: "0 0 1 1 *", jitterSec: 0 }
`,
    );
    // A low descriptor limit, so a connection flood reaches EMFILE at accept (Node does not raise a
    // hard limit; the soft limit is raised to it).
    daemon = startDaemon(['--config', join(dir, 'config.yaml')], {}, ['prlimit', '--nofile=128:128', process.execPath, CLI, 'run']);
    await daemon.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('attestation'), 90_000);
  }, 120_000);

  afterAll(() => {
    daemon?.child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  async function stillServing() {
    expect(daemon.child.exitCode, JSON.stringify(daemon.logs.slice(-5))).toBeNull();
    expect(alive(daemon.child.pid!)).toBe(true);
    const h = await callApi(socket, 'GET', '/v1/health');
    expect(h.status).toBe(200);
    expect(['ok', 'degraded']).toContain((h.json() as { status: string }).status);
  }

  for (const attack of ATTACKS) {
    it(`survives ${attack.name}`, async () => {
      const got = await sendRaw(socket, attack.bytes, attack.abortAfterMs === undefined ? {} : { abortAfterMs: attack.abortAfterMs });
      expectAnswer(attack, got);
      await stillServing();
    });
  }

  it('survives a flood of connections past its descriptor limit (EMFILE at accept), then serves again', async () => {
    const held = await openConnections(socket, 400);
    for (const s of held) s.destroy();
    await stillServing();
  });

  it('survives every attack at once, interleaved, and never logged an uncaught exception', async () => {
    await Promise.all(ATTACKS.map((a) => sendRaw(socket, a.bytes, a.abortAfterMs === undefined ? {} : { abortAfterMs: a.abortAfterMs })));
    await stillServing();
    expect(daemon.logs.filter((l) => l.level === 60 || String(l.msg ?? '').includes('uncaught'))).toEqual([]);
  });
});

describe('the API server in this process (a throw here would end the test worker)', () => {
  const service: ApiService = {
    health: async () => ({ status: 'ok', reasons: [] }),
    status: () => {
      throw new Error('a handler that throws synchronously');
    },
    attest: async () => {
      throw new TypeError('a handler that rejects');
    },
    evidence: () => new Promise(() => undefined), // never answers: the peer gives up
    token: async () => undefined,
    secret: async () => undefined,
    metrics: async () => ({ contentType: 'text/plain', body: '' }),
  };
  const errors: string[] = [];
  let socket: string;
  let dir: string;
  let server: ReturnType<typeof createApiServer>;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cvm-adv-server-'));
    socket = join(dir, 'api.sock');
    server = createApiServer(service, {
      authorization: {},
      maxRequestBytes: 1024,
      requestTimeoutMs: 2000,
      maxConnections: 8,
      peerCredentials: () => ({ pid: 1, uid: 0, gid: 0, groups: [] }),
      onError: (err, path) => errors.push(`${path}: ${(err as Error).message}`),
      // A logger that throws must not take the process down either.
      onAccess: () => {
        throw new Error('access log failed');
      },
    });
    await listenUnix(server, { path: socket, env: {} });
    stubService(socket);
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  for (const attack of ATTACKS) {
    it(`answers ${attack.name} and keeps serving`, async () => {
      const got = await sendRaw(socket, attack.bytes, attack.abortAfterMs === undefined ? {} : { abortAfterMs: attack.abortAfterMs });
      expectAnswer(attack, got);
      expect((await sendRaw(socket, GET('/v1/health'))).status).toBe(200);
    });
  }

  it('answers handlers that throw synchronously or reject with a bare 500, and logs them', async () => {
    errors.length = 0;
    const sync = await sendRaw(socket, GET('/v1/status'));
    expect(sync.status).toBe(500);
    expect(JSON.parse(sync.body)).toMatchObject({ status: 500, detail: 'see the agent log' });
    expect(sync.body).not.toContain('synchronously');
    const async = await sendRaw(socket, rawRequest('POST', '/v1/attest', {}, '{}'));
    expect(async.status).toBe(500);
    expect(errors.some((e) => e.includes('a handler that throws synchronously'))).toBe(true);
    expect(errors.some((e) => e.includes('a handler that rejects'))).toBe(true);
  });

  it('does not log a peer that hangs up mid-body as an internal error', async () => {
    errors.length = 0;
    await sendRaw(socket, rawRequest('POST', '/v1/attest', { 'Content-Length': '900' }, '{"nonce":"'), { abortAfterMs: 50 });
    expect((await sendRaw(socket, GET('/v1/health'))).status).toBe(200);
    expect(errors.filter((e) => !e.startsWith('access log'))).toEqual([]);
  });

  it('caps simultaneous connections, and serves again once the flood is gone', async () => {
    const held = await openConnections(socket, 40);
    const count = await new Promise<number>((r) => server.getConnections((_e, n) => r(n)));
    expect(count).toBeLessThanOrEqual(8);
    for (const s of held) s.destroy();
    for (let i = 0; i < 100 && (await new Promise<number>((r) => server.getConnections((_e, n) => r(n)))) > 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect((await sendRaw(socket, GET('/v1/health'))).status).toBe(200);
  });
});
