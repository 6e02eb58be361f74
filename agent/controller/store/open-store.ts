/**
 * The store a controller config selects: PostgreSQL when `store.url` is set (loaded by dynamic
 * import, so the embedded default never loads the driver), else the embedded file store in
 * `stateDir` (memory only without one).
 */
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { ControllerConfig } from '../config.js';
import type { ControllerStore } from './controller-store.js';
import { FileStore } from './file-store.js';

/**
 * A replica's name when store.replica is not set: host name and listen port, stable across restarts
 * (a restarted replica takes its own session leases back at once), or the process id for port 0.
 */
export function defaultReplicaId(port: number): string {
  return `${hostname().slice(0, 48)}:${port === 0 ? `pid${process.pid}` : port}`;
}

export async function openStore(
  config: Pick<ControllerConfig, 'stateDir' | 'store' | 'listen'> & Partial<Pick<ControllerConfig, 'retention'>>,
  log: Logger,
  port = config.listen.port,
): Promise<ControllerStore> {
  if (!config.store) return new FileStore(config.stateDir, undefined, config.retention?.releaseLogBytes);
  const { PostgresStore, redactUrl } = await import('./postgres-store.js');
  const replicaId = config.store.replica ?? defaultReplicaId(port);
  const store = await PostgresStore.open({
    url: config.store.url,
    replicaId,
    ...(config.store.poolSize ? { poolSize: config.store.poolSize } : {}),
    ...(config.store.leaseTtlSec ? { leaseTtlMs: config.store.leaseTtlSec * 1000 } : {}),
    onIdleError: (err) => log.warn({ err: err.message }, 'store connection lost (it reconnects on the next query)'),
  });
  log.info({ store: redactUrl(config.store.url), replica: replicaId }, 'store: PostgreSQL');
  return store;
}
