/**
 * A real systemd for tests: a throwaway overlay of the cached minimal Debian 12 root file system
 * (test/system/rootfs.sh), booted with systemd as PID 1 in its own namespaces (test/system/boot.sh),
 * and commands run inside it with nsenter. docs/systemd.md ("The boot test") describes it.
 * Needs root (mounts, namespaces, cgroups), as CI has.
 */
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  rmdirSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { repoRoot } from '../helpers/paths.js';
import { isCI } from '../helpers/tools.js';

const systemDir = join(repoRoot, 'test', 'system');
const ROOTFS_SCRIPT = join(systemDir, 'rootfs.sh');
const BOOT_SCRIPT = join(systemDir, 'boot.sh');
/** The PATH a root shell in the booted Debian has. */
const GUEST_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
  out: string;
}

function toRun(r: SpawnSyncReturns<string>, what: string): Run {
  if (r.error) throw new Error(`${what}: could not run: ${r.error.message}`);
  const stdout = r.stdout ?? '';
  const stderr = r.stderr ?? '';
  return { status: r.status, stdout, stderr, out: stdout + stderr };
}

/** Runs a host command; throws with its output when it does not exit 0. */
export function hostRun(cmd: string, args: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv; cwd?: string } = {}): Run {
  const r = toRun(
    spawnSync(cmd, args, {
      encoding: 'utf8',
      timeout: opts.timeoutMs ?? 600_000,
      env: opts.env ?? process.env,
      cwd: opts.cwd ?? repoRoot,
      maxBuffer: 64 * 1024 * 1024,
    }),
    cmd,
  );
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}:\n${r.out.slice(-4000)}`);
  return r;
}

/**
 * The cached root file system. In CI (.ci/run builds it before npm test) a missing one is a
 * failure; elsewhere it is built on demand (root and debootstrap needed, a few minutes).
 */
export function rootfs(): string {
  const check = spawnSync(ROOTFS_SCRIPT, ['--check'], { encoding: 'utf8' });
  if (check.status === 0) return check.stdout.trim();
  if (isCI()) {
    throw new Error(`the boot test's root file system is missing (${check.stderr.trim()}): .ci/run must run test/system/rootfs.sh before npm test`);
  }
  return hostRun(ROOTFS_SCRIPT, [], { timeoutMs: 1_800_000 }).stdout.trim().split('\n').pop()!;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `probe` until it returns a value (not undefined) or `timeoutMs` passes; then fails with `what`. */
export async function waitFor<T>(what: string, timeoutMs: number, probe: () => T | undefined, everyMs = 500): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await sleep(everyMs);
  }
}

export class Machine {
  /** The guest's root directory as the host sees it (the overlay's merged view). */
  readonly root: string;
  private readonly dir: string;
  private readonly cgroup: string;
  private bootPid: number | undefined;
  private initPid: number | undefined;
  private mounted = false;
  readonly log: string;

  constructor(lower: string, tag: string) {
    this.dir = mkdtempSync(join(tmpdir(), `cvm-boot-${tag}-`));
    this.root = join(this.dir, 'root');
    this.log = join(this.dir, 'boot.log');
    this.cgroup = `cvm-boot-${tag}-${process.pid}-${Date.now()}`;
    for (const d of ['upper', 'work', 'root']) mkdirSync(join(this.dir, d));
    hostRun('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lower},upperdir=${join(this.dir, 'upper')},workdir=${join(this.dir, 'work')}`, this.root]);
    this.mounted = true;
  }

  /** Starts systemd as PID 1 and waits until it reports the system running (or degraded). */
  async boot(): Promise<void> {
    // Its own host name (its own UTS namespace), resolvable, so sudo and friends stay quiet.
    this.writeFile('/etc/hostname', 'cvm-boot-test\n');
    this.writeFile('/etc/hosts', '127.0.0.1 localhost\n127.0.1.1 cvm-boot-test\n::1 localhost\n');
    // The host's network (boot.sh): use its resolver too.
    this.writeFile('/etc/resolv.conf', readFileSync('/etc/resolv.conf', 'utf8'));
    const logFd = openSync(this.log, 'a');
    const child = spawn(BOOT_SCRIPT, [this.root, this.cgroup], { detached: true, stdio: ['ignore', logFd, logFd] });
    closeSync(logFd);
    child.unref();
    this.bootPid = child.pid!;
    // unshare --fork: the container's PID 1 is the only child of the unshare process.
    this.initPid = await waitFor(
      'the container init to start',
      60_000,
      () => {
        const kids = readFileSync(`/proc/${this.bootPid}/task/${this.bootPid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
        if (kids.length !== 1) return undefined;
        const comm = readFileSync(`/proc/${kids[0]}/comm`, 'utf8').trim();
        return comm === 'systemd' ? Number(kids[0]) : undefined;
      },
      200,
    );
    const state = await waitFor('systemd to finish booting', 180_000, () => {
      const r = this.exec(['systemctl', 'is-system-running']);
      const s = r.stdout.trim();
      return s === 'running' || s === 'degraded' ? s : undefined;
    });
    if (state === 'degraded') {
      throw new Error(`the booted system is degraded:\n${this.exec(['systemctl', '--failed', '--no-pager']).out}`);
    }
  }

  /** Runs a command inside the booted system (all its namespaces, its root), as root, with a clean environment. */
  exec(argv: string[], opts: { timeoutMs?: number; input?: string } = {}): Run {
    if (!this.initPid) throw new Error('the machine is not booted');
    // setsid: the command gets its own session and process group, so that nothing run inside
    // (a `kill 0`, a terminal signal) can reach the test runner's process group on the host.
    return toRun(
      spawnSync(
        'setsid',
        [
          '--wait',
          'nsenter',
          '-t',
          String(this.initPid),
          '-a',
          '-r',
          '-w',
          'env',
          '-i',
          `PATH=${GUEST_PATH}`,
          'LANG=C.UTF-8',
          'HOME=/root',
          'SYSTEMD_PAGER=',
          'SYSTEMD_COLORS=0',
          ...argv,
        ],
        {
          encoding: 'utf8',
          timeout: opts.timeoutMs ?? 120_000,
          maxBuffer: 64 * 1024 * 1024,
          ...(opts.input !== undefined ? { input: opts.input } : {}),
        },
      ),
      argv.join(' '),
    );
  }

  /** exec that must succeed. */
  ok(argv: string[], opts: { timeoutMs?: number; input?: string } = {}): Run {
    const r = this.exec(argv, opts);
    if (r.status !== 0) throw new Error(`in the booted system: ${argv.join(' ')} exited ${r.status}:\n${r.out.slice(-4000)}`);
    return r;
  }

  /** A bash script inside the booted system; must succeed. */
  sh(script: string, opts: { timeoutMs?: number } = {}): Run {
    return this.ok(['bash', '-euo', 'pipefail', '-c', script], opts);
  }

  /**
   * Sends a signal to a process of the guest by its PID there (MainPID), with bash's kill builtin
   * (the image has no procps). Refuses anything but a real process id: `kill 0` or `kill -1` would
   * signal whole process groups.
   */
  kill(signal: 'KILL' | 'USR2' | 'TERM' | 'HUP', pid: string | undefined): void {
    if (!/^\d+$/.test(pid ?? '') || Number(pid) <= 1) throw new Error(`refusing to send SIG${signal} to pid "${pid}"`);
    this.ok(['bash', '-c', `kill -${signal} "$1"`, 'kill', pid!]);
  }

  /** Writes a file into the guest's file system from the host (root-owned, `mode`). */
  writeFile(guestPath: string, content: string, mode = 0o644): void {
    const p = join(this.root, guestPath);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, content, { mode });
    chmodSync(p, mode);
  }

  /** `systemctl show UNIT -p ...` as a record. */
  show(unit: string, ...props: string[]): Record<string, string> {
    const r = this.ok(['systemctl', 'show', unit, ...props.flatMap((p) => ['-p', p])]);
    return Object.fromEntries(
      r.stdout
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((l) => {
          const i = l.indexOf('=');
          return [l.slice(0, i), l.slice(i + 1)];
        }),
    );
  }

  /** journalctl -o json lines as objects. */
  journal(args: string[]): Record<string, string>[] {
    const r = this.ok(['journalctl', '--no-pager', '-o', 'json', ...args]);
    return r.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, string>);
  }

  /** What went wrong, for a failed assertion: the unit's status and the end of the journal. */
  diagnostics(): string {
    if (!this.initPid) return readFileSync(this.log, 'utf8');
    const status = this.exec(['systemctl', 'status', '--no-pager', '-l', 'cvm-agent.service', 'cvm-agent.socket']).out;
    const journal = this.exec(['journalctl', '--no-pager', '-b', '-n', '80']).out;
    return `${status}\n${journal}`;
  }

  /** Kills the container (PID 1 of its namespace takes everything with it), unmounts, removes. */
  destroy(): void {
    if (this.initPid) {
      try {
        process.kill(this.initPid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    if (this.bootPid) {
      const until = Date.now() + 30_000;
      while (existsSync(`/proc/${this.bootPid}`) && Date.now() < until) spawnSync('sleep', ['0.2']);
    }
    for (const h of ['systemd', 'devices', 'unified', '']) removeCgroup(join('/sys/fs/cgroup', h, this.cgroup));
    if (this.mounted) {
      spawnSync('umount', [this.root]);
      this.mounted = false;
    }
    rmSync(this.dir, { recursive: true, force: true });
    this.initPid = undefined;
  }
}

/** Removes a cgroup directory tree bottom-up (cgroup directories can only be rmdir'ed, when empty). */
function removeCgroup(dir: string): void {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isDirectory()) removeCgroup(join(dir, e.name));
  }
  try {
    rmdirSync(dir);
  } catch {
    /* still busy: left for the next run's host reboot */
  }
}
