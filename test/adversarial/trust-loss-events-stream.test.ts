/**
 * GET /v1/events on a real Unix socket: the same authorization table as every endpoint, a cap on
 * concurrent subscribers, a bounded buffer per subscriber (a client that stops reading is cut off,
 * the agent's memory does not grow with it), replay after reconnect with Last-Event-ID, and the
 * streams end when the agent stops.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { connect, type Server } from 'node:net';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createApiServer, type ApiService } from '../../agent/api/api-server.js';
import { listenUnix } from '../../agent/api/listen.js';
import { EventHub } from '../../agent/api/events-stream.js';
import type { AuthorizationTable } from '../../agent/api/authz.js';
import { subscribe, until } from '../helpers/trust-fixture.js';
import { stubService } from '../helpers/api-contract.js';
import { callApi } from '../../agent/cli/api-client.js';

const servers: Server[] = [];
const hubs: EventHub[] = [];
afterEach(async () => {
  for (const h of hubs.splice(0)) h.close();
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

async function start(
  opts: { peer?: { pid: number; uid: number; gid: number }; table?: AuthorizationTable; maxSubscribers?: number; maxBufferedBytes?: number } = {},
) {
  const hub = new EventHub({
    maxSubscribers: opts.maxSubscribers ?? 4,
    maxBufferedBytes: opts.maxBufferedBytes ?? 64 * 1024,
    heartbeatMs: 60_000,
    snapshot: () => ({ trusted: true }),
  });
  hubs.push(hub);
  const service: ApiService = {
    health: async () => ({ status: 'ok', reasons: [] }),
    status: async () => ({}),
    attest: async () => ({}),
    evidence: async () => ({}),
    token: async () => undefined,
    secret: async () => undefined,
    metrics: async () => ({ contentType: 'text/plain', body: '' }),
    events: (req, res) => hub.handle(req, res),
  };
  const path = join(mkdtempSync(join(tmpdir(), 'cvm-events-')), 'api.sock');
  const server = createApiServer(service, {
    authorization: opts.table ?? {},
    maxRequestBytes: 1024,
    requestTimeoutMs: 5000,
    peerCredentials: () => opts.peer ?? { pid: 1, uid: 1000, gid: 1000 },
  });
  servers.push(server as unknown as Server);
  await listenUnix(server, { path, env: {} });
  stubService(path);
  return { hub, path };
}

describe('GET /v1/events', () => {
  it('sends the current state first, then every published event in order', async () => {
    const { hub, path } = await start();
    const sub = await subscribe(path);
    expect(sub.status).toBe(200);
    expect((await sub.waitFor((e) => e.event === 'state')).data).toEqual({ trusted: true });
    hub.publish('trust', { kind: 'trigger', trigger: 'cycleFailed', detail: 'line one\nline two' });
    hub.publish('state', { trusted: false });
    const t = await sub.waitFor((e) => e.event === 'trust');
    expect(t.data.detail).toBe('line one\nline two'); // a newline in data cannot split or forge an event
    expect((await sub.waitFor((e) => e.event === 'state' && e.data.trusted === false)).id).toBe('2');
    sub.close();
  });

  it('is authorized by the same table: a peer not allow-listed for "events" gets 403', async () => {
    const { path } = await start({ peer: { pid: 1, uid: 1002, gid: 1002 }, table: { events: { uids: [1001] } } });
    const r = await callApi(path, 'GET', '/v1/events');
    expect(r.status).toBe(403);
    const ok = await start({ peer: { pid: 1, uid: 1001, gid: 1001 }, table: { events: { uids: [1001] } } });
    const sub = await subscribe(ok.path);
    expect(sub.status).toBe(200);
    sub.close();
  });

  it('caps concurrent subscribers (503 beyond the cap) and frees a slot when one leaves', async () => {
    const { hub, path } = await start({ maxSubscribers: 2 });
    const a = await subscribe(path);
    const b = await subscribe(path);
    await a.waitFor((e) => e.event === 'state');
    await b.waitFor((e) => e.event === 'state');
    const c = await callApi(path, 'GET', '/v1/events');
    expect(c.status).toBe(503);
    expect((c.json() as { code: string }).code).toBe('ERR_BUSY');
    a.close();
    await until('the slot freed', () => hub.subscribers === 1);
    const d = await subscribe(path);
    expect(d.status).toBe(200);
    b.close();
    d.close();
  });

  it('cuts off a subscriber that stops reading instead of buffering without bound; others keep receiving', async () => {
    const { hub, path } = await start({ maxBufferedBytes: 32 * 1024 });
    const healthy = await subscribe(path);
    // A raw client that sends the request and never reads the response.
    const slow = connect(path);
    await new Promise<void>((r) => slow.once('connect', () => r()));
    slow.write('GET /v1/events HTTP/1.1\r\nHost: localhost\r\n\r\n');
    slow.pause();
    await until('two subscribers', () => hub.subscribers === 2);
    const big = 'x'.repeat(8 * 1024);
    // Paced by the healthy client: it reads each event before the next is published.
    for (let i = 0; i < 2000 && hub.dropped === 0; i++) {
      hub.publish('attestation', { i, pad: big });
      await healthy.waitFor((e) => e.event === 'attestation' && e.data.i === i);
    }
    expect(hub.dropped).toBe(1);
    expect(hub.subscribers).toBe(1);
    hub.publish('state', { trusted: 'still-here' });
    await healthy.waitFor((e) => e.event === 'state' && e.data.trusted === 'still-here');
    slow.destroy();
    healthy.close();
  }, 60_000);

  it('replays what a reconnecting client missed (Last-Event-ID)', async () => {
    const { hub, path } = await start();
    hub.publish('trust', { n: 1 });
    hub.publish('trust', { n: 2 });
    hub.publish('trust', { n: 3 });
    const sub = await subscribe(path, { 'last-event-id': '1' });
    const got = await sub.waitFor((e) => e.event === 'trust' && e.data.n === 3);
    expect(got.id).toBe('3');
    expect(sub.events.filter((e) => e.event === 'trust').map((e) => e.data.n)).toEqual([2, 3]);
    sub.close();
  });

  it('ends every stream with a last "stopping" event when the agent stops', async () => {
    const { hub, path } = await start();
    const sub = await subscribe(path);
    await sub.waitFor((e) => e.event === 'state');
    hub.close();
    await sub.waitFor((e) => e.event === 'stopping');
    await sub.closed;
    const after = await callApi(path, 'GET', '/v1/events');
    expect(after.status).toBe(503);
  });
});
