/**
 * The daemon's verification worker end to end (agent/attest/verify-thread.ts), in a real
 * `cvm-agent run` child with the test hooks of agent/daemon/test-hooks.ts:
 * - a slow verification (the worker blocks its own thread for seconds): GET /v1/status is answered,
 *   saying a cycle is running, before that cycle's result is published;
 * - the worker dies when the first cycle hands it the bundle: that cycle fails closed with a named
 *   reason, the daemon lives on, and the next cycle passes on a new worker;
 * - a stop during a slow verification (in-process daemon): the cycle is cut short, not recorded as a
 *   failure, and no consequence fires.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, type DaemonProcess } from '../helpers/daemon-process.js';
import { prepareAgentDaemon } from '../helpers/agent-daemon.js';
import { callApi } from '../../agent/cli/api-client.js';
import { TEST_HOOKS_ENV, TEST_VERIFY_DELAY_ENV, TEST_VERIFY_EXIT_ENV } from '../../agent/daemon/test-hooks.js';

let daemon: DaemonProcess | undefined;
afterEach(() => {
  daemon?.child.kill('SIGKILL');
  daemon = undefined;
});

async function start(env: NodeJS.ProcessEnv): Promise<{ socket: string; d: DaemonProcess }> {
  const dir = mkdtempSync(join(tmpdir(), 'cvm-verify-worker-'));
  const socket = join(dir, 'api.sock');
  const config = join(dir, 'config.yaml');
  writeFileSync(
    config,
    `tee: simulated
simulation: { gpus: 2, dir: ${dir}/sim }
api: { socket: ${socket} }
state: { dir: ${dir}/state }
schedule: { cron: "0 0 1 1 *", jitterSec: 0, attestAtStart: false }
`,
  );
  const d = startDaemon(['--config', config], { [TEST_HOOKS_ENV]: '1', CVM_AGENT_LOG_LEVEL: 'debug', ...env });
  daemon = d;
  await d.waitForLog((l) => l.msg === 'local API listening', 60_000);
  return { socket, d };
}

describe('the verification worker in the daemon', () => {
  it('answers GET /v1/status while a cycle is verifying, before the cycle result is published', async () => {
    const { socket, d } = await start({ [TEST_VERIFY_DELAY_ENV]: '6000' });
    const order: string[] = [];
    const attest = callApi(socket, 'POST', '/v1/attest', { nonce: 'cd'.repeat(32) }).then((r) => {
      order.push('attest');
      return r;
    });
    // Asked until it says a cycle is running (the status is cached for up to a second, and on a loaded
    // machine the cycle may start late): a fixed sleep could ask before the cycle began.
    let status = await callApi(socket, 'GET', '/v1/status');
    for (const deadline = Date.now() + 30_000; status.status === 200 && !(status.json() as { attesting: boolean }).attesting && Date.now() < deadline; ) {
      await new Promise((r) => setTimeout(r, 100));
      status = await callApi(socket, 'GET', '/v1/status');
    }
    order.push('status');
    expect(status.status).toBe(200);
    const body = status.json() as { attesting: boolean; lastAttestation: unknown };
    expect(body.attesting).toBe(true);
    expect(body.lastAttestation ?? null).toBeNull();
    // No cycle result was logged or answered yet: the status answer came first.
    expect(d.logs.some((l) => l.cycle !== undefined)).toBe(false);
    const r = await attest;
    expect(order).toEqual(['status', 'attest']);
    expect((r.json() as { ok: boolean }).ok).toBe(true);
  }, 120_000);

  it('a worker killed mid-cycle fails that cycle with a named reason; the daemon lives and the next cycle passes', async () => {
    const { socket, d } = await start({ [TEST_VERIFY_EXIT_ENV]: '1' });
    const first = (await callApi(socket, 'POST', '/v1/attest', { nonce: 'ab'.repeat(32) })).json() as {
      ok: boolean;
      ear: { submods: Record<string, { 'ear.status': string }> };
    };
    expect(first.ok).toBe(false);
    // The reason is named in the answer (the EAR's per-device error) and in the cycle's log line.
    expect(JSON.stringify(first)).toMatch(/ERR_VERIFY_WORKER.*verification worker exited \(code 70\) during verification/);
    const failed = await d.waitForLog((l) => l.cycle !== undefined);
    expect(JSON.stringify(failed)).toMatch(/verification worker exited \(code 70\) during verification/);
    // Every device of that cycle is "none" (not appraised), none passes.
    for (const s of Object.values(first.ear.submods)) expect(s['ear.status']).toBe('none');
    await d.waitForLog((l) => l.msg === 'verification worker stopped; the next verification starts a new one');
    const second = (await callApi(socket, 'POST', '/v1/attest', { nonce: 'ef'.repeat(32) })).json() as { ok: boolean; status: string };
    expect(second.ok).toBe(true);
    expect(['affirming', 'warning']).toContain(second.status);
    expect(d.child.exitCode).toBeNull();
  }, 120_000);

  it('a stop while a cycle verifies cuts it short without recording a failure or activating a consequence', async () => {
    const simDir = mkdtempSync(join(tmpdir(), 'cvm-verify-worker-sim-'));
    const a = await prepareAgentDaemon({ agentId: 'stop-mid-cycle', simDir, gpus: 1, env: { [TEST_HOOKS_ENV]: '1', [TEST_VERIFY_DELAY_ENV]: '8000' } });
    await a.start();
    try {
      const attest = callApi(a.socket, 'POST', '/v1/attest', { nonce: '12'.repeat(32) }).catch(() => undefined);
      // Stop once the cycle's verification is in the worker (not after a fixed second: on a loaded
      // machine the cycle may still be collecting, or not started, and then nothing is cut short).
      const worker = () => (a.daemon as unknown as { verifyThread?: { inFlight?: { work: { op: string } } } }).verifyThread;
      for (const deadline = Date.now() + 60_000; worker()?.inFlight?.work.op !== 'verify'; ) {
        if (Date.now() > deadline) throw new Error('the cycle never reached the verification worker');
        await new Promise((r) => setTimeout(r, 20));
      }
      await a.daemon.stop(500);
      await attest;
      expect(a.logs.some((l) => l.msg === 'attestation cut short: the daemon is stopping')).toBe(true);
      // No cycle line (those carry the devices' outcomes), so nothing recorded as a failed attestation.
      expect(a.logs.filter((l) => l.devices !== undefined)).toEqual([]);
      expect(a.daemon.consequences.list()).toEqual([]);
    } finally {
      await a.stop();
    }
  }, 120_000);
});
