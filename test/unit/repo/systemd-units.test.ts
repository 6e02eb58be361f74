/**
 * The systemd integration files (systemd/*), checked with systemd's own tools on a host where
 * systemd is not PID 1: `systemd-analyze verify` and `security --offline=true`, `systemd-sysusers`
 * and `systemd-tmpfiles` applied into a temporary root, and install.sh run into a temporary prefix.
 * The tools come from Debian's `systemd` package (.ci/run installs it): without them those suites
 * are skipped (a failure under CI=true, test/helpers/tools.ts). The commands docs/systemd.md gives
 * for these checks are taken from its code block and run exactly as written, so the two cannot drift.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../../helpers/paths.js';
import { requireTool } from '../../helpers/tools.js';

const systemdDir = join(repoRoot, 'systemd');
const serviceFile = join(systemdDir, 'cvm-agent.service');
const socketFile = join(systemdDir, 'cvm-agent.socket');
const sysusersFile = join(systemdDir, 'cvm-agent.sysusers');
const tmpfilesFile = join(systemdDir, 'cvm-agent.tmpfiles');
const udevFile = join(systemdDir, '60-cvm-agent.rules');
const installScript = join(systemdDir, 'install.sh');

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
  out: string;
  error?: Error;
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Run {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env, timeout: 60_000 });
  const stdout = r.stdout ?? '';
  const stderr = r.stderr ?? '';
  return { status: r.status, stdout, stderr, out: stdout + stderr, ...(r.error ? { error: r.error } : {}) };
}

const hasAnalyze = requireTool('systemd-analyze', 'systemd');
const hasSysusers = requireTool('systemd-sysusers', 'systemd');
const hasTmpfiles = requireTool('systemd-tmpfiles', 'systemd');

/** Fails with a clear message when a tool could not be run. */
function expectRan(r: Run, what: string): void {
  expect(r.error, `${what} could not be run (install the Debian systemd package): ${String(r.error)}`).toBeUndefined();
}

/** Minimal systemd INI reader: section -> key -> all values in order (repeated keys accumulate). */
function readUnit(path: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const raw of readFileSync(path, 'utf8').split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      current = new Map();
      sections.set(header[1]!, current);
      continue;
    }
    const eq = line.indexOf('=');
    if (eq < 0 || !current) throw new Error(`${path}: unexpected line: ${line}`);
    const key = line.slice(0, eq);
    const list = current.get(key) ?? [];
    list.push(line.slice(eq + 1));
    current.set(key, list);
  }
  return sections;
}

function values(unit: Map<string, Map<string, string[]>>, section: string, key: string): string[] {
  return unit.get(section)?.get(key) ?? [];
}
function value(unit: Map<string, Map<string, string[]>>, section: string, key: string): string | undefined {
  const v = values(unit, section, key);
  return v[v.length - 1];
}

/** Non-comment lines of a sysusers.d/tmpfiles.d file, split on whitespace (quoted GECOS kept whole). */
function configLines(path: string): string[][] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => l.match(/"[^"]*"|\S+/g) ?? []);
}

const tmpRoots: string[] = [];
function tempDir(tag: string): string {
  const d = mkdtempSync(join(tmpdir(), `cvm-systemd-${tag}-`));
  tmpRoots.push(d);
  return d;
}
afterAll(() => {
  for (const d of tmpRoots) rmSync(d, { recursive: true, force: true });
});

/** A minimal built package (what `npm run build` leaves) around a copy of the real systemd/ dir. */
function makePackage(parent: string, opts: { built?: boolean } = {}): string {
  const pkg = join(parent, 'cvm-agent');
  mkdirSync(join(pkg, 'bin'), { recursive: true });
  cpSync(systemdDir, join(pkg, 'systemd'), { recursive: true });
  writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: 'cvm-agent', version: '0.0.0-test' }, null, 2));
  cpSync(join(repoRoot, 'bin', 'cvm-agent.js'), join(pkg, 'bin', 'cvm-agent.js'));
  mkdirSync(join(pkg, 'docs'));
  writeFileSync(join(pkg, 'docs', 'systemd.md'), '# systemd\n');
  if (opts.built !== false) {
    mkdirSync(join(pkg, 'dist', 'cli'), { recursive: true });
    writeFileSync(join(pkg, 'dist', 'cli', 'main.js'), 'export async function main() { return 0; }\n');
  }
  return pkg;
}
describe('systemd unit files', () => {
  const service = readUnit(serviceFile);
  const socket = readUnit(socketFile);

  it('the service has the settings the daemon relies on', () => {
    const S = 'Service';
    expect(value(service, S, 'Type')).toBe('notify');
    expect(value(service, S, 'NotifyAccess')).toBe('main');
    expect(value(service, S, 'ExecStart')).toBe('/usr/bin/cvm-agent run');
    // No /bin/kill (procps): the shell's builtin, with MAINPID from systemd's environment.
    expect(value(service, S, 'ExecReload')).toBe(`/bin/sh -c 'kill -HUP "$$MAINPID"'`);
    expect(value(service, S, 'WatchdogSec')).toBe('30s');
    expect(value(service, S, 'Restart')).toBe('on-failure');
    expect(value(service, S, 'RestartSec')).toBeDefined();
    expect(value(service, 'Unit', 'StartLimitIntervalSec')).toBeDefined();
    expect(value(service, 'Unit', 'StartLimitBurst')).toBeDefined();
    expect(value(service, S, 'TimeoutStopSec')).toBe('15s');
    expect(value(service, S, 'User')).toBe('cvm-agent');
    expect(value(service, S, 'Group')).toBe('cvm-agent');
    expect(value(service, S, 'DynamicUser')).toBeUndefined();
    for (const d of ['RuntimeDirectory', 'StateDirectory', 'CacheDirectory', 'ConfigurationDirectory']) {
      expect(value(service, S, d), d).toBe('cvm-agent');
    }
    expect(value(service, S, 'RuntimeDirectoryPreserve')).toBe('yes');
    expect(values(service, S, 'LoadCredential')).toEqual(['controller-token:/etc/cvm-agent/controller-token']);
    expect(values(service, S, 'Environment')).toEqual(['NODE_ENV=production UV_THREADPOOL_SIZE=8 NODE_OPTIONS=--max-semi-space-size=1 MALLOC_ARENA_MAX=2']);
  });

  it('the service may open only the TEE, TPM and NVIDIA devices', () => {
    const S = 'Service';
    expect(value(service, S, 'PrivateDevices')).toBe('no');
    expect(value(service, S, 'DevicePolicy')).toBe('closed');
    expect(values(service, S, 'DeviceAllow').sort()).toEqual([
      '/dev/sev-guest rw',
      '/dev/tpmrm0 rw',
      'char-nvidia rw',
      'char-nvidia-frontend rw',
      'char-nvidiactl rw',
    ]);
    // V8's JIT needs W+X pages; "yes" would abort Node at start.
    expect(value(service, S, 'MemoryDenyWriteExecute')).toBe('no');
    expect(value(service, S, 'CapabilityBoundingSet')).toBe('');
    expect(value(service, S, 'ProtectSystem')).toBe('strict');
    expect(value(service, S, 'UMask')).toBe('0077');
    expect(value(service, S, 'RestrictAddressFamilies')).toBe('AF_UNIX AF_INET AF_INET6 AF_NETLINK');
    expect(values(service, S, 'SystemCallFilter')[0]).toBe('@system-service');
    expect(values(service, S, 'SystemCallFilter')[1]).toMatch(/^~@privileged @resources\b/);
  });

  it('the socket is the API socket, group-only, handed to the service', () => {
    const K = 'Socket';
    expect(values(socket, K, 'ListenStream')).toEqual(['/run/cvm-agent/api.sock']);
    expect(value(socket, K, 'SocketMode')).toBe('0660');
    expect(value(socket, K, 'SocketGroup')).toBe('cvm-agent');
    expect(value(socket, K, 'Accept')).toBe('no');
    expect(value(socket, K, 'Service')).toBe('cvm-agent.service');
    expect(value(socket, K, 'RemoveOnStop')).toBe('yes');
    expect(value(socket, K, 'FileDescriptorName')).toBe('api');
  });

  it('every user and group the files name is declared in sysusers.d', () => {
    const declared = new Set<string>();
    for (const [type, name] of configLines(sysusersFile)) {
      if (type === 'u' || type === 'g') declared.add(name!);
    }
    const named = [
      value(service, 'Service', 'User'),
      value(service, 'Service', 'Group'),
      ...(value(service, 'Service', 'SupplementaryGroups') ?? '').split(/\s+/),
      value(socket, 'Socket', 'SocketUser'),
      value(socket, 'Socket', 'SocketGroup'),
      ...[...readFileSync(udevFile, 'utf8').matchAll(/GROUP="([^"]+)"/g)].map((m) => m[1]),
      ...configLines(tmpfilesFile)
        .flatMap((f) => [f[3], f[4]])
        .filter((n) => n !== 'root'),
    ];
    expect(named.length).toBeGreaterThan(6);
    for (const n of named) expect(declared.has(n!), `${n} is not declared in cvm-agent.sysusers`).toBe(true);
  });

  it('tmpfiles.d creates /run/cvm-agent exactly as RuntimeDirectory= would', () => {
    const run = configLines(tmpfilesFile).find((f) => f[1] === '/run/cvm-agent');
    expect(run).toEqual([
      'd',
      '/run/cvm-agent',
      value(service, 'Service', 'RuntimeDirectoryMode'),
      value(service, 'Service', 'User'),
      value(service, 'Service', 'Group'),
      '-',
    ]);
    // The socket lives in the runtime directory: it must survive service restarts.
    expect(values(socket, 'Socket', 'ListenStream')[0]!.startsWith('/run/cvm-agent/')).toBe(true);
  });
});

describe.runIf(hasAnalyze)('systemd-analyze (systemd 252 offline checks)', () => {
  // verify checks that ExecStart= is executable, and /usr/bin/cvm-agent is only there after
  // install.sh ran. The units are verified unchanged except for one drop-in in a temporary copy
  // that points ExecStart= at a stub; the first test shows that this is the only thing it hides.
  let copyDir = '';
  beforeAll(() => {
    copyDir = tempDir('verify');
    cpSync(serviceFile, join(copyDir, 'cvm-agent.service'));
    cpSync(socketFile, join(copyDir, 'cvm-agent.socket'));
    const stub = join(copyDir, 'cvm-agent-stub');
    writeFileSync(stub, '#!/bin/sh\nexit 0\n');
    chmodSync(stub, 0o755);
    mkdirSync(join(copyDir, 'cvm-agent.service.d'));
    writeFileSync(join(copyDir, 'cvm-agent.service.d', 'verify-stub.conf'), `[Service]\nExecStart=\nExecStart=${stub} run\n`);
  });

  it('verify on the pristine units reports nothing but the not-yet-installed binary', () => {
    const r = run('systemd-analyze', ['verify', '--man=no', serviceFile, socketFile]);
    expectRan(r, 'systemd-analyze');
    if (existsSync('/usr/bin/cvm-agent')) {
      expect(r.out.trim()).toBe('');
      expect(r.status).toBe(0);
    } else {
      expect(r.out.trim()).toBe('cvm-agent.service: Command /usr/bin/cvm-agent is not executable: No such file or directory');
      expect(r.status).toBe(1);
    }
  });

  it('verify is clean for both units (ExecStart= on a stub)', () => {
    const r = run('systemd-analyze', ['verify', '--man=no', join(copyDir, 'cvm-agent.service'), join(copyDir, 'cvm-agent.socket')]);
    expectRan(r, 'systemd-analyze');
    expect(r.out.trim()).toBe('');
    expect(r.status).toBe(0);
  });

  it('verify does catch a broken unit (control for the check above)', () => {
    const dir = tempDir('verify-bad');
    writeFileSync(join(dir, 'cvm-agent.socket'), readFileSync(socketFile, 'utf8').replace('[Socket]', '[Socket]\nListenStreem=/run/x.sock'));
    const r = run('systemd-analyze', ['verify', '--man=no', join(dir, 'cvm-agent.socket')]);
    expectRan(r, 'systemd-analyze');
    expect(r.out).toContain("Unknown key 'ListenStreem'");
  });

  it('security --offline=true: overall exposure is 2.0 or lower', () => {
    const r = run('systemd-analyze', ['security', '--offline=true', serviceFile]);
    expectRan(r, 'systemd-analyze');
    expect(r.status).toBe(0);
    const m = /Overall exposure level for cvm-agent\.service: (\d+\.\d)/.exec(r.out);
    expect(m, r.out).not.toBeNull();
    const exposure = Number(m![1]);
    console.log(`systemd-analyze security --offline=true cvm-agent.service: exposure ${exposure}`);
    expect(exposure).toBeLessThanOrEqual(2.0);
    // The same gate as CI would use: --threshold takes exposure x 10 as an integer.
    const gate = run('systemd-analyze', ['security', '--offline=true', '--threshold=20', serviceFile]);
    expect(gate.status).toBe(0);
  });

  it('security: the only exposures left are the accepted ones (docs/systemd.md says why)', () => {
    const r = run('systemd-analyze', ['security', '--offline=true', '--json=short', serviceFile]);
    expectRan(r, 'systemd-analyze');
    expect(r.status).toBe(0);
    const rows = JSON.parse(r.stdout) as { set: boolean; json_field: string; exposure: string | null }[];
    const open = rows
      .filter((x) => !x.set && x.exposure !== null)
      .map((x) => x.json_field)
      .sort();
    expect(open).toEqual([
      'DeviceAllow', // allow-list of the TEE/TPM/GPU nodes
      'IPAddressDeny', // controller is addressed by DNS name
      'MemoryDenyWriteExecute', // V8 JIT
      'PrivateDevices', // the devices are the point
      'PrivateNetwork', // outbound WebSocket
      'PrivateUsers', // would map tss/cvm-agent-tee to nobody
      'ProcSubset', // os.cpus(), /proc/meminfo
      'RestrictAddressFamilies_AF_INET_INET6', // controller link
      'RestrictAddressFamilies_AF_NETLINK', // getaddrinfo(AI_ADDRCONFIG), getifaddrs()
      'RestrictAddressFamilies_AF_UNIX', // sd_notify, local API
      'RootDirectoryOrRootImage',
      'SupplementaryGroups', // tss, cvm-agent-tee for the device nodes
    ]);
  });
});

describe.runIf(hasSysusers && hasTmpfiles)('sysusers.d and tmpfiles.d, applied into a temporary root', () => {
  let root = '';
  beforeAll(() => {
    root = tempDir('root');
    mkdirSync(join(root, 'etc'));
  });

  it('systemd-sysusers --dry-run lists the user and groups it would create', () => {
    const r = run('systemd-sysusers', ['--dry-run', `--root=${root}`, sysusersFile]);
    expectRan(r, 'systemd-sysusers');
    expect(r.status).toBe(0);
    expect(r.out).toMatch(/Creating group 'cvm-agent-tee' with GID \d+/);
    expect(r.out).toMatch(/Creating user 'cvm-agent' .* with UID \d+ and GID \d+/);
    expect(existsSync(join(root, 'etc', 'passwd'))).toBe(false);
  });

  it('systemd-sysusers creates a nologin system user and the device groups', () => {
    const r = run('systemd-sysusers', [`--root=${root}`, sysusersFile]);
    expectRan(r, 'systemd-sysusers');
    expect(r.status, r.out).toBe(0);
    const passwd = readFileSync(join(root, 'etc', 'passwd'), 'utf8');
    const user = passwd
      .split('\n')
      .find((l) => l.startsWith('cvm-agent:'))
      ?.split(':');
    expect(user).toBeDefined();
    expect(Number(user![2])).toBeLessThan(1000); // a system UID
    expect(user![6]).toMatch(/nologin$/);
    const groups = readFileSync(join(root, 'etc', 'group'), 'utf8')
      .split('\n')
      .map((l) => l.split(':')[0]);
    expect(groups).toEqual(expect.arrayContaining(['cvm-agent', 'cvm-agent-tee', 'tss']));
  });

  it('systemd-tmpfiles --create makes /run/cvm-agent and /etc/cvm-agent with the right owner and mode', () => {
    const r = run('systemd-tmpfiles', [`--root=${root}`, '--create', tmpfilesFile]);
    expectRan(r, 'systemd-tmpfiles');
    expect(r.status, r.out).toBe(0);
    const passwd = readFileSync(join(root, 'etc', 'passwd'), 'utf8');
    const [, , uid, gid] = passwd
      .split('\n')
      .find((l) => l.startsWith('cvm-agent:'))!
      .split(':');
    const runDir = statSync(join(root, 'run', 'cvm-agent'));
    expect(runDir.isDirectory()).toBe(true);
    expect(runDir.mode & 0o7777).toBe(0o750);
    expect([runDir.uid, runDir.gid]).toEqual([Number(uid), Number(gid)]);
    const etcDir = statSync(join(root, 'etc', 'cvm-agent'));
    expect(etcDir.mode & 0o7777).toBe(0o750);
    expect([etcDir.uid, etcDir.gid]).toEqual([0, Number(gid)]);
  });
});

/** The lines of docs/systemd.md's code block marked for this test, exactly as written there. */
function documentedChecks(): string[] {
  const doc = readFileSync(join(repoRoot, 'docs', 'systemd.md'), 'utf8');
  const m = /<!-- test\/unit\/repo\/systemd-units\.test\.ts -->\n```sh\n([\s\S]*?)\n```/.exec(doc);
  if (!m) throw new Error('docs/systemd.md: no ```sh block after <!-- test/unit/repo/systemd-units.test.ts -->');
  return m[1]!.split('\n').filter((l) => l.trim() !== '');
}

describe.runIf(hasAnalyze && hasSysusers && hasTmpfiles)('docs/systemd.md "Checking the units without systemd as PID 1", run as written', () => {
  it('every line runs from the repository root (here a built copy of it): the user, groups and directories land in the temporary root', () => {
    const lines = documentedChecks();
    expect(lines.length).toBeGreaterThanOrEqual(7);
    // The block as one bash script (its lines share $root), each line followed by a marker with its
    // exit status; mktemp -d makes its directories in our temporary directory.
    const script = ['exec 2>&1', ...lines.flatMap((l, i) => [l, `printf '\\n@@ %d %d\\n' ${i} "$?"`]), `printf '@@root %s\\n' "$root"`].join('\n');
    const cwd = makePackage(tempDir('doc-checkout'));
    const r = spawnSync('bash', ['-c', script], { cwd, encoding: 'utf8', env: { ...process.env, TMPDIR: tempDir('doc-tmp') }, timeout: 120_000 });
    expect(r.error).toBeUndefined();
    const parts = r.stdout.split(/\n@@ (\d+) (\d+)\n/);
    const ran = new Map<number, { status: number; out: string }>();
    for (let i = 1; i + 1 < parts.length; i += 3) ran.set(Number(parts[i]), { status: Number(parts[i + 1]), out: parts[i - 1]!.trim() });
    expect([...ran.keys()]).toEqual(lines.map((_, i) => i));
    lines.forEach((line, i) => {
      const { status, out } = ran.get(i)!;
      if (/^systemd-analyze verify /.test(line) && !existsSync('/usr/bin/cvm-agent')) {
        // The one problem the page says to expect before installing.
        expect(out, line).toBe('cvm-agent.service: Command /usr/bin/cvm-agent is not executable: No such file or directory');
        expect(status, line).toBe(1);
      } else {
        expect(status, `${line}\n${out}`).toBe(0);
      }
      if (/^systemd-analyze security /.test(line)) expect(out).toMatch(/Overall exposure level for cvm-agent\.service: \d+\.\d/);
      if (/--dry-run --root/.test(line)) expect(out).toMatch(/Creating user 'cvm-agent' /);
      if (/install\.sh --dry-run/.test(line)) expect(out).toContain('dry run: nothing will be changed');
    });
    const root = /^@@root (.+)$/m.exec(r.stdout)?.[1];
    expect(root, r.stdout).toBeDefined();
    expect(readFileSync(join(root!, 'etc', 'passwd'), 'utf8')).toMatch(/^cvm-agent:x:\d+:\d+:/m);
    expect(readFileSync(join(root!, 'etc', 'group'), 'utf8')).toMatch(/^cvm-agent-tee:x:\d+:/m);
    expect(statSync(join(root!, 'etc', 'cvm-agent')).isDirectory()).toBe(true);
    expect(statSync(join(root!, 'etc', 'cvm-agent')).mode & 0o777).toBe(0o750);
  });
});

describe('udev rules', () => {
  // Static check only: `udevadm test` would apply the rules to the host's real device nodes.
  const lines = readFileSync(udevFile, 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const known = new Set(['SUBSYSTEM', 'KERNEL', 'GROUP', 'MODE', 'OWNER', 'TAG']);

  it('every rule is a list of KEY=="match" / KEY="assign" pairs with known keys', () => {
    expect(lines.length).toBe(2);
    for (const l of lines) {
      for (const pair of l.split(/,\s*/)) {
        const m = /^([A-Z]+)(==|!=|=|\+=)"([^"]*)"$/.exec(pair);
        expect(m, `bad pair in: ${l}`).not.toBeNull();
        expect(known.has(m![1]!), `unknown key ${m![1]}`).toBe(true);
      }
    }
  });

  it('sev-guest goes to cvm-agent-tee (not the API client group), tpmrm to tss, both 0660', () => {
    const sev = lines.find((l) => l.includes('KERNEL=="sev-guest"'));
    expect(sev).toContain('SUBSYSTEM=="misc"');
    expect(sev).toContain('GROUP="cvm-agent-tee"');
    expect(sev).toContain('MODE="0660"');
    const tpm = lines.find((l) => l.includes('KERNEL=="tpmrm[0-9]*"'));
    expect(tpm).toContain('GROUP="tss"');
    expect(tpm).toContain('MODE="0660"');
  });
});

describe('install.sh', () => {
  const script = (pkg: string) => join(pkg, 'systemd', 'install.sh');
  const listTree = (dir: string): string[] =>
    readdirSync(dir, { recursive: true, encoding: 'utf8' })
      .sort()
      .map((p) => {
        const s = lstatSync(join(dir, p));
        return `${p} ${(s.mode & 0o7777).toString(8)}`;
      });

  it('parses as bash and is executable', () => {
    const r = run('bash', ['-n', installScript]);
    expectRan(r, 'bash');
    expect(r.status, r.out).toBe(0);
    expect(statSync(installScript).mode & 0o111).not.toBe(0);
    expect(readFileSync(installScript, 'utf8')).toMatch(/^#!\/usr\/bin\/env bash\n[\s\S]*set -euo pipefail/);
  });

  it('--help prints usage; a bad argument exits 2', () => {
    const help = run(installScript, ['--help']);
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/^Usage: install\.sh \[--prefix DIR\] \[--no-package\] \[--dry-run\] \[--uninstall\] \[--help\]/);
    const bad = run(installScript, ['--frobnicate']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('unknown argument: --frobnicate');
    expect(run(installScript, ['--prefix']).status).toBe(2);
  });

  it('--dry-run --prefix DIR prints every step and changes nothing', () => {
    const pkg = makePackage(tempDir('src'));
    const prefix = tempDir('prefix');
    const r = run(script(pkg), ['--dry-run', '--prefix', prefix]);
    expect(r.status, r.out).toBe(0);
    expect(readdirSync(prefix)).toEqual([]);
    const lines = r.stdout.split('\n');
    expect(lines).toContain(`package: copying ${pkg} to ${prefix}/opt/cvm-agent`);
    // The link points at the final path, not into the staging prefix.
    expect(lines).toContain(`would run: ln -sfn /opt/cvm-agent/bin/cvm-agent.js ${prefix}/usr/bin/cvm-agent`);
    for (const [src, dst] of [
      ['systemd/cvm-agent.service', 'usr/lib/systemd/system/cvm-agent.service'],
      ['systemd/cvm-agent.socket', 'usr/lib/systemd/system/cvm-agent.socket'],
      ['systemd/cvm-agent.sysusers', 'usr/lib/sysusers.d/cvm-agent.conf'],
      ['systemd/cvm-agent.tmpfiles', 'usr/lib/tmpfiles.d/cvm-agent.conf'],
      ['systemd/60-cvm-agent.rules', 'usr/lib/udev/rules.d/60-cvm-agent.rules'],
      ['docs/systemd.md', 'usr/share/doc/cvm-agent/systemd.md'],
    ]) {
      expect(lines).toContain(`would run: install -D -m 0644 ${pkg}/${src} ${prefix}/${dst}`);
    }
    expect(lines).toContain(`skip: activation (--prefix ${prefix} is not /)`);
    expect(r.out).not.toMatch(/would run: (systemctl|systemd-sysusers|udevadm)/);
  });

  /** A udevadm on PATH and a udev run directory with a control node: udevd "is running". */
  function fakeUdev(): NodeJS.ProcessEnv {
    const bin = tempDir('udev-bin');
    writeFileSync(join(bin, 'udevadm'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
    const rundir = tempDir('run-udev');
    writeFileSync(join(rundir, 'control'), '');
    return { PATH: `${bin}:${process.env.PATH}`, CVM_AGENT_UDEV_RUNDIR: rundir };
  }

  it('--dry-run on / with systemd as PID 1 would create users, dirs, reload udev and systemd', () => {
    const pkg = makePackage(tempDir('src'));
    const fakeRunDir = tempDir('run-systemd'); // stands in for /run/systemd/system
    const r = run(script(pkg), ['--dry-run'], { ...process.env, CVM_AGENT_SYSTEMD_RUNDIR: fakeRunDir, ...fakeUdev() });
    expect(r.status, r.out).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines).toContain('would run: install -D -m 0644 ' + `${pkg}/systemd/cvm-agent.service /usr/lib/systemd/system/cvm-agent.service`);
    const activation = lines.filter((l) => /^would run: (systemd-|udevadm|systemctl)/.test(l));
    expect(activation).toEqual([
      'would run: systemd-sysusers /usr/lib/sysusers.d/cvm-agent.conf',
      'would run: systemd-tmpfiles --create /usr/lib/tmpfiles.d/cvm-agent.conf',
      'would run: udevadm control --reload',
      'would run: udevadm trigger --action=change --subsystem-match=misc --sysname-match=sev-guest',
      'would run: udevadm trigger --action=change --subsystem-match=tpmrm',
      'would run: systemctl daemon-reload',
    ]);
  });

  it('without a running udevd (a container, an image build) the rule is installed and udevadm is not run', () => {
    const pkg = makePackage(tempDir('src'));
    const fakeRunDir = tempDir('run-systemd');
    const r = run(script(pkg), ['--dry-run'], {
      ...process.env,
      CVM_AGENT_SYSTEMD_RUNDIR: fakeRunDir,
      CVM_AGENT_UDEV_RUNDIR: join(tempDir('no-udev'), 'absent'),
    });
    expect(r.status, r.out).toBe(0);
    expect(r.stdout).toContain('would run: install -D -m 0644 ' + `${pkg}/systemd/60-cvm-agent.rules /usr/lib/udev/rules.d/60-cvm-agent.rules`);
    expect(r.stdout).toMatch(/^skip: udev \(udevd is not running: .*\/absent\/control is missing\)/m);
    expect(r.stdout).not.toContain('would run: udevadm');
    expect(r.stdout).toContain('would run: systemctl daemon-reload');
  });

  it('copies exactly what npm pack ships (package.json "files") plus node_modules, with the addon in prebuilds/', () => {
    const files = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { files: string[] }).files.map((f) => f.replace(/\/$/, ''));
    const inScript = /^readonly PACKAGE_FILES=\(([^)]*)\)$/m.exec(readFileSync(installScript, 'utf8'))?.[1]?.split(/\s+/);
    expect(inScript).toEqual(files);

    const pkg = makePackage(tempDir('src'));
    mkdirSync(join(pkg, 'build', 'Release'), { recursive: true });
    writeFileSync(join(pkg, 'build', 'Release', 'cvm_native.node'), 'addon');
    mkdirSync(join(pkg, 'node_modules', 'dep'), { recursive: true });
    writeFileSync(join(pkg, 'node_modules', 'dep', 'index.js'), '');
    mkdirSync(join(pkg, 'test'));
    writeFileSync(join(pkg, 'test', 'not-shipped.ts'), '');
    const prefix = tempDir('prefix');
    const r = run(script(pkg), ['--prefix', prefix]);
    expect(r.status, r.out).toBe(0);
    const opt = join(prefix, 'opt', 'cvm-agent');
    const tuple = `${process.platform}-${process.arch}`;
    expect(readdirSync(opt).sort()).toEqual(['bin', 'dist', 'docs', 'node_modules', 'package.json', 'prebuilds', 'systemd']);
    expect(readFileSync(join(opt, 'prebuilds', tuple, 'node.napi.glibc.node'), 'utf8')).toBe('addon');
    expect(existsSync(join(opt, 'build'))).toBe(false); // no build files needed at run time
    expect(existsSync(join(opt, 'node_modules', 'dep', 'index.js'))).toBe(true);
  });

  it('--no-package installs the units and system files only (the .deb brings the package)', () => {
    const pkg = makePackage(tempDir('src'));
    const prefix = tempDir('prefix');
    const r = run(script(pkg), ['--prefix', prefix, '--no-package']);
    expect(r.status, r.out).toBe(0);
    expect(r.stdout).toContain('package: not installed (--no-package)');
    expect(existsSync(join(prefix, 'opt'))).toBe(false);
    expect(existsSync(join(prefix, 'usr', 'bin'))).toBe(false);
    for (const f of [
      'usr/lib/systemd/system/cvm-agent.service',
      'usr/lib/systemd/system/cvm-agent.socket',
      'usr/lib/sysusers.d/cvm-agent.conf',
      'usr/lib/tmpfiles.d/cvm-agent.conf',
      'usr/lib/udev/rules.d/60-cvm-agent.rules',
    ]) {
      expect(existsSync(join(prefix, f)), f).toBe(true);
    }
  });

  it('installs into a prefix, is idempotent, and --uninstall removes what it installed', () => {
    const pkg = makePackage(tempDir('src'));
    const prefix = tempDir('prefix');
    const first = run(script(pkg), ['--prefix', prefix]);
    expect(first.status, first.out).toBe(0);

    const link = join(prefix, 'usr', 'bin', 'cvm-agent');
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(readlinkSync(link)).toBe('/opt/cvm-agent/bin/cvm-agent.js');
    const opt = join(prefix, 'opt', 'cvm-agent');
    expect(statSync(join(opt, 'bin', 'cvm-agent.js')).mode & 0o755).toBe(0o755);
    expect(existsSync(join(opt, 'dist', 'cli', 'main.js'))).toBe(true);
    const unit = join(prefix, 'usr', 'lib', 'systemd', 'system', 'cvm-agent.service');
    expect(readFileSync(unit, 'utf8')).toBe(readFileSync(serviceFile, 'utf8'));
    expect(statSync(unit).mode & 0o777).toBe(0o644);
    for (const f of [
      'usr/lib/systemd/system/cvm-agent.socket',
      'usr/lib/sysusers.d/cvm-agent.conf',
      'usr/lib/tmpfiles.d/cvm-agent.conf',
      'usr/lib/udev/rules.d/60-cvm-agent.rules',
      'usr/share/doc/cvm-agent/systemd.md',
    ]) {
      expect(existsSync(join(prefix, f)), f).toBe(true);
    }

    const before = listTree(prefix);
    const second = run(script(pkg), ['--prefix', prefix]);
    expect(second.status, second.out).toBe(0);
    expect(listTree(prefix)).toEqual(before);

    const un = run(script(pkg), ['--prefix', prefix, '--uninstall']);
    expect(un.status, un.out).toBe(0);
    const leftFiles = listTree(prefix).filter((l) => !lstatSync(join(prefix, l.split(' ')[0]!)).isDirectory());
    expect(leftFiles).toEqual([]);
    expect(existsSync(opt)).toBe(false);
    // Uninstalling twice is fine too.
    expect(run(script(pkg), ['--prefix', prefix, '--uninstall']).status).toBe(0);
  });

  it('uses an npm global install in place instead of copying it', () => {
    const npmPrefix = tempDir('npm');
    const pkg = makePackage(join(npmPrefix, 'lib', 'node_modules'));
    const prefix = tempDir('prefix');
    const r = run(script(pkg), ['--dry-run', `--prefix=${prefix}`]);
    expect(r.status, r.out).toBe(0);
    expect(r.stdout).toContain(`package: using ${pkg} in place (npm global install)`);
    expect(r.stdout).toContain(`would run: ln -sfn ${pkg}/bin/cvm-agent.js ${prefix}/usr/bin/cvm-agent`);
    expect(r.stdout).not.toContain('would run: cp ');
  });

  it('refuses an unbuilt package', () => {
    const pkg = makePackage(tempDir('src'), { built: false });
    const prefix = tempDir('prefix');
    const r = run(script(pkg), ['--prefix', prefix]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('dist is not built: run npm run build first');
    expect(readdirSync(prefix)).toEqual([]);
  });
});
