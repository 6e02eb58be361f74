/**
 * Shared suite setup for the controller-link tests over loopback: a simulated TEE, a temporary
 * directory with the agent token file, and a list of cleanups run in reverse order after all tests.
 * Call linkSuite() at module level; its fields are set in beforeAll.
 */
import { afterAll, beforeAll } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSim, TOKEN, type Sim } from './controller-fixture.js';

export interface LinkSuite {
  sim: Sim;
  tmp: string;
  /** `${tmp}/token`, holding TOKEN. */
  tokenFile: string;
  cleanup: Array<() => Promise<void>>;
}

export function linkSuite(tmpPrefix: string): LinkSuite {
  const suite = { cleanup: [] } as unknown as LinkSuite;
  beforeAll(async () => {
    suite.sim = await openSim();
    suite.tmp = mkdtempSync(join(tmpdir(), tmpPrefix));
    suite.tokenFile = join(suite.tmp, 'token');
    writeFileSync(suite.tokenFile, `${TOKEN}\n`);
  }, 60_000);
  afterAll(async () => {
    for (const c of suite.cleanup.splice(0).reverse()) await c().catch(() => undefined);
    if (suite.sim) rmSync(suite.sim.dir, { recursive: true, force: true });
    if (suite.tmp) rmSync(suite.tmp, { recursive: true, force: true });
  });
  return suite;
}
