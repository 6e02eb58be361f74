/**
 * The load driver of bench/controller-scale.bench.ts at a tiny N, so the benchmark cannot rot
 * silently: the reference controller in its own process (test/helpers/scale-controller.ts), three
 * protocol-level agents in a child process (test/helpers/protocol-agents.ts) with their own keys and
 * real signed simulated evidence (1 SNP + 8 GPUs each), verdicts driven by controller challenges.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SimulatedSnpDevice } from '../../agent/simulation/snp-sim.js';
import { loadOrCreateSimGpuIdentity } from '../../agent/simulation/gpu-sim.js';
import { AgentProcesses } from '../helpers/protocol-agents.js';
import { driveAtRate, driveVerdicts, ScaleController, waitCounts } from '../helpers/scale-controller.js';

const TOKEN = 'scale-test-token-0123456789';
const N = 3;

describe('controller scale driver (3 protocol-level agents, controller in a child process)', () => {
  let dir: string;
  let ctl: ScaleController;
  let fleet: AgentProcesses;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ctl-scale-test-'));
    const simDir = join(dir, 'sim');
    await SimulatedSnpDevice.open(simDir);
    await loadOrCreateSimGpuIdentity(simDir, 16); // two 8-GPU machines
    ctl = await ScaleController.start({ dir: join(dir, 'ctl'), simDir, token: TOKEN, maxConnections: 10 });
    fleet = await AgentProcesses.start({ urls: [ctl.wsUrl], token: TOKEN, simDir, count: N, processes: 1, verifyTokens: true, idPrefix: 'tiny-' });
  }, 60_000);

  afterAll(async () => {
    await fleet?.close();
    await ctl?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('connects every agent, answers the connect-time challenge, and gets an affirming, verifiable verdict each', async () => {
    await fleet.connect();
    const c = await waitCounts(fleet, (x) => x.verdicts >= N, 30_000, 'first verdicts');
    expect(c.up).toBe(N);
    expect(c.welcomes).toBe(N);
    expect(c.challenges).toBe(N);
    expect(c.evidenceSent).toBe(N);
    expect(c.verdicts).toBe(N);
    expect(c.byStatus).toEqual({ affirming: N });
    expect(c.badTokens).toBe(0);
    expect(c.errors).toEqual({});
    expect(ctl.nofile()).toBeGreaterThanOrEqual(1024);
    expect(fleet.ids).toEqual(['tiny-00000', 'tiny-00001', 'tiny-00002']);
    expect(await fleet.upIds()).toEqual(fleet.ids);
  });

  it('drives further verdicts on demand and counts them, with the controller CPU that went into them', async () => {
    const r = await driveVerdicts(ctl, fleet, [...fleet.ids, ...fleet.ids], { inFlight: 2 });
    expect(r.verdicts).toBe(2 * N);
    expect(r.byStatus).toEqual({ affirming: 2 * N });
    expect(r.controllerCpuSec).toBeGreaterThan(0);
    expect(r.agentsCpuSec).toBeGreaterThan(0);
    const rate = await driveAtRate(ctl, fleet, fleet.ids, 4, 1, 0);
    expect(rate.issued).toBe(4);
    expect(rate.verdicts).toBe(4);
    expect(rate.byStatus).toEqual({ affirming: 4 });
    expect(rate.utilisation).toBeGreaterThan(0);
    // The controller recorded them: each agent's last verdict is affirming, from its own key.
    const fleetView = await ctl.getJson<{ agents: Array<{ id: string; status: string; gpus: number; simulated: boolean }> }>('/v1/agents');
    expect(fleetView.agents.map((a) => a.id).sort()).toEqual(fleet.ids);
    for (const a of fleetView.agents) expect([a.status, a.gpus, a.simulated]).toEqual(['affirming', 8, true]);
    const counts = await fleet.counts();
    expect(counts.verdicts).toBe(N + 2 * N + 4);
    expect(counts.badTokens).toBe(0);
  });

  it('a challenge left unanswered yields no verdict; an agent that is not connected cannot be challenged', async () => {
    await fleet.setAnswering(false);
    const before = await fleet.counts();
    expect(await ctl.challenge([fleet.ids[0]!, 'tiny-99999'])).toBe(1);
    await waitCounts(fleet, (x) => x.challenges === before.challenges + 1, 10_000, 'the challenge');
    await new Promise((r) => setTimeout(r, 300));
    expect((await fleet.counts()).verdicts).toBe(before.verdicts);
    await fleet.setAnswering(true);
    await expect(driveVerdicts(ctl, fleet, ['tiny-99999'], { timeoutMs: 2000 })).rejects.toThrow(/could be challenged/);
  });

  it('sends signed events from attested agents and counts their acks', async () => {
    expect(await fleet.sendEvents(2)).toBe(2 * N);
    const c = await waitCounts(fleet, (x) => x.eventsAcked >= 2 * N, 10_000, 'event acks');
    expect(c.eventsAcked).toBe(2 * N);
    expect(c.errors).toEqual({});
  });
});
