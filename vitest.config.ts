import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Native addon tests spawn child processes; forks keep any native crash contained.
    pool: 'forks',
    // Vitest's default is one worker per core less one: on a 2-core machine the files ran one at a
    // time while most of them wait on child processes, fsync and sockets. Two workers there (measured:
    // the 17 slowest files 196 s with one, 146 s with two, 171 s with three); unchanged above 2 cores.
    maxWorkers: Math.max(2, availableParallelism() - 1),
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // e2e and adversarial responses are checked against docs/openapi.yaml (see the file).
    setupFiles: ['./test/helpers/api-contract-setup.ts'],
    // Children run built JavaScript (dist/ and test/built/), built once here: test/helpers/built.ts.
    globalSetup: ['./test/helpers/global-build.ts'],
    reporters: ['default', './test/helpers/summary-reporter.ts'],
  },
});
