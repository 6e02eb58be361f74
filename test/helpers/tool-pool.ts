/**
 * Running an independent implementation (xmlsec1, openssl) many times from a differential test:
 * runTool() spawns one command and collects its exit code and output (never throws on a non-zero
 * exit: a rejection is a result to compare), mapPool() runs them a few at a time so a suite of
 * hundreds of invocations stays fast without swamping a shared CI machine.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';

export interface ToolResult {
  code: number;
  stdout: Buffer;
  stderr: string;
}

/** Run `cmd args` with stdin closed (or fed `input`), LC_ALL=C so messages are stable. */
export function runTool(cmd: string, args: readonly string[], input?: Buffer): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, LC_ALL: 'C' }, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      resolve({ code: code ?? (signal ? 128 : 1), stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString('utf8') });
    });
    child.stdin.end(input);
  });
}

/** How many tools run at once: a small pool (the machine is shared with the rest of the suite). */
export const POOL_SIZE = Math.max(2, Math.min(4, availableParallelism()));

/** `fn` over `items`, at most `limit` at a time, results in input order. */
export async function mapPool<T, R>(items: readonly T[], fn: (item: T, index: number) => Promise<R>, limit = POOL_SIZE): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/** A scratch directory for the files a tool reads; remove() deletes it. */
export function scratchDir(prefix: string): { dir: string; write: (name: string, data: string | Uint8Array) => string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return {
    dir,
    write: (name, data) => {
      const p = join(dir, name);
      writeFileSync(p, data);
      return p;
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
