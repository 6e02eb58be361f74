/** The GPU ready-state gate with an in-memory source: it writes only when every expected GPU passed. */
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { applyGpuReadyState, type ReadyStateTarget } from '../../../agent/attest/apply-gpu-ready.js';
import { readyStateBlocker, type GpuVerdict } from '../../../agent/appraise/gpu-ready-decision.js';
import { DeviceError } from '../../../agent/errors.js';

class FakeTarget implements ReadyStateTarget {
  writes: boolean[] = [];
  constructor(
    public ready = false,
    private failSet?: Error,
    private failGet?: Error,
  ) {}
  async getReadyState(): Promise<boolean> {
    if (this.failGet) throw this.failGet;
    return this.ready;
  }
  async setReadyState(ready: boolean): Promise<void> {
    if (this.failSet) throw this.failSet;
    this.writes.push(ready);
    this.ready = ready;
  }
}

const all = (n: number, ok = true): GpuVerdict[] => Array.from({ length: n }, (_, index) => ({ index, ok }));

describe('applyGpuReadyState', () => {
  it('all GPUs passed: writes true exactly once', async () => {
    const t = new FakeTarget();
    const r = await applyGpuReadyState(t, all(8), 8);
    expect(r).toMatchObject({ set: true, wrote: true });
    expect(t.writes).toEqual([true]);
  });

  it('one GPU failed: no write, and the reason names it with its detail', async () => {
    const t = new FakeTarget();
    const verdicts = all(4);
    verdicts[2] = { index: 2, ok: false, detail: 'nonce mismatch' };
    const r = await applyGpuReadyState(t, verdicts, 4);
    expect(r).toMatchObject({ set: false, wrote: false });
    expect(r.reason).toContain('GPU 2 (nonce mismatch)');
    expect(t.writes).toEqual([]);
  });

  it('fewer verdicts than GPUs: no write', async () => {
    const t = new FakeTarget();
    const r = await applyGpuReadyState(t, all(3), 4);
    expect(r.set).toBe(false);
    expect(r.reason).toMatch(/3 GPU verdict\(s\) for 4 GPU\(s\)/);
    expect(t.writes).toEqual([]);
  });

  it('duplicate or out-of-range indices: no write even if every verdict is ok', async () => {
    const t = new FakeTarget();
    expect(
      (
        await applyGpuReadyState(
          t,
          [
            { index: 0, ok: true },
            { index: 0, ok: true },
          ],
          2,
        )
      ).reason,
    ).toContain('two verdicts for GPU 0');
    expect(
      (
        await applyGpuReadyState(
          t,
          [
            { index: 0, ok: true },
            { index: 2, ok: true },
          ],
          2,
        )
      ).reason,
    ).toContain('unknown GPU index 2');
    expect((await applyGpuReadyState(t, [{ index: 0.5, ok: true }], 1)).set).toBe(false);
    expect(t.writes).toEqual([]);
  });

  it('zero or invalid expected count: never sets', async () => {
    const t = new FakeTarget();
    expect((await applyGpuReadyState(t, [], 0)).set).toBe(false);
    expect((await applyGpuReadyState(t, all(1), Number.NaN)).set).toBe(false);
    expect(t.writes).toEqual([]);
  });

  it('a truthy non-boolean ok does not count as a pass', async () => {
    const t = new FakeTarget();
    const r = await applyGpuReadyState(t, [{ index: 0, ok: 1 as unknown as boolean }], 1);
    expect(r.set).toBe(false);
    expect(t.writes).toEqual([]);
  });

  it('already ready: reports set without writing again', async () => {
    const t = new FakeTarget(true);
    const r = await applyGpuReadyState(t, all(2), 2);
    expect(r).toMatchObject({ set: true, wrote: false });
    expect(t.writes).toEqual([]);
  });

  it('failing verdicts never clear a flag that is already set (it may be one-way)', async () => {
    const t = new FakeTarget(true);
    const r = await applyGpuReadyState(t, all(2, false), 2);
    expect(r.set).toBe(false);
    expect(t.writes).toEqual([]);
  });

  it('device errors on read or write are returned with the error, not thrown', async () => {
    const denied = new DeviceError('ERR_NVML', 'no permission', { nvmlReturn: 4 });
    const r = await applyGpuReadyState(new FakeTarget(false, denied), all(1), 1);
    expect(r).toMatchObject({ set: false, wrote: false, error: denied });
    const r2 = await applyGpuReadyState(new FakeTarget(false, undefined, denied), all(1), 1);
    expect(r2.set).toBe(false);
    expect(r2.reason).toContain('no permission');
  });

  it('property: it writes iff the verdicts are a passing permutation of 0..n-1', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 8 }),
        fc.array(fc.record({ index: fc.integer({ min: -1, max: 9 }), ok: fc.boolean() }), { maxLength: 10 }),
        async (expected, verdicts) => {
          const t = new FakeTarget();
          const r = await applyGpuReadyState(t, verdicts, expected);
          const indices = verdicts.map((v) => v.index).sort((a, b) => a - b);
          const valid = expected >= 1 && indices.length === expected && indices.every((x, i) => x === i) && verdicts.every((v) => v.ok);
          expect(r.set).toBe(valid);
          expect(t.writes).toEqual(valid ? [true] : []);
          expect(readyStateBlocker(verdicts, expected) === undefined).toBe(valid);
        },
      ),
      { numRuns: 2000 },
    );
  });
});
