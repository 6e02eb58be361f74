import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Native addon tests spawn child processes; forks keep any native crash contained.
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // e2e and adversarial responses are checked against docs/openapi.yaml (see the file).
    setupFiles: ['./test/helpers/api-contract-setup.ts'],
    reporters: ['default', './test/helpers/summary-reporter.ts'],
  },
});
