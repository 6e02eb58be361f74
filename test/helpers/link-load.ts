/**
 * Load and durability helpers for the controller link: the REAL reference controller started in
 * process on a fixed loopback port and a fixed stateDir (so it can be stopped and started again "as
 * the same controller"), with a hook that records every event the registry applies, plus small
 * statistics helpers for the link benchmark. Used by test/e2e/link-durability.test.ts and
 * bench/link.bench.ts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { JWK } from 'jose';
import { createServer, type AddressInfo } from 'node:net';
import pino from 'pino';
import { repoRoot } from './paths.js';
import { CLI } from './built.js';
import { parseControllerConfig, resolveControllerConfig, tokenDigest } from '../../agent/controller/config.js';
import { Controller } from '../../agent/controller/controller-server.js';
import { TOKEN } from './controller-fixture.js';
import { storeYaml } from './test-store.js';

export { TOKEN };

/**
 * One token signing key for every controller instance of this process (signingKey), so a restarted
 * controller signs verdicts the agent still accepts: agents pin CONTROLLER_TOKEN_KEY (LinkOptions.tokenKeys).
 */
const signing = (() => {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const file = join(mkdtempSync(join(tmpdir(), 'cvm-ctl-signing-')), 'signing.pem');
  writeFileSync(file, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  return { file, publicJwk: publicKey.export({ format: 'jwk' }) as JWK };
})();
export const CONTROLLER_TOKEN_KEY: JWK = signing.publicJwk;

export interface Applied {
  /** Which controller instance (0 = first start) handled it. */
  instance: number;
  seq: number;
  kind: string;
  data: unknown;
  what: 'stored' | 'duplicate' | 'conflict' | 'out-of-order';
}

export interface RestartableControllerOptions {
  /** Where per-agent state is persisted; undefined: memory only (only for measuring what persistence costs). */
  stateDir: string | undefined;
  /** Simulation directory whose SIMULATED roots the controller trusts (so simulated bundles attest the agent key). */
  simDir?: string;
  /** Fixed port; by default a free one picked once and reused for every start. */
  port?: number;
  /** Per-connection message limits (default: generous ones, so the numbers measure the link itself); 'defaults': the controller's own defaults. */
  limits?: { messagesPerSec: number; burst: number; maxConnections?: number; eventsPerSec?: number; window?: number } | 'defaults';
  challengeIntervalSec?: number;
  logLevel?: 'silent' | 'debug' | 'info' | 'warn';
  /** The config line for the state instead of `stateDir: ...` (test/helpers/test-store.ts storeYaml). */
  storeLine?: string;
  /** Tokens bound to agent ids, accepted besides TOKEN: agent id -> token. */
  boundTokens?: Record<string, string>;
}

/** A free TCP port on 127.0.0.1 (bound then released). */
export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as AddressInfo).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

export function controllerYaml(o: RestartableControllerOptions & { port: number }): string {
  const limits = o.limits ?? { messagesPerSec: 10_000, burst: 100_000, eventsPerSec: 100_000 };
  return [
    `listen: {host: 127.0.0.1, port: ${o.port}}`,
    ...(o.storeLine ? [o.storeLine] : o.stateDir ? [`stateDir: ${o.stateDir}`] : []),
    'agents:',
    '  tokens:',
    `    - sha256: ${tokenDigest(TOKEN).toString('hex')}`,
    ...Object.entries(o.boundTokens ?? {}).map(([agentId, token]) => `    - {agentId: ${agentId}, sha256: ${tokenDigest(token).toString('hex')}}`),
    ...(limits === 'defaults'
      ? []
      : [
          `limits: {messagesPerSec: ${limits.messagesPerSec}, burst: ${limits.burst}, maxConnections: ${limits.maxConnections ?? 1000}${limits.eventsPerSec ? `, eventsPerSec: ${limits.eventsPerSec}` : ''}${limits.window ? `, window: ${limits.window}` : ''}}`,
        ]),
    `challengeIntervalSec: ${o.challengeIntervalSec ?? 3600}`,
    `signingKey: ${signing.file}`,
    `log: {level: ${o.logLevel ?? 'silent'}}`,
    ...(o.simDir ? [`simulation: {trust: true, dir: ${o.simDir}}`, 'releaseSecretsOn: warning'] : []),
    '',
  ].join('\n');
}

/**
 * The reference controller, stoppable and restartable on the same port and stateDir. Every event the
 * registry applies (stored or recognised as a duplicate) is recorded in `applied`, across instances.
 */
export class RestartableController {
  readonly applied: Applied[] = [];
  readonly logLines: string[] = [];
  current: Controller | undefined;
  starts = 0;
  /** Time (performance.now()) at which the latest start() resolved. */
  upAt = 0;

  private constructor(readonly opts: RestartableControllerOptions & { port: number }) {}

  static async create(opts: RestartableControllerOptions): Promise<RestartableController> {
    return new RestartableController({ ...opts, port: opts.port ?? (await freePort()) });
  }

  get port(): number {
    return this.opts.port;
  }

  get wsUrl(): string {
    return `ws://127.0.0.1:${this.opts.port}/v1/link`;
  }

  get httpUrl(): string {
    return `http://127.0.0.1:${this.opts.port}`;
  }

  async start(): Promise<Controller> {
    if (this.current) throw new Error('controller already running');
    const storeLine = this.opts.stateDir ? await storeYaml(this.opts.stateDir) : undefined;
    const cfg = parseControllerConfig(controllerYaml({ ...this.opts, ...(storeLine ? { storeLine } : {}) }), 'restartable controller config');
    const resolved = await resolveControllerConfig(cfg);
    const lines = this.logLines;
    const log = pino({ level: cfg.logLevel }, { write: (s: string) => lines.push(s) });
    const instance = this.starts++;
    // The bind can race the previous listener's teardown on a busy machine: retry EADDRINUSE briefly.
    let controller: Controller | undefined;
    for (let attempt = 0; !controller; attempt++) {
      try {
        controller = await Controller.start(resolved, { log });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= 50) throw err;
        await sleep(20);
      }
    }
    const registry = controller.registry;
    const record = registry.recordEvent.bind(registry);
    // The hook: what the registry decided for each event it was handed (the persisted state is checked separately).
    registry.recordEvent = (agentId, ev, now) => {
      const what = record(agentId, ev, now);
      this.applied.push({ instance, seq: ev.seq, kind: ev.kind, data: ev.data, what });
      return what;
    };
    this.current = controller;
    this.upAt = performance.now();
    return controller;
  }

  async stop(): Promise<void> {
    const c = this.current;
    this.current = undefined;
    await c?.close();
  }

  /** GET a JSON document from the controller's fleet API. */
  async getJson<T>(path: string): Promise<T> {
    const res = await fetch(`${this.httpUrl}${path}`);
    if (!res.ok) throw new Error(`GET ${path}: HTTP ${res.status}`);
    return (await res.json()) as T;
  }
}

/**
 * The reference controller as a real child process (`cvm-agent controller`, the built CLI), so it
 * can be killed with SIGKILL mid-write. Its pino JSON log is collected; at log level debug every
 * event the registry handled shows up as {msg: "event", seq, kind, what}, recorded in `applied`
 * with the instance that logged it.
 */
export class ChildController {
  readonly applied: Applied[] = [];
  child: ChildProcess | undefined;
  starts = 0;
  /** performance.now() when the latest instance logged "controller listening". */
  upAt = 0;
  private readonly config: string;

  private constructor(
    readonly opts: RestartableControllerOptions & { port: number },
    dir: string,
  ) {
    this.config = join(dir, `controller-${opts.port}.yaml`);
    writeFileSync(this.config, controllerYaml(opts));
  }

  /** `dir` holds the generated config file. */
  static async create(opts: RestartableControllerOptions, dir: string): Promise<ChildController> {
    const storeLine = opts.stateDir ? await storeYaml(opts.stateDir) : undefined;
    return new ChildController({ ...opts, ...(storeLine ? { storeLine } : {}), port: opts.port ?? (await freePort()) }, dir);
  }

  get wsUrl(): string {
    return `ws://127.0.0.1:${this.opts.port}/v1/link`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get port(): number {
    return this.opts.port;
  }

  async start(): Promise<void> {
    if (this.child) throw new Error('controller already running');
    const instance = this.starts++;
    const child = spawn(process.execPath, [CLI, 'controller', '--config', this.config], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    this.child = child;
    await new Promise<void>((resolve, reject) => {
      let buf = '';
      let up = false;
      child.stdout!.on('data', (d: Buffer) => {
        buf += d.toString();
        const lines = buf.split('\n');
        buf = lines.pop()!;
        for (const line of lines) {
          let rec: { msg?: string; seq?: number; kind?: string; what?: 'stored' | 'duplicate' };
          try {
            rec = JSON.parse(line) as typeof rec;
          } catch {
            continue;
          }
          if (rec.msg === 'event' && typeof rec.seq === 'number' && (rec.what === 'stored' || rec.what === 'duplicate')) {
            this.applied.push({ instance, seq: rec.seq, kind: String(rec.kind), data: undefined, what: rec.what });
          } else if (!up && rec.msg === 'controller listening') {
            up = true;
            this.upAt = performance.now();
            resolve();
          }
        }
      });
      child.once('exit', (code, signal) => {
        if (this.child === child) this.child = undefined;
        if (!up) reject(new Error(`controller exited (${code ?? signal}) before listening`));
      });
    });
  }

  /**
   * SIGKILL: no close frames, no flush of pending state writes. Resolves once the process is gone and
   * its stdout is read to the end ('close', not 'exit': lines it wrote just before may still be in
   * the pipe at 'exit'), so `applied` then holds everything the instance logged.
   */
  async kill9(): Promise<void> {
    const c = this.child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise<void>((r) => c.once('close', () => r()));
    c.kill('SIGKILL');
    await exited;
    this.child = undefined;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export async function until(pred: () => boolean | Promise<boolean>, timeoutMs: number, what: string | (() => string), pollMs = 5): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${typeof what === 'function' ? what() : what}`);
    await sleep(pollMs);
  }
}

/** Nearest-rank percentile of an ascending array (p in 0..100). */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export function median(values: readonly number[]): number {
  return percentile(
    [...values].sort((a, b) => a - b),
    50,
  );
}
