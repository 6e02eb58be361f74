/**
 * Fault injection for the boot test (test/system/boot.test.ts), honoured only when the environment
 * says CVM_AGENT_TEST_HOOKS=1 (a systemd drop-in in that test; never in the shipped unit or the
 * .deb). With it, SIGUSR2 blocks the main thread for good, the way a hung event loop would, so the
 * test can watch systemd's watchdog (WatchdogSec=) abort and restart the agent. Without it SIGUSR2
 * keeps Node's default action, and nothing here is installed.
 */
import type { Logger } from '../util/log.js';

export const TEST_HOOKS_ENV = 'CVM_AGENT_TEST_HOOKS';

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
