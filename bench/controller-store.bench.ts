/**
 * The controller store's cost per event (agent/controller/store/): one agent record with an attested
 * key, events recorded by the registry and written through the store, as the session does (one write
 * per burst of up to 64 events, then the ack). Rows: the embedded file store (one atomic file
 * replace, with fsync, per write) and PostgreSQL (one transaction per write: the record row and the
 * event rows), each per event in a write of 1 and of 64 events, against the registry alone
 * (memory only: what recording costs without a store). PostgreSQL rows run when Debian's postgresql
 * is installed (a server in a temporary directory, test/helpers/postgres.ts; fsync off, so the
 * file store's rows, which do fsync, are not compared like for like on the disk).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentRegistry } from '../agent/controller/registry.js';
import { FileStore } from '../agent/controller/store/file-store.js';
import { PostgresStore } from '../agent/controller/store/postgres-store.js';
import type { ControllerStore } from '../agent/controller/store/controller-store.js';
import { postgresBinDir, TestPostgres } from '../test/helpers/postgres.js';
import { medianMs, type BenchRow } from './lib.js';

const KEY = { kty: 'EC', crv: 'P-384', x: 'AAAA', y: 'BBBB' };
const DATA = { cycle: 'ok', status: 'affirming', devices: { cpu0: 'affirming', gpu0: 'affirming' } };

async function perEvent(store: ControllerStore | undefined, batch: number, runs: number): Promise<number> {
  const reg = new AgentRegistry(store);
  const id = `bench-${batch}`;
  reg.get(id);
  await reg.rememberKey(id, KEY, new Date());
  await reg.persist(id);
  let seq = 0;
  const ms = await medianMs(
    async () => {
      for (let i = 0; i < batch; i++) {
        seq++;
        reg.recordEvent(id, { seq, at: new Date().toISOString(), kind: 'attested', data: DATA }, new Date());
      }
      await reg.persist(id);
    },
    { runs, inner: 5, warmup: 2 },
  );
  await reg.close();
  return ms / batch;
}

export default async function run(): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'cvm-store-bench-'));
  const memory1 = await perEvent(undefined, 1, 21);
  const memory64 = await perEvent(undefined, 64, 21);
  const row = (name: string, ms: number, baselineMs: number, note: string): BenchRow => ({
    name,
    medianMs: ms,
    runs: 21,
    baselineName: 'registry, memory only',
    baselineMs,
    unit: 'ms/event',
    note,
  });
  try {
    rows.push(row('store files: 1 event per write', await perEvent(new FileStore(join(dir, 'a')), 1, 21), memory1, 'atomic replace + fsync per write'));
    rows.push(row('store files: 64 events per write', await perEvent(new FileStore(join(dir, 'b')), 64, 21), memory64, 'atomic replace + fsync per write'));
    if (postgresBinDir()) {
      const pgs = await TestPostgres.start();
      try {
        const open = async () => PostgresStore.open({ url: await pgs.createDatabase(), replicaId: 'bench' });
        rows.push(row('store postgres: 1 event per write', await perEvent(await open(), 1, 21), memory1, 'one transaction per write; server fsync off'));
        rows.push(row('store postgres: 64 events per write', await perEvent(await open(), 64, 21), memory64, 'one transaction per write; server fsync off'));
      } finally {
        await pgs.stop();
      }
    } else {
      process.stderr.write('controller-store bench: no PostgreSQL under /usr/lib/postgresql; its rows are left out (apt-get install -y postgresql)\n');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}
