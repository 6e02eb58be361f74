/** `cvm-agent demo`: one attestation cycle on the built-in simulated TEE, with a readable summary. */
import { EXIT, parseOptions, type Command } from '../command.js';
import { UsageError } from '../../errors.js';
import { formatDemoSummary, runDemo } from '../../demo.js';
import { VERSION } from '../version.js';

export const demoCommand: Command = {
  path: ['demo'],
  summary: 'attest a simulated SEV-SNP CPU and simulated GPUs end to end (no TEE needed)',
  usage: `Usage: cvm-agent demo [--gpus N] [--dir DIR] [--json]

Runs one full attestation cycle on the built-in SIMULATED TEE: a software SEV-SNP CPU and N software
NVIDIA H100s whose test roots are created on first use. The evidence goes through the same nonce
binding, verifiers, policy appraisal and GPU ready-state gate as on real hardware. Simulated roots are
trusted only inside this mode, and every result says SIMULATED.

Options:
  --gpus N    number of simulated GPUs (0-16, default 2)
  --dir DIR   keep the simulated test roots in DIR (default: a new temporary directory)
  --json      print the cycle result (EAR, evidence bundle) as JSON
  -h, --help  show this help

Exit codes: 0 attested (affirming or warning), 1 a check failed.`,
  async run(argv, io) {
    const { values } = parseOptions(argv, { gpus: { type: 'string' }, dir: { type: 'string' }, json: { type: 'boolean' } });
    const gpus = values.gpus === undefined ? 2 : Number(values.gpus);
    if (!Number.isInteger(gpus) || gpus < 0 || gpus > 16) throw new UsageError('--gpus must be an integer from 0 to 16');
    const { result } = await runDemo({
      gpus,
      build: VERSION,
      ...(values.dir ? { dir: values.dir } : {}),
      log: values.json ? undefined : (line) => io.stdout.write(`${line}\n`),
    });
    io.stdout.write(values.json ? `${JSON.stringify(result, null, 2)}\n` : formatDemoSummary(result));
    return result.ok ? EXIT.OK : EXIT.FAILED;
  },
};
