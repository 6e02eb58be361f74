/**
 * The controller on a PostgreSQL store, as a process runs it: its periodic retention prune
 * (store.retention.pruneIntervalSec: docs/controller.md "Retention") runs and is logged, and the
 * fleet API answers 503 "store unavailable" (problem details) while the database cannot be read, as
 * docs/controller.md "Fleet API" says.
 */
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseControllerConfig, resolveControllerConfig } from '../../../../agent/controller/config.js';
import { Controller } from '../../../../agent/controller/controller-server.js';
import { requirePostgres, TestPostgres } from '../../../helpers/postgres.js';

const run = requirePostgres();

describe.runIf(run)('controller on PostgreSQL', () => {
  let pgs: TestPostgres;
  beforeAll(async () => {
    pgs = await TestPostgres.start();
  });
  afterAll(async () => {
    await pgs?.stop();
  });

  it('prunes on its interval (first within a tenth of it), and answers 503 store unavailable while the database is down', async () => {
    const url = await pgs.createDatabase();
    const cfg = parseControllerConfig(
      `listen: {host: 127.0.0.1, port: 0}\nstore: {url: "${url}", replica: t1, leaseTtlSec: 6, retention: {pruneIntervalSec: 10}}\n`,
      'test config',
    );
    const lines: string[] = [];
    const log = pino({ level: 'debug' }, { write: (s: string) => lines.push(s) });
    const c = await Controller.start(await resolveControllerConfig(cfg), { log });
    try {
      expect((c as unknown as { registry: { store: { leases: { ttlMs: number } } } }).registry.store.leases.ttlMs).toBe(6000);
      const deadline = Date.now() + 5000;
      while (!lines.some((l) => l.includes('store pruned to its retention')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const pruned = lines.find((l) => l.includes('store pruned to its retention'));
      expect(pruned).toBeDefined();
      expect(JSON.parse(pruned!).deleted).toEqual({ events: 0, gaps: 0, alarms: 0, verdicts: 0, releases: 0 });
      const base = c.address().url;
      expect((await fetch(`${base}/v1/agents`)).status).toBe(200);
      await pgs.stopServer();
      for (const path of ['/v1/agents', '/v1/agents/vm-absent']) {
        const res = await fetch(`${base}${path}`);
        expect(res.status).toBe(503);
        expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
        expect(await res.json()).toEqual({ type: 'about:blank', title: 'store unavailable', status: 503, detail: 'the agent store could not be read; retry' });
      }
      await pgs.startServer();
      expect((await fetch(`${base}/v1/agents`)).status).toBe(200);
    } finally {
      await c.close();
    }
  }, 60_000);
});
