/**
 * Truthful device state. Observed before: a missing device counted as "contraindicated" in metrics,
 * CC off on a GPU was reported under cpu0, and the GPU ready state in status was inferred from the
 * agent's intent, not read. Here the fake driver changes under a running agent:
 * - a GPU vanishes: "error" for that GPU (EAR status none + cvm.error), not contraindicated;
 * - the library cannot enumerate: every GPU is "error", cpu0 still attested on its own;
 * - the ready state cannot be read: status says unknown (null, with the reason), metrics NaN;
 * - the driver refuses to clear the ready state (one-way): the action is recorded as failed and
 *   status keeps showing the GPUs as accepting work, because that is what the driver says.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { startAgent, until, type AgentFixture } from '../helpers/trust-fixture.js';

const metric = (text: string, series: string) => {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
};

describe('device and library failures are errors, attributed to the device', () => {
  let agent: AgentFixture;
  const ready = () => readFileSync(agent.readyFile, 'utf8').trim();
  const attest = async () => (await agent.api('POST', '/v1/attest', {})).json();
  const metrics = async () => (await agent.api('GET', '/metrics')).body.toString();

  beforeAll(async () => {
    agent = await startAgent();
    await until('the first cycle', () => agent.daemon.logs.some((l) => typeof l.cycle === 'string'), 90_000);
    await until('the driver ready', () => ready() === '1');
  }, 120_000);

  afterAll(async () => {
    await agent?.stop();
  });

  it('a GPU the driver no longer lists is an error under that GPU, not contraindicated', async () => {
    agent.setHardware({ FAKE_NVML_GPUS: '1' });
    const r = await attest();
    expect(r.ok).toBe(false);
    expect(r.ear.submods.cpu0['ear.status']).toBe('affirming');
    expect(r.ear.submods.gpu0['ear.status']).toBe('affirming');
    expect(r.ear.submods.gpu1['ear.status']).toBe('none');
    expect(r.ear.submods.gpu1['cvm.error'].code).toBe('ERR_GPU_MISSING');
    expect(r.ear['ear.status']).toBe('none'); // never "affirming" with a device unaccounted for
    const m = await metrics();
    expect(metric(m, 'cvm_device_status{device="gpu1",status="error"}')).toBe(1);
    expect(metric(m, 'cvm_device_status{device="gpu1",status="contraindicated"}')).toBe(0);
    expect(metric(m, 'cvm_attestation_cycles_total{result="error"}')).toBeGreaterThanOrEqual(1);
    const status = (await agent.api('GET', '/v1/status')).json();
    expect(status.lastAttestation.status).toBe('error');
    expect(status.lastAttestation.devices.gpu1.status).toBe('error');
    expect(status.lastAttestation.devices.gpu1.error.code).toBe('ERR_GPU_MISSING');
    const health = (await agent.api('GET', '/v1/health')).json();
    expect(health.status).toBe('failing');
    expect(health.reasons.join('\n')).toMatch(/gpu1: error \(ERR_GPU_MISSING\)/);
    await until('the ready state cleared', () => ready() === '0');
  }, 60_000);

  it('NVML failing to enumerate: every GPU is an error, cpu0 keeps its own verdict', async () => {
    agent.setHardware({ FAKE_NVML_FAIL: 'nvmlDeviceGetCount_v2:9' });
    const r = await attest();
    expect(r.ear.submods.cpu0['ear.status']).toBe('affirming');
    for (const g of ['gpu0', 'gpu1']) {
      expect(r.ear.submods[g]['ear.status']).toBe('none');
      expect(r.ear.submods[g]['cvm.checks'][0].name).toBe('gpu.enumerate');
      expect(r.ear.submods[g]['cvm.error'].message).toMatch(/Driver Not Loaded|NVML_ERROR_DRIVER_NOT_LOADED/);
    }
    const m = await metrics();
    expect(metric(m, 'cvm_device_status{device="gpu0",status="error"}')).toBe(1);
    expect(metric(m, 'cvm_device_status{device="cpu0",status="affirming"}')).toBe(1);
  }, 60_000);

  it('an unreadable ready state is shown as unknown, never guessed', async () => {
    agent.setHardware({ FAKE_NVML_FAIL: 'nvmlSystemGetConfComputeGpusReadyState:15' });
    const r = await attest();
    expect(r.ok).toBe(true);
    expect(r.gpuReadyRead.ready).toBeNull();
    const status = (await agent.api('GET', '/v1/status')).json();
    expect(status.gpus.readyState).toBeNull();
    expect(status.gpus.readError).toMatch(/GPU is lost|GPU_IS_LOST/);
    expect(metric(await metrics(), 'cvm_gpu_ready_state')).toBeNaN();
    agent.setHardware({});
    expect((await attest()).ok).toBe(true);
    expect(ready()).toBe('1');
    expect((await agent.api('GET', '/v1/status')).json().gpus.readyState).toBe(true);
  }, 60_000);

  it('a driver that will not clear the ready state: the failure is recorded and status says the GPUs still accept work', async () => {
    agent.setHardware({ FAKE_NVML_READY_ONE_WAY: '1', FAKE_NVML_CC_1: 'off' });
    const r = await attest();
    expect(r.ok).toBe(false);
    await until('the failed clear recorded', () => agent.daemon.logs.some((l) => l.action === 'clear-gpu-ready' && l.outcome === 'failed'));
    const failed = agent.daemon.logs.find((l) => l.action === 'clear-gpu-ready' && l.outcome === 'failed')!;
    expect(String(failed.detail)).toMatch(/driver refused to clear the GPU ready state .*keep accepting new work until the VM reboots/);
    expect(ready()).toBe('1');
    const status = (await agent.api('GET', '/v1/status')).json();
    expect(status.gpus.readyState).toBe(true); // the truth, even though the agent wanted it cleared
    expect(status.trust.trusted).toBe(false);
    const m = await metrics();
    expect(metric(m, 'cvm_trust_actions_total{trigger="cycleFailed",action="clear-gpu-ready",phase="apply",outcome="failed"}')).toBe(1);
    expect(metric(m, 'cvm_gpu_ready_state')).toBe(1);
  }, 60_000);
});
