/**
 * kill -9 while the history is being written: a child appends records in a tight loop (single
 * appends and coalesced bursts; every SIZE appends a compaction rewrites the file), the test SIGKILLs
 * it after a seeded random delay, then checks that the log on disk is whole but for at most a torn
 * last line (kills between an append and the compaction it triggers, or inside either), consistent,
 * bounded, and holds every acknowledged record, and that a fresh
 * ResultHistory loads it and appends again. The same state directory carries over all trials, so
 * each trial also starts from the state the previous kill left.
 */
import { spawn } from 'node:child_process';
import { watch } from 'node:fs';
import { appendFileSync, mkdtempSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ResultHistory, type HistoryEvent } from '../../../agent/state/history.js';
import { parseHistoryLog } from '../../../agent/state/history-log.js';
import { repoRoot } from '../../helpers/paths.js';
import { payloadFor, recordFor } from '../../fixtures/crash-record.mjs';

const TRIALS = 60;
// 200 records of 0.5-8 KiB make the file ~0.9 MiB, more than one 512 KiB write() chunk of
// fs.writeFile: with a plain (non-atomic) writeFile these kills leave torn JSON on the first trials.
const SIZE = 200;
const SEED = Number(process.env.CRASH_SEED ?? 0x5eed_cafe);

/** mulberry32: small seeded PRNG so a failing run can be replayed with CRASH_SEED. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Compile agent/state/history.ts and the project modules it imports to plain ESM with the project's
 * own TypeScript, so the child runs the real code under bare `node` (fast start, no loader).
 */
function compileHistory(outRoot: string): string {
  const pending = [join(repoRoot, 'agent', 'state', 'history.ts')];
  const seen = new Set<string>();
  while (pending.length > 0) {
    const src = pending.pop()!;
    if (seen.has(src)) continue;
    seen.add(src);
    const out = ts.transpileModule(readFileSync(src, 'utf8'), {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: false },
      fileName: src,
    }).outputText;
    const dest = join(outRoot, relative(repoRoot, src)).replace(/\.ts$/, '.js');
    mkdirSync(dirname(dest), { recursive: true });
    writeFileSync(dest, out);
    for (const m of out.matchAll(/from\s+'(\.{1,2}\/[^']+)\.js'/g)) pending.push(join(dirname(src), `${m[1]}.ts`));
  }
  writeFileSync(join(outRoot, 'package.json'), '{"type":"module"}\n');
  return pathToFileURL(join(outRoot, 'agent', 'state', 'history.js')).href;
}

interface TrialOutcome {
  readyId: number;
  acked: number;
}

/**
 * `killOnTemp`: also kill the moment a compaction's temp file appears in the state directory, so
 * some kills land inside a compaction however slow a loaded machine makes the writer (a random
 * delay alone missed every compaction in one run under a load average of 9).
 */
function runTrial(stateDir: string, moduleUrl: string, delayMs: number, killOnTemp = false): Promise<TrialOutcome> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(repoRoot, 'test', 'fixtures', 'state-writer.mjs')], {
      env: { PATH: process.env.PATH ?? '', HISTORY_MODULE: moduleUrl, STATE_DIR: stateDir, HISTORY_SIZE: String(SIZE) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let buf = '';
    let stderr = '';
    let readyId = -1;
    let acked = 0;
    let timer: NodeJS.Timeout | undefined;
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const [kind, value] = buf.slice(0, nl).split(' ');
        buf = buf.slice(nl + 1);
        if (kind === 'ready') {
          readyId = Number(value);
          // The random delay counts from the end of start-up, so kills land among the writes.
          timer = setTimeout(() => child.kill('SIGKILL'), delayMs);
        } else if (kind === 'ack') {
          acked = Math.max(acked, Number(value));
        }
      }
    });
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    const watcher = killOnTemp
      ? watch(stateDir, (_event, name) => {
          if (readyId >= 0 && typeof name === 'string' && name.endsWith('.tmp')) child.kill('SIGKILL');
        })
      : undefined;
    child.on('close', (_code, signal) => {
      clearTimeout(timer);
      watcher?.close();
      if (signal !== 'SIGKILL' || readyId < 0) reject(new Error(`writer ended on its own (signal ${signal}): ${stderr}`));
      else resolve({ readyId, acked });
    });
  });
}

describe('ResultHistory survives kill -9 during writes', () => {
  let root: string;
  let moduleUrl: string;

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'cvm-state-crash-'));
    moduleUrl = compileHistory(join(root, 'build'));
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it(`${TRIALS} trials: the file is always whole, prefix-consistent and holds every acknowledged record`, async () => {
    const stateDir = join(root, 'state');
    const file = join(stateDir, 'history.jsonl');
    mkdirSync(stateDir, { recursive: true, mode: 0o700 }); // watched by the killOnTemp trials
    const random = prng(SEED);
    let previousLast = 0;
    let midWriteKills = 0;
    let tornTails = 0;
    let totalAcked = 0;
    const started = Date.now();

    for (let trial = 0; trial < TRIALS; trial++) {
      const delayMs = 5 + Math.floor(random() * 196);
      const { readyId, acked } = await runTrial(stateDir, moduleUrl, delayMs, trial % 5 === 4);
      const ctx = `trial ${trial} (seed ${SEED}, delay ${delayMs} ms)`;
      expect(readyId, ctx).toBe(previousLast);

      // A leftover temp file means the kill landed inside a compaction (between creating and renaming it).
      const temps = readdirSync(stateDir).filter((n) => n.endsWith('.tmp'));
      if (temps.length > 0) midWriteKills++;

      if (!existsSync(file)) {
        // Only possible if the very first write never completed.
        expect(previousLast, ctx).toBe(0);
        expect(acked, ctx).toBe(0);
        continue;
      }
      expect(statSync(file).mode & 0o777, ctx).toBe(0o600);
      // A kill -9 cannot split one write() of a regular file, but a power loss can leave a line cut
      // short: every 4th trial simulates that by adding the first part of a line after the kill.
      if (trial % 4 === 3) {
        const bytes = readFileSync(file);
        const lastLine = bytes.subarray(bytes.lastIndexOf(0x0a, bytes.length - 2) + 1);
        appendFileSync(file, lastLine.subarray(0, 1 + Math.floor(random() * (lastLine.length - 2))));
      }
      // Whole lines except at most a torn last one, which load drops.
      const log = parseHistoryLog(readFileSync(file));
      if (log.tornBytes > 0) tornTails++;
      const doc = { records: log.records.slice(-SIZE) };
      // At most SIZE lines beyond the kept records before compaction, plus appends riding on it.
      expect(log.records.length, ctx).toBeLessThanOrEqual(2 * SIZE + 8);
      const ids = doc.records.map((r) => r.id);
      const last = ids.at(-1) ?? 0;
      // Consecutive ids ending at `last`, trimmed to SIZE: a prefix of the append sequence.
      expect(ids, ctx).toEqual(Array.from({ length: Math.min(SIZE, last) }, (_, i) => last - Math.min(SIZE, last) + 1 + i));
      expect(
        log.records.map((r) => r.id),
        ctx,
      ).toEqual(Array.from({ length: log.records.length }, (_, i) => last - log.records.length + 1 + i));
      // Durable: everything the child was told is on disk, is on disk; nothing goes backwards.
      expect(last, ctx).toBeGreaterThanOrEqual(acked);
      expect(last, ctx).toBeGreaterThanOrEqual(previousLast);
      // No torn or mixed record: each one's content is the one derived from its id.
      for (const r of doc.records) {
        const { nonce, detail } = payloadFor(r.id);
        expect(r.ear?.eat_nonce, `${ctx} record ${r.id}`).toBe(nonce);
        expect(r.ear?.submods.cpu0?.['cvm.checks'][0]?.detail, `${ctx} record ${r.id}`).toBe(detail);
      }
      totalAcked += Math.max(0, acked - readyId);

      // A fresh load in this process: no corruption reported, stale temps cleaned, appends continue.
      const events: HistoryEvent[] = [];
      const fresh = new ResultHistory({ stateDir, size: SIZE, onEvent: (e) => events.push(e) });
      await fresh.load();
      expect(
        events.filter((e) => e.kind === 'corrupt'),
        ctx,
      ).toEqual([]);
      // A torn tail is cut off at load, so the next append starts on a line of its own.
      expect(readFileSync(file).length, ctx).toBe(log.goodBytes);
      expect(
        readdirSync(stateDir).filter((n) => n.endsWith('.tmp')),
        ctx,
      ).toEqual([]);
      expect(fresh.latest()?.id, ctx).toBe(last);
      const id = last + 1;
      const appended = await fresh.append(recordFor(id));
      expect(appended.id, ctx).toBe(id);
      previousLast = id;
    }

    const elapsed = Date.now() - started;
    console.log(
      `state crash test: ${TRIALS} kills (seed ${SEED}), ${midWriteKills} inside a compaction, ${tornTails} left a torn last line, ${totalAcked} acknowledged appends, ${elapsed} ms`,
    );
    // The test is only worth something if kills actually interrupt writes: compactions and appends.
    expect(midWriteKills).toBeGreaterThan(0);
    expect(tornTails).toBeGreaterThan(0);
    expect(previousLast).toBeGreaterThan(TRIALS);
  });
});
