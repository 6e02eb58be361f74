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
    // Children run built JavaScript (dist/ and test/built/), built once here: test/helpers/built.ts.
    globalSetup: ['./test/helpers/global-build.ts'],
    reporters: ['default', './test/helpers/summary-reporter.ts'],
  },
});
