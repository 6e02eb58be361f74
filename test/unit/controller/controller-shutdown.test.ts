/**
 * Shutdown must not wait on peers: an agent that upgraded to WebSocket and then went silent (no
 * close handshake, no pong) is cut when the controller closes, so restarts stay fast.
 */
import { describe, expect, it } from 'vitest';
import { connect } from 'node:net';
import { randomBytes } from 'node:crypto';
import { openSim, startController, TOKEN } from '../../helpers/controller-fixture.js';
import { PROTOCOL } from '../../../agent/link/protocol.js';

describe('controller shutdown', () => {
  it('closes within seconds although a connected peer never answers the close handshake', async () => {
    const sim = await openSim();
    const ctl = await startController(sim, 'simulation: {trust: true, dir: SIMDIR}\n');
    const { port } = ctl.controller.address();
    const socket = connect(port, '127.0.0.1');
    const upgraded = new Promise<string>((resolve) => socket.once('data', (d: Buffer) => resolve(d.toString('latin1'))));
    socket.write(
      [
        'GET /v1/link HTTP/1.1',
        `Host: 127.0.0.1:${port}`,
        'Upgrade: websocket',
        'Connection: Upgrade',
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
        'Sec-WebSocket-Version: 13',
        `Sec-WebSocket-Protocol: ${PROTOCOL}`,
        `Authorization: Bearer ${TOKEN}`,
        '',
        '',
      ].join('\r\n'),
    );
    expect(await upgraded).toMatch(/^HTTP\/1\.1 101/);
    // The peer now ignores everything (it never sends hello, a pong or a close frame).
    const t0 = Date.now();
    await ctl.controller.close();
    expect(Date.now() - t0).toBeLessThan(5000);
    socket.destroy();
  }, 30_000);
});
