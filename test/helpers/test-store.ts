/**
 * Which controller store the controller fixtures use: the embedded file store (stateDir), or, when
 * CVM_TEST_STORE=postgres (the `postgres` project in vitest.config.ts runs the controller suites so),
 * PostgreSQL: one server per test file (test/helpers/postgres.ts, stopped by
 * test/helpers/postgres-project-setup.ts) and one database per stateDir, so a controller restarted
 * "on the same stateDir" finds its state again. Tests read stored records through `storedRecord`
 * and `storedAgentIds`, whichever store holds them.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AgentRecord } from '../../agent/controller/registry.js';
import { PostgresStore } from '../../agent/controller/store/postgres-store.js';
import { TestPostgres } from './postgres.js';

export const STORE_ENV = 'CVM_TEST_STORE';

let server: Promise<TestPostgres> | undefined;
const databases = new Map<string, Promise<string>>();
/** Set by the project setup when PostgreSQL is missing on a development machine (the skip is recorded). */
let unavailable = false;

export function testStoreKind(): 'files' | 'postgres' {
  return process.env[STORE_ENV] === 'postgres' && !unavailable ? 'postgres' : 'files';
}

export function markPostgresUnavailable(): void {
  unavailable = true;
}

/** The PostgreSQL server of this test file (started on first use). */
export function testPostgres(): Promise<TestPostgres> {
  server ??= TestPostgres.start();
  return server;
}

/** The database URL standing for `stateDir` (created on first use). */
export function databaseFor(stateDir: string): Promise<string> {
  let url = databases.get(stateDir);
  if (!url) {
    url = testPostgres().then((pgs) => pgs.createDatabase(`cvm_${databases.size}_${process.pid}`));
    databases.set(stateDir, url);
  }
  return url;
}

/**
 * The config line for the controller's state: `stateDir: DIR`, or `store: {url: ...}` under the
 * postgres project. The replica name is one per stateDir unless given, so a controller restarted on
 * the same state is the same replica (it takes its own leases back at once).
 */
export async function storeYaml(stateDir: string, replica?: string): Promise<string> {
  if (testStoreKind() === 'files') return `stateDir: ${stateDir}`;
  const url = await databaseFor(stateDir);
  return `store: {url: "${url}", replica: ${replica ?? `test-${process.pid}-${[...databases.keys()].indexOf(stateDir)}`}}`;
}

async function withStore<T>(stateDir: string, fn: (s: PostgresStore) => Promise<T>): Promise<T> {
  const s = await PostgresStore.open({ url: await databaseFor(stateDir), replicaId: 'test-reader' });
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
}

/** The agent's record as stored (the file in stateDir, or the database standing for it). */
export async function storedRecord(stateDir: string, agentId: string): Promise<AgentRecord | undefined> {
  if (testStoreKind() === 'files') {
    try {
      return JSON.parse(readFileSync(join(stateDir, `${agentId}.json`), 'utf8')) as AgentRecord;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }
  return withStore(stateDir, (s) => s.loadAgent(agentId));
}

/** The agent ids with a stored record, sorted. */
export async function storedAgentIds(stateDir: string): Promise<string[]> {
  if (testStoreKind() === 'files') {
    return readdirSync(stateDir)
      .filter((f) => f.endsWith('.json'))
      .map((f) => f.slice(0, -5))
      .sort();
  }
  return withStore(stateDir, async (s) => (await s.loadAgents()).map((r) => r.agentId));
}

/** The size of the agent's stored record in bytes (the file, or the record column). */
export async function storedRecordBytes(stateDir: string, agentId: string): Promise<number | undefined> {
  const r = await storedRecord(stateDir, agentId);
  return r === undefined ? undefined : Buffer.byteLength(JSON.stringify(r, null, 1));
}

/** Stop this file's PostgreSQL server (the project's afterAll). */
export async function stopTestPostgres(): Promise<void> {
  const s = server;
  server = undefined;
  databases.clear();
  if (s) await (await s).stop();
}
