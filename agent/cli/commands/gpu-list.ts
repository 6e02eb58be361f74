/** `cvm-agent gpu list [--json]`: the GPUs NVML sees, with the system confidential-computing state. */
import { EXIT, parseOptions, type Command } from '../command.js';
import { NvmlGpuSource, type GpuCcState, type GpuInfo, type GpuSystemState } from '../../evidence/gpu-nvml.js';

const yesNo = (v: boolean | undefined): string => (v === undefined ? 'n/a' : v ? 'yes' : 'no');

function ccColumns(cc: GpuCcState | undefined): { cc: string; devtools: string; ready: string } {
  if (!cc) return { cc: 'n/a', devtools: 'n/a', ready: 'n/a' };
  const mode = cc.ccEnabled ? `on (${cc.environment})` : cc.multiGpuMode === 'protected-pcie' ? 'ppcie' : 'off';
  return { cc: mode, devtools: yesNo(cc.devToolsMode), ready: yesNo(cc.readyState) };
}

/** A plain aligned table; widths follow the content. */
export function formatGpuTable(gpus: readonly GpuInfo[], state: GpuSystemState): string {
  const header = ['INDEX', 'NAME', 'UUID', 'ARCH', 'DRIVER', 'VBIOS', 'CC', 'DEVTOOLS', 'READY'];
  const cols = ccColumns(state.cc);
  const rows = gpus.map((g) => [
    String(g.index),
    g.name,
    g.uuid,
    g.architecture,
    state.driverVersion,
    g.vbiosVersion ?? 'n/a',
    cols.cc,
    cols.devtools,
    cols.ready,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

export const gpuList: Command = {
  path: ['gpu', 'list'],
  usage: `Usage: cvm-agent gpu list [--json]

Lists every GPU that NVML reports: index, name, UUID, architecture, driver and VBIOS versions, and the
system confidential-computing state (CC mode, DevTools mode, ready state). Needs the NVIDIA driver
(libnvidia-ml.so.1; override the path with CVM_NVML_LIBRARY).

Options:
  --json      print {driverVersion, nvmlVersion, cc, gpus: [...]} as JSON
  -h, --help  show this help

Exit codes: 0 listed, 2 usage error, 4 NVML not available.`,
  async run(argv, io) {
    const { values } = parseOptions(argv, { json: { type: 'boolean' } });
    const source = new NvmlGpuSource();
    const state = await source.systemState();
    const gpus = await source.list();
    if (values.json) {
      io.stdout.write(`${JSON.stringify({ ...state, gpus }, null, 2)}\n`);
    } else {
      if (state.ccError !== undefined) io.stderr.write(`note: confidential-computing state unavailable: ${state.ccError}\n`);
      io.stdout.write(gpus.length === 0 ? 'no GPUs found\n' : formatGpuTable(gpus, state));
    }
    return EXIT.OK;
  },
};
