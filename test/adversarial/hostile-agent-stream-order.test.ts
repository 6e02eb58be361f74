/**
 * A hostile agent against the controller's event stream (issue 9, item 6, and the acks of item 4):
 *  - a replayed LATER seq must not make the controller skip (and then discard as duplicates) the
 *    genuine earlier events: only lastSeq + 1 is stored, later seqs wait;
 *  - a DIFFERENT event under a stored seq is an alarm (logged, counted, recorded), never an ack;
 *  - a hole is passed only when a validly signed `dropped` event declares it;
 *  - when the controller closes a link, what it stored is acked first.
 * Each test performs the attack against the real reference controller over loopback and fails if
 * the defence is removed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { CLOSE } from '../../agent/link/protocol.js';
import { openSim, startController, type ControllerUnderTest, type Sim } from '../helpers/controller-fixture.js';
import { attestedAgent, bulky, genuine, getJson, sleep, until } from './stream-fixture.js';
import { storedRecord } from '../helpers/test-store.js';

let sim: Sim;
let ctl: ControllerUnderTest;

beforeAll(async () => {
  sim = await openSim();
  ctl = await startController(sim, 'simulation: {trust: true, dir: SIMDIR}\nlimits: {window: 16, heldBytesPerAgent: 4194304}\n');
}, 120_000);

afterAll(async () => {
  await ctl?.controller.close();
  if (sim) rmSync(sim.dir, { recursive: true, force: true });
});

describe('hostile agent: event order', () => {
  it('a replayed later seq waits for the genuine earlier events, which are all stored (none discarded as duplicates)', async () => {
    const a = await attestedAgent(sim, ctl, 'vm-replay-later');
    const events = await Promise.all([1, 2, 3, 4, 5].map((seq) => genuine(a, seq)));
    a.send(events[0]!);
    a.send(events[1]!);
    expect((await a.next('ack')).seq).toBe(2);
    // The attack: seq 5 (a genuine, signed event, captured and replayed) before 3 and 4.
    a.send(events[4]!);
    await sleep(300);
    expect(a.inbox.filter((m) => m.type === 'ack')).toEqual([]); // not stored, not acked: it waits
    let view = await getJson(ctl, '/v1/agents/vm-replay-later');
    expect(view.lastSeq).toBe(2);
    expect(view.gapRanges).toEqual([]); // no "missing" gap was recorded for 3..4
    // The genuine 3 and 4 arrive: they are stored, then 5 from the hold.
    a.send(events[2]!);
    a.send(events[3]!);
    let acked = 0;
    while (acked < 5) acked = (await a.next('ack')).seq;
    view = await getJson(ctl, '/v1/agents/vm-replay-later');
    expect(view.lastSeq).toBe(5);
    expect(view.gapRanges).toEqual([]);
    expect(view.recentEvents.map((e: { seq: number; data: unknown }) => [e.seq, e.data])).toEqual([5, 4, 3, 2, 1].map((s) => [s, { n: s }]));
    expect(view.alarms).toBe(0);
    a.close();
  }, 60_000);

  it('a conflicting duplicate (another event under a stored seq) is an alarm: logged, counted, recorded, persisted, and not acked', async () => {
    const a = await attestedAgent(sim, ctl, 'vm-conflict');
    for (const seq of [1, 2, 3]) a.send(await genuine(a, seq));
    let acked = 0;
    while (acked < 3) acked = (await a.next('ack')).seq;
    // Same seq 2, different content, validly signed by the attested key (a compromised or buggy writer).
    const other = await genuine(a, 2, { n: 'not what was stored' });
    a.send(other);
    const err = await a.next('error');
    expect(err.code).toBe('event-conflict');
    expect(err.message).toMatch(/event 2 conflicts .*signed by an attested key/);
    await sleep(200);
    expect(a.inbox.filter((m) => m.type === 'ack')).toEqual([]); // an alarm, not an ack
    // A byte-identical resend of what was stored is still a plain duplicate, acked.
    a.send(await genuine(a, 2));
    expect((await a.next('ack')).seq).toBe(3);

    const view = await getJson(ctl, '/v1/agents/vm-conflict');
    expect(view.alarms).toBe(1);
    expect(view.alarmList).toEqual([expect.objectContaining({ seq: 2, code: 'event-conflict' })]);
    expect(view.recentEvents.find((e: { seq: number }) => e.seq === 2).data).toEqual({ n: 2 }); // the stored event is untouched
    expect(ctl.logLines.some((l) => l.includes('"level":50') && l.includes('ALARM: event 2 conflicts'))).toBe(true);
    const onDisk = (await storedRecord(ctl.stateDir, 'vm-conflict'))!;
    expect(onDisk.alarmCount).toBe(1);
    expect(onDisk.alarms?.[0]).toMatchObject({ seq: 2, code: 'event-conflict' });
    a.close();
  }, 60_000);

  it('an event with no RFC 8785 form (a lone surrogate) is refused as unsigned; the link and the stream go on', async () => {
    const a = await attestedAgent(sim, ctl, 'vm-surrogate');
    const genuineOne = await genuine(a, 1);
    // JSON carries "\udead" happily; JCS (RFC 8785 section 3.2.2.2) cannot canonicalise it, so it was never signed.
    a.send({ ...genuineOne, data: { n: '\udead' } });
    const err = await a.next('error');
    expect(err).toMatchObject({ code: 'bad-event-signature' });
    expect(err.message).toMatch(/event 1 rejected/);
    a.send(genuineOne);
    expect((await a.next('ack')).seq).toBe(1);
    expect((await getJson(ctl, '/v1/agents/vm-surrogate')).lastSeq).toBe(1);
    a.close();
  }, 60_000);

  it('a hole is passed only by a validly signed dropped event; a tampered declaration moves nothing', async () => {
    const a = await attestedAgent(sim, ctl, 'vm-declared');
    a.send(await genuine(a, 1));
    expect((await a.next('ack')).seq).toBe(1);
    const five = await genuine(a, 5);
    const declaration = await genuine(a, 6, { from: 2, to: 4, count: 3 }, 'dropped');
    a.send(five); // waits: 2..4 are neither here nor declared
    a.send({ ...declaration, data: { from: 2, to: 5, count: 4 } }); // tampered: the signature no longer covers it
    expect(await a.next('error')).toMatchObject({ code: 'bad-event-signature' });
    await sleep(200);
    expect(a.inbox.filter((m) => m.type === 'ack')).toEqual([]);
    expect((await getJson(ctl, '/v1/agents/vm-declared')).lastSeq).toBe(1);
    // The genuine declaration, sent ahead of its place as the agent does: 2..4 become a declared gap,
    // then 5 is stored from the hold; the declaration itself is stored when it comes in its own place.
    a.send(declaration);
    let acked = 0;
    while (acked < 5) acked = (await a.next('ack')).seq;
    expect(acked).toBe(5);
    a.send(declaration);
    expect((await a.next('ack')).seq).toBe(6);
    const view = await getJson(ctl, '/v1/agents/vm-declared');
    expect(view.lastSeq).toBe(6);
    expect(view.gapRanges).toEqual([{ from: 2, to: 4, reason: 'dropped-by-agent' }]);
    expect(view.recentEvents.map((e: { seq: number }) => e.seq)).toEqual([6, 5, 1]);
    a.close();
  }, 60_000);

  it('what was stored is acked before the controller closes the link (here: the agent overran its window)', async () => {
    const a = await attestedAgent(sim, ctl, 'vm-acked-before-close');
    // One burst: five genuine events (stored, their ack batched behind the queue), then far-ahead
    // events beyond the 4 MiB this controller holds per agent.
    const burst = await Promise.all([1, 2, 3, 4, 5].map((seq) => genuine(a, seq)));
    for (const e of burst) a.send(e);
    for (let i = 0; i < 6; i++) a.send(bulky(1000 + i, 1_000_000));
    const closed = await a.waitClosed();
    expect(closed.code).toBe(CLOSE.POLICY);
    expect(closed.reason).toMatch(/window/);
    const acks = a.inbox.filter((m) => m.type === 'ack').map((m) => (m as { seq: number }).seq);
    expect(Math.max(0, ...acks)).toBe(5);
    expect((await storedRecord(ctl.stateDir, 'vm-acked-before-close'))?.lastSeq).toBe(5);
    await until(() => ctl.controller.heldBudget.used === 0, 5000, 'the held bytes to go back with the link');
  }, 60_000);
});
