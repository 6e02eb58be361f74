/**
 * Agent-side flow control and gap declarations (docs/protocol.md "Flow control", "Gaps"), against
 * the scriptable test controller: the agent never has more than welcome.window events
 * unacknowledged (DEFAULT_WINDOW when none is announced), and it sends the signed `dropped` event
 * that declares a hole BEFORE the events above it, since the controller accepts only its next seq.
 */
import { describe, expect, it } from 'vitest';
import { DEFAULT_WINDOW, type EventMessage, type HelloMessage } from '../../../agent/link/protocol.js';
import { verifyEventSignature } from '../../../agent/link/events.js';
import { linkFixture, linkUp as up } from '../../helpers/link-fixture.js';

const { setup } = linkFixture();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const welcome = (extra: Record<string, unknown>) => (_h: HelloMessage) => ({ type: 'welcome', protocol: 1, heartbeatSec: 30, ...extra });

describe('ControllerLink: flow control', () => {
  it('keeps at most welcome.window events unacknowledged, and sends more as acks arrive', async () => {
    const { controller, h } = await setup({ welcome: welcome({ window: 5 }) });
    for (let i = 1; i <= 20; i++) await h.outbox.append('status', { i });
    h.link.start();
    await controller.waitFor(() => controller.events.length === 5, 5000, '5 events');
    await sleep(200);
    expect(controller.events.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(h.link.status()).toMatchObject({ inFlight: 5, window: { events: 5 } });
    controller.send({ type: 'ack', seq: 3 });
    await controller.waitFor(() => controller.events.length === 8, 5000, '3 more');
    await sleep(100);
    expect(controller.events.length).toBe(8);
    controller.send({ type: 'ack', seq: 20 }); // clamped to what was sent (8)
    // The link sends the next events before its outbox has recorded the ack (queued behind its
    // writes): wait for both sides.
    await controller.waitFor(() => controller.events.length === 13 && h.outbox.lastAcked >= 8, 5000, '5 more, and the ack recorded');
    expect(h.outbox.lastAcked).toBe(8);
    expect(controller.events.map((e) => e.seq)).toEqual([...Array(13).keys()].map((i) => i + 1));
  });

  it('bounds the bytes in flight by welcome.windowBytes', async () => {
    const { controller, h } = await setup({ welcome: welcome({ window: 100, windowBytes: 1024 * 1024 }) });
    const blob = 'x'.repeat(200 * 1024);
    for (let i = 1; i <= 10; i++) await h.outbox.append('status', { i, blob });
    // How many of these events fit in 1 MiB on the wire.
    const sizes = h.outbox.from(1).map((e) => Buffer.byteLength(JSON.stringify(e)));
    let fit = 0;
    for (let sum = 0; fit < sizes.length && sum + sizes[fit]! <= 1024 * 1024; fit++) sum += sizes[fit]!;
    expect(fit).toBeGreaterThanOrEqual(1);
    expect(fit).toBeLessThan(5);
    h.link.start();
    await controller.waitFor(() => controller.events.length >= fit, 5000, 'events');
    await sleep(200);
    expect(controller.events.length).toBe(fit);
    controller.send({ type: 'ack', seq: fit });
    await controller.waitFor(() => controller.events.length === 2 * fit, 5000, 'more after the ack');
  });

  it('without a window in welcome (an older controller) it applies DEFAULT_WINDOW', async () => {
    const { controller, h } = await setup({});
    for (let i = 1; i <= DEFAULT_WINDOW + 10; i++) await h.outbox.append('status', { i });
    h.link.start();
    await controller.waitFor(() => controller.events.length === DEFAULT_WINDOW, 5000, 'a window of events');
    await sleep(200);
    expect(controller.events.length).toBe(DEFAULT_WINDOW);
  });
});

describe('ControllerLink: holes are declared first', () => {
  it('after the bound dropped events, the dropped event that declares them goes first, then the rest in order', async () => {
    const { controller, h } = await setup({ autoAck: false, resumeFrom: () => 1 }, { maxEvents: 8 });
    for (let i = 1; i <= 12; i++) await h.outbox.append('status', { i });
    // The bound dropped the oldest unacked events and appended a signed dropped event for them.
    const live = h.outbox.from(1);
    const drop = live.find((e) => e.kind === 'dropped')!;
    expect(drop.data).toMatchObject({ from: 1 });
    h.link.start();
    await controller.waitFor(up(h));
    await controller.waitFor(() => controller.events.length >= live.length + 1, 5000, 'everything');
    const sent = controller.events;
    const k = sent.length - live.length;
    expect(k).toBeGreaterThanOrEqual(1);
    // First the declarations (out of their place), chaining from seq 1 up to the first live event...
    let covered = 0;
    for (const d of sent.slice(0, k)) {
      expect(d.kind).toBe('dropped');
      expect((d.data as { from: number }).from).toBeLessThanOrEqual(covered + 1);
      covered = Math.max(covered, (d.data as { to: number }).to);
    }
    expect(covered).toBe(live[0]!.seq - 1);
    // ...then every live event in order (the declarations again, in their own place).
    expect(sent.slice(k).map((e: EventMessage) => e.seq)).toEqual(live.map((e) => e.seq));
    expect(drop.seq).toBe(sent[0]!.seq);
  });

  it('a controller that lost events it had acknowledged gets a signed dropped event declaring them, first', async () => {
    let resume = 0;
    const { controller, h } = await setup({ resumeFrom: () => (resume ? resume : undefined) });
    for (let i = 1; i <= 6; i++) await h.outbox.append('status', { i });
    h.link.start();
    await controller.waitFor(() => controller.events.length === 6, 5000, 'six events');
    controller.send({ type: 'ack', seq: 6 });
    await controller.waitFor(() => h.outbox.lastAcked === 6, 5000, 'acked');
    // The controller's state is reset: it asks for everything from seq 1 again.
    resume = 1;
    controller.dropAll();
    await controller.waitFor(() => controller.hellos.length >= 2 && h.link.status().state === 'up', 5000, 'reconnect');
    await h.outbox.append('status', { i: 7, after: 'reset' });
    await controller.waitFor(() => controller.events.length >= 9, 5000, 'declaration and new events');
    const [declaration, ...rest] = controller.events.slice(6);
    expect(declaration!.kind).toBe('dropped');
    expect(declaration!.data).toEqual({ from: 1, to: 6, count: 6, reason: 'acknowledged earlier; no longer held by the agent' });
    expect(await verifyEventSignature(declaration!, h.key.publicJwk)).toBe(true);
    // Then the new event, and the declaration again in its own place.
    expect(declaration!.seq).toBe(8);
    expect(rest.map((e) => e.seq)).toEqual([7, 8]);
  });
});
