import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

/**
 * The controller suites whose identity, ordering and durability rules must hold on every store:
 * they run twice, on the embedded file store (project "default") and on PostgreSQL (project
 * "postgres": CVM_TEST_STORE=postgres, test/helpers/test-store.ts and postgres-project-setup.ts).
 */
export const STORE_SUITES = [
  'test/adversarial/hostile-agent-*.test.ts',
  'test/e2e/link-durability.test.ts',
  'test/unit/controller/controller-link.test.ts',
  'test/unit/controller/controller-limits.test.ts',
  'test/unit/controller/controller-shutdown.test.ts',
];

export default defineConfig({
  test: {
    // Native addon tests spawn child processes; forks keep any native crash contained.
    pool: 'forks',
    // Vitest's default is one worker per core less one: on a 2-core machine the files ran one at a
    // time while most of them wait on child processes, fsync and sockets. Two workers there (measured:
    // the 17 slowest files 196 s with one, 146 s with two, 171 s with three); unchanged above 2 cores.
    maxWorkers: Math.max(2, availableParallelism() - 1),
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Children run built JavaScript (dist/ and test/built/), built once here: test/helpers/built.ts.
    globalSetup: ['./test/helpers/global-build.ts'],
    reporters: ['default', './test/helpers/summary-reporter.ts'],
    projects: [
      {
        extends: true,
        test: {
          name: 'default',
          include: ['test/**/*.test.ts'],
          // e2e and adversarial responses are checked against docs/openapi.yaml (see the file).
          setupFiles: ['./test/helpers/api-contract-setup.ts'],
        },
      },
      {
        extends: true,
        test: {
          name: 'postgres',
          include: STORE_SUITES,
          env: { CVM_TEST_STORE: 'postgres' },
          setupFiles: ['./test/helpers/api-contract-setup.ts', './test/helpers/postgres-project-setup.ts'],
        },
      },
    ],
  },
});
