/**
 * The README's first command: `cvm-agent demo` runs the reference controller and an agent on the
 * simulated TEE end to end, in a child process, and exits 0 with the verdict, token and secret.
 */
import { describe, expect, it } from 'vitest';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { createInterface } from 'node:readline';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { CLI } from '../helpers/daemon-process.js';
import { repoRoot } from '../helpers/paths.js';

const run = promisify(execFile);

describe('cvm-agent demo', () => {
  it('attests CPU and GPUs through the controller and gets the token and the secret through the socket', async () => {
    const { stdout } = await run(process.execPath, [CLI, 'demo', '--gpus', '3', '--json'], { cwd: repoRoot, timeout: 120_000 });
    const r = JSON.parse(stdout);
    expect(r.ok).toBe(true);
    expect(r.simulated).toBe(true);
    expect(r.devices.map((d: { id: string }) => d.id)).toEqual(['cpu0', 'gpu0', 'gpu1', 'gpu2']);
    for (const d of r.devices) expect(d).toMatchObject({ status: 'affirming', failed: [] });
    expect(r.gpuReady.set).toBe(true);
    expect(r.token.claims).toMatchObject({ iss: 'cvm-agent-controller', sub: 'demo-vm', 'ear.status': 'affirming' });
    expect(Object.keys(r.token.claims.submods)).toEqual(['cpu0', 'gpu0', 'gpu1', 'gpu2']);
    expect(r.secret).toMatchObject({ name: 'model-key', bytes: 32, matches: true });
    expect(stdout).not.toMatch(/"d":/); // no private key material anywhere in the output
    expect(existsSync(r.dir)).toBe(false); // nor the token and the secret left on disk
  }, 120_000);

  it('prints a readable summary, and with --follow keeps both running and serves the fleet page until SIGINT', async () => {
    const child = spawn(process.execPath, [CLI, 'demo', '--follow'], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] });
    const lines: string[] = [];
    const fleet = await new Promise<string>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no fleet page line: ${lines.join('\n')}`)), 90_000);
      createInterface({ input: child.stdout }).on('line', (l) => {
        lines.push(l);
        const m = l.match(/^Fleet page: (\S+)/);
        if (m) {
          clearTimeout(t);
          resolve(m[1]!);
        }
      });
    });
    const text = lines.join('\n');
    const dir = text.match(/simulated TEE in (\S+)\/simulation/)![1]!;
    expect(existsSync(join(dir, 'model.key'))).toBe(true);
    expect(text).toContain('Attestation result (SIMULATED): AFFIRMING');
    expect(text).toMatch(/Secret "model-key" released .* matches what the controller holds/);
    const agents = (await (await fetch(`${fleet}v1/agents`)).json()) as { agents: { id: string; status: string; connected: boolean }[] };
    expect(agents.agents).toContainEqual(expect.objectContaining({ id: 'demo-vm', status: 'affirming', connected: true }));
    const page = await (await fetch(fleet)).text();
    expect(page).toContain('<table');
    child.kill('SIGINT');
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    expect(code).toBe(0);
    expect(existsSync(dir)).toBe(false);
  }, 120_000);
});
