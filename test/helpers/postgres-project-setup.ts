/**
 * Setup of the `postgres` vitest project (vitest.config.ts): the controller suites run again with
 * their state in PostgreSQL (test/helpers/test-store.ts). Without PostgreSQL installed, a development
 * machine records the skip (the suite then runs on the file store again) and CI fails.
 */
import { relative } from 'node:path';
import { afterAll, expect } from 'vitest';
import { requirePostgres } from './postgres.js';
import { repoRoot } from './paths.js';
import { markPostgresUnavailable, stopTestPostgres } from './test-store.js';

const file = expect.getState().testPath;
if (!requirePostgres({ suite: `${file ? relative(repoRoot, file) : 'unknown suite'} [store: postgres]` })) markPostgresUnavailable();

afterAll(async () => {
  await stopTestPostgres();
});
