/**
 * cvm-agent command-line entry: dispatches to commands by their leading words, prints --help,
 * and maps typed errors to exit codes (2 usage/unreadable input, 4 device unavailable, 70 internal).
 */
import { CvmError, UsageError, DeviceError, ParseError, ConfigError, CollateralError, InternalError } from '../errors.js';
import { EXIT, type CliIO, type Command, type CommandEntry } from './command.js';
import { commands } from './commands/command-table.js';

export { VERSION } from '../util/agent-version.js';
import { VERSION } from '../util/agent-version.js';

function globalHelp(commands: CommandEntry[]): string {
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

function findCommand(commands: CommandEntry[], argv: string[]): { command: CommandEntry; rest: string[] } | undefined {
  let best: { command: CommandEntry; rest: string[] } | undefined;
  for (const command of commands) {
    const n = command.path.length;
    if (argv.length >= n && command.path.every((w, i) => argv[i] === w)) {
      if (!best || n > best.command.path.length) best = { command, rest: argv.slice(n) };
    }
  }
  return best;
}

/** The commands under a group word such as "verify" (only words that lead multi-word commands). */
function groupOf(commands: CommandEntry[], word: string | undefined): CommandEntry[] {
  return word === undefined ? [] : commands.filter((c) => c.path.length > 1 && c.path[0] === word);
}

function groupHelp(group: string, members: CommandEntry[]): string {
  const width = Math.max(...members.map((c) => c.path.join(' ').length));
  return [
    `Usage: cvm-agent ${group} <command> [options]`,
    '',
    'Commands:',
    ...members.map((c) => `  ${c.path.join(' ').padEnd(width)}  ${c.summary}`),
    '',
    `Run "cvm-agent ${group} <command> --help" for the options of a command.`,
    '',
  ].join('\n');
}

const isHelpFlag = (w: string | undefined) => w === '--help' || w === '-h';
const usageText = (c: Command) => (c.usage.endsWith('\n') ? c.usage : `${c.usage}\n`);

/** `help [words…]`: the global help, a group's help or one command's usage, like `git help`. */
async function helpFor(commands: CommandEntry[], words: string[], io: CliIO): Promise<number> {
  if (words.length === 0) {
    io.stdout.write(globalHelp(commands));
    return EXIT.OK;
  }
  const exact = commands.find((c) => c.path.length === words.length && c.path.every((w, i) => words[i] === w));
  if (exact) {
    io.stdout.write(usageText(await exact.load()));
    return EXIT.OK;
  }
  const members = words.length === 1 ? groupOf(commands, words[0]) : [];
  if (members.length > 0) {
    io.stdout.write(groupHelp(words[0]!, members));
    return EXIT.OK;
  }
  io.stderr.write(`cvm-agent help: no command "${words.join(' ')}"\n\n${globalHelp(commands)}`);
  return EXIT.USAGE;
}

/** `--version`: what a bug report needs (version, commit, Node, the addon's Node-API version). */
async function versionText(): Promise<string> {
  const { addonAbi, packageRoot } = await import('../native/addon-loader.js');
  const { buildCommit } = await import('../util/build-info.js');
  const abi = addonAbi();
  const addon = abi.loaded ? `Node-API ${abi.napiVersion ?? 'unknown'}` : `not loaded (${abi.reason})`;
  return [
    `cvm-agent ${VERSION}`,
    `commit  ${buildCommit(packageRoot())}`,
    `node    ${process.version} (modules ABI ${process.versions.modules}, Node-API ${process.versions.napi})`,
    `addon   ${addon}`,
    '',
  ].join('\n');
}

export async function main(
  argv: string[],
  io: CliIO = { stdout: process.stdout, stderr: process.stderr, env: process.env, cwd: process.cwd() },
): Promise<number> {
  if (argv.length === 0 || isHelpFlag(argv[0])) {
    io.stdout.write(globalHelp(commands));
    return argv.length === 0 ? EXIT.USAGE : EXIT.OK;
  }
  if (argv[0] === 'help') return helpFor(commands, argv.slice(1), io);
  if (argv[0] === '--version' || argv[0] === '-V' || argv[0] === 'version') {
    io.stdout.write(await versionText());
    return EXIT.OK;
  }
  const found = findCommand(commands, argv);
  if (!found) {
    const members = groupOf(commands, argv[0]);
    if (members.length > 0 && argv.length === 2 && isHelpFlag(argv[1])) {
      io.stdout.write(groupHelp(argv[0]!, members));
      return EXIT.OK;
    }
    if (members.length > 0) {
      const what = argv.length === 1 ? `"cvm-agent ${argv[0]}" needs a command` : `unknown command "${argv.join(' ')}"`;
      io.stderr.write(`cvm-agent: ${what}\n\n${groupHelp(argv[0]!, members)}`);
      return EXIT.USAGE;
    }
    io.stderr.write(`cvm-agent: unknown command "${argv.join(' ')}"\n\n${globalHelp(commands)}`);
    return EXIT.USAGE;
  }
  const { rest } = found;
  // Only the module of the command that runs is loaded (commands/command-table.ts).
  const command = await found.command.load();
  if (rest.some(isHelpFlag)) {
    io.stdout.write(usageText(command));
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

/**
 * A reader that goes away (`cvm-agent … | head`) makes the next write fail with EPIPE: a client
 * command stops quietly, as CLI tools do; the daemon keeps running (its logs are not its purpose).
 */
export function quietOnClosedOutput(isDaemon: boolean): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') throw err;
      if (!isDaemon) process.exit(typeof process.exitCode === 'number' ? process.exitCode : EXIT.OK);
    });
  }
}

const isEntry = process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href;
if (isEntry) {
  quietOnClosedOutput(process.argv[2] === 'run');
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
