import { register as globalRegistry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { buildEar, type Ear } from '../../../agent/appraise/ear.js';
import { AgentMetrics } from '../../../agent/daemon/agent-metrics.js';
import { fail, pass, resultOf, warn } from '../../../agent/formats/checks.js';
import { packageVersion } from '../../../agent/util/package-version.js';
import { buildCommit } from '../../../agent/util/build-info.js';
import { packageRoot } from '../../../agent/native/addon-loader.js';

/** What `cvm-agent --version` says: in a checkout, the commit of HEAD. */
const COMMIT = buildCommit(packageRoot());

/** Prometheus text exposition -> { 'name{a="x",b="y"}': value }, checking every line's syntax. */
function parseExposition(body: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of body.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('#')) {
      expect(line, 'comment line').toMatch(/^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+$/);
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? (\S+)$/.exec(line);
    expect(m, `sample line: ${line}`).not.toBeNull();
    samples.set(`${m![1]}${m![2] ?? ''}`, Number(m![3]!.replace(/^Nan$/, 'NaN')));
  }
  return samples;
}

async function scrape(m: AgentMetrics): Promise<Map<string, number>> {
  const { contentType, body } = await m.render();
  expect(contentType).toMatch(/^text\/plain; version=0\.0\.4/);
  return parseExposition(body);
}

function ear(devices: Record<string, 'ok' | 'warn' | 'fail'>, simulated = false): Ear {
  return buildEar(
    Object.entries(devices).map(([id, v]) => ({
      id,
      policyId: 'p',
      result: resultOf(
        [v === 'ok' ? pass('x.signature', 'ok') : v === 'warn' ? warn('x.revocation', 'CRL not checked') : fail('x.tcb', 'TCB too old')],
        {},
        simulated,
      ),
    })),
    { at: new Date(0), build: 't' },
  );
}

describe('AgentMetrics', () => {
  it('starts with explicit zeros, the standard process and Node.js metrics, build info, and nothing in the global registry', async () => {
    const metrics = new AgentMetrics();
    // prom-client counts process CPU from when the metrics were created: spend some, so the counter
    // cannot legitimately read 0 (it did on a fast scrape, with getrusage's tick granularity).
    // Measured in CPU time, not wall time: on a loaded machine 30 ms of wall time can be no CPU at all.
    const cpu0 = process.cpuUsage();
    while (process.cpuUsage(cpu0).user < 30_000) Math.sqrt(Math.random());
    const s = await scrape(metrics);
    expect(s.get('cvm_attestation_cycles_total{result="affirming"}')).toBe(0);
    expect(s.get('cvm_attestation_cycles_total{result="error"}')).toBe(0);
    expect(s.get('cvm_last_success_timestamp_seconds')).toBe(0);
    expect(s.get('cvm_gpu_ready_state')).toBe(0);
    expect(s.get('cvm_controller_link_up')).toBe(0);
    // prom-client's names, not renamed: what Node.js dashboards and alerts expect.
    expect(s.get('process_cpu_user_seconds_total')).toBeGreaterThan(0);
    expect(s.get('process_resident_memory_bytes')).toBeGreaterThan(0);
    expect(s.get('process_start_time_seconds')).toBeGreaterThan(0);
    expect([...s.keys()].some((k) => k.startsWith('nodejs_heap_size_used_bytes'))).toBe(true);
    expect(s.get(`cvm_agent_build_info{version="${packageVersion()}",commit="${COMMIT}",node="${process.version}"}`)).toBe(1);
    // Only our own series carry the cvm_ prefix; nothing else is invented.
    expect([...s.keys()].every((k) => /^(cvm_|process_|nodejs_)/.test(k))).toBe(true);
    // A gauge named like a counter is what `promtool check metrics` reports.
    expect([...s.keys()].filter((k) => /^nodejs_active_\w+_total/.test(k))).toEqual([]);
    expect(globalRegistry.getSingleMetric('cvm_attestation_cycles_total')).toBeUndefined();
  });

  it('recordCycle moves counters, histogram, device status and last success', async () => {
    const m = new AgentMetrics({ defaultMetrics: false, now: () => 1_700_000_123_456 });
    m.recordCycle(ear({ cpu0: 'ok', gpu0: 'ok', gpu1: 'ok' }, true), 2.2, true);
    let s = await scrape(m);
    expect(s.get('cvm_attestation_cycles_total{result="affirming"}')).toBe(1);
    expect(s.get('cvm_attestation_cycle_duration_seconds_count{result="affirming"}')).toBe(1);
    expect(s.get('cvm_attestation_cycle_duration_seconds_sum{result="affirming"}')).toBeCloseTo(2.2);
    expect(s.get('cvm_attestation_cycle_duration_seconds_bucket{le="1",result="affirming"}')).toBe(0);
    expect(s.get('cvm_attestation_cycle_duration_seconds_bucket{le="2.5",result="affirming"}')).toBe(1);
    expect(s.get('cvm_attestation_cycle_duration_seconds_bucket{le="+Inf",result="affirming"}')).toBe(1);
    expect(s.get('cvm_last_success_timestamp_seconds')).toBe(1_700_000_123);
    expect(s.get('cvm_simulated')).toBe(1);
    for (const d of ['cpu0', 'gpu0', 'gpu1']) {
      expect(s.get(`cvm_device_status{device="${d}",status="affirming"}`)).toBe(1);
      expect(s.get(`cvm_device_status{device="${d}",status="contraindicated"}`)).toBe(0);
    }

    // A contraindicated cycle: the failing GPU flips, the last success time stays, gpu1 is gone.
    m.recordCycle(ear({ cpu0: 'warn', gpu0: 'fail' }), 0.3, false);
    s = await scrape(m);
    expect(s.get('cvm_attestation_cycles_total{result="contraindicated"}')).toBe(1);
    expect(s.get('cvm_attestation_cycles_total{result="affirming"}')).toBe(1);
    expect(s.get('cvm_device_status{device="cpu0",status="warning"}')).toBe(1);
    expect(s.get('cvm_device_status{device="cpu0",status="affirming"}')).toBe(0);
    expect(s.get('cvm_device_status{device="gpu0",status="contraindicated"}')).toBe(1);
    expect([...s.keys()].some((k) => k.includes('device="gpu1"'))).toBe(false);
    expect(s.get('cvm_last_success_timestamp_seconds')).toBe(1_700_000_123);
    expect(s.get('cvm_simulated')).toBe(0);

    // A cycle that failed without an EAR: counted as error, known devices fall to "none".
    m.recordCycle(null, 60, false);
    s = await scrape(m);
    expect(s.get('cvm_attestation_cycles_total{result="error"}')).toBe(1);
    expect(s.get('cvm_attestation_cycle_duration_seconds_bucket{le="60",result="error"}')).toBe(1);
    expect(s.get('cvm_device_status{device="cpu0",status="none"}')).toBe(1);
    expect(s.get('cvm_device_status{device="cpu0",status="warning"}')).toBe(0);
    expect(s.get('cvm_device_status{device="gpu0",status="none"}')).toBe(1);
  });

  it('gauges for GPU ready state, controller link and collateral staleness; bad label values are dropped', async () => {
    const m = new AgentMetrics({ defaultMetrics: false });
    m.setGpuReady(true);
    m.setLinkUp(true);
    m.setCollateralStale('vcek', false);
    m.setCollateralStale('crl', true);
    m.setCollateralStale('x"} 1\ninjected', true);
    m.recordCycle(ear({ cpu0: 'ok' }), Number.NaN, true);
    let s = await scrape(m);
    expect(s.get('cvm_gpu_ready_state')).toBe(1);
    expect(s.get('cvm_controller_link_up')).toBe(1);
    expect(s.get('cvm_collateral_stale{kind="vcek"}')).toBe(0);
    expect(s.get('cvm_collateral_stale{kind="crl"}')).toBe(1);
    expect([...s.keys()].filter((k) => k.startsWith('cvm_collateral_stale'))).toHaveLength(2);
    // NaN duration: the cycle counts, the histogram is not poisoned.
    expect(s.get('cvm_attestation_cycles_total{result="affirming"}')).toBe(1);
    expect(s.get('cvm_attestation_cycle_duration_seconds_count{result="affirming"}')).toBeUndefined();
    m.setGpuReady(false);
    m.setLinkUp(false);
    s = await scrape(m);
    expect(s.get('cvm_gpu_ready_state')).toBe(0);
    expect(s.get('cvm_controller_link_up')).toBe(0);
  });

  it('two agents in one process keep separate registries', async () => {
    const a = new AgentMetrics({ defaultMetrics: false });
    const b = new AgentMetrics({ defaultMetrics: false });
    a.recordCycle(ear({ cpu0: 'ok' }), 1, true);
    expect((await scrape(a)).get('cvm_attestation_cycles_total{result="affirming"}')).toBe(1);
    expect((await scrape(b)).get('cvm_attestation_cycles_total{result="affirming"}')).toBe(0);
  });
});
