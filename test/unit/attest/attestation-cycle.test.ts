import { beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AttestationCycle, MAX_QUEUED_CYCLES, type AttestationCycleDeps } from '../../../agent/attest/attestation-cycle.js';
import { openSimulation, type Simulation } from '../../../agent/simulation/open.js';
import { verifyBundle } from '../../../agent/attest/verify-bundle.js';
import { parseBundle } from '../../../agent/formats/evidence-bundle.js';
import type { GpuEvidence, GpuSource } from '../../../agent/evidence/gpu-nvml.js';
import type { PublicJwk } from '../../../agent/formats/nonce-binding.js';

let sim: Simulation;
const teePubKey = generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey.export({ format: 'jwk' }) as PublicJwk;

beforeAll(async () => {
  sim = await openSimulation(mkdtempSync(join(tmpdir(), 'cvm-attestor-')), 2);
}, 120_000);

/** Wraps the simulated GPUs so a test can break one mid-life and record ready-state writes. */
class FlakyGpus implements GpuSource {
  breakIndex: number | undefined;
  delayMs = 0;
  readyWrites: boolean[] = [];
  ready = false;
  constructor(private inner: GpuSource) {}
  list() {
    return this.inner.list();
  }
  systemState() {
    return this.inner.systemState();
  }
  async collect(nonce: Uint8Array): Promise<GpuEvidence[]> {
    if (this.delayMs) await new Promise((r) => setTimeout(r, this.delayMs));
    const ev = await this.inner.collect(nonce);
    if (this.breakIndex !== undefined) {
      const g = ev[this.breakIndex]!;
      g.report = Buffer.from(g.report);
      g.report[g.report.length - 10]! ^= 0x01; // signature byte: the GPU's evidence no longer verifies
    }
    return ev;
  }
  async getReadyState() {
    return this.ready;
  }
  async setReadyState(v: boolean) {
    this.readyWrites.push(v);
    this.ready = v;
  }
}

function deps(gpus: GpuSource, over: Partial<AttestationCycleDeps> = {}): AttestationCycleDeps {
  return {
    teePubKey,
    agentId: 'attestor-test',
    cpu: sim.cpu,
    gpus,
    verify: (bundle, at) => verifyBundle(bundle, { at, ...sim.verifyOptions(at) }),
    setReadyState: true,
    stepTimeoutMs: 30_000,
    build: 'test',
    ...over,
  };
}

describe('AttestationCycle', () => {
  it('attests CPU and GPUs bound to one nonce, then sets the ready state', async () => {
    const gpus = new FlakyGpus(sim.gpus!);
    const a = new AttestationCycle(deps(gpus));
    const r = await a.run({ reason: 'cli', nonce: Buffer.alloc(32, 9) });
    expect(r.ok).toBe(true);
    expect(r.simulated).toBe(true);
    expect(Object.keys(r.ear.submods)).toEqual(['cpu0', 'gpu0', 'gpu1']);
    expect(r.nonce).toBe('09'.repeat(32));
    expect(gpus.readyWrites).toEqual([true]);
    // The bundle verifies on its own with the same nonce (what a remote verifier does) ...
    const bundle = parseBundle(r.bundle);
    expect(verifyBundle(bundle, { at: new Date(), expectedNonce: Buffer.alloc(32, 9), ...sim.verifyOptions(new Date()) }).ok).toBe(true);
    // ... and not against another nonce: the binding fails for every device.
    const wrong = verifyBundle(bundle, { at: new Date(), expectedNonce: Buffer.alloc(32, 8), ...sim.verifyOptions(new Date()) });
    expect(wrong.ok).toBe(false);
    for (const d of wrong.devices) expect(d.result.checks.find((c) => c.name === 'binding.nonce')?.ok).toBe(false);
  });

  it('a GPU failing mid-life degrades the result with the reason, keeps the ready state unset, and recovers', async () => {
    const gpus = new FlakyGpus(sim.gpus!);
    const a = new AttestationCycle(deps(gpus));
    gpus.breakIndex = 1;
    const bad = await a.run({ reason: 'schedule' });
    expect(bad.ok).toBe(false);
    expect(bad.status).toBe('contraindicated');
    expect(bad.ear.submods.gpu1!['ear.status']).toBe('contraindicated');
    expect(bad.ear.submods.gpu0!['ear.status']).not.toBe('contraindicated');
    expect(bad.ear.submods.gpu1!['cvm.checks'].some((c) => c.name === 'gpu.signature' && !c.ok)).toBe(true);
    expect(bad.gpuReady.set).toBe(false);
    expect(bad.gpuReady.reason).toMatch(/GPU 1/);
    expect(gpus.readyWrites).toEqual([]);
    gpus.breakIndex = undefined;
    const good = await a.run({ reason: 'retry' });
    expect(good.ok).toBe(true);
    expect(gpus.readyWrites).toEqual([true]);
    expect(a.last()?.id).toBe(good.id);
  });

  it('never sets the ready state when the CPU fails, even if every GPU passes', async () => {
    const gpus = new FlakyGpus(sim.gpus!);
    const failingCpu = {
      source: 'simulated' as const,
      simulated: true,
      collect: async () => {
        throw new Error('sev-guest: EIO');
      },
    };
    const r = await new AttestationCycle(deps(gpus, { cpu: failingCpu })).run({ reason: 'cli' });
    expect(r.ok).toBe(false);
    expect(r.error).toContain('EIO');
    expect(r.ear.submods.cpu0!['cvm.checks'][0]!.name).toBe('cpu.collect');
    expect(r.ear.submods.cpu0!['ear.status']).toBe('none');
    expect(r.ear.submods.cpu0!['cvm.error']?.message).toContain('EIO');
    expect(gpus.readyWrites).toEqual([]);
  });

  it('shares a running cycle with callers that bring no nonce, and queues callers that do', async () => {
    const gpus = new FlakyGpus(sim.gpus!);
    gpus.delayMs = 200;
    const a = new AttestationCycle(deps(gpus));
    const p1 = a.run({ reason: 'schedule' });
    const p2 = a.run({ reason: 'api' });
    const p3 = a.run({ reason: 'api', nonce: Buffer.alloc(16, 1) });
    const [r1, r2, r3] = await Promise.all([p1, p2, p3]);
    expect(r2.id).toBe(r1.id);
    expect(r3.id).not.toBe(r1.id);
    expect(r3.nonce).toBe('01'.repeat(16));
    expect(Date.parse(r3.startedAt)).toBeGreaterThanOrEqual(Date.parse(r1.finishedAt));
  });

  it('refuses nonce-bound requests beyond the queue bound with a typed error instead of queueing without limit', async () => {
    const gpus = new FlakyGpus(sim.gpus!);
    gpus.delayMs = 100;
    const a = new AttestationCycle(deps(gpus));
    const accepted = Array.from({ length: MAX_QUEUED_CYCLES }, (_, i) => a.run({ reason: 'api', nonce: Buffer.alloc(16, i + 1) }));
    await expect(a.run({ reason: 'api', nonce: Buffer.alloc(16, 99) })).rejects.toMatchObject({ code: 'ERR_BUSY' });
    const results = await Promise.all(accepted);
    expect(results.every((r) => r.ok)).toBe(true);
    expect((await a.run({ reason: 'api', nonce: Buffer.alloc(16, 100) })).ok).toBe(true);
  });

  it('times out a step that hangs and reports which one', async () => {
    const gpus = new FlakyGpus(sim.gpus!);
    gpus.delayMs = 2000;
    const r = await new AttestationCycle(deps(gpus, { stepTimeoutMs: 100 })).run({ reason: 'cli' });
    expect(r.ok).toBe(false);
    expect(r.error).toBe('GPU evidence collection did not finish within 100 ms');
  });
});
