/**
 * A real PostgreSQL server for tests (Debian's `postgresql` package): `initdb` and `postgres` run in
 * a temporary directory on a free TCP port on 127.0.0.1 (its unix socket in that directory), as an
 * unprivileged user when the tests run as root (PostgreSQL refuses to run as root: the user
 * `nobody`, through setpriv, owning the directory), with trust authentication for local connections
 * only. `stop()` removes everything. The binaries live in /usr/lib/postgresql/<version>/bin, which
 * is not on PATH: `postgresBinDir` finds the newest. A suite asks `requirePostgres()` first
 * (test/helpers/tools.ts: a skip with the reason on a development machine, a failure under CI).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { requireTool, type RequireOptions } from './tools.js';
import { freePort } from './link-load.js';

export const PG_ROOT = '/usr/lib/postgresql';
const UNPRIVILEGED = { uid: 65534, gid: 65534 }; // nobody:nogroup on Debian

/** /usr/lib/postgresql/<newest version>/bin when it holds initdb and postgres, else undefined. */
export function postgresBinDir(root = PG_ROOT): string | undefined {
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((v) => /^\d+$/.test(v) && existsSync(join(root, v, 'bin', 'initdb')) && existsSync(join(root, v, 'bin', 'postgres')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] === undefined ? undefined : join(root, versions[0], 'bin');
}

/** Whether a PostgreSQL suite can run (see tools.ts requireTool). */
export function requirePostgres(opts: RequireOptions = {}): boolean {
  const bin = postgresBinDir();
  return requireTool(bin ? join(bin, 'initdb') : `${PG_ROOT}/<version>/bin/initdb`, 'postgresql', opts);
}

function asUser(cmd: string, args: string[]): [string, string[]] {
  if (process.getuid?.() !== 0) return [cmd, args];
  return ['setpriv', [`--reuid=${UNPRIVILEGED.uid}`, `--regid=${UNPRIVILEGED.gid}`, '--clear-groups', cmd, ...args]];
}

export class TestPostgres {
  private proc: ChildProcess | undefined;
  private exited: Promise<void> | undefined;
  private databases = 0;
  readonly log: string[] = [];

  private constructor(
    readonly bin: string,
    readonly dir: string,
    readonly port: number,
  ) {}

  get dataDir(): string {
    return join(this.dir, 'data');
  }

  /** initdb in a new temporary directory, then start the server. */
  static async start(): Promise<TestPostgres> {
    const bin = postgresBinDir();
    if (!bin) throw new Error(`no PostgreSQL under ${PG_ROOT} (apt-get install -y postgresql)`);
    const dir = mkdtempSync(join(tmpdir(), 'cvm-pg-'));
    if (process.getuid?.() === 0) chownSync(dir, UNPRIVILEGED.uid, UNPRIVILEGED.gid);
    const pgs = new TestPostgres(bin, dir, await freePort());
    try {
      const [cmd, args] = asUser(join(bin, 'initdb'), ['-D', pgs.dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync', '--no-instructions']);
      const r = spawnSync(cmd, args, { encoding: 'utf8', cwd: dir });
      if (r.status !== 0) throw new Error(`initdb failed (${r.status ?? r.signal}): ${r.stderr || r.stdout}`);
      await pgs.startServer();
    } catch (err) {
      await pgs.stop();
      throw err;
    }
    return pgs;
  }

  /** Start the server on the data directory (again, after stop({keep: true}) or kill()). */
  async startServer(): Promise<void> {
    const [cmd, args] = asUser(join(this.bin, 'postgres'), [
      '-D',
      this.dataDir,
      '-p',
      String(this.port),
      '-h',
      '127.0.0.1',
      '-k',
      this.dir,
      '-c',
      'fsync=off', // the machine does not crash in these tests; commits still wait for the WAL write
      '-c',
      'max_connections=200',
    ]);
    const proc = spawn(cmd, args, { cwd: this.dir, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    const keep = (d: Buffer) => {
      this.log.push(d.toString());
      if (this.log.length > 200) this.log.shift();
    };
    proc.stdout?.on('data', keep);
    proc.stderr?.on('data', keep);
    this.exited = new Promise((resolve) => proc.once('exit', () => resolve()));
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`postgres exited at start: ${this.log.join('').slice(-2000)}`);
      const c = new pg.Client({ connectionString: this.url('postgres') });
      try {
        await c.connect();
        await c.end();
        return;
      } catch {
        await c.end().catch(() => undefined);
        if (Date.now() > deadline) throw new Error(`postgres did not accept connections in 30 s: ${this.log.join('').slice(-2000)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  /** A connection URL for `database` over TCP on 127.0.0.1. */
  url(database: string): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${database}`;
  }

  /** A new, empty database; its URL. */
  async createDatabase(name = `cvm_test_${process.pid}_${++this.databases}`): Promise<string> {
    const c = new pg.Client({ connectionString: this.url('postgres') });
    await c.connect();
    try {
      await c.query(`CREATE DATABASE ${name}`);
    } finally {
      await c.end();
    }
    return this.url(name);
  }

  /**
   * CPU seconds of the server so far: the postmaster (its own, and that of children it has reaped:
   * cutime and cstime) and its live children (backends, WAL writer, checkpointer...), from
   * /proc/<pid>/stat fields 14-17 (proc(5); USER_HZ = 100). The postmaster's pid is the first line
   * of postmaster.pid in the data directory.
   */
  cpuSeconds(): number {
    const pm = Number(readFileSync(join(this.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    const fieldsOf = (pid: number | string): string[] | undefined => {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      } catch {
        return undefined; // exited meanwhile
      }
    };
    const own = fieldsOf(pm);
    if (!own) throw new Error(`postmaster ${pm} is not running`);
    let ticks = Number(own[11]) + Number(own[12]) + Number(own[13]) + Number(own[14]);
    for (const name of readdirSync('/proc')) {
      if (!/^\d+$/.test(name)) continue;
      const f = fieldsOf(name);
      if (f && Number(f[1]) === pm) ticks += Number(f[11]) + Number(f[12]);
    }
    return ticks / 100;
  }

  /** Stop the server: fast shutdown (SIGINT), or `signal` (SIGKILL for a crash). */
  async stopServer(signal: NodeJS.Signals = 'SIGINT'): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill(signal);
    const t = setTimeout(() => proc.kill('SIGKILL'), 10_000);
    await this.exited;
    clearTimeout(t);
    this.proc = undefined;
    if (signal === 'SIGKILL') {
      // The postmaster's children outlive a SIGKILL of it for a moment; the next start waits for them.
      await new Promise((r) => setTimeout(r, 300));
    }
  }

  /** Stop the server and remove the directory. */
  async stop(): Promise<void> {
    await this.stopServer();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
