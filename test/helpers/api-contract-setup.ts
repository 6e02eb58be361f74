/**
 * Vitest setup (vitest.config.ts setupFiles): in test/e2e and test/adversarial every local API
 * response that goes through agent/cli/api-client.ts (tests, helpers and the CLI commands they run
 * in-process alike) is checked against docs/openapi.yaml, and a test that saw a response the
 * document does not declare fails, even where the client swallowed the error (the CLI turns a
 * thrown error into an exit code). Raw clients (test/helpers/local-client.ts, the /v1/events
 * subscriber in test/helpers/trust-fixture.ts) call assertConforms themselves.
 */
import { afterEach, expect, vi } from 'vitest';
import { sep } from 'node:path';
import { assertConforms, takeViolations } from './api-contract.js';

/** The suites whose daemons are real: a unit test's stub service answers whatever it likes. */
export const CONTRACT_CHECKED = [`${sep}test${sep}e2e${sep}`, `${sep}test${sep}adversarial${sep}`];

const checked = () => CONTRACT_CHECKED.some((dir) => (expect.getState().testPath ?? '').includes(dir));

vi.mock('../../agent/cli/api-client.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../agent/cli/api-client.js')>();
  if (!checked()) return real;
  const callApi: typeof real.callApi = async (socketPath, method, path, body, timeoutMs) => {
    const r = await real.callApi(socketPath, method, path, body, timeoutMs);
    assertConforms({ method, target: path, status: r.status, contentType: r.contentType, body: r.body, socket: socketPath });
    return r;
  };
  return { ...real, callApi };
});

afterEach(() => {
  const seen = takeViolations();
  if (seen.length) throw new Error(`responses outside docs/openapi.yaml:\n${seen.join('\n')}`);
});
