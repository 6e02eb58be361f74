/**
 * Controller-link durability, end to end over loopback: the REAL agent link (ControllerLink + Outbox)
 * against the REAL reference controller (agent/controller), with simulated evidence so the agent key
 * is attested and events verify (docs/protocol.md "Events", docs/controller.md "Events").
 *
 * a. The controller is stopped and started again 20 times (same port, same stateDir) while the agent
 *    appends 5,000 events: every seq 1..N ends up applied exactly once and in order (hook on the
 *    controller's registry across all instances), the persisted state says lastSeq = N with no gaps,
 *    and the outbox drains.
 *    The same with the controller as a child process killed with SIGKILL 10 times during 2,000 events
 *    (no close, no flush): nothing is lost, and an event acknowledged to the agent is never applied again
 *    (re-application is limited to events whose persist or ack the crash swallowed).
 * b. The controller is down while the agent appends 10x its outbox bound: the outbox stays within
 *    its bound on disk, and when the controller comes back it receives explicit `dropped` events that
 *    declare the lost range, followed by the newest events without any further gap.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { makeBundle } from '../helpers/controller-fixture.js';
import { linkSuite } from '../helpers/link-suite.js';
import { makeHarness, type Harness } from '../helpers/test-controller.js';
import { OUTBOX_FILE } from '../../agent/link/outbox.js';
import type { AgentRecord } from '../../agent/controller/registry.js';
import { ChildController, CONTROLLER_TOKEN_KEY, RestartableController, sleep, until } from '../helpers/link-load.js';
import { storedRecord } from '../helpers/test-store.js';

const suite = linkSuite('cvm-durability-');
const { cleanup } = suite;

/** A link harness whose challenges are answered with simulated evidence bound to the nonce and its key. */
async function attestedAgent(rc: { wsUrl: string }, agentId: string, extra: { maxEvents?: number } = {}): Promise<Harness> {
  let h!: Harness;
  h = await makeHarness(rc.wsUrl, {
    agentId,
    tokenFile: suite.tokenFile,
    tokenKeys: [CONTROLLER_TOKEN_KEY],
    ...extra,
    handlers: { onChallenge: async (nonce) => ({ bundle: await makeBundle(suite.sim, nonce, h.key.publicJwk, agentId), localResult: {} }) },
  });
  cleanup.push(() => h.close());
  h.link.start();
  await until(
    () => h.calls.verdicts.length > 0,
    20_000,
    () => `a first verdict; link ${JSON.stringify(h.link.status())}`,
  );
  return h;
}

/** Deterministic jitter for the restart schedule (a failure must be reproducible). */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

interface AgentView extends Omit<AgentRecord, 'gaps'> {
  gaps: number;
  gapRanges: AgentRecord['gaps'];
}

describe('controller link durability (real agent link <-> real reference controller)', () => {
  it('20 controller restarts during 5,000 events: every seq applied exactly once, in order, and persisted gap-free', async () => {
    const N = 5000;
    const RESTARTS = 20;
    const stateDir = join(suite.tmp, 'state-a');
    const rc = await RestartableController.create({ stateDir, simDir: suite.sim.dir });
    cleanup.push(() => rc.stop());
    await rc.start();
    const h = await attestedAgent(rc, 'durable-vm');

    // Restart k once the stream is k/(RESTARTS+1) through (plus a jittered 0..100 ms), so restarts are
    // spread over the whole stream; each stays down 0..150 ms while the appends go on.
    const rnd = lcg(0xc0ffee);
    const appendedAtStop: number[] = [];
    let appended = 0;
    let restartsDone = 0;
    const restarter = (async () => {
      for (let k = 1; k <= RESTARTS; k++) {
        while (appended < (k * N) / (RESTARTS + 1)) await sleep(5);
        await sleep(Math.floor(rnd() * 100));
        appendedAtStop.push(appended);
        await rc.stop();
        await sleep(Math.floor(rnd() * 150));
        await rc.start();
        restartsDone++;
      }
    })();

    // Appends back to back; each resolves once the event is fsync'd (before it can be sent).
    const t0 = Date.now();
    while (appended < N) {
      appended++;
      await h.outbox.append('status', { i: appended });
    }
    await restarter;
    await until(
      () => h.outbox.lastAcked === N,
      30_000,
      () => `all ${N} events acked; outbox lastAcked ${h.outbox.lastAcked}, link ${JSON.stringify(h.link.status())}`,
    );

    expect(restartsDone).toBe(RESTARTS);
    expect(rc.starts).toBe(RESTARTS + 1);
    // The restarts really overlapped the stream: each one cut in while events were still being appended.
    expect(appendedAtStop.length).toBe(RESTARTS);
    expect(appendedAtStop.filter((n) => n > 0 && n < N).length).toBeGreaterThanOrEqual(RESTARTS - 2);
    expect(new Set(appendedAtStop).size).toBeGreaterThanOrEqual(RESTARTS - 2);

    // Exactly once, in order: the registry applied ("stored") seq 1, 2, ..., N and nothing twice,
    // across all 21 controller instances. Resends after a reconnect are recognised as duplicates.
    const stored = rc.applied.filter((a) => a.what === 'stored');
    expect(stored.length).toBe(N);
    const outOfPlace = stored.findIndex((a, i) => a.seq !== i + 1);
    expect(outOfPlace, `first out-of-place stored event: ${JSON.stringify(stored[outOfPlace])}`).toBe(-1);
    expect(stored.every((a) => (a.data as { i: number }).i === a.seq)).toBe(true);
    expect(new Set(stored.map((a) => a.instance)).size).toBeGreaterThan(RESTARTS / 2); // events landed on many instances
    const duplicates = rc.applied.filter((a) => a.what === 'duplicate').length;

    // The persisted state (the file a restarted controller loads) and the API agree: lastSeq N, no gaps.
    const file = (await storedRecord(stateDir, 'durable-vm'))!;
    expect(file.lastSeq).toBe(N);
    expect(file.gaps).toEqual([]);
    expect(file.recentEvents.map((e) => e.seq)).toEqual(Array.from({ length: 50 }, (_, k) => N - k));
    const view = await rc.getJson<AgentView>('/v1/agents/durable-vm');
    expect(view.lastSeq).toBe(N);
    expect(view.gaps).toBe(0);
    expect(view.gapRanges).toEqual([]);
    // Nothing left to resend: the on-disk outbox (what a restarted agent loads) marks everything acked.
    expect(h.outbox.size).toBe(0);
    await h.outbox.close(); // lets the queued ack marker reach the file (acks are written after lastAcked moves)
    const lines = readFileSync(join(h.dir, OUTBOX_FILE), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { acked?: number; seq?: number });
    const ackedOnDisk = Math.max(...lines.map((l) => l.acked ?? 0));
    expect(ackedOnDisk).toBe(N);
    expect(lines.filter((l) => (l.seq ?? 0) > ackedOnDisk)).toEqual([]);
    console.log(
      `[durability a] ${N} events, ${RESTARTS} restarts, ${h.link.status().counters.connects} connects, ${duplicates} duplicate deliveries recognised, ${Date.now() - t0} ms`,
    );
    // The time limit below: 5,000 fsync'd, signed appends one after another took 15-48 s in CI runs and
    // 88-90 s on a machine under extra load.
  }, 180_000);

  it('10 SIGKILLs of a controller process during 2,000 events: nothing lost, nothing acked is ever applied again', async () => {
    const N = 2000;
    const KILLS = 10;
    const stateDir = join(suite.tmp, 'state-c');
    const cc = await ChildController.create({ stateDir, simDir: suite.sim.dir, logLevel: 'debug' }, suite.tmp);
    cleanup.push(() => cc.kill9());
    await cc.start();
    const h = await attestedAgent(cc, 'crash-vm');

    const rnd = lcg(0x5eed);
    let appended = 0;
    let killsStarted = 0;
    /** The agent's acked seq once the old instance is gone: nothing at or below it may be applied again. */
    const ackedAtKill: number[] = [];
    const appendedAtKill: number[] = [];
    const killer = (async () => {
      for (let k = 0; k < KILLS; k++) {
        await sleep(200 + Math.floor(rnd() * 400));
        killsStarted++;
        appendedAtKill.push(appended);
        await cc.kill9();
        await sleep(50); // let acks already in the agent's socket buffer land
        ackedAtKill.push(h.outbox.lastAcked);
        await cc.start();
      }
    })();
    // One event every ~4 ms, but never past chunk k+1 of N/(KILLS+1) before kill k has begun, so
    // every kill lands while events are still flowing.
    while (appended < N) {
      const allowed = Math.floor((N * (killsStarted + 1)) / (KILLS + 1));
      if (appended < allowed) {
        appended++;
        await h.outbox.append('status', { i: appended });
      }
      await sleep(appended < allowed ? 4 : 10);
    }
    await killer;
    await until(
      () => h.outbox.lastAcked === N,
      30_000,
      () => `all ${N} events acked; lastAcked ${h.outbox.lastAcked}, link ${JSON.stringify(h.link.status())}`,
    );
    await cc.kill9(); // resolves once its log is read to the end

    expect(cc.starts).toBe(KILLS + 1);
    expect(appendedAtKill.every((n) => n > 0 && n < N)).toBe(true);
    // Nothing lost: the persisted state (written atomically before each ack) has every seq, no gaps.
    const file = (await storedRecord(stateDir, 'crash-vm'))!;
    expect(file.lastSeq).toBe(N);
    expect(file.gaps).toEqual([]);
    const stored = cc.applied.filter((a) => a.what === 'stored');
    expect(new Set(stored.map((a) => a.seq)).size).toBe(N);
    expect(Math.min(...stored.map((a) => a.seq))).toBe(1);
    expect(Math.max(...stored.map((a) => a.seq))).toBe(N);
    // Each instance applied a contiguous, increasing run of seqs.
    for (let i = 0; i <= KILLS; i++) {
      const run = stored.filter((a) => a.instance === i).map((a) => a.seq);
      for (let k = 1; k < run.length; k++) expect(run[k], `instance ${i}`).toBe(run[k - 1]! + 1);
    }
    // Nothing acked is applied again: a seq applied by more than one instance was never acked before
    // the crash that preceded its re-application.
    const firstBy = new Map<number, number>();
    let reapplied = 0;
    for (const a of stored) {
      const first = firstBy.get(a.seq);
      if (first === undefined) {
        firstBy.set(a.seq, a.instance);
        continue;
      }
      reapplied++;
      expect(a.instance).toBeGreaterThan(first);
      expect(a.seq, `seq ${a.seq} re-applied by instance ${a.instance} although acked before kill ${a.instance - 1}`).toBeGreaterThan(
        ackedAtKill[a.instance - 1]!,
      );
    }
    // At most the unsaved batch at each crash: the controller writes and acks once per burst of up to 64 queued
    // messages (agent/controller/session.ts MAX_BATCH), so a crash can lose that much in-memory progress, never an ack.
    expect(reapplied).toBeLessThanOrEqual(KILLS * 64);
    console.log(
      `[durability a/SIGKILL] ${N} events, ${KILLS} SIGKILLs, ${h.link.status().counters.connects} connects, ${reapplied} re-applied after a crash (never one already acked), ${cc.applied.filter((a) => a.what === 'duplicate').length} duplicates recognised`,
    );
  }, 120_000);

  it('controller down while the outbox overflows: bounded on disk, then an explicit dropped range and the newest events gap-free', async () => {
    const MAX = 100;
    const BEFORE = 10;
    const WHILE_DOWN = 10 * MAX;
    // Simulation roots trusted so the agent key gets attested (events are only applied with an attested key).
    const rcSim = await RestartableController.create({ stateDir: join(suite.tmp, 'state-b'), simDir: suite.sim.dir });
    cleanup.push(() => rcSim.stop());
    await rcSim.start();
    const h = await attestedAgent(rcSim, 'patient-vm', { maxEvents: MAX });
    for (let i = 1; i <= BEFORE; i++) await h.outbox.append('status', { i });
    await until(() => h.outbox.lastAcked === BEFORE, 10_000, 'the first events acked');

    await rcSim.stop();
    const outboxPath = join(h.dir, OUTBOX_FILE);
    let maxFileBytes = 0;
    let maxFileEvents = 0;
    let maxLineBytes = 0;
    for (let i = 1; i <= WHILE_DOWN; i++) {
      await h.outbox.append('status', { i: BEFORE + i, pad: 'x'.repeat(200) });
      // The bound holds after every append: in memory, and in the file a restarted agent would load.
      expect(h.outbox.size).toBeLessThanOrEqual(MAX);
      const text = readFileSync(outboxPath, 'utf8');
      const eventLines = text.split('\n').filter((l) => l.includes('"type":"event"'));
      const unacked = eventLines.filter((l) => (JSON.parse(l) as { seq: number }).seq > BEFORE);
      expect(unacked.length).toBeLessThanOrEqual(MAX);
      maxFileEvents = Math.max(maxFileEvents, eventLines.length);
      maxFileBytes = Math.max(maxFileBytes, statSync(outboxPath).size);
      for (const l of eventLines) maxLineBytes = Math.max(maxLineBytes, l.length + 1);
    }
    expect(h.link.status().state).not.toBe('up');
    // On disk: never more than the bound plus the acked-but-not-yet-compacted prefix, and far below
    // what was appended (the file does not grow with the outage).
    expect(maxFileEvents).toBeLessThanOrEqual(MAX + BEFORE + 1);
    expect(maxFileBytes).toBeLessThanOrEqual((MAX + BEFORE + 3) * maxLineBytes);
    expect(maxFileBytes).toBeLessThan((WHILE_DOWN * maxLineBytes) / 5);
    const lastSeq = h.outbox.lastSeq;
    expect(lastSeq).toBeGreaterThan(BEFORE + WHILE_DOWN); // the dropped events took seqs too

    await rcSim.start();
    await until(
      () => h.outbox.lastAcked === lastSeq,
      20_000,
      () => `the outbox drained after the outage; ${JSON.stringify(h.link.status())}`,
    );

    const afterOutage = rcSim.applied.filter((a) => a.instance === 1 && a.what === 'stored');
    const drops = afterOutage.filter((a) => a.kind === 'dropped').map((a) => ({ seq: a.seq, ...(a.data as { from: number; to: number; count: number }) }));
    expect(drops.length).toBeGreaterThan(0);
    for (const d of drops) {
      expect(d.count).toBe(d.to - d.from + 1);
      expect(d.to).toBeLessThan(d.seq); // a drop declares events before itself
    }
    // The declared ranges start right after what the controller had stored, and together with what
    // arrived they cover every seq exactly once: nothing vanished silently.
    expect(Math.min(...drops.map((d) => d.from))).toBe(BEFORE + 1);
    const storedSeqs = new Set(afterOutage.map((a) => a.seq));
    const declared = new Set<number>();
    for (const d of drops) for (let s = d.from; s <= d.to; s++) declared.add(s);
    for (let s = BEFORE + 1; s <= lastSeq; s++) {
      const inStored = storedSeqs.has(s);
      const inDeclared = declared.has(s);
      if (inStored === inDeclared) throw new Error(`seq ${s}: ${inStored ? 'both delivered and declared dropped' : 'neither delivered nor declared dropped'}`);
    }
    // After the last declared drop, the newest events arrive gap-free and in order up to lastSeq.
    const lastDropTo = Math.max(...drops.map((d) => d.to));
    const tail = afterOutage.map((a) => a.seq).filter((s) => s > lastDropTo);
    expect(tail).toEqual(Array.from({ length: lastSeq - lastDropTo }, (_, k) => lastDropTo + 1 + k));
    expect(tail.length).toBeGreaterThanOrEqual(Math.floor((MAX * 3) / 4) - drops.length);
    // Arrival order is seq order.
    expect(afterOutage.map((a) => a.seq)).toEqual([...afterOutage.map((a) => a.seq)].sort((a, b) => a - b));

    // The controller's record names the agent's drops as such.
    const view = await rcSim.getJson<AgentView>('/v1/agents/patient-vm');
    expect(view.lastSeq).toBe(lastSeq);
    const agentDrops = view.gapRanges.filter((g) => g.reason === 'dropped-by-agent');
    for (let s = BEFORE + 1; s <= lastSeq; s++) {
      if (!storedSeqs.has(s))
        expect(
          agentDrops.some((g) => g.from <= s && s <= g.to),
          `seq ${s} is recorded as dropped by the agent`,
        ).toBe(true);
    }
    console.log(
      `[durability b] outbox max ${MAX}; ${WHILE_DOWN} appended while down; file peak ${maxFileBytes} B / ${maxFileEvents} event lines; delivered ${afterOutage.length} (${drops.length} dropped events: ${drops.map((d) => `${d.from}-${d.to}@${d.seq}`).join(', ')}); controller gaps ${JSON.stringify(view.gapRanges)}`,
    );
  }, 90_000);
});
