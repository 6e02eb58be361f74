/**
 * A hostile or broken controller must never crash the agent: malformed JSON, wrong types, oversized
 * frames, floods, a peer that stops reading, a peer that never welcomes. In each case the link logs,
 * disconnects if it must, and comes back with backoff. (vitest fails the run on any unhandled error
 * or rejection, so "the process stays up" is checked by every test here.)
 */
import { describe, expect, it } from 'vitest';
import type { WebSocket } from 'ws';
import { CLOSE, MAX_MESSAGE_BYTES } from '../../../agent/link/protocol.js';
import { linkFixture, linkUp as up, resumeAtFirstGap } from '../../helpers/link-fixture.js';

const { cleanup, setup } = linkFixture();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('ControllerLink against a hostile controller', () => {
  it('ignores malformed JSON, wrong types, binary frames and unknown types, then disconnects past the budget', async () => {
    const { controller, h } = await setup();
    h.link.start();
    await controller.waitFor(up(h));
    controller.sendRaw('{"type":"challenge",');
    controller.sendRaw('[1,2,3]');
    controller.send({ type: 'challenge', id: 5, nonce: 'zz', expiresAt: 'never' });
    controller.sendRaw(Buffer.from([0xde, 0xad, 0xbe, 0xef]));
    controller.send({ type: 'reboot', now: true });
    controller.send({ type: 'attest' });
    await controller.waitFor(() => h.calls.attests === 1, 5000, 'attest after garbage');
    let s = h.link.status();
    expect(s.state).toBe('up');
    expect(s.counters).toMatchObject({ malformed: 4, unknown: 1 });
    expect(controller.hellos).toHaveLength(1);
    expect(h.logs.some((l) => l.msg.includes('malformed message ignored'))).toBe(true);
    expect(h.logs.some((l) => l.msg.includes('unknown message type'))).toBe(true);
    // Two more malformed messages exceed the budget of 5: the agent closes 1002 and reconnects.
    controller.sendRaw('nope');
    controller.sendRaw('{"type":"ack","seq":"1"}');
    await controller.waitFor(() => controller.hellos.length >= 2 && h.link.status().state === 'up', 5000, 'reconnect');
    expect(controller.closes[0]!.code).toBe(CLOSE.PROTOCOL_ERROR);
    s = h.link.status();
    expect(s.counters.disconnects).toBe(1);
  });

  it('a 10 MB message is cut off by maxPayload (1009) and the agent reconnects', async () => {
    const { controller, h } = await setup();
    h.link.start();
    await controller.waitFor(up(h));
    controller.sendRaw(JSON.stringify({ type: 'error', code: 'x', message: 'A'.repeat(10 * 1024 * 1024) }));
    await controller.waitFor(() => controller.closes.length >= 1, 5000, 'close');
    expect(controller.closes[0]!.code).toBe(CLOSE.TOO_BIG);
    await controller.waitFor(() => controller.hellos.length >= 2 && h.link.status().state === 'up', 5000, 'reconnect');
    expect(h.link.status().counters.disconnects).toBe(1);
    // Just under the limit but over the schema's bounds: a malformed message, not a disconnect.
    controller.sendRaw(JSON.stringify({ type: 'error', code: 'x', message: 'A'.repeat(MAX_MESSAGE_BYTES - 100) }));
    controller.send({ type: 'attest' });
    await controller.waitFor(() => h.calls.attests === 1, 5000, 'still serving');
    expect(h.link.status().counters.disconnects).toBe(1);
  });

  it('a flood of 10,000 messages trips the rate limit (1008); the agent reconnects and keeps its outbox', async () => {
    const { controller, h } = await setup();
    await h.outbox.append('status', { before: 'flood' });
    h.link.start();
    await controller.waitFor(() => controller.events.length === 1, 5000, 'first event');
    const ws = controller.current!;
    for (let i = 0; i < 10_000; i++) controller.send({ type: 'ack', seq: 0 }, ws);
    await controller.waitFor(() => controller.closes.length >= 1, 5000, 'close');
    expect(controller.closes[0]!.code).toBe(CLOSE.POLICY);
    await controller.waitFor(() => controller.hellos.length >= 2 && h.link.status().state === 'up', 5000, 'reconnect');
    expect(h.link.status().lastError).toBeUndefined();
    // Unacked event is resent on the new connection.
    await controller.waitFor(() => controller.events.length === 2, 5000, 'resend');
    expect(controller.events[1]!.seq).toBe(1);
    // A flood of challenges is answered with "busy" beyond the concurrency limit, not by N cycles at once.
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    (h.link as unknown as { o: { handlers: { onChallenge: unknown } } }).o.handlers.onChallenge = async () => {
      await gate;
      return { bundle: {}, localResult: {} };
    };
    for (let i = 0; i < 20; i++)
      controller.send({ type: 'challenge', id: `c${i}`, nonce: 'ab'.repeat(16), expiresAt: new Date(Date.now() + 60_000).toISOString() });
    await controller.waitFor(() => controller.received.filter((m) => m.type === 'error' && m.code === 'busy').length === 18, 5000, 'busy answers');
    release();
  });

  it('a slow reader: sending stops at the high watermark, the dead peer is detected by ping, then everything is delivered', async () => {
    const { controller, h } = await setup({ heartbeatSec: 1 });
    resumeAtFirstGap(controller);
    // The events are in the outbox before the link starts: appending 30 fsync'd 200 KiB events took
    // up to 3.5 s on a loaded machine, past the 2 s after which the stalled link is cut (below), so
    // the stall could no longer be seen. The dead-peer check starts only when the link is up.
    const blob = 'x'.repeat(200 * 1024);
    const total = 30;
    for (let i = 1; i <= total; i++) await h.outbox.append('status', { i, blob });
    // The controller stops reading from its TCP socket on the first connection, from its hello on.
    controller.opts.onHello = (_hello, ws) => {
      if (controller.hellos.length === 1) (ws as WebSocket & { _socket: { pause(): void } })._socket.pause();
    };
    let maxBuffered = 0;
    const sampler = setInterval(() => {
      maxBuffered = Math.max(maxBuffered, h.link.status().bufferedAmount);
    }, 5);
    cleanup.push(async () => clearInterval(sampler));
    h.link.start();
    await controller.waitFor(up(h));
    await sleep(200);
    const stalled = h.link.status();
    expect(stalled.state).toBe('up');
    expect(stalled.counters.eventsSent).toBeLessThan(total);
    // Never more than the watermark plus one event in the agent's own buffer.
    expect(maxBuffered).toBeGreaterThan(512 * 1024);
    expect(maxBuffered).toBeLessThanOrEqual(1024 * 1024 + 600 * 1024);
    // No pong for 2 heartbeats: terminated and reconnected; the new connection reads normally.
    await controller.waitFor(() => controller.hellos.length >= 2, 8000, 'reconnect after dead peer');
    expect(h.logs.some((l) => /did not answer pings/.test(JSON.stringify(l.fields)))).toBe(true);
    await controller.waitFor(() => controller.uniqueSeqs().length === total, 10_000, 'all delivered');
    expect(controller.uniqueSeqs()).toEqual([...Array(total).keys()].map((i) => i + 1));
    clearInterval(sampler);
  });

  it('a controller that never welcomes is dropped after the handshake timeout (4002) and retried', async () => {
    const { controller, h } = await setup({ silent: true }, { handshakeTimeoutMs: 300 });
    h.link.start();
    await controller.waitFor(() => controller.hellos.length >= 2, 5000, 'retry');
    expect(controller.closes[0]!.code).toBe(CLOSE.HANDSHAKE_TIMEOUT);
    expect(h.link.status().lastError ?? '').toMatch(/no welcome|4002/);
  });

  it('a message before welcome, or a second welcome, is a protocol error', async () => {
    const { controller, h } = await setup({
      silent: true,
      onHello: (_h, ws) => {
        const n = controller.hellos.length;
        if (n === 1) ws.send(JSON.stringify({ type: 'attest' }));
        else {
          ws.send(JSON.stringify({ type: 'welcome', protocol: 1, heartbeatSec: 30 }));
          ws.send(JSON.stringify({ type: 'welcome', protocol: 1, heartbeatSec: 30 }));
        }
      },
    });
    h.link.start();
    await controller.waitFor(() => controller.closes.length >= 2, 5000, 'two closes');
    expect(controller.closes.map((c) => c.code).slice(0, 2)).toEqual([CLOSE.PROTOCOL_ERROR, CLOSE.PROTOCOL_ERROR]);
    expect(controller.closes[0]!.reason).toMatch(/before welcome/);
    expect(controller.closes[1]!.reason).toMatch(/second welcome/);
    expect(h.calls.attests).toBe(0);
  });

  it('stop() closes cleanly and schedules nothing', async () => {
    const { controller, h } = await setup();
    h.link.start();
    await controller.waitFor(up(h));
    await h.link.stop();
    expect(h.link.status().state).toBe('stopped');
    expect(h.link.status().reconnectIn).toBeUndefined();
    await controller.waitFor(() => controller.closes.length === 1, 3000, 'close');
    expect(controller.closes[0]!.code).toBe(CLOSE.GOING_AWAY);
    await sleep(200);
    expect(controller.hellos).toHaveLength(1);
    expect(() => h.link.start()).toThrow(/stopped/);
  });
});
