import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  InventoryCache,
  collectInventory,
  currentInventory,
  parseMeminfo,
  parseOsRelease,
  readInventory,
  type Inventory,
  type InventoryOptions,
} from '../../../agent/daemon/inventory.js';
import { VERSION } from '../../../agent/util/agent-version.js';
import { repoRoot } from '../../helpers/paths.js';
import { built } from '../../helpers/built.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'cvm-inventory-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('parseOsRelease', () => {
  it('reads quoted, single-quoted and bare values and ignores junk', () => {
    const parsed = parseOsRelease(
      [
        '# comment',
        'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"',
        "NAME='Debian'",
        'ID=debian',
        'VERSION_ID="12"',
        'BAD LINE',
        'lower=x',
        'ESC="a \\"b\\" c"',
        '',
      ].join('\n'),
    );
    expect(parsed).toEqual({ PRETTY_NAME: 'Debian GNU/Linux 12 (bookworm)', NAME: 'Debian', ID: 'debian', VERSION_ID: '12', ESC: 'a "b" c' });
  });

  it('keeps "__proto__"-like keys out (only upper-case keys) and caps value length', () => {
    const parsed = parseOsRelease(`__proto__=x\nLONG=${'y'.repeat(1000)}`);
    expect(Object.keys(parsed)).toEqual(['LONG']);
    expect(parsed.LONG).toHaveLength(256);
  });
});

describe('parseMeminfo', () => {
  it('takes MemTotal and MemAvailable in kB and returns bytes; absent or odd lines give null', () => {
    expect(parseMeminfo('MemTotal:       16310000 kB\nMemFree:  1 kB\nMemAvailable:   12000000 kB\n')).toEqual({
      totalBytes: 16310000 * 1024,
      availableBytes: 12000000 * 1024,
    });
    expect(parseMeminfo('MemTotal: lots\n')).toEqual({ totalBytes: null, availableBytes: null });
    expect(parseMeminfo('MemTotal: 99999999999999999 kB\n').totalBytes).toBeNull();
  });
});

describe('readInventory', () => {
  it('reports this host from node:os, os-release, /proc/meminfo and device-node existence', async () => {
    const osRelease = join(dir, 'os-release');
    writeFileSync(osRelease, 'ID=testos\nVERSION_ID="42"\nPRETTY_NAME="Test OS 42"\n');
    const present = join(dir, 'present');
    writeFileSync(present, '');
    const inv = readInventory({ agentVersion: '9.9.9', osReleasePath: osRelease, teePaths: { sevGuest: present, tpm: join(dir, 'absent') } });

    expect(inv.agent).toEqual({ version: '9.9.9' });
    expect(inv.os).toEqual({ id: 'testos', versionId: '42', prettyName: 'Test OS 42' });
    expect(inv.teeInterfaces).toEqual({ sevGuest: true, tpm: false });
    expect(inv.host).toMatchObject({ hostname: os.hostname(), arch: process.arch, platform: process.platform, kernelRelease: os.release() });
    expect(inv.runtime.node).toBe(process.versions.node);
    expect(inv.cpu.logicalCount).toBe(os.availableParallelism());
    expect(inv.cpu.model.length).toBeGreaterThan(0);
    // Within 1 MiB of what the kernel reports (MemTotal is in kB; os.totalmem() in bytes).
    expect(Math.abs(inv.memory.totalBytes - os.totalmem())).toBeLessThan(1024 * 1024);
    expect(inv.memory.availableBytes).toBeGreaterThan(0);
    expect(inv.memory.availableBytes).toBeLessThanOrEqual(inv.memory.totalBytes);
    expect(Number.isFinite(Date.parse(inv.collectedAt))).toBe(true);
  });

  it('missing os-release and meminfo give nulls and os.totalmem(), not an error', () => {
    const inv = readInventory({ agentVersion: '1', osReleasePath: join(dir, 'nope'), meminfoPath: join(dir, 'nope'), teePaths: {} });
    expect(inv.os).toEqual({ id: null, versionId: null, prettyName: null });
    expect(inv.memory).toEqual({ totalBytes: os.totalmem(), availableBytes: null });
    expect(inv.teeInterfaces).toEqual({});
  });

  it('currentInventory()/collectInventory() need no options: package version, default TEE paths, one shared cache', async () => {
    const inv = currentInventory();
    expect(inv.agent.version).toBe(VERSION);
    expect(Object.keys(inv.teeInterfaces).sort()).toEqual(['configfsTsm', 'sevGuest', 'tpm']);
    expect(currentInventory()).toBe(inv);
    expect(await collectInventory()).toBe(inv);
  });
});

describe('InventoryCache', () => {
  it('collects once and recollects only after maxAgeMs', () => {
    let clock = 1_000_000;
    let calls = 0;
    const counting = (o: InventoryOptions): Inventory => {
      calls++;
      return { ...readInventory({ ...o, teePaths: {} }), collectedAt: String(calls) };
    };
    const cache = new InventoryCache({ agentVersion: '1', maxAgeMs: 60_000, now: () => clock }, counting);
    const a = cache.get();
    expect(cache.get()).toBe(a);
    expect(calls).toBe(1);
    clock += 59_999;
    expect(cache.get()).toBe(a);
    expect(calls).toBe(1);
    clock += 1;
    const c = cache.get();
    expect(calls).toBe(2);
    expect(c.collectedAt).toBe('2');
  });
});

/**
 * "Spawns no process", checked from outside: a child node process loads a CommonJS preload that
 * wraps every way to start a process (ChildProcess.prototype.spawn, under spawn/exec/execFile/fork,
 * and the *Sync functions), imports the inventory module, clears the record (the TypeScript loader
 * may start esbuild while importing), collects, and prints what was started. A positive control in
 * the same child calls execSync('date') (what systeminformation's time() does on Linux) to prove the wrappers catch it.
 */
describe('collectInventory spawns no process', () => {
  const preload = `
const cp = require('node:child_process');
const { syncBuiltinESMExports } = require('node:module');
globalThis.__spawned = [];
const origSpawn = cp.ChildProcess.prototype.spawn;
cp.ChildProcess.prototype.spawn = function (o) { globalThis.__spawned.push(['spawn', o && o.file, ...((o && o.args) || [])].join(' ')); return origSpawn.call(this, o); };
for (const name of ['execSync', 'execFileSync', 'spawnSync']) {
  const orig = cp[name];
  cp[name] = function (...args) { globalThis.__spawned.push(name + ' ' + String(args[0])); return orig.apply(this, args); };
}
syncBuiltinESMExports();
`;
  const script = `
import { collectInventory, currentInventory } from ${JSON.stringify(pathToFileURL(built('agent/daemon/inventory.ts')).href)};
import { execSync } from 'node:child_process';
globalThis.__spawned.length = 0;
const inv = await collectInventory({ agentVersion: 'spawn-test' });
currentInventory();
const during = globalThis.__spawned.slice();
execSync('date');
console.log(JSON.stringify({ during, control: globalThis.__spawned.slice(during.length), hostname: inv.host.hostname }));
`;

  it('records no spawn during collection, while the same harness does catch an execSync', async () => {
    const preloadPath = join(dir, 'spawn-recorder.cjs');
    writeFileSync(preloadPath, preload);
    const { stdout } = await promisify(execFile)(process.execPath, ['--require', preloadPath, '--input-type=module', '--eval', script], {
      cwd: repoRoot,
      timeout: 30_000,
    });
    const out = JSON.parse(stdout.trim().split('\n').at(-1)!) as { during: string[]; control: string[]; hostname: string };
    expect(out.hostname).toBe(os.hostname());
    expect(out.during).toEqual([]);
    expect(out.control.some((c) => c.startsWith('execSync date'))).toBe(true);
  });
});
