/**
 * Shared setup for the hostile-agent-stream tests: the REAL reference controller on loopback (via
 * test/helpers/controller-fixture.ts) and a fake agent that attests its key with simulated evidence, so
 * its signed events are accepted, then misbehaves on purpose.
 */
import { signEvent } from '../../agent/link/events.js';
import type { EventKind, EventMessage } from '../../agent/link/protocol.js';
import { FakeAgent, makeBundle, type ControllerUnderTest, type Sim } from '../helpers/controller-fixture.js';

export const wsUrl = (c: ControllerUnderTest) => c.controller.address().wsUrl;

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function getJson(c: ControllerUnderTest, path: string): Promise<any> {
  const res = await fetch(`${c.controller.address().url}${path}`);
  return res.json();
}

/** A fake agent whose key the controller has attested (hello, challenge, simulated evidence, verdict). */
export async function attestedAgent(sim: Sim, c: ControllerUnderTest, agentId: string, opts: { token?: string } = {}): Promise<FakeAgent> {
  const a = await FakeAgent.connect(wsUrl(c), opts);
  a.hello(agentId);
  await a.next('welcome');
  const ch = await a.next('challenge');
  await a.answer(ch, await makeBundle(sim, Buffer.from(ch.nonce, 'hex'), a.key.publicJwk, agentId));
  await a.next('verdict');
  return a;
}

/** A genuine event, signed by the agent's key (a fixed `at` per seq, so signing twice gives the same event). */
export function genuine(a: FakeAgent, seq: number, data: Record<string, unknown> = { n: seq }, kind: EventKind = 'status'): Promise<EventMessage> {
  return signEvent({ seq, at: new Date(1_700_000_000_000 + seq * 1000).toISOString(), kind, data }, a.key);
}

/**
 * An event message of about `bytes` on the wire that passes the schema (its signature is never
 * checked while it is held, so it can be junk): what a hostile agent uses to fill memory.
 */
export function bulky(seq: number, bytes: number): EventMessage {
  return { type: 'event', seq, at: new Date().toISOString(), kind: 'status', data: {}, sig: `eyJ${'A'.repeat(bytes - 200)}.x.y` };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function until(pred: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}
