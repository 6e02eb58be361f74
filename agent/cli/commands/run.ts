/** `cvm-agent run`: the daemon in the foreground (what systemd's ExecStart runs). */
import { EXIT, parseOptions, type Command } from '../command.js';
import { Daemon } from '../../daemon/daemon.js';
import { createLogger, stderrLine } from '../../util/log.js';
import { sdNotify, createPeerCredentialReader } from '../../native/system.js';
import { DEFAULT_CONFIG_PATH } from '../../config/load.js';
import { oneLine } from '../../daemon/preflight.js';
import { CollateralError, ConfigError, CvmError, DeviceError, InternalError, ParseError, UsageError } from '../../errors.js';

/** The exit code for a failed start, as for every command (README "Exit codes"). */
function startExitCode(err: unknown): number {
  if (err instanceof UsageError || err instanceof ConfigError || err instanceof ParseError || err instanceof CollateralError) return EXIT.USAGE;
  if (err instanceof DeviceError) return EXIT.UNAVAILABLE;
  if (err instanceof CvmError && !(err instanceof InternalError)) return EXIT.FAILED;
  return EXIT.INTERNAL;
}
import { installTestHooks } from '../../daemon/test-hooks.js';

export const runCommand: Command = {
  path: ['run'],
  usage: `Usage: cvm-agent run [--config FILE]

Runs the attestation agent: attests at start and on the configured schedule, gates the GPU ready
state, acts on lost trust (docs/config.md "Consequences"), serves the local API on the Unix socket,
and logs JSON lines to stdout (journald).
Start-up runs the same validation as "cvm-agent config check"; a start that fails prints one line
to stderr and exits without leaving anything running.
Signals (handled from the moment the process starts): SIGHUP reloads the configuration (an invalid
file keeps the running one and its schedule; a SIGHUP during start-up reloads once the agent is up),
SIGTERM/SIGINT stop gracefully. Under systemd it reports READY/STATUS/WATCHDOG/STOPPING via sd_notify
and accepts a socket-activated listener (cvm-agent.socket).

Options:
  --config FILE  configuration file (default ${DEFAULT_CONFIG_PATH}; see docs/config.md)
  -h, --help     show this help

Exit codes: 0 stopped by a signal, 2 invalid configuration, 4 no TEE/GPU interface as configured,
70 internal error.`,
  async run(argv, io) {
    const { values } = parseOptions(argv, { config: { type: 'string' } });
    const logger = createLogger(process.env.CVM_AGENT_LOG_LEVEL ?? 'info');
    installTestHooks(process.env, logger);
    let daemon: Daemon | undefined;
    let started = false;
    let reloadPending = false;
    let stopSignal: string | undefined;
    let stopped!: () => void;
    const done = new Promise<void>((resolve) => (stopped = resolve));
    const stop = (signal: string) => {
      if (stopSignal) return;
      stopSignal = signal;
      logger.info({ signal }, 'signal received');
      if (!started) {
        // Nothing is serving yet: leave at once rather than finish a start nobody wants.
        logger.info('stopped while starting');
        logger.flush();
        process.exit(EXIT.OK);
      }
      const hard = setTimeout(() => process.exit(1), 4900);
      hard.unref();
      void daemon!.stop().then(stopped);
    };
    // Installed before anything else exists, so a signal during start-up never meets Node's default
    // action (SIGHUP would end the process with status 129).
    process.on('SIGHUP', () => {
      if (!started) {
        reloadPending = true;
        logger.info({ signal: 'SIGHUP' }, 'reload requested while starting: it runs once the agent is up');
        return;
      }
      void daemon!.reload();
    });
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('uncaughtException', (err) => {
      logger.fatal({ err: err.stack ?? err.message }, 'uncaught exception: exiting for systemd to restart');
      logger.flush();
      process.exit(EXIT.INTERNAL);
    });
    daemon = new Daemon({
      ...(values.config ? { configPath: values.config } : {}),
      logger,
      notify: (fields) => sdNotify(fields),
      // Without SO_PEERCRED restricted endpoints deny (fail closed); without SO_PEERGROUPS group rules
      // match the primary gid only.
      peerCredentials: createPeerCredentialReader((reason) =>
        logger.warn({ reason }, 'supplementary groups (SO_PEERGROUPS) unavailable: API group rules match the primary gid only'),
      ),
    });
    try {
      await daemon.start();
    } catch (err) {
      // One line an operator can act on; the stack only at debug level.
      logger.debug({ err: (err as Error)?.stack ?? String(err) }, 'start failed');
      const code = startExitCode(err);
      const line = `cvm-agent run: could not start: ${oneLine(err)}${err instanceof CvmError && !(err instanceof InternalError) ? '' : ' (internal error)'}\n`;
      // Under systemd stderr is the journal stream too: the reason carries the err priority.
      io.stderr.write(io.stderr === process.stderr ? stderrLine(line) : line);
      await new Promise<void>((r) => logger.flush(() => r()));
      // Whatever the start left behind (a timer, a handle) must not keep a half-started process alive.
      setTimeout(() => process.exit(code), 500).unref();
      process.exitCode = code;
      return code;
    }
    started = true;
    if (reloadPending) void daemon.reload();
    await done;
    return EXIT.OK;
  },
};
