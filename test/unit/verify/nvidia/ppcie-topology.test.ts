/**
 * ppcie.topology (agent/verify/nvidia/ppcie-topology.ts) on claims shaped like a verified HGX system:
 * 8 GPUs naming 4 switches (little-endian, as GPU reports list them) and 4 switches naming the 8 GPUs.
 * Each attack is one change to that system, and each must fail the check with a reason naming it.
 */
import { describe, expect, it } from 'vitest';
import { ppcieTopologyCheck, switchPdiFromGpu, type TopologyGpu, type TopologySwitch } from '../../../../agent/verify/nvidia/ppcie-topology.js';

const hex = (n: number, tag: number) => (tag * 0x100 + n).toString(16).padStart(16, '0');
const SWITCH_PDIS = [0, 1, 2, 3].map((j) => hex(j, 0x5a));
const GPU_PDIS = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => hex(i, 0x6b));
const le = (pdi: string) => switchPdiFromGpu(pdi); // the transform is its own inverse

function system(): { gpus: TopologyGpu[]; switches: (TopologySwitch | undefined)[] } {
  return {
    // A GPU's field 22 lists one entry per NVLink: repeats and all-zero (unused) entries are normal.
    gpus: GPU_PDIS.map(() => ({ switchPdis: [...SWITCH_PDIS.map(le), ...SWITCH_PDIS.map(le), '0000000000000000'] })),
    switches: SWITCH_PDIS.map((p) => ({ switchPdi: p, gpuPdis: [...GPU_PDIS] })),
  };
}

describe('ppcie.topology', () => {
  it('an HGX system whose GPUs and switches agree passes', () => {
    const { gpus, switches } = system();
    expect(ppcieTopologyCheck(gpus, switches)).toMatchObject({ name: 'ppcie.topology', ok: true });
  });

  it('GPU switch PDIs are compared after byte reversal (nvtrust read_field_as_little_endian)', () => {
    expect(switchPdiFromGpu('0800edd91ab33e20')).toBe('203eb31ad9ed0008');
    const { gpus, switches } = system();
    gpus[0] = { switchPdis: SWITCH_PDIS }; // not reversed: names switches that do not exist
    expect(ppcieTopologyCheck(gpus, switches).detail).toMatch(/GPU 0 names switch PDI\(s\) .* with no switch report/);
  });

  const attacks: [string, (s: ReturnType<typeof system>) => void, RegExp][] = [
    ['a switch claims a GPU that is not present', (s) => (s.switches[2]!.gpuPdis![7] = hex(9, 0x6b)), /switch 2 and switch 0 name different GPUs/],
    ['a switch claims a ninth GPU', (s) => s.switches.forEach((w) => w!.gpuPdis!.push(hex(9, 0x6b))), /names 9 distinct GPU\(s\) but the evidence holds 8/],
    ['a duplicated switch report (same PDI twice)', (s) => (s.switches[3] = { ...s.switches[0]! }), /switch 3 and switch 0 report the same PDI/],
    [
      'a GPU names a switch not in the evidence',
      (s) => (s.gpus[5]!.switchPdis![0] = le(hex(9, 0x5a))),
      /GPU 5 names switch PDI\(s\) 0000000000005a09 with no switch report/,
    ],
    [
      'a GPU does not name a switch whose report is present',
      (s) => (s.gpus[1] = { switchPdis: SWITCH_PDIS.slice(0, 3).map(le) }),
      /GPU 1 names 3 distinct switch\(es\), expected 4.*GPU 1 does not name/,
    ],
    ['one GPU report missing (7 of 8)', (s) => s.gpus.pop(), /expected 8 GPU reports .* got 7/],
    ['one switch report missing (3 of 4)', (s) => s.switches.pop(), /expected 4 NVSwitch reports .* got 3/],
    ['a GPU outside PPCIe (no field 22)', (s) => (s.gpus[3] = {}), /GPU 3 reports no switch PDIs/],
    ['a switch whose report did not verify', (s) => (s.switches[1] = undefined), /switch 1 has no verified DEVICE_PDI/],
    [
      'a switch that lists duplicate GPUs to hide a missing one',
      (s) => (s.switches[0]!.gpuPdis![7] = s.switches[0]!.gpuPdis![6]!),
      /switch 0 names 7 distinct GPU/,
    ],
  ];
  it.each(attacks)('%s: ppcie.topology fails with an actionable reason', (_what, edit, reason) => {
    const s = system();
    edit(s);
    const c = ppcieTopologyCheck(s.gpus, s.switches);
    expect(c).toMatchObject({ name: 'ppcie.topology', ok: false });
    expect(c.detail).toMatch(reason);
    expect(c.detail).toMatch(/collect the evidence of every GPU and switch/);
  });

  it('a smaller configured topology is honoured', () => {
    const s = system();
    const gpus = s.gpus.slice(0, 2);
    const switches = s.switches.map((w) => ({ ...w!, gpuPdis: GPU_PDIS.slice(0, 2) }));
    expect(ppcieTopologyCheck(gpus, switches, { gpus: 2, switches: 4 }).ok).toBe(true);
    expect(ppcieTopologyCheck(gpus, switches).ok).toBe(false);
  });
});
