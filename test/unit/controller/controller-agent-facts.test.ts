import { describe, expect, it } from 'vitest';
import { eventsStored, gpuCountOf, gpuReadyFromEvent } from '../../../agent/controller/agent-facts.js';
import { AgentRegistry } from '../../../agent/controller/registry.js';

const at = '2025-01-01T00:00:00.000Z';

describe('controller agent facts (fleet view)', () => {
  it('reads the GPU ready state from gpu-ready and attestation events only, and only a boolean', () => {
    expect(gpuReadyFromEvent({ seq: 3, at, kind: 'gpu-ready', data: { ready: false, reason: 'GPU 1 failed' } })).toEqual({
      ready: false,
      at,
      seq: 3,
      reason: 'GPU 1 failed',
    });
    expect(gpuReadyFromEvent({ seq: 4, at, kind: 'attestation', data: { gpuReady: true, reason: 'schedule' } })).toEqual({ ready: true, at, seq: 4 });
    expect(gpuReadyFromEvent({ seq: 5, at, kind: 'status', data: { ready: true } })).toBeUndefined();
    expect(gpuReadyFromEvent({ seq: 6, at, kind: 'gpu-ready', data: { ready: 'yes' } })).toBeUndefined();
    expect(gpuReadyFromEvent({ seq: 7, at, kind: 'gpu-ready', data: null })).toBeUndefined();
    expect(gpuReadyFromEvent({ seq: 8, at, kind: 'gpu-ready', data: { ready: true, reason: 'x'.repeat(5000) } })?.reason).toHaveLength(256);
  });

  it('counts GPUs from the bundle when recorded, else from the gpuN devices of the verdict; null without a verdict', () => {
    expect(gpuCountOf(undefined)).toBeNull();
    expect(gpuCountOf({ gpuCount: 0, devices: { cpu0: 'affirming' } })).toBe(0);
    expect(gpuCountOf({ devices: { cpu0: 'affirming', gpu0: 'warning', gpu1: 'warning', bundle: 'none' } })).toBe(2);
  });

  it('counts stored events as the seqs accounted for less the gap ranges', () => {
    expect(eventsStored(0, [])).toBe(0);
    expect(eventsStored(10, [{ from: 2, to: 4 }])).toBe(7);
    expect(
      eventsStored(10, [
        { from: 2, to: 4 },
        { from: 9, to: 10 },
      ]),
    ).toBe(5);
  });

  it('the registry keeps the newest reported ready state past recentEvents, and summarises what the page shows', () => {
    const r = new AgentRegistry(undefined);
    const now = new Date(at);
    r.recordEvent('a', { seq: 1, at, kind: 'gpu-ready', data: { ready: true, reason: 'ok' } }, now);
    for (let seq = 2; seq <= 80; seq++) r.recordEvent('a', { seq, at, kind: 'status', data: {} }, now);
    r.declareGap('a', 85, 'dropped-by-agent', undefined);
    r.get('a').version = '1.2.3';
    expect(r.get('a').recentEvents.some((e) => e.kind === 'gpu-ready')).toBe(false);
    expect(r.summary(r.get('a'))).toMatchObject({
      version: '1.2.3',
      teeKind: null,
      gpus: null,
      gpuReady: { ready: true, seq: 1, reason: 'ok' },
      tokenExpiresAt: null,
      lastSeq: 85,
      gaps: 1,
      eventsStored: 80,
    });
    // A later attestation event that reports the GPUs not ready replaces it.
    r.recordEvent('a', { seq: 86, at, kind: 'attestation', data: { gpuReady: false } }, now);
    expect(r.summary(r.get('a')).gpuReady).toEqual({ ready: false, at, seq: 86 });
  });
});
