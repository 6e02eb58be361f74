/**
 * The protected-PCIe (PPCIe) topology check across one system's GPUs and NVSwitches, as NVIDIA's PPCIe
 * verifier does it (NVIDIA/nvtrust guest_tools/ppcie-verifier/ppcie/verifier/src/topology/validate_topology.py
 * gpu_topology_check and switch_topology_check; atoma-network/nvrust topology/src/topology.rs):
 * - every GPU's opaque SWITCH_PDI field (22), all-zero entries dropped, names the same set of switches,
 *   as many as the topology has, and exactly the switches whose reports are in the evidence. A GPU lists
 *   each PDI little-endian: reversed, it equals the switch's own DEVICE_PDI in report order
 *   (validate_topology.py read_field_as_little_endian; topology.rs "revert the order of the switch PDI");
 * - no two switch reports carry the same DEVICE_PDI (a duplicated or replayed switch);
 * - every switch's SWITCH_GPU_PDIS field (26), all-zero entries dropped, names as many distinct GPUs as
 *   the evidence holds, and every switch names the same GPUs.
 * A GPU report does not carry the GPU's own PDI, so a switch naming a GPU that is not in the evidence
 * shows as a GPU count above the evidence's or as switches that disagree, as in both sources.
 * Pure: claims in, one named check out.
 */
import { fail, pass, type Check } from '../../formats/checks.js';

/** The configured topology: an 8-GPU HGX system has 4 NVSwitches (validate_topology.py, topology.rs). */
export interface PpcieTopology {
  gpus: number;
  switches: number;
}

export const HGX_PPCIE_TOPOLOGY: PpcieTopology = { gpus: 8, switches: 4 };

/** What the check reads of a verified GPU and switch (GpuClaims / SwitchClaims). */
export interface TopologyGpu {
  switchPdis?: string[];
}
export interface TopologySwitch {
  switchPdi?: string;
  gpuPdis?: string[];
}

const ZERO_PDI = /^0+$/;
/** A GPU lists a switch PDI little-endian; the switch reports its own in the opposite byte order. */
export const switchPdiFromGpu = (hex: string): string => (hex.match(/../g) ?? []).reverse().join('');

const diff = (a: ReadonlySet<string>, b: ReadonlySet<string>) => [...a].filter((x) => !b.has(x)).sort();

/** `ppcie.topology`: GPUs and switches agree on how they are connected; the reason names every disagreement. */
export function ppcieTopologyCheck(
  gpus: readonly (TopologyGpu | undefined)[],
  switches: readonly (TopologySwitch | undefined)[],
  topology: PpcieTopology = HGX_PPCIE_TOPOLOGY,
): Check {
  const problems: string[] = [];
  if (gpus.length !== topology.gpus) problems.push(`expected ${topology.gpus} GPU reports for the configured topology, got ${gpus.length}`);
  if (switches.length !== topology.switches)
    problems.push(`expected ${topology.switches} NVSwitch reports for the configured topology, got ${switches.length}`);

  const switchPdis = new Map<string, number>();
  switches.forEach((s, j) => {
    if (s?.switchPdi === undefined) {
      problems.push(`switch ${j} has no verified DEVICE_PDI (its report did not parse or lacks field 22)`);
      return;
    }
    const first = switchPdis.get(s.switchPdi);
    if (first !== undefined) problems.push(`switch ${j} and switch ${first} report the same PDI ${s.switchPdi} (a duplicated or replayed switch report)`);
    else switchPdis.set(s.switchPdi, j);
  });
  const inEvidence = new Set(switchPdis.keys());

  gpus.forEach((g, i) => {
    if (g?.switchPdis === undefined) {
      problems.push(`GPU ${i} reports no switch PDIs (opaque field 22): it is not in a PPCIe topology, or its report did not verify`);
      return;
    }
    const named = new Set(g.switchPdis.filter((p) => !ZERO_PDI.test(p)).map(switchPdiFromGpu));
    if (named.size !== topology.switches) problems.push(`GPU ${i} names ${named.size} distinct switch(es), expected ${topology.switches}`);
    const unknown = diff(named, inEvidence);
    if (unknown.length > 0) problems.push(`GPU ${i} names switch PDI(s) ${unknown.join(', ')} with no switch report in the evidence`);
    const unnamed = diff(inEvidence, named);
    if (unnamed.length > 0) problems.push(`GPU ${i} does not name the switch(es) ${unnamed.join(', ')} whose reports are in the evidence`);
  });

  let reference: { j: number; set: Set<string> } | undefined;
  switches.forEach((s, j) => {
    if (s?.gpuPdis === undefined) {
      if (s?.switchPdi !== undefined) problems.push(`switch ${j} reports no GPU PDIs (opaque field 26)`);
      return;
    }
    const set = new Set(s.gpuPdis.filter((p) => !ZERO_PDI.test(p)));
    if (set.size !== gpus.length) problems.push(`switch ${j} names ${set.size} distinct GPU(s) but the evidence holds ${gpus.length} GPU report(s)`);
    if (!reference) reference = { j, set };
    else {
      const extra = diff(set, reference.set);
      const missing = diff(reference.set, set);
      if (extra.length > 0 || missing.length > 0)
        problems.push(
          `switch ${j} and switch ${reference.j} name different GPUs (${[extra.length > 0 ? `only switch ${j}: ${extra.join(', ')}` : '', missing.length > 0 ? `only switch ${reference.j}: ${missing.join(', ')}` : ''].filter(Boolean).join('; ')})`,
        );
    }
  });

  if (problems.length > 0)
    return fail(
      'ppcie.topology',
      `the GPUs and NVSwitches disagree on the PPCIe topology: ${problems.join('; ')}; collect the evidence of every GPU and switch of the system with one nonce`,
    );
  return pass(
    'ppcie.topology',
    `${gpus.length} GPUs each name the same ${switches.length} NVSwitches, whose reports are all present, and every switch names the same ${gpus.length} GPUs`,
  );
}
