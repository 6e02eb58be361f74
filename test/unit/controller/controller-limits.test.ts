/**
 * The controller's flow-control and resource limits (docs/controller.md): defaults, bounds, and the
 * cross-check that the total hold is at least one agent's.
 */
import { describe, expect, it } from 'vitest';
import { CONTROLLER_DEFAULTS, parseControllerConfig } from '../../../agent/controller/config.js';
import { MAX_MESSAGE_BYTES } from '../../../agent/link/protocol.js';

describe('controller config: flow-control and resource limits', () => {
  it('defaults: a window of 256 events, 8 MiB held per agent, 256 MiB in all, 1000 ids per credential, 1000 events/s', () => {
    const cfg = parseControllerConfig('', 'test');
    expect(cfg.limits).toEqual({ ...CONTROLLER_DEFAULTS.limits });
    expect(cfg.limits).toMatchObject({
      window: 256,
      heldBytesPerAgent: 8 * 1024 * 1024,
      heldBytesTotal: 256 * 1024 * 1024,
      agentsPerCredential: 1000,
      eventsPerSec: 1000,
    });
  });

  it('takes each limit and keeps the others at their defaults', () => {
    const cfg = parseControllerConfig('limits: {window: 16, heldBytesPerAgent: 2097152, agentsPerCredential: 3}\n', 'test');
    expect(cfg.limits).toMatchObject({
      window: 16,
      heldBytesPerAgent: 2097152,
      agentsPerCredential: 3,
      heldBytesTotal: CONTROLLER_DEFAULTS.limits.heldBytesTotal,
      messagesPerSec: 20,
    });
  });

  it("refuses a per-agent hold that cannot take one message, a total below one agent's, and a window of 0", () => {
    expect(() => parseControllerConfig(`limits: {heldBytesPerAgent: ${MAX_MESSAGE_BYTES - 1}}\n`, 'test')).toThrow(/limits\.heldBytesPerAgent/);
    expect(() => parseControllerConfig('limits: {heldBytesPerAgent: 4194304, heldBytesTotal: 2097152}\n', 'test')).toThrow(
      /limits\.heldBytesTotal: must be at least limits\.heldBytesPerAgent/,
    );
    expect(() => parseControllerConfig('limits: {window: 0}\n', 'test')).toThrow(/limits\.window/);
    expect(() => parseControllerConfig('limits: {agentsPerCredential: 0}\n', 'test')).toThrow(/limits\.agentsPerCredential/);
  });
});
