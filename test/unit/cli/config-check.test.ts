import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../../agent/cli/main.js';

function io() {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { stdout: { write: (s: string) => out.push(s) }, stderr: { write: (s: string) => err.push(s) }, env: {}, cwd: process.cwd() } };
}

describe('cvm-agent config check', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cvm-config-'));

  it('accepts a valid file and prints the effective config', async () => {
    const file = join(dir, 'ok.yaml');
    writeFileSync(file, `tee: simulated\nsimulation:\n  gpus: 8\napi: { socket: ${dir}/api.sock }\n`);
    const t = io();
    expect(await main(['config', 'check', file, '--json'], t.io)).toBe(0);
    const cfg = JSON.parse(t.out.join(''));
    expect(cfg.tee).toBe('simulated');
    expect(cfg.simulation.gpus).toBe(8);
  });

  it('exits 2 and names the key for an invalid file', async () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'simulation:\n  gpus: 99\n');
    const t = io();
    expect(await main(['config', 'check', file], t.io)).toBe(2);
    expect(t.err.join('')).toContain('simulation.gpus: must be an integer between 0 and 16, got 99');
  });

  it('exits 2 for a named file that does not exist', async () => {
    const t = io();
    expect(await main(['config', 'check', join(dir, 'missing.yaml')], t.io)).toBe(2);
    expect(t.err.join('')).toMatch(/cannot read/);
  });

  it('prints usage for --help and the command list for no arguments', async () => {
    const t = io();
    expect(await main(['config', 'check', '--help'], t.io)).toBe(0);
    expect(t.out.join('')).toContain('Usage: cvm-agent config check');
    const u = io();
    expect(await main([], u.io)).toBe(2);
    expect(u.out.join('')).toContain('config check');
  });
});
