/**
 * A real agent daemon (agent/daemon/daemon.ts) in process, on the built-in SIMULATED TEE, with its
 * local API on a Unix socket in a temporary directory: the victim VM of the hostile-agent relay test
 * and the agent under attack in the hostile-controller tests. The peer's SO_PEERCRED is replaced by
 * this process's own uid/gid (allow-listed for every endpoint), so no native addon is needed.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { Daemon } from '../../agent/daemon/daemon.js';
import { callApi, type ApiResponse } from '../../agent/cli/api-client.js';

export interface AgentDaemon {
  daemon: Daemon;
  dir: string;
  socket: string;
  /** pino JSON lines the daemon logged (level debug). */
  logs: Array<Record<string, unknown>>;
  get(path: string): Promise<ApiResponse>;
  stop(): Promise<void>;
}

export interface AgentDaemonOptions {
  agentId: string;
  /** Simulation directory (shared with a controller that trusts its roots). */
  simDir: string;
  gpus?: number;
  /** Extra YAML under `controller:` (url, insecure, tokenKey, ...), as `key: value` lines; none: no link. */
  controller?: Record<string, string | boolean>;
  /** The daemon's environment (DaemonOptions.env); empty by default. */
  env?: NodeJS.ProcessEnv;
}

/** Write the config and construct the daemon; `start()` is left to the caller (it may be expected to fail). */
export async function prepareAgentDaemon(o: AgentDaemonOptions): Promise<Omit<AgentDaemon, 'stop'> & { stop(): Promise<void>; start(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'cvm-agent-under-test-'));
  const socket = join(dir, 'api.sock');
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  const allow = `{uids: ["${uid}"]}`;
  const controller = { agentId: o.agentId, ...o.controller };
  await writeFile(
    join(dir, 'agent.yaml'),
    [
      'tee: simulated',
      `simulation: {gpus: ${o.gpus ?? 0}, dir: ${o.simDir}}`,
      `controller: {${Object.entries(controller)
        .map(([k, v]) => `${k}: ${typeof v === 'string' ? JSON.stringify(v) : String(v)}`)
        .join(', ')}}`,
      `api: {socket: ${socket}, authorization: {evidence: ${allow}, attest: ${allow}, token: ${allow}, secrets: ${allow}}}`,
      `state: {dir: ${join(dir, 'state')}}`,
      'schedule: {cron: "0 0 1 1 *", jitterSec: 0, attestAtStart: false}',
      'log: {level: debug}',
    ].join('\n'),
  );
  const logs: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => void logs.push(JSON.parse(s) as Record<string, unknown>) });
  const daemon = new Daemon({ configPath: join(dir, 'agent.yaml'), logger, env: { ...o.env }, peerCredentials: () => ({ pid: process.pid, uid, gid }) });
  let started = false;
  return {
    daemon,
    dir,
    socket,
    logs,
    get: (path) => callApi(socket, 'GET', path),
    async start() {
      await daemon.start();
      started = true;
    },
    async stop() {
      if (started) await daemon.stop(2000);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export async function startAgentDaemon(o: AgentDaemonOptions): Promise<AgentDaemon> {
  const d = await prepareAgentDaemon(o);
  try {
    await d.start();
  } catch (err) {
    await d.stop();
    throw err;
  }
  return d;
}
