/** SnpDeviceCollector's JS-side rules (serialisation, VMPCK latch, input checks) with an injected binding. */
import { describe, it, expect } from 'vitest';
import { SnpDeviceCollector } from '../../../agent/evidence/snp-device.js';
import type { SnpDeviceBinding } from '../../../agent/native/snp.js';
import { DeviceError, UsageError } from '../../../agent/errors.js';

function fakeBinding(behaviour: (call: number) => 'ok' | 'enotty' | 'eio') {
  const calls: { data: Buffer; vmpl: number }[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const go = async (data: Uint8Array, vmpl: number) => {
    const n = calls.length;
    calls.push({ data: Buffer.from(data), vmpl });
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    await new Promise((r) => setTimeout(r, 5));
    inFlight--;
    const b = behaviour(n);
    if (b === 'enotty') throw new DeviceError('ERR_SNP_VMPCK_DISABLED', 'VMPCK disabled, reboot required');
    if (b === 'eio') throw new DeviceError('ERR_SNP_FIRMWARE', 'firmware');
    const report = Buffer.alloc(1184);
    Buffer.from(data).copy(report, 0x50);
    return report;
  };
  const binding: SnpDeviceBinding = {
    getReport: (_p, d, v) => go(d, v),
    getExtReport: async (_p, d, v) => ({ report: await go(d, v), certs: Buffer.alloc(0) }),
  };
  return { binding, calls, maxInFlight: () => maxInFlight };
}

describe('SnpDeviceCollector', () => {
  it('runs one request at a time, in order', async () => {
    const f = fakeBinding(() => 'ok');
    const a = new SnpDeviceCollector({ binding: f.binding });
    const results = await Promise.all([1, 2, 3, 4, 5].map((n) => a.getReport(Buffer.alloc(64, n))));
    expect(f.maxInFlight()).toBe(1);
    expect(f.calls.map((c) => c.data[0])).toEqual([1, 2, 3, 4, 5]);
    results.forEach((r, i) => expect(r.report[0x50]).toBe(i + 1));
  });

  it('a failure does not block later requests (except the VMPCK latch)', async () => {
    const f = fakeBinding((n) => (n === 0 ? 'eio' : 'ok'));
    const a = new SnpDeviceCollector({ binding: f.binding });
    const [first, second] = await Promise.allSettled([a.getReport(Buffer.alloc(64)), a.getReport(Buffer.alloc(64, 9))]);
    expect(first.status).toBe('rejected');
    expect(second.status).toBe('fulfilled');
    expect(a.vmpckDisabled).toBe(false);
  });

  it('latches after ERR_SNP_VMPCK_DISABLED, also for requests already queued', async () => {
    const f = fakeBinding(() => 'enotty');
    const a = new SnpDeviceCollector({ binding: f.binding });
    const settled = await Promise.allSettled([a.getReport(Buffer.alloc(64)), a.getExtReport(Buffer.alloc(64)), a.getReport(Buffer.alloc(64))]);
    expect(f.calls).toHaveLength(1);
    for (const s of settled) {
      expect(s.status).toBe('rejected');
      expect((s as PromiseRejectedResult).reason.code).toBe('ERR_SNP_VMPCK_DISABLED');
    }
    expect(((settled[1] as PromiseRejectedResult).reason as DeviceError).details.latched).toBe(true);
    await expect(a.getReport(Buffer.alloc(64))).rejects.toThrow(/VMPCK disabled, reboot required/);
    expect(f.calls).toHaveLength(1);
  });

  it('copies the report data so later mutation cannot change a queued request', async () => {
    const f = fakeBinding(() => 'ok');
    const a = new SnpDeviceCollector({ binding: f.binding });
    const buf = Buffer.alloc(64, 1);
    const p1 = a.getReport(Buffer.alloc(64, 7));
    const p2 = a.getReport(buf);
    buf.fill(2);
    await Promise.all([p1, p2]);
    expect(f.calls[1]!.data[0]).toBe(1);
  });

  it('rejects bad inputs with UsageError and never calls the device', async () => {
    const f = fakeBinding(() => 'ok');
    const a = new SnpDeviceCollector({ binding: f.binding });
    await expect(a.getReport(Buffer.alloc(32))).rejects.toBeInstanceOf(UsageError);
    await expect(a.getReport(Buffer.alloc(65))).rejects.toBeInstanceOf(UsageError);
    await expect(a.getReport('x'.repeat(64) as never)).rejects.toBeInstanceOf(UsageError);
    await expect(a.getReport(Buffer.alloc(64), 4)).rejects.toBeInstanceOf(UsageError);
    await expect(a.getExtReport(Buffer.alloc(64), 1.5)).rejects.toBeInstanceOf(UsageError);
    await expect(a.getReport(Buffer.alloc(64), -1)).rejects.toBeInstanceOf(UsageError);
    expect(f.calls).toHaveLength(0);
  });

  it('defaults to /dev/sev-guest', () => {
    expect(new SnpDeviceCollector({ binding: fakeBinding(() => 'ok').binding }).devicePath).toBe('/dev/sev-guest');
  });
});
