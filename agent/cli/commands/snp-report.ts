/**
 * `cvm-agent snp report`: fetch a raw SEV-SNP attestation report (and optionally the host's cert
 * table) from /dev/sev-guest, configfs-tsm or the simulated device. Evidence only; verifying is
 * `cvm-agent verify snp`.
 */
import { access, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { EXIT, parseOptions, type CliIO, type Command } from '../command.js';
import { DeviceError, UsageError } from '../../errors.js';
import { SnpDeviceCollector, SNP_DEFAULT_DEVICE } from '../../evidence/snp-device.js';
import { ConfigfsTsmCollector, TSM_DEFAULT_ROOT } from '../../evidence/configfs-tsm.js';

export type SnpSource = 'device' | 'tsm' | 'simulated';
const SOURCES = ['auto', 'device', 'tsm', 'simulated'] as const;

/** Up to 64 bytes of hex (optional 0x), zero-padded on the right to REPORT_DATA's 64 bytes. */
export function parseReportData(hex: string | undefined): Buffer {
  const out = Buffer.alloc(64);
  if (hex === undefined || hex === '') return out;
  const digits = hex.startsWith('0x') || hex.startsWith('0X') ? hex.slice(2) : hex;
  if (!/^[0-9a-fA-F]*$/.test(digits) || digits.length % 2 !== 0) {
    throw new UsageError('--report-data must be an even number of hex digits');
  }
  if (digits.length > 128) throw new UsageError(`--report-data is ${digits.length / 2} bytes; REPORT_DATA holds at most 64`);
  Buffer.from(digits, 'hex').copy(out);
  return out;
}

export function parseVmpl(text: string | undefined): number {
  if (text === undefined) return 0;
  if (!/^[0-3]$/.test(text)) throw new UsageError(`--vmpl must be 0, 1, 2 or 3 (got "${text}")`);
  return Number(text);
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** auto: the ioctl device if present, else configfs-tsm if present, else a clear error. */
export async function resolveSnpSource(source: string, devicePath: string, tsmRoot: string): Promise<SnpSource> {
  if (source !== 'auto') return source as SnpSource;
  if (await exists(devicePath)) return 'device';
  if (await exists(tsmRoot)) return 'tsm';
  throw new DeviceError(
    'ERR_SNP_UNAVAILABLE',
    `no SEV-SNP guest interface found: neither ${devicePath} nor ${tsmRoot} exists. This is not an SEV-SNP guest ` +
      '(on Azure CVMs the report comes from the vTPM), or the sev-guest module is not loaded. ' +
      'For development use --source simulated',
    { devicePath, tsmRoot },
  );
}

export function defaultSimDir(env: NodeJS.ProcessEnv): string {
  const cache = env.XDG_CACHE_HOME || join(env.HOME || homedir(), '.cache');
  return join(cache, 'cvm-agent', 'sim');
}

interface Evidence {
  report: Buffer;
  certTable?: Buffer;
}

/** The simulator is imported on demand so the real paths never load it (or its test roots). */
async function loadSimulator(): Promise<typeof import('../../simulation/snp-sim.js')> {
  try {
    return await import('../../simulation/snp-sim.js');
  } catch (err) {
    throw new DeviceError('ERR_SIM_UNAVAILABLE', `the simulated SEV-SNP device is not available in this build: ${(err as Error).message}`, {}, { cause: err });
  }
}

async function collect(
  source: SnpSource,
  opts: { reportData: Buffer; vmpl: number; ext: boolean; devicePath: string; tsmRoot: string; simDir: string },
): Promise<Evidence> {
  switch (source) {
    case 'device': {
      const collector = new SnpDeviceCollector({ devicePath: opts.devicePath });
      return opts.ext ? collector.getExtReport(opts.reportData, opts.vmpl) : collector.getReport(opts.reportData, opts.vmpl);
    }
    case 'tsm': {
      const r = await new ConfigfsTsmCollector({ root: opts.tsmRoot }).getReport(opts.reportData, { vmpl: opts.vmpl, withCerts: opts.ext });
      return r.certTable === undefined ? { report: r.report } : { report: r.report, certTable: r.certTable };
    }
    case 'simulated': {
      const { SimulatedSnpDevice } = await loadSimulator();
      const sim = await SimulatedSnpDevice.open(opts.simDir);
      if (!opts.ext) return { report: (await sim.getReport(opts.reportData, opts.vmpl)).report };
      const r = await sim.getExtReport(opts.reportData, opts.vmpl);
      return { report: r.report, certTable: r.certTable };
    }
  }
}

export const snpReportCommand: Command = {
  path: ['snp', 'report'],
  usage: `Usage: cvm-agent snp report [--report-data HEX] [--vmpl N] [--ext] [--out FILE]
                         [--source auto|device|tsm|simulated] [--device PATH] [--tsm-root DIR] [--sim-dir DIR]

Asks the SEV-SNP firmware for an attestation report carrying REPORT_DATA and prints it. Evidence only:
nothing is verified (use "cvm-agent verify snp").

Options:
  --report-data HEX   up to 64 bytes of hex, zero-padded to 64 (default: all zero)
  --vmpl N            VMPL to put in the report, 0..3 (default 0; must be >= the guest's own VMPL)
  --ext               also fetch the host's certificate table (VCEK/ASK/ARK when the host supplies them)
  --out FILE          write the raw 1184-byte report to FILE (and the cert table to FILE.certs with --ext);
                      without it the report is printed as hex on one line (the cert table on a second line)
  --source S          auto (default): ${SNP_DEFAULT_DEVICE} if present, else configfs-tsm if present;
                      device | tsm | simulated to force one
  --device PATH       sev-guest device (default ${SNP_DEFAULT_DEVICE})
  --tsm-root DIR      configfs-tsm report directory (default ${TSM_DEFAULT_ROOT})
  --sim-dir DIR       simulated device state (default $XDG_CACHE_HOME/cvm-agent/sim or ~/.cache/cvm-agent/sim)
  -h, --help          show this help

Exit codes: 0 report written, 2 usage error, 4 no SEV-SNP interface or the device failed
(e.g. "VMPCK disabled, reboot required").`,
  async run(argv, io: CliIO) {
    const { values } = parseOptions(argv, {
      'report-data': { type: 'string' },
      vmpl: { type: 'string' },
      ext: { type: 'boolean' },
      out: { type: 'string' },
      source: { type: 'string' },
      device: { type: 'string' },
      'tsm-root': { type: 'string' },
      'sim-dir': { type: 'string' },
    });
    const reportData = parseReportData(values['report-data']);
    const vmpl = parseVmpl(values.vmpl);
    const requested = values.source ?? 'auto';
    if (!(SOURCES as readonly string[]).includes(requested)) {
      throw new UsageError(`--source must be one of ${SOURCES.join(', ')} (got "${requested}")`);
    }
    if (values.out === '') throw new UsageError('--out needs a file name');
    const devicePath = values.device ?? SNP_DEFAULT_DEVICE;
    const tsmRoot = values['tsm-root'] ?? TSM_DEFAULT_ROOT;
    const simDir = values['sim-dir'] ? resolve(io.cwd, values['sim-dir']) : defaultSimDir(io.env);
    const source = await resolveSnpSource(requested, devicePath, tsmRoot);
    if (source === 'simulated') io.stderr.write('SIMULATED: report from the software SEV-SNP device, signed by test roots\n');
    const evidence = await collect(source, { reportData, vmpl, ext: values.ext === true, devicePath, tsmRoot, simDir });

    if (values.out !== undefined) {
      const file = resolve(io.cwd, values.out);
      await writeOutput(file, evidence.report);
      io.stderr.write(`wrote ${evidence.report.length}-byte report to ${file} (source: ${source})\n`);
      if (values.ext) {
        const certs = evidence.certTable ?? Buffer.alloc(0);
        await writeOutput(`${file}.certs`, certs);
        io.stderr.write(`wrote ${certs.length}-byte cert table to ${file}.certs${certs.length === 0 ? ' (the host supplied no certificates)' : ''}\n`);
      }
    } else {
      io.stdout.write(`${evidence.report.toString('hex')}\n`);
      if (values.ext) io.stdout.write(`${(evidence.certTable ?? Buffer.alloc(0)).toString('hex')}\n`);
    }
    return EXIT.OK;
  },
};

async function writeOutput(file: string, bytes: Buffer): Promise<void> {
  try {
    await writeFile(file, bytes);
  } catch (err) {
    throw new UsageError(`cannot write ${file}: ${(err as Error).message}`, { cause: err });
  }
}
