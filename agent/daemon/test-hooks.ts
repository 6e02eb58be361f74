/**
 * Fault injection for end-to-end tests, honoured only when the environment says CVM_AGENT_TEST_HOOKS=1
 * (a systemd drop-in in the boot test; never in the shipped unit or the .deb):
 * - for the boot test (test/system/boot.test.ts), SIGUSR2 blocks the main thread for good, the way a
 *   hung event loop would, so the test can watch systemd's watchdog (WatchdogSec=) abort and restart
 *   the agent. Without the variable SIGUSR2 keeps Node's default action, and nothing here is installed;
 * - the verification worker can be made slow or made to die (verifyWorkerHooks, a test's daemon);
 * - for the hostile NVSwitch test (test/e2e/daemon-hgx.test.ts), CVM_AGENT_TEST_SWITCH_TAMPER=N:HOW
 *   damages simulated switch N's evidence on every cycle (HOW: `signature`, a flipped measurement
 *   byte; `foreign-gpu`, a correctly signed report naming a GPU of another system). It reaches only
 *   the simulated TEE (`tee: simulated` with `simulation.ppcie`), whose evidence is test-signed anyway.
 */
import type { VerifyWorkerHooks } from '../attest/verify-service.js';
import type { Logger } from '../util/log.js';
import type { SwitchTamper } from '../simulation/switch-sim.js';

export const TEST_HOOKS_ENV = 'CVM_AGENT_TEST_HOOKS';
export const SWITCH_TAMPER_ENV = 'CVM_AGENT_TEST_SWITCH_TAMPER';

/** The simulated-switch fault CVM_AGENT_TEST_SWITCH_TAMPER asks for, only under CVM_AGENT_TEST_HOOKS=1; undefined otherwise or when malformed. */
export function switchTamperHook(env: NodeJS.ProcessEnv, log: Logger): SwitchTamper | undefined {
  const v = env[SWITCH_TAMPER_ENV];
  if (env[TEST_HOOKS_ENV] !== '1' || v === undefined) return undefined;
  const m = /^([0-9]{1,2}):(signature|foreign-gpu)$/.exec(v);
  if (!m) {
    log.warn({ env: SWITCH_TAMPER_ENV, value: v.slice(0, 64) }, 'test hook ignored: expected INDEX:signature or INDEX:foreign-gpu');
    return undefined;
  }
  const tamper: SwitchTamper = { index: Number(m[1]), how: m[2] as SwitchTamper['how'] };
  log.warn({ env: SWITCH_TAMPER_ENV, ...tamper }, 'test hook enabled: the simulated NVSwitch evidence is damaged on purpose (never set this in production)');
  return tamper;
}

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
