/**
 * Fault injection for tests, honoured only when the environment says CVM_AGENT_TEST_HOOKS=1 (a
 * systemd drop-in in test/system/boot.test.ts, the environment of a test's daemon; never in the
 * shipped unit or the .deb). With it, SIGUSR2 blocks the main thread for good, the way a hung event
 * loop would, so the test can watch systemd's watchdog (WatchdogSec=) abort and restart the agent;
 * and the verification worker can be made slow or made to die (verifyWorkerHooks). Without it SIGUSR2
 * keeps Node's default action, and nothing here is installed.
 */
import type { VerifyWorkerHooks } from '../attest/verify-service.js';
import type { Logger } from '../util/log.js';

export const TEST_HOOKS_ENV = 'CVM_AGENT_TEST_HOOKS';
/** Milliseconds the verification worker blocks its own thread before each verification (a slow cycle). */
export const TEST_VERIFY_DELAY_ENV = 'CVM_AGENT_TEST_VERIFY_DELAY_MS';
/** "1": the first verification worker exits when its first request arrives (a worker killed mid-cycle). */
export const TEST_VERIFY_EXIT_ENV = 'CVM_AGENT_TEST_VERIFY_EXIT_FIRST';

/** The verification worker's test hooks from the environment; none without CVM_AGENT_TEST_HOOKS=1. */
export function verifyWorkerHooks(env: NodeJS.ProcessEnv): VerifyWorkerHooks | undefined {
  if (env[TEST_HOOKS_ENV] !== '1') return undefined;
  const hooks: VerifyWorkerHooks = {};
  const delay = Number(env[TEST_VERIFY_DELAY_ENV]);
  if (Number.isInteger(delay) && delay > 0 && delay <= 600_000) hooks.delayMs = delay;
  if (env[TEST_VERIFY_EXIT_ENV] === '1') hooks.exitOnFirst = true;
  return Object.keys(hooks).length > 0 ? hooks : undefined;
}

export function installTestHooks(env: NodeJS.ProcessEnv, log: Logger): boolean {
  if (env[TEST_HOOKS_ENV] !== '1') return false;
  log.warn({ env: TEST_HOOKS_ENV }, 'test hooks enabled: SIGUSR2 blocks the event loop (never set this in production)');
  process.on('SIGUSR2', () => {
    log.warn('SIGUSR2 (test hook): blocking the event loop until the watchdog aborts the process');
    // Flush first so the line reaches the journal; then wait on a futex nobody wakes: blocked
    // without spinning a CPU. Timers, I/O and so the watchdog pings all stop.
    log.flush(() => {
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
    });
  });
  return true;
}
