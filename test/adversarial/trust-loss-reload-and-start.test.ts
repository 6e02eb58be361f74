/**
 * Attacks on the daemon's lifecycle, each an observation from the field:
 * - SIGHUP with a cron node-cron rejects ("99 * * * *"): the reload was rejected but the old
 *   scheduler was already stopped (no more attestation, next: null, health still ok).
 * - The same cron at start: a stack trace, and a half-started process answering 500.
 * - api.socket in a missing directory: "internal error: listen EACCES" with a stack trace, exit 70.
 * - SIGHUP within the first moments of the process: killed (exit 129).
 */
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, startDaemon } from '../helpers/daemon-process.js';
import { FAKE_NVML, until } from '../helpers/trust-fixture.js';
import { callApi } from '../../agent/cli/api-client.js';
import { repoRoot } from '../helpers/paths.js';

function simConfig(dir: string, cron: string, extra = ''): string {
  const file = join(dir, 'config.yaml');
  writeFileSync(
    file,
    `tee: simulated
simulation: { gpus: 1, dir: ${dir}/sim }
api: { socket: ${dir}/api.sock }
state: { dir: ${dir}/state }
collateral: { dir: ${dir}/cache }
schedule: { cron: "${cron}", jitterSec: 0 }
${extra}`,
  );
  return file;
}

/** Runs `cvm-agent run` to completion; returns its exit code and stderr lines. */
function runToExit(config: string, env: Record<string, string> = {}): Promise<{ code: number | null; stderr: string[]; stdout: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, 'run', '--config', config], {
      cwd: repoRoot,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    let stdout = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    // A half-started process would never exit: the test's own timeout is the failure then.
    child.on('exit', (code) => resolve({ code, stderr: stderr.split('\n').filter(Boolean), stdout }));
  });
}

describe('reload with a cron node-cron rejects', () => {
  it('is rejected and changes nothing: the old schedule keeps attesting, next is never null, health stays truthful', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cvm-reload-'));
    const config = simConfig(dir, '*/2 * * * * *');
    const d = startDaemon(['--config', config], {});
    try {
      await d.waitForLog((l) => l.reason === 'schedule' && typeof l.cycle === 'string', 60_000);
      writeFileSync(config, readFileSync(config, 'utf8').replace('*/2 * * * * *', '99 * * * *'));
      d.child.kill('SIGHUP');
      const rejected = await d.waitForLog((l) => l.msg === 'reload rejected: keeping the running configuration');
      expect(String(rejected.err)).toMatch(/schedule\.cron: "99 \* \* \* \*" is not a valid cron expression \(minute/);
      const after = d.logs.length;
      // Still attesting on the old schedule after the rejected reload.
      await until(
        'a scheduled cycle after the rejected reload',
        () => d.logs.slice(after).some((l) => l.reason === 'schedule' && typeof l.cycle === 'string'),
        60_000,
      );
      const status = (await callApi(join(dir, 'api.sock'), 'GET', '/v1/status')).json() as Record<string, any>;
      expect(status.nextAttestation).not.toBeNull();
      expect(status.health.status).toBe('ok');
      expect(d.child.exitCode).toBeNull();
    } finally {
      d.child.kill('SIGKILL');
      await d.exit;
    }
  }, 120_000);
});

describe('a fatal start error', () => {
  it('an invalid cron exits 2 with one line on stderr, no stack trace, nothing left running', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cvm-badstart-'));
    const r = await runToExit(simConfig(dir, '99 * * * *'));
    expect(r.code).toBe(2);
    expect(r.stderr).toHaveLength(1);
    expect(r.stderr[0]).toMatch(/^cvm-agent run: could not start: .*schedule\.cron: "99 \* \* \* \*" is not a valid cron expression/);
    expect(r.stderr.join('\n')).not.toMatch(/\n\s+at |Error:/);
    expect(existsSync(join(dir, 'api.sock'))).toBe(false);
    expect(r.stdout).not.toMatch(/local API listening/);
  }, 60_000);

  it('api.socket in a missing directory exits 2 with one line naming the key, not "internal error: listen EACCES"', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cvm-badsock-'));
    const config = simConfig(dir, '0 0 1 1 *').toString();
    writeFileSync(config, readFileSync(config, 'utf8').replace(`socket: ${dir}/api.sock`, `socket: ${dir}/missing/api.sock`));
    const r = await runToExit(config);
    expect(r.code).toBe(2);
    expect(r.stderr).toHaveLength(1);
    expect(r.stderr[0]).toMatch(/api\.socket: the directory .*\/missing does not exist/);
    expect(r.stderr[0]).not.toMatch(/internal error|EACCES/);
  }, 60_000);

  it('a listen failure the preflight cannot foresee (directory not writable) is still one line and exit 2', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cvm-rosock-'));
    const ro = join(dir, 'ro');
    (await import('node:fs')).mkdirSync(ro);
    chmodSync(ro, 0o555);
    const config = simConfig(dir, '0 0 1 1 *');
    writeFileSync(config, readFileSync(config, 'utf8').replace(`socket: ${dir}/api.sock`, `socket: ${ro}/api.sock`));
    // As an unprivileged user (root ignores the mode); uid 65534 needs the tree readable.
    chmodSync(dir, 0o777);
    const r = await new Promise<{ code: number | null; stderr: string[] }>((resolve) => {
      const child = spawn(process.execPath, [CLI, 'run', '--config', config], {
        cwd: repoRoot,
        uid: 65534,
        gid: 65534,
        env: { ...process.env, HOME: dir },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (x: Buffer) => (stderr += x.toString()));
      child.stdout.resume();
      child.on('exit', (code) => resolve({ code, stderr: stderr.split('\n').filter(Boolean) }));
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toHaveLength(1);
    expect(r.stderr[0]).toMatch(/api\.socket: cannot listen on .*\/ro\/api\.sock: EACCES/);
  }, 60_000);
});

describe('signals during start-up', () => {
  it('SIGHUP before the socket exists does not kill the daemon; the reload runs once it is up', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cvm-earlyhup-'));
    const gate = join(dir, 'driver-loaded');
    // simulation.nvml: start-up asks the (fake) driver, which blocks until the gate file exists.
    const config = simConfig(dir, '0 0 1 1 *', `devices: { nvmlLibrary: ${FAKE_NVML} }\n`).toString();
    writeFileSync(config, readFileSync(config, 'utf8').replace('simulation: { gpus: 1, dir', 'simulation: { nvml: true, gpus: 1, dir'));
    const d = startDaemon(['--config', config], { FAKE_NVML_GATE_FILE: gate, FAKE_NVML_GPUS: '1' });
    try {
      const pid = d.child.pid!;
      // SigCgt bit 1 (SIGHUP): the process has a handler. Wait for it, then hammer it while starting.
      const caught = () => {
        const line = readFileSync(`/proc/${pid}/status`, 'utf8')
          .split('\n')
          .find((l) => l.startsWith('SigCgt:'))!;
        return (BigInt(`0x${line.split(/\s+/)[1]}`) & 1n) === 1n;
      };
      await until('a SIGHUP handler installed', () => d.child.exitCode === null && caught(), 60_000);
      expect(existsSync(join(dir, 'api.sock'))).toBe(false);
      for (let i = 0; i < 5; i++) {
        d.child.kill('SIGHUP');
        await new Promise((r) => setTimeout(r, 50));
      }
      await d.waitForLog((l) => l.msg === 'reload requested while starting: it runs once the agent is up');
      expect(d.child.exitCode).toBeNull();
      writeFileSync(gate, '');
      await d.waitForLog((l) => l.msg === 'local API listening', 60_000);
      await d.waitForLog((l) => l.msg === 'configuration reloaded', 60_000);
      await d.waitForLog((l) => typeof l.cycle === 'string', 60_000);
      expect(d.child.exitCode).toBeNull();
      expect((await callApi(join(dir, 'api.sock'), 'GET', '/v1/health')).status).toBe(200);
      // And repeatedly once running.
      for (let i = 0; i < 5; i++) d.child.kill('SIGHUP');
      await until('more reloads', () => d.logs.filter((l) => l.msg === 'configuration reloaded').length >= 2, 60_000);
      expect(d.child.exitCode).toBeNull();
    } finally {
      if (!existsSync(gate)) writeFileSync(gate, '');
      d.child.kill('SIGTERM');
      const { code } = await d.exit;
      expect(code).toBe(0);
    }
  }, 120_000);
});
