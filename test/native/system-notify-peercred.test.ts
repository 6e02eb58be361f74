/**
 * sd_notify and SO_PEERCRED from the addon (native/src/system.c), in child processes. The notify
 * receiver is a python3 SOCK_DGRAM socket (Node has no Unix datagram sockets), on a path and on an
 * abstract name.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { repoRoot } from '../helpers/paths.js';
import { built } from '../helpers/built.js';
import { formatNotify, releaseFreedMemory, sdNotify } from '../../agent/native/system.js';
import { UsageError } from '../../agent/errors.js';

const run = promisify(execFile);
const FIXTURE = built('test/native/fixtures/system.mjs');

const RECEIVER = `
import json, socket, sys
path, count = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\\0" + path[1:] if path.startswith("@") else path)
s.settimeout(30)
print("READY", flush=True)
print(json.dumps([s.recv(65536).decode() for _ in range(count)]), flush=True)
`;

/** Starts a datagram receiver for `count` messages; resolves once it is bound. */
async function receiver(path: string, count: number): Promise<{ messages: Promise<string[]> }> {
  const child = spawn('python3', ['-c', RECEIVER, path, String(count)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const done = new Promise<string[]>((resolve, reject) => {
    child.on('exit', (code) => {
      const lines = out.trim().split('\n');
      if (code === 0) resolve(JSON.parse(lines[lines.length - 1]!) as string[]);
      else reject(new Error(`receiver exited ${code}: ${out} ${err}`));
    });
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('READY')) resolve();
    });
    child.on('error', reject);
  });
  // Wrapped: an async function returning a bare Promise would wait for it.
  return { messages: done };
}

async function fixture(args: string[], env: Record<string, string | undefined> = {}, nodeArgs: string[] = []) {
  const { stdout } = await run(process.execPath, [...nodeArgs, FIXTURE, ...args], { cwd: repoRoot, env: { ...process.env, ...env } });
  return JSON.parse(stdout.trim().split('\n').pop()!);
}

let dir: string;
beforeAll(() => {
  expect(existsSync(join(repoRoot, 'build', 'Release', 'cvm_native.node')), 'run "npm run build:native"').toBe(true);
  dir = mkdtempSync(join(tmpdir(), 'sysaddon-'));
  return () => rmSync(dir, { recursive: true, force: true });
});

describe('sdNotify', () => {
  it('delivers KEY=VALUE lines to a path socket', async () => {
    const path = join(dir, 'notify.sock');
    const got = await receiver(path, 1);
    const r = await fixture(['notify', JSON.stringify({ READY: 1, STATUS: 'serving on /run/cvm-agent.sock' })], { NOTIFY_SOCKET: path });
    expect(r).toEqual({ sent: true, error: null });
    expect(await got.messages).toEqual(['READY=1\nSTATUS=serving on /run/cvm-agent.sock']);
  });

  it('delivers to an abstract @socket', async () => {
    const name = `@cvm-agent-test-${randomBytes(6).toString('hex')}`;
    const got = await receiver(name, 1);
    const r = await fixture(['notify', JSON.stringify({ WATCHDOG: 1 })], { NOTIFY_SOCKET: name });
    expect(r.sent).toBe(true);
    expect(await got.messages).toEqual(['WATCHDOG=1']);
  });

  it('returns false without NOTIFY_SOCKET', async () => {
    expect(await fixture(['notify', JSON.stringify({ READY: 1 })], { NOTIFY_SOCKET: '' })).toEqual({ sent: false, error: null });
    expect(sdNotify({ READY: 1 }, {})).toBe(false); // no addon needed for the "not under systemd" case
  });

  it('a socket nobody listens on is a typed error with errno', async () => {
    const r = await fixture(['notify', JSON.stringify({ READY: 1 })], { NOTIFY_SOCKET: join(dir, 'nobody.sock') });
    expect(r.sent).toBeNull();
    expect(r.error).toMatchObject({ name: 'DeviceError', code: 'ERR_SD_NOTIFY', details: { errno: 2 } });
  });

  it('rejects a relative NOTIFY_SOCKET', async () => {
    const r = await fixture(['notify', JSON.stringify({ READY: 1 })], { NOTIFY_SOCKET: 'relative.sock' });
    expect(r.error).toMatchObject({ code: 'ERR_SD_NOTIFY' });
    expect(r.error.message).toMatch(/absolute path/);
  });

  it('formatNotify refuses field injection', () => {
    expect(formatNotify({ READY: 1, STATUS: 'ok' })).toBe('READY=1\nSTATUS=ok');
    expect(() => formatNotify({ STATUS: 'a\nREADY=1' })).toThrow(UsageError);
    expect(() => formatNotify({ 'bad key': 1 })).toThrow(UsageError);
  });
});

describe('releaseFreedMemory', () => {
  it('gives free heap blocks that glibc kept back to the kernel (malloc_trim)', async () => {
    const r = await fixture(['trim'], {}, ['--expose-gc']);
    expect(r.released).toBe(true);
    // 64 MiB were freed; most of it leaves the resident set.
    expect(r.before - r.after).toBeGreaterThan(32 * 1024);
  });

  it('never throws, also without the addon', () => {
    expect(typeof releaseFreedMemory()).toBe('boolean');
  });
});

describe('peerCredentials', () => {
  it("reports the connecting process's pid, uid and gid", async () => {
    const r = await fixture(['peercred', join(dir, 'api.sock')]);
    expect(r.creds.pid).toBe(r.clientPid);
    expect(r.creds.pid).not.toBe(r.selfPid);
    expect(r.creds.uid).toBe(r.uid);
    expect(r.creds.gid).toBe(r.gid);
  });

  it('a non-socket or invalid fd is a typed error', async () => {
    const r = await fixture(['badfd', join(repoRoot, 'package.json')]);
    expect(r.file).toMatchObject({ name: 'DeviceError', code: 'ERR_PEERCRED', details: { errno: 88 } }); // ENOTSOCK
    expect(r.groupsFile).toMatchObject({ name: 'DeviceError', code: 'ERR_PEERGROUPS', details: { errno: 88 } });
    expect(r.negative).toMatchObject({ code: 'ERR_PEERCRED' });
    expect(r.groupsNegative).toMatchObject({ code: 'ERR_PEERGROUPS' });
    expect(r.raw).toMatchObject({ code: 'ERR_PEERCRED' });
  });
});

describe('peerGroups (SO_PEERGROUPS)', () => {
  it("reports the connecting process's supplementary groups", async () => {
    const r = await fixture(['peergroups', join(dir, 'groups.sock'), JSON.stringify([2000, 3000, 4000])]);
    expect([...r.groups].sort()).toEqual([2000, 3000, 4000]);
    expect(r.creds).toMatchObject({ uid: 1001, gid: 1001 });
  });

  it('reports no groups for a process that has none', async () => {
    const r = await fixture(['peergroups', join(dir, 'nogroups.sock'), '[]']);
    expect(r.groups).toEqual([]);
  });

  it('reads more groups than its first buffer holds (the ERANGE retry)', async () => {
    const many = Array.from({ length: 1000 }, (_, i) => 10_000 + i);
    const r = await fixture(['peergroups', join(dir, 'many.sock'), JSON.stringify(many)]);
    expect([...r.groups].sort((a: number, b: number) => a - b)).toEqual(many);
  });
});
