/**
 * Crash trial (issue 9, item 5): an agent process killed with SIGKILL before its key was ever
 * attested leaves events in its outbox signed by a key nobody can attest any more (agent keys live
 * in memory only). Those events used to block every later event forever: the controller held them
 * waiting for an attestation that can never come, and the next process resent them first.
 *
 * Here: a REAL agent link process (test/fixtures/link-agent.ts: ControllerLink + fsync'd Outbox,
 * which never answers a challenge) appends events and is killed -9; a new agent process (a new key,
 * the same outbox directory) attests its own key with the REAL reference controller. The dead
 * key's events must become an explicit, recorded gap ("unverifiable: signing key never attested"),
 * and the stream must move on: the new process's events stored, the outbox drained. Twice: with the
 * first process connected to the controller when it died (its events held there), and with the
 * controller down for the first process's whole life.
 */
import { describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { makeBundle } from '../helpers/controller-fixture.js';
import { linkSuite } from '../helpers/link-suite.js';
import { makeHarness, type Harness } from '../helpers/test-controller.js';
import { repoRoot } from '../helpers/paths.js';
import { built } from '../helpers/built.js';
import { CONTROLLER_TOKEN_KEY, RestartableController, until } from '../helpers/link-load.js';
import type { LinkStatus } from '../../agent/link/link-client.js';

const suite = linkSuite('cvm-kill9-');
const { cleanup } = suite;

interface Child {
  proc: ChildProcess;
  kid?: string;
  appended: number;
  status?: LinkStatus;
}

function startChild(url: string, outboxDir: string, agentId: string, events: number): Child {
  const proc = spawn(process.execPath, [built('test/fixtures/link-agent.ts')], {
    cwd: repoRoot,
    env: {
      ...process.env,
      LINK_URL: url,
      TOKEN_FILE: suite.tokenFile,
      OUTBOX_DIR: outboxDir,
      AGENT_ID: agentId,
      EVENTS: String(events),
      TOKEN_KEY: JSON.stringify(CONTROLLER_TOKEN_KEY),
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const c: Child = { proc, appended: 0 };
  createInterface({ input: proc.stdout! }).on('line', (line) => {
    const [word, rest] = [line.slice(0, line.indexOf(' ')), line.slice(line.indexOf(' ') + 1)];
    if (word === 'kid') c.kid = rest;
    else if (word === 'appended') c.appended = Number(rest);
    else if (word === 'status') c.status = JSON.parse(rest) as LinkStatus;
  });
  cleanup.push(async () => void proc.kill('SIGKILL'));
  return c;
}

async function kill9(c: Child): Promise<void> {
  const exited = new Promise((r) => c.proc.once('exit', r));
  c.proc.kill('SIGKILL');
  await exited;
  expect(c.proc.signalCode).toBe('SIGKILL');
}

/** The next agent process: a new key, the same outbox directory, answers challenges with simulated evidence. */
async function nextProcess(url: string, outboxDir: string, agentId: string): Promise<Harness> {
  let h!: Harness;
  h = await makeHarness(url, {
    agentId,
    tokenFile: suite.tokenFile,
    tokenKeys: [CONTROLLER_TOKEN_KEY], // the restartable controller's verdicts verify under its fixed key
    dir: outboxDir,
    handlers: { onChallenge: async (nonce) => ({ bundle: await makeBundle(suite.sim, nonce, h.key.publicJwk, agentId), localResult: {} }) },
  });
  cleanup.push(() => h.close());
  return h;
}

interface View {
  lastSeq: number;
  gapRanges: Array<{ from: number; to: number; reason: string; detail?: string }>;
  attestedKeys: Array<{ jkt: string }>;
}

async function trial(name: string, connectedWhenKilled: boolean): Promise<void> {
  const K = 20;
  const rc = await RestartableController.create({ stateDir: join(suite.tmp, `state-${name}`), simDir: suite.sim.dir, logLevel: 'info' });
  cleanup.push(() => rc.stop());
  const outboxDir = join(suite.tmp, `outbox-${name}`);
  const agentId = `vm-kill9-${name}`;
  if (connectedWhenKilled) await rc.start();

  const first = startChild(rc.wsUrl, outboxDir, agentId, K);
  await until(() => first.appended === K, 60_000, 'the first process appended its events');
  if (connectedWhenKilled) {
    // Its events reached the controller, which holds them: the key was announced but never attested.
    await until(
      () => (first.status?.counters.eventsSent ?? 0) >= K,
      30_000,
      () => `the first process sent its events; ${JSON.stringify(first.status)}`,
    );
    await until(() => rc.current!.heldBudget.used > 0, 10_000, 'the controller holds them');
    expect(first.status!.lastAckedSeq).toBe(0);
  }
  await kill9(first);
  if (!connectedWhenKilled) await rc.start();

  const second = await nextProcess(rc.wsUrl, outboxDir, agentId);
  expect(second.outbox.lastSeq).toBe(K); // the dead process's events are still queued
  expect(second.key.kid).not.toBe(first.kid);
  second.link.start();
  await until(() => second.calls.verdicts.length > 0, 30_000, 'the new key attested');
  for (let i = 1; i <= 5; i++) await second.outbox.append('status', { run: 'second', i });
  await until(
    () => second.outbox.lastAcked === K + 5,
    30_000,
    () => `the stream moved on; ${JSON.stringify(second.link.status())}`,
  );

  const view = await rc.getJson<View>(`/v1/agents/${agentId}`);
  expect(view.lastSeq).toBe(K + 5);
  // The dead key's events: one explicit, recorded gap, with the reason.
  expect(view.gapRanges).toEqual([{ from: 1, to: K, reason: 'unverifiable', detail: 'signing key never attested' }]);
  expect(view.attestedKeys.map((k) => k.jkt)).not.toContain(first.kid);
  // The new process's events are stored, in order, after the gap.
  const stored = rc.applied.filter((a) => a.what === 'stored');
  expect(stored.map((a) => a.seq)).toEqual([21, 22, 23, 24, 25]);
  expect(stored.map((a) => (a.data as { run: string }).run)).toEqual(Array(5).fill('second'));
  expect(rc.logLines.join('\n')).toMatch(/unverifiable, signing key never attested/);
  expect(second.outbox.size).toBe(0);
}

describe('crash: kill -9 before the agent key is attested', () => {
  it('the first process connected, its events held by the controller: they become an unverifiable gap once the next key is attested', async () => {
    await trial('connected', true);
  }, 180_000);

  it("the controller down for the first process's whole life: the same", async () => {
    await trial('offline', false);
  }, 180_000);
});
