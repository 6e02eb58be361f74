/** Starts `cvm-agent run` as a real child process (the built CLI, bin/cvm-agent.js) and collects its JSON log lines. */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { repoRoot } from './paths.js';
import { CLI } from './built.js';

export { CLI };

export interface DaemonProcess {
  child: ChildProcess;
  logs: Record<string, unknown>[];
  waitForLog(pred: (l: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function startDaemon(args: string[], env: NodeJS.ProcessEnv, command: string[] = [process.execPath, CLI, 'run']): DaemonProcess {
  const [bin, ...pre] = command;
  const child = spawn(bin!, [...pre, ...args], { cwd: repoRoot, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: Record<string, unknown>[] = [];
  let waiters: { pred: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    let l: Record<string, unknown>;
    try {
      l = JSON.parse(line) as Record<string, unknown>;
    } catch {
      l = { raw: line };
    }
    logs.push(l);
    waiters = waiters.filter((w) => (w.pred(l) ? (w.resolve(l), false) : true));
  });
  createInterface({ input: child.stderr! }).on('line', (line) => logs.push({ stderr: line }));
  const exit = once(child, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null }));
  return {
    child,
    logs,
    exit,
    waitForLog(pred, timeoutMs = 30_000) {
      const hit = logs.find(pred);
      if (hit) return Promise.resolve(hit);
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no log line matched within ${timeoutMs} ms; logs: ${JSON.stringify(logs).slice(0, 4000)}`)), timeoutMs);
        waiters.push({
          pred,
          resolve: (l) => {
            clearTimeout(t);
            resolve(l);
          },
        });
      });
    },
  };
}
