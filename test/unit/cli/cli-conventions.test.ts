/**
 * The CLI conventions operators bring from git and docker: group help, `help <command>`, a version
 * that names the build, --timeout on every client command (a short default for the health probe),
 * `attest --json`, documented options, every exit code in the verify help, and one-line errors
 * (exit 4) for a controller port that is taken.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:net';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../../agent/cli/main.js';
import { commands } from '../../../agent/cli/commands/command-table.js';
import { formatAttest, timeoutMs } from '../../../agent/cli/commands/agent-queries.js';
import { buildCommit, commitFromGitDir } from '../../../agent/util/build-info.js';

function io(isTTY = false) {
  const out: string[] = [];
  const err: string[] = [];
  return {
    out,
    err,
    io: { stdout: { write: (s: string) => out.push(s), isTTY }, stderr: { write: (s: string) => err.push(s) }, env: {}, cwd: process.cwd() },
  };
}

const dir = mkdtempSync(join(tmpdir(), 'cvm-cli-conv-'));
const servers: Server[] = [];
afterAll(() => {
  for (const s of servers) s.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A Unix socket that accepts and never answers: what a wedged agent looks like to a client. */
async function silentAgent(name: string): Promise<string> {
  const path = join(dir, name);
  const server = createServer(() => {});
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return path;
}

const groups = [...new Set(commands.filter((c) => c.path.length > 1).map((c) => c.path[0]!))];

describe('the command table', () => {
  it('each entry loads the command its words name, and the words are unique', async () => {
    for (const entry of commands) expect((await entry.load()).path, entry.path.join(' ')).toEqual(entry.path);
    expect(new Set(commands.map((c) => c.path.join(' '))).size).toBe(commands.length);
  });
});

describe('group help', () => {
  it.each(groups)('"%s --help" and "help %s" list every command of the group, exit 0', async (group) => {
    const members = commands.filter((c) => c.path.length > 1 && c.path[0] === group);
    for (const argv of [
      [group, '--help'],
      [group, '-h'],
      ['help', group],
    ]) {
      const t = io();
      expect(await main(argv, t.io), argv.join(' ')).toBe(0);
      const text = t.out.join('');
      expect(text).toMatch(new RegExp(`^Usage: cvm-agent ${group} <command>`));
      for (const c of members) expect(text).toContain(`${c.path.join(' ')}  `);
      expect(t.err).toEqual([]);
    }
  });

  it('the groups are the ones operators type', () => {
    expect(groups.sort()).toEqual(['azure', 'collateral', 'config', 'gpu', 'snp', 'verify']);
  });

  it('a bare group names the missing command on stderr with the group help, exit 2', async () => {
    const t = io();
    expect(await main(['verify'], t.io)).toBe(2);
    expect(t.err.join('')).toMatch(/^cvm-agent: "cvm-agent verify" needs a command\n\nUsage: cvm-agent verify <command>/);
    const u = io();
    expect(await main(['verify', 'tpm'], u.io)).toBe(2);
    expect(u.err.join('')).toMatch(/^cvm-agent: unknown command "verify tpm"\n\nUsage: cvm-agent verify <command>/);
  });

  it('"help <command>" prints that command\'s usage; "help nothing" is a usage error', async () => {
    const t = io();
    expect(await main(['help', 'verify', 'snp'], t.io)).toBe(0);
    expect(t.out.join('')).toMatch(/^Usage: cvm-agent verify snp /);
    const u = io();
    expect(await main(['help', 'frobnicate'], u.io)).toBe(2);
    expect(u.err.join('')).toMatch(/^cvm-agent help: no command "frobnicate"/);
    const v = io();
    expect(await main(['help'], v.io)).toBe(0);
    expect(v.out.join('')).toMatch(/^Usage: cvm-agent <command>/);
  });
});

describe('--version', () => {
  it.each([['--version'], ['-V'], ['version']])('%s prints version, commit, Node and the addon ABI', async (flag) => {
    const t = io();
    expect(await main([flag], t.io)).toBe(0);
    const lines = t.out.join('').split('\n');
    expect(lines[0]).toMatch(/^cvm-agent \d+\.\d+\.\d+$/);
    expect(lines[1]).toMatch(/^commit {2}([0-9a-f]{40}|unknown)$/);
    expect(lines[2]).toBe(`node    ${process.version} (modules ABI ${process.versions.modules}, Node-API ${process.versions.napi})`);
    expect(lines[3]).toMatch(/^addon {3}(Node-API \d+|not loaded \(.+\))$/);
  });

  it('reads the commit from build-info.json, a branch ref, packed refs or a worktree, never running git', () => {
    const root = join(dir, 'pkg');
    const git = join(root, '.git');
    mkdirSync(join(git, 'refs', 'heads'), { recursive: true });
    const a = 'a'.repeat(40);
    const b = 'b'.repeat(40);
    writeFileSync(join(git, 'HEAD'), 'ref: refs/heads/main\n');
    expect(buildCommit(root)).toBe('unknown');
    writeFileSync(join(git, 'packed-refs'), `# pack-refs with: peeled\n${b} refs/heads/main\n`);
    expect(buildCommit(root)).toBe(b);
    writeFileSync(join(git, 'refs', 'heads', 'main'), `${a}\n`);
    expect(buildCommit(root)).toBe(a);
    writeFileSync(join(root, 'build-info.json'), JSON.stringify({ commit: b }));
    expect(buildCommit(root)).toBe(b);
    writeFileSync(join(root, 'build-info.json'), '{"commit": "$(rm -rf /)"}');
    expect(buildCommit(root)).toBe(a);
    // A worktree: HEAD in its own git directory, the branch in the common one.
    const wt = join(git, 'worktrees', 'wt');
    mkdirSync(wt, { recursive: true });
    writeFileSync(join(wt, 'HEAD'), 'ref: refs/heads/main\n');
    writeFileSync(join(wt, 'commondir'), '../..\n');
    expect(commitFromGitDir(wt)).toBe(a);
    writeFileSync(join(wt, 'HEAD'), 'ref: refs/heads/../../../etc/passwd\n');
    expect(commitFromGitDir(wt)).toBeUndefined();
  });
});

describe('client commands take --timeout', () => {
  it('parses seconds; refuses nonsense with exit 2', async () => {
    expect(timeoutMs(undefined, 5)).toBe(5000);
    expect(timeoutMs('0.25', 5)).toBe(250);
    for (const bad of ['0', '-1', 'abc', '1e3', '3601', '']) expect(() => timeoutMs(bad, 5), bad).toThrow(/--timeout/);
    const t = io();
    expect(await main(['health', '--timeout', 'soon', '--socket', join(dir, 'none.sock')], t.io)).toBe(2);
  });

  it.each([
    ['status', []],
    ['health', []],
    ['attest', []],
    ['evidence', ['--nonce', '00112233445566778899aabbccddeeff']],
    ['token', []],
  ])('%s gives up on a silent agent after --timeout with exit 4', async (cmd, extra) => {
    const sock = await silentAgent(`${cmd}.sock`);
    const t = io();
    const started = Date.now();
    expect(await main([cmd, ...extra, '--socket', sock, '--timeout', '0.3'], t.io)).toBe(4);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(t.err.join('')).toMatch(new RegExp(`^cvm-agent ${cmd}: cannot reach the agent at .*: no answer within 0\\.3 s`));
  });

  it('each client command documents --timeout and its default; health defaults to a probe-length 5 s', async () => {
    for (const cmd of ['status', 'health', 'attest', 'evidence', 'token']) {
      const t = io();
      expect(await main([cmd, '--help'], t.io)).toBe(0);
      expect(t.out.join(''), cmd).toMatch(/--timeout SEC .*\(default \d+\)/);
    }
    const t = io();
    await main(['health', '--help'], t.io);
    expect(t.out.join('')).toContain('(default 5)');
  });

  it('evidence and token document their options', async () => {
    const ev = io();
    await main(['evidence', '--help'], ev.io);
    expect(ev.out.join('')).toMatch(/Options:\n {2}--nonce HEX .+\n {2}--out FILE /);
    const tok = io();
    await main(['token', '--help'], tok.io);
    expect(tok.out.join('')).toMatch(/Options:\n {2}--json /);
  });
});

describe('attest --json', () => {
  const doc = { status: 'warning', ear: { submods: { cpu: { 'ear.status': 'affirming' }, gpu0: { 'ear.status': 'warning' } } } };

  it('the terminal view names the verdict and each device', () => {
    expect(formatAttest(doc)).toMatch(/^attestation: WARNING\n {2}cpu {7}affirming\n {2}gpu0 {6}warning\n/);
  });

  it('--json is accepted and documented', async () => {
    const t = io();
    expect(await main(['attest', '--help'], t.io)).toBe(0);
    expect(t.out.join('')).toMatch(/--json +print \{status, ear\} as JSON/);
  });
});

describe('verify help lists every exit code', () => {
  it.each(['snp', 'gpu', 'azure'])('verify %s', async (what) => {
    const t = io();
    expect(await main(['verify', what, '--help'], t.io)).toBe(0);
    const text = t.out.join('');
    for (const code of ['0', '1', '2', '3', '70']) expect(text).toMatch(new RegExp(`^ {2}${code} +\\S`, 'm'));
  });
});

describe('a controller port that is taken', () => {
  it('is one line naming the address and the fix, exit 4, no stack trace', async () => {
    const busy = createServer();
    servers.push(busy);
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    const port = (busy.address() as { port: number }).port;
    const t = io();
    expect(await main(['controller', '--listen', `127.0.0.1:${port}`], t.io)).toBe(4);
    const err = t.err.join('');
    expect(err).toBe(
      `cvm-agent controller: cannot listen on 127.0.0.1:${port}: the address is already in use (another controller running?); stop it or choose another with --listen or listen.port [ERR_LISTEN]\n`,
    );
  });
});
