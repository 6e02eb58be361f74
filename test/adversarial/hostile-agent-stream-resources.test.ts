/**
 * A hostile agent against the controller's resources (issue 9, item 7): with one valid credential it
 * tries to make the controller keep unbounded memory or disk:
 *  - 150 events of ~1 MiB that can never be stored (seqs far ahead): held bytes are capped per agent
 *    (the link is closed once the agent overruns its announced window) and over all links (1013);
 *  - many agent ids on one credential: refused beyond limits.agentsPerCredential; ids that never
 *    produced verified evidence are never written and free their place when they disconnect;
 *  - a ~900 KB inventory: not kept, the persisted record stays small.
 * The cap is checked on the controller's own accounting of held bytes after every event it handled.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { CLOSE } from '../../agent/link/protocol.js';
import { EventStream } from '../../agent/controller/event-stream.js';
import { tokenCredentialLabel } from '../../agent/controller/controller-server.js';
import { FakeAgent, makeBundle, openSim, startController, TOKEN, type ControllerUnderTest, type Sim } from '../helpers/controller-fixture.js';
import { attestedAgent, bulky, getJson, until, wsUrl } from './stream-fixture.js';
import { storedAgentIds, storedRecordBytes } from '../helpers/test-store.js';

const MiB = 1024 * 1024;
let sim: Sim;
const started: ControllerUnderTest[] = [];

beforeAll(async () => {
  sim = await openSim();
}, 60_000);

afterAll(async () => {
  for (const c of started) await c.controller.close();
  if (sim) rmSync(sim.dir, { recursive: true, force: true });
});

async function controller(yaml: string): Promise<ControllerUnderTest> {
  const c = await startController(sim, `simulation: {trust: true, dir: SIMDIR}\n${yaml}`);
  started.push(c);
  return c;
}

/** The controller's held bytes, sampled after every event any link handled (the peak is what matters). */
function watchHeld(c: ControllerUnderTest): { peak: number } {
  const w = { peak: 0 };
  const proto = EventStream.prototype as unknown as { receive: (...a: unknown[]) => Promise<unknown> };
  const orig = proto.receive;
  proto.receive = async function (this: EventStream, ...args: unknown[]) {
    const r = await orig.apply(this, args);
    w.peak = Math.max(w.peak, c.controller.heldBudget.used);
    return r;
  };
  afterAll(() => {
    proto.receive = orig;
  });
  return w;
}

describe('hostile agent: controller resources', () => {
  it('150 x ~1 MiB events that can never be stored: held bytes stay under the per-agent cap, the link is closed (1008), the bytes are released', async () => {
    const c = await controller('');
    const held = watchHeld(c);
    const a = await attestedAgent(sim, c, 'vm-hoarder');
    let sent = 0;
    for (let i = 0; i < 150 && !a.closed; i++) {
      a.send(bulky(1_000_000 + i, 1_000_000));
      sent++;
      // Let the socket drain a little so the agent sees the close instead of buffering 150 MiB itself.
      if (i % 8 === 7) await new Promise((r) => setTimeout(r, 20));
    }
    const closed = await a.waitClosed();
    expect(closed.code).toBe(CLOSE.POLICY);
    expect(closed.reason).toMatch(/unacknowledged: respect welcome.window/);
    expect(sent).toBeGreaterThan(8);
    // Never more than the announced 8 MiB held for this agent, though ~150 MiB could have been sent.
    expect(held.peak).toBeGreaterThan(6 * MiB);
    expect(held.peak).toBeLessThanOrEqual(8 * MiB);
    await until(() => c.controller.heldBudget.used === 0, 5000, 'held bytes released');
    // The controller still serves.
    expect((await getJson(c, '/v1/agents')).agents.some((x: { id: string }) => x.id === 'vm-hoarder')).toBe(true);
  }, 60_000);

  it('held bytes over all links are capped too: the link that would pass heldBytesTotal is closed with 1013 (try again later)', async () => {
    const c = await controller('limits: {heldBytesPerAgent: 4194304, heldBytesTotal: 6291456}\n');
    const held = watchHeld(c);
    const a = await attestedAgent(sim, c, 'vm-hold-a');
    const b = await attestedAgent(sim, c, 'vm-hold-b');
    for (let i = 0; i < 3; i++) a.send(bulky(5000 + i, 1_000_000));
    await until(() => c.controller.heldBudget.used >= 2_900_000, 10_000, 'a holds ~3 MB');
    for (let i = 0; i < 4; i++) b.send(bulky(5000 + i, 1_000_000));
    const closed = await b.waitClosed();
    expect(closed.code).toBe(CLOSE.TRY_AGAIN_LATER);
    expect(held.peak).toBeLessThanOrEqual(6 * MiB);
    expect(a.closed).toBeUndefined(); // only the link that would overflow the total is closed
    a.close();
    await until(() => c.controller.heldBudget.used === 0, 5000, 'held bytes released');
  }, 60_000);

  it('many agent ids on one credential: refused beyond limits.agentsPerCredential; unverified ids are never written and free their place', async () => {
    const c = await controller('limits: {agentsPerCredential: 3}\n');
    const hello = async (id: string) => {
      const a = await FakeAgent.connect(wsUrl(c));
      a.hello(id);
      return a;
    };
    const ids = ['id-1', 'id-2', 'id-3'];
    const agents = await Promise.all(ids.map(hello));
    for (const a of agents) await a.next('welcome');
    const fourth = await hello('id-4');
    const refused = await fourth.waitClosed();
    expect(refused.code).toBe(CLOSE.FORBIDDEN);
    expect(refused.reason).toMatch(/limits\.agentsPerCredential/);
    // Another credential (a token bound to its own id) is counted separately.
    const bound = await FakeAgent.connect(wsUrl(c), { token: 'bound-token' });
    bound.hello('bound-agent');
    await bound.next('welcome');
    bound.close();

    // Evidence that does not verify: a verdict, but the id stays unproven (nothing written).
    const ch = await agents[0]!.next('challenge');
    await agents[0]!.answer(ch, {
      version: 1,
      agentId: 'id-1',
      nonce: ch.nonce,
      teePubKey: agents[0]!.key.publicJwk,
      simulated: true,
      cpu: { kind: 'snp', report: 1 },
      gpus: [],
    });
    await agents[0]!.next('verdict');
    expect((await storedAgentIds(c.stateDir)).filter((f) => f.startsWith('id-'))).toEqual([]);

    // An unverified id that disconnects frees its place and leaves nothing behind.
    agents[0]!.close();
    await until(() => !c.controller.registry.has('id-1'), 5000, 'id-1 forgotten');
    expect((await getJson(c, '/v1/agents')).agents.map((x: { id: string }) => x.id)).not.toContain('id-1');
    const again = await hello('id-4');
    await again.next('welcome');

    // A verified id keeps its place (its record is written): with id-2 attested and everyone gone,
    // the credential still speaks for id-2, so only two new ids fit.
    agents[1]!.close();
    await until(() => !c.controller.registry.has('id-2'), 5000, 'id-2 forgotten');
    const proven = await attestedAgent(sim, c, 'id-2');
    for (const a of [proven, agents[2]!, again]) a.close();
    await until(() => c.controller.registry.idsFor(tokenCredentialLabel(TOKEN)) === 1, 5000, 'only the proven id left');
    expect((await storedAgentIds(c.stateDir)).filter((f) => f.startsWith('id-'))).toEqual(['id-2']);
    const n1 = await hello('new-1');
    const n2 = await hello('new-2');
    await n1.next('welcome');
    await n2.next('welcome');
    const n3 = await hello('new-3');
    expect((await n3.waitClosed()).code).toBe(CLOSE.FORBIDDEN);
    n1.close();
    n2.close();
  }, 60_000);

  it('a ~900 KB inventory is not kept: the record says so and stays small on disk', async () => {
    const c = await controller('');
    const a = await FakeAgent.connect(wsUrl(c));
    const inventory = Object.fromEntries(Array.from({ length: 250 }, (_, i) => [`k${i}`, 'x'.repeat(3600)]));
    a.send({
      type: 'hello',
      agentId: 'vm-inventory',
      version: 'test',
      protocol: { min: 1, max: 1 },
      teePubKey: a.key.publicJwk,
      inventory,
      capabilities: [],
      resumeFrom: 1,
    });
    await a.next('welcome');
    const view = await getJson(c, '/v1/agents/vm-inventory');
    expect(view.inventory).toEqual({ omitted: expect.stringMatching(/inventory of \d+ bytes is over the 16384-byte limit/) });
    // Once attested the record is written: it stays small.
    const ch = await a.next('challenge');
    a.agentId = 'vm-inventory'; // said in the raw hello above: what the evidence proof signs
    await a.answer(ch, await makeBundle(sim, Buffer.from(ch.nonce, 'hex'), a.key.publicJwk, 'vm-inventory'));
    await a.next('verdict');
    await until(async () => (await storedRecordBytes(c.stateDir, 'vm-inventory')) !== undefined, 5000, 'record written');
    expect(await storedRecordBytes(c.stateDir, 'vm-inventory')).toBeLessThan(64 * 1024);
    a.close();
  }, 60_000);
});
