/** `cvm-agent demo`: the reference controller and an agent on the simulated TEE, end to end on loopback. */
import { EXIT, parseOptions, type Command } from '../command.js';
import { CvmError, UsageError } from '../../errors.js';
import { DemoWorkspace, formatDemoSummary, runDemo } from '../demo-stack.js';

export const demoCommand: Command = {
  path: ['demo'],
  usage: `Usage: cvm-agent demo [--gpus N] [--dir DIR] [--follow] [--json]

Starts, on loopback and in a temporary directory, the reference controller and an agent daemon on the
built-in SIMULATED TEE: a software SEV-SNP CPU and N software NVIDIA H100s whose test roots are
created on first use. The controller challenges the agent; the agent attests CPU and GPUs bound to the
controller's nonce; the controller verifies with the same verifiers, signs an EAR token and releases a
secret to the attested key; the demo reads the token and the secret back through the agent's local
socket and prints a summary. Simulated roots are trusted only in this mode; results say SIMULATED.

Options:
  --gpus N    number of simulated GPUs (0-16, default 2)
  --dir DIR   work in DIR instead of a new temporary directory (an existing DIR is kept, with
              anything it already held; what the demo put there is removed)
  --follow    keep the controller and the agent running and print the fleet page address (Ctrl-C stops)
  --json      print the summary as JSON
  -h, --help  show this help

The demo removes everything it created (its directory, with the agent's token and the released
secret) when it ends: after the summary, on an error, and on SIGINT/SIGTERM at any point.

Exit codes: 0 the agent attested affirming and received its secret, 1 otherwise (or interrupted
before the summary).`,
  async run(argv, io) {
    const { values } = parseOptions(argv, { gpus: { type: 'string' }, dir: { type: 'string' }, follow: { type: 'boolean' }, json: { type: 'boolean' } });
    const gpus = values.gpus === undefined ? 2 : Number(values.gpus);
    if (!Number.isInteger(gpus) || gpus < 0 || gpus > 16) throw new UsageError('--gpus must be an integer from 0 to 16');
    const ws = await DemoWorkspace.open(values.dir);
    // Last resort for exits that skip the finally below (process.exit elsewhere, a fatal error).
    const onExit = () => ws.removeSync();
    process.once('exit', onExit);
    let onSignal: (signal: NodeJS.Signals) => void = () => undefined;
    const signalled = new Promise<NodeJS.Signals>((resolve) => (onSignal = resolve));
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    try {
      const interrupted = signalled.then((signal): never => {
        throw new CvmError('ERR_DEMO_INTERRUPTED', `interrupted by ${signal}; the demo's files were removed`);
      });
      const r = await Promise.race([
        runDemo({ gpus, workspace: ws, ...(values.json ? {} : { log: (line: string) => io.stdout.write(`${line}\n`) }) }),
        interrupted,
      ]);
      if (values.json) {
        const { stop: _stop, ...doc } = r;
        io.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
      } else io.stdout.write(formatDemoSummary(r));
      if (values.follow) {
        io.stdout.write(`Fleet page: ${r.fleetUrl}\nAgent socket: ${r.socket} (try: cvm-agent status --socket ${r.socket})\nPress Ctrl-C to stop.\n`);
        await signalled;
      }
      return r.ok ? EXIT.OK : EXIT.FAILED;
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      await ws.close();
      process.off('exit', onExit);
      // An interrupted run may still have timers or sockets winding down; they must not keep the
      // process (its files are already gone).
      setTimeout(() => process.exit(), 5000).unref();
    }
  },
};
