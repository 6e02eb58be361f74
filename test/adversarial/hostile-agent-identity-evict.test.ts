/**
 * A hostile agent tries to take over another agent's session on the REAL reference controller: a
 * second hello for a connected id must not evict the first unless it proves the same identity — a
 * credential bound to the id like the first one's and, once the first session is attested, a key
 * attested for the agent in the new session. Fleet tokens never evict. Issue 9, item 2.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { tokenDigest } from '../../agent/controller/config.js';
import { signEvent } from '../../agent/link/events.js';
import { CLOSE } from '../../agent/link/protocol.js';
import { until } from './stream-fixture.js';
import {
  attestNext,
  connectAs,
  FakeAgent,
  makeBundle,
  openSim,
  sendEventsAcked,
  startController,
  TOKEN,
  type ControllerUnderTest,
  type Sim,
} from '../helpers/controller-fixture.js';

const bound = [
  'agents:',
  '  tokens:',
  `    - {agentId: vm-a, sha256: ${tokenDigest('token-a').toString('hex')}}`,
  `    - {agentId: vm-b, sha256: ${tokenDigest('token-b').toString('hex')}}`,
  `    - {agentId: vm-c, sha256: ${tokenDigest('token-c').toString('hex')}}`,
  `    - {agentId: vm-d, sha256: ${tokenDigest('token-d').toString('hex')}}`,
  `    - {agentId: vm-e, sha256: ${tokenDigest('token-e').toString('hex')}}`,
  'secrets:',
  '  - {name: vm-a-key, value: only-for-vm-a, agents: [vm-a]}',
  '',
].join('\n');

let sim: Sim;
let fleetCtl: ControllerUnderTest;
let boundCtl: ControllerUnderTest;

beforeAll(async () => {
  sim = await openSim();
  fleetCtl = await startController(sim, 'simulation: {trust: true, dir: SIMDIR}\n');
  boundCtl = await startController(sim, 'simulation: {trust: true, dir: SIMDIR}\n', undefined, bound);
}, 120_000);

afterAll(async () => {
  await Promise.all([fleetCtl, boundCtl].map((c) => c?.controller.close()));
  if (sim) rmSync(sim.dir, { recursive: true, force: true });
});

const connect = (ctl: ControllerUnderTest, agentId: string, token: string) => connectAs(ctl.controller.address().wsUrl, agentId, token);

/** The first session still works: a challenge sent to the id reaches it, and it is the connected one. */
async function stillLive(ctl: ControllerUnderTest, a: FakeAgent): Promise<void> {
  expect(a.closed).toBeUndefined();
  const c = ctl.controller.challengeNow(a.agentId)!;
  expect(c).toBeDefined();
  // (An earlier, unanswered challenge may still be queued ahead of it.)
  let got = await a.next('challenge');
  while (got.id !== c.id) got = await a.next('challenge');
  expect(got.id).toBe(c.id);
  const view = (await (await fetch(`${ctl.controller.address().url}/v1/agents/${a.agentId}`)).json()) as { connected: boolean };
  expect(view.connected).toBe(true);
}

describe("hostile agent: evicting another agent's session", () => {
  it('with a fleet token: a second hello for an attested id is refused (4003) and the first session keeps running', async () => {
    const a = await connect(fleetCtl, 'vm-f', TOKEN);
    await a.next('welcome');
    await attestNext(sim, a);
    const b = await connect(fleetCtl, 'vm-f', TOKEN);
    const closed = await b.waitClosed(20_000);
    expect(closed.code).toBe(CLOSE.FORBIDDEN);
    expect(b.inbox.find((m) => m.type === 'error')).toMatchObject({ code: 'agent-connected' });
    expect(b.inbox.some((m) => m.type === 'welcome')).toBe(false);
    await stillLive(fleetCtl, a);
    a.close();
  }, 60_000);

  it('with a fleet token: even a not yet attested session is not evicted', async () => {
    const a = await connect(fleetCtl, 'vm-g', TOKEN);
    await a.next('welcome');
    const b = await connect(fleetCtl, 'vm-g', TOKEN);
    expect((await b.waitClosed(20_000)).code).toBe(CLOSE.FORBIDDEN);
    await stillLive(fleetCtl, a);
    a.close();
  }, 60_000);

  it("with another agent's bound token: refused at once (4003), the first session keeps running", async () => {
    const a = await connect(boundCtl, 'vm-a', 'token-a');
    await a.next('welcome');
    await attestNext(sim, a);
    const b = await connect(boundCtl, 'vm-a', 'token-b');
    expect((await b.waitClosed()).code).toBe(CLOSE.FORBIDDEN);
    expect(b.inbox.find((m) => m.type === 'error')).toMatchObject({ code: 'forbidden' });
    await stillLive(boundCtl, a);
    a.close();
  }, 60_000);

  it('with the same bound token but no attested key (a stolen credential): the contender gets no slot, no secret, and its events wait', async () => {
    const a = await connect(boundCtl, 'vm-c', 'token-c');
    await a.next('welcome');
    await attestNext(sim, a);
    const b = await connect(boundCtl, 'vm-c', 'token-c');
    await b.next('welcome'); // a contender: it may try to attest
    const c = await b.next('challenge');
    // Evidence that does not verify (a flipped report byte): contraindicated, so no eviction.
    const bundle = await makeBundle(sim, Buffer.from(c.nonce, 'hex'), b.key.publicJwk, 'vm-c');
    const cpu = bundle.cpu as { report: string };
    const report = Buffer.from(cpu.report, 'base64');
    report[0x90]! ^= 1;
    cpu.report = report.toString('base64');
    await b.answer(c, bundle);
    const v = await b.next('verdict');
    expect(v.secrets).toBeUndefined();
    // Its events are not taken into the agent's stream while it is not the live session.
    b.send(await signEvent({ seq: 1, at: new Date().toISOString(), kind: 'status', data: { forged: true } }, b.key));
    await new Promise((r) => setTimeout(r, 300));
    expect(b.inbox.some((m) => m.type === 'ack')).toBe(false);
    await stillLive(boundCtl, a);
    const view = (await (await fetch(`${boundCtl.controller.address().url}/v1/agents/vm-c`)).json()) as { recentEvents: { data: unknown }[] };
    expect(view.recentEvents.some((e) => JSON.stringify(e.data).includes('forged'))).toBe(false);
    a.close();
    b.close();
  }, 60_000);

  it('control: the same bound credential that attests a key in its own session replaces the attested first session', async () => {
    const a = await connect(boundCtl, 'vm-d', 'token-d');
    await a.next('welcome');
    await attestNext(sim, a);
    const b = await connect(boundCtl, 'vm-d', 'token-d');
    await b.next('welcome');
    expect(a.closed).toBeUndefined(); // not before b proved itself
    await attestNext(sim, b);
    expect((await a.waitClosed()).code).toBe(1008);
    await stillLive(boundCtl, b);
    b.close();
  }, 60_000);

  it('a promoted contender stores the events it held (and only then), acks them, and the agent counts as disconnected once both sessions are gone', async () => {
    const a = await connect(boundCtl, 'vm-e', 'token-e');
    await a.next('welcome');
    await attestNext(sim, a);
    expect(await sendEventsAcked(a, [1, 2], 'a')).toBe(2);
    const b = await connect(boundCtl, 'vm-e', 'token-e');
    await b.next('welcome');
    // Held while b is a contender: signed by a key not attested yet, and not b's stream to store.
    const at = new Date().toISOString();
    for (const seq of [3, 4]) b.send(await signEvent({ seq, at, kind: 'status', data: { from: 'b', seq } }, b.key));
    await attestNext(sim, b);
    expect((await a.waitClosed()).code).toBe(1008);
    let ack = await b.next('ack');
    while (ack.seq < 4) ack = await b.next('ack');
    expect(ack.seq).toBe(4);
    const url = `${boundCtl.controller.address().url}/v1/agents/vm-e`;
    const view = (await (await fetch(url)).json()) as { lastSeq: number; gapRanges: unknown[]; recentEvents: { seq: number; data: { from: string } }[] };
    expect(view.lastSeq).toBe(4);
    expect(view.gapRanges).toEqual([]);
    expect(view.recentEvents.map((e) => [e.seq, e.data.from])).toEqual([
      [4, 'b'],
      [3, 'b'],
      [2, 'a'],
      [1, 'a'],
    ]);
    b.close();
    await until(() => !boundCtl.controller.registry.isConnected('vm-e'), 10_000, 'vm-e disconnected');
    expect(boundCtl.controller.heldBudget.used).toBe(0);
  }, 60_000);

  it('control: the same bound credential replaces a first session that never attested (a reconnect)', async () => {
    const a = await connect(boundCtl, 'vm-b', 'token-b');
    await a.next('welcome');
    const b = await connect(boundCtl, 'vm-b', 'token-b');
    await b.next('welcome');
    expect((await a.waitClosed()).code).toBe(1008);
    await stillLive(boundCtl, b);
    b.close();
  }, 60_000);
});
