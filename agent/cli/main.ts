/**
 * cvm-agent command-line entry: dispatches to commands by their leading words, prints --help,
 * and maps typed errors to exit codes (2 usage/unreadable input, 4 device unavailable, 70 internal).
 */
import { CvmError, UsageError, DeviceError, ParseError, ConfigError, CollateralError, InternalError } from '../errors.js';
import { EXIT, type CliIO, type Command } from './command.js';

export { VERSION } from '../util/version.js';
import { VERSION } from '../util/version.js';

/**
 * The daemon loads only what it runs: `run` skips the full command table (the verifier CLIs, the
 * controller, ...), which keeps the resident set of a months-long process small.
 */
async function loadCommands(argv: string[]): Promise<Command[]> {
  if (argv[0] === 'run') return [(await import('./commands/run.js')).runCommand];
  return (await import('./commands/index.js')).commands;
}

function globalHelp(commands: Command[]): string {
  const width = Math.max(...commands.map((c) => c.path.join(' ').length));
  const lines = commands.map((c) => `  ${c.path.join(' ').padEnd(width)}  ${c.summary}`);
  return [
    'Usage: cvm-agent <command> [options]',
    '',
    'In-guest attestation agent for confidential VMs (AMD SEV-SNP, Azure vTPM) with NVIDIA CC GPUs.',
    '',
    'Commands:',
    ...lines,
    '',
    'Run "cvm-agent <command> --help" for the options of a command.',
    'Exit codes: 0 ok, 1 a check failed, 2 usage error or unreadable input, 3 passed with warnings,',
    '            4 device or library unavailable, 70 internal error.',
    '',
  ].join('\n');
}

function findCommand(commands: Command[], argv: string[]): { command: Command; rest: string[] } | undefined {
  let best: { command: Command; rest: string[] } | undefined;
  for (const command of commands) {
    const n = command.path.length;
    if (argv.length >= n && command.path.every((w, i) => argv[i] === w)) {
      if (!best || n > best.command.path.length) best = { command, rest: argv.slice(n) };
    }
  }
  return best;
}

export async function main(
  argv: string[],
  io: CliIO = { stdout: process.stdout, stderr: process.stderr, env: process.env, cwd: process.cwd() },
): Promise<number> {
  const commands = await loadCommands(argv);
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    io.stdout.write(globalHelp(commands));
    return argv.length === 0 ? EXIT.USAGE : EXIT.OK;
  }
  if (argv[0] === '--version' || argv[0] === 'version') {
    io.stdout.write(`cvm-agent ${VERSION}\n`);
    return EXIT.OK;
  }
  const found = findCommand(commands, argv);
  if (!found) {
    io.stderr.write(`cvm-agent: unknown command "${argv.join(' ')}"\n\n${globalHelp(commands)}`);
    return EXIT.USAGE;
  }
  const { command, rest } = found;
  if (rest.includes('--help') || rest.includes('-h')) {
    io.stdout.write(command.usage.endsWith('\n') ? command.usage : `${command.usage}\n`);
    return EXIT.OK;
  }
  try {
    return await command.run(rest, io);
  } catch (err) {
    return reportError(err, command, io);
  }
}

function reportError(err: unknown, command: Command, io: CliIO): number {
  const name = `cvm-agent ${command.path.join(' ')}`;
  if (err instanceof UsageError) {
    io.stderr.write(`${name}: ${err.message}\nRun "${name} --help" for usage.\n`);
    return EXIT.USAGE;
  }
  if (err instanceof ParseError || err instanceof ConfigError || err instanceof CollateralError) {
    io.stderr.write(`${name}: ${err.message}\n`);
    return EXIT.USAGE;
  }
  if (err instanceof DeviceError) {
    io.stderr.write(`${name}: ${err.message} [${err.code}]\n`);
    return EXIT.UNAVAILABLE;
  }
  if (err instanceof CvmError && !(err instanceof InternalError)) {
    io.stderr.write(`${name}: ${err.message} [${err.code}]\n`);
    return EXIT.FAILED;
  }
  io.stderr.write(`${name}: internal error: ${(err as Error)?.stack ?? String(err)}\n`);
  return EXIT.INTERNAL;
}

const isEntry = process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href;
if (isEntry) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
