/**
 * A simulated HGX protected-PCIe system (8 GPUs, 4 NVSwitches; agent/simulation/switch-sim.ts, SIMULATED
 * evidence: no public sample holds a whole system) end to end: the attestation cycle collects the
 * switches with the GPUs' nonce and binds them, the bundle carries them, verifyBundle verifies them
 * (submods switch0..3 in the EAR) and checks ppcie.topology. Then one attack per test on a bundle
 * rebuilt and re-bound like a collector would, so only the attacked part fails.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AttestationCycle } from '../../../agent/attest/attestation-cycle.js';
import { openSimulation, type Simulation } from '../../../agent/simulation/open.js';
import { verifyBundle } from '../../../agent/attest/verify-bundle.js';
import { BUNDLE_VERSION, bundleToJson, parseBundle, type EvidenceBundle, type SwitchBundleEntry } from '../../../agent/formats/evidence-bundle.js';
import { cpuReportData, gpuNonce, type PublicJwk } from '../../../agent/formats/nonce-binding.js';
import { buildSimulatedSwitchReport } from '../../../agent/simulation/switch-sim.js';
import { gpuRecordOf } from '../../../agent/evidence/gpu-nvml.js';
import { buildEar } from '../../../agent/appraise/ear.js';
import { canonicalize } from '../../../agent/util/jcs.js';
import { findCheck } from '../../helpers/checks.js';

let sim: Simulation;
const teePubKey = generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey.export({ format: 'jwk' }) as PublicJwk;
const agentId = 'ppcie-test';
const NONCE = Buffer.alloc(32, 0x42);

beforeAll(async () => {
  sim = await openSimulation(mkdtempSync(join(tmpdir(), 'cvm-ppcie-')), 8, { ppcie: true });
}, 120_000);

/** A bundle collected and bound as the cycle does, with `edit` applied to the switch evidence before binding. */
async function bundleWith(edit: (switches: SwitchBundleEntry[], gpuNonceBytes: Buffer) => SwitchBundleEntry[] = (s) => s): Promise<EvidenceBundle> {
  const n = gpuNonce(NONCE, teePubKey, agentId);
  const gpus = (await sim.gpus!.collect(n)).map(gpuRecordOf);
  const switches = edit(await sim.switches!.collect(n), n);
  const cpu = await sim.cpu.collect(
    cpuReportData(
      NONCE,
      teePubKey,
      agentId,
      gpus.map((g) => g.report),
      switches.map((s) => s.report),
    ),
  );
  return { version: BUNDLE_VERSION, agentId, nonce: NONCE, teePubKey, simulated: true, cpu, gpus, switches };
}

const verify = (b: EvidenceBundle) => verifyBundle(b, { at: new Date(), expectedNonce: NONCE, ...sim.verifyOptions(new Date()) });
const failedIn = (r: ReturnType<typeof verify>) => Object.fromEntries(r.devices.map((d) => [d.id, d.result.checks.filter((c) => !c.ok).map((c) => c.name)]));

describe('a simulated HGX PPCIe system through the cycle', () => {
  it('attests CPU, 8 GPUs and 4 NVSwitches under one nonce: EAR submods switch0..3, ppcie.topology passes', async () => {
    const cycle = new AttestationCycle({
      teePubKey,
      agentId,
      cpu: sim.cpu,
      gpus: sim.gpus!,
      switches: sim.switches!,
      verify: (bundle, at) => verifyBundle(bundle, { at, ...sim.verifyOptions(at) }),
      setReadyState: false,
      stepTimeoutMs: 60_000,
      build: 'test',
    });
    const r = await cycle.run({ reason: 'cli', nonce: NONCE });
    expect(Object.keys(r.ear.submods)).toEqual(['cpu0', ...[0, 1, 2, 3, 4, 5, 6, 7].map((i) => `gpu${i}`), 'switch0', 'switch1', 'switch2', 'switch3']);
    expect(r.ok).toBe(true);
    const sw = r.ear.submods.switch2!;
    expect(sw['cvm.simulated']).toBe(true);
    expect(sw['cvm.checks'].map((c) => c.name)).toContain('switch.signature');
    expect(findCheck(sw['cvm.checks'], 'ppcie.topology')).toMatchObject({ ok: true });
    expect(findCheck(r.ear.submods.gpu5!['cvm.checks'], 'ppcie.topology')).toMatchObject({ ok: true });
    // The bundle round-trips with its switches and verifies on its own.
    const bundle = parseBundle(r.bundle);
    expect(bundle.switches).toHaveLength(4);
    expect(parseBundle(JSON.stringify(bundleToJson(bundle))).switches!.map((s) => s.index)).toEqual([0, 1, 2, 3]);
    expect(verify(bundle).ok).toBe(true);
  }, 120_000);
});

describe('binding', () => {
  it('a bundle without switches binds exactly as before switches existed', () => {
    const reports = [Buffer.from('a'), Buffer.from('b')];
    const before = createHash('sha512')
      .update(
        canonicalize({
          agentId,
          nonce: NONCE.toString('hex'),
          teePubKey: { kty: teePubKey.kty, crv: teePubKey.crv, x: teePubKey.x, y: teePubKey.y },
          gpus: reports.map((r) => createHash('sha384').update(r).digest('hex')),
        }),
      )
      .digest();
    expect(cpuReportData(NONCE, teePubKey, agentId, reports)).toEqual(before);
    expect(cpuReportData(NONCE, teePubKey, agentId, reports, [])).toEqual(before);
    expect(cpuReportData(NONCE, teePubKey, agentId, reports, [Buffer.from('s')])).not.toEqual(before);
  });

  it('a switch report swapped after binding breaks the CPU binding', async () => {
    const b = await bundleWith();
    const other = await bundleWith();
    b.switches![1] = other.switches![1]!;
    const f = failedIn(verify(b));
    expect(f.cpu0!.some((n) => /report-data|binding/.test(n))).toBe(true);
  });

  it('a switch report carrying another nonce fails switch.nonce', async () => {
    const f = failedIn(
      verify(
        await bundleWith((s) => {
          s[0] = { ...s[0]!, report: buildSimulatedSwitchReport(sim.switches!.system, 0, { nonce: Buffer.alloc(32, 1) }) };
          return s;
        }),
      ),
    );
    expect(f.switch0).toEqual(['switch.nonce']);
    expect(f.cpu0).toEqual([]);
  });
});

describe('hostile PPCIe topologies (ppcie.topology fails on every GPU and switch)', () => {
  it('a switch claims a GPU that is not present', async () => {
    const sys = sim.switches!.system;
    const r = verify(
      await bundleWith((s, n) => {
        const gpuPdis = [...sys.gpuPdis.slice(0, 7), 'deadbeefdeadbeef'];
        s[2] = { ...s[2]!, report: buildSimulatedSwitchReport(sys, 2, { nonce: n, gpuPdis }) };
        return s;
      }),
    );
    const f = failedIn(r);
    expect(f.switch2).toEqual(['ppcie.topology']);
    expect(f.gpu0).toEqual(['ppcie.topology']);
    expect(findCheck(r.devices.find((d) => d.id === 'switch2')!.result.checks, 'ppcie.topology').detail).toMatch(/name different GPUs.*deadbeefdeadbeef/);
  });

  it('a duplicated switch (the same PDI twice)', async () => {
    const r = verify(await bundleWith((s) => [s[0]!, s[1]!, s[2]!, { ...s[0]!, index: 3 }]));
    expect(failedIn(r).switch3).toEqual(['ppcie.topology']);
    expect(findCheck(r.devices.find((d) => d.id === 'switch3')!.result.checks, 'ppcie.topology').detail).toMatch(/switch 3 and switch 0 report the same PDI/);
  });

  it('a GPU names a switch whose report is not in the evidence (3 of 4 switches)', async () => {
    const r = verify(await bundleWith((s) => s.slice(0, 3)));
    const detail = findCheck(r.devices.find((d) => d.id === 'gpu0')!.result.checks, 'ppcie.topology').detail;
    expect(detail).toMatch(/expected 4 NVSwitch reports .* got 3/);
    expect(detail).toMatch(/GPU 0 names switch PDI\(s\) .* with no switch report in the evidence/);
  });

  it('a switch report signed by a GPU key (a GPU chain in place of the switch chain)', async () => {
    const gpuChain = sim.gpus!;
    const chain = (await gpuChain.collect(Buffer.alloc(32)))[0]!.certChainPem;
    const f = failedIn(verify(await bundleWith((s) => [{ ...s[0]!, certChainPem: chain }, ...s.slice(1)])));
    expect(f.switch0).toEqual(expect.arrayContaining(['switch.signature', 'switch.arch']));
  });
});

describe('EAR', () => {
  it('one submod per switch, named switch<index>', async () => {
    const r = verify(await bundleWith());
    const ear = buildEar(r.devices, { at: new Date(), build: 'test' });
    expect(Object.keys(ear.submods).filter((k) => k.startsWith('switch'))).toEqual(['switch0', 'switch1', 'switch2', 'switch3']);
    // The simulated OCSP responder (ocsp-sim.ts) answers for the switch chains too: revocation is checked, nothing warns.
    const warnings = r.devices.flatMap((d) => d.result.checks.filter((c) => c.warning).map((c) => `${d.id}:${c.name}`));
    expect(warnings).toEqual([]);
    for (const id of ['switch0', 'switch1', 'switch2', 'switch3'])
      expect(findCheck(ear.submods[id]!['cvm.checks'], 'switch.revocation')).toMatchObject({ ok: true });
    expect(ear['ear.status']).toBe('affirming');
  });
});
