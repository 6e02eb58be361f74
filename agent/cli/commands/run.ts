/** `cvm-agent run`: the daemon in the foreground (what systemd's ExecStart runs). */
import { EXIT, parseOptions, type Command } from '../command.js';
import { Daemon } from '../../daemon/daemon.js';
import { createLogger } from '../../log.js';
import { sdNotify, peerCredentials } from '../../native/system.js';
import { DEFAULT_CONFIG_PATH } from '../../config/load.js';
import { installTestHooks } from '../../daemon/test-hooks.js';

export const runCommand: Command = {
  path: ['run'],
  summary: 'run the agent daemon in the foreground (systemd runs this)',
  usage: `Usage: cvm-agent run [--config FILE]

Runs the attestation agent: attests at start and on the configured schedule, gates the GPU ready
state, serves the local API on the Unix socket, and logs JSON lines to stdout (journald).
Signals: SIGHUP reloads the configuration (an invalid file keeps the running one), SIGTERM/SIGINT
stop gracefully. Under systemd it reports READY/STATUS/WATCHDOG/STOPPING via sd_notify and accepts
a socket-activated listener (cvm-agent.socket).

Options:
  --config FILE  configuration file (default ${DEFAULT_CONFIG_PATH}; see docs/config.md)
  -h, --help     show this help

Exit codes: 0 stopped by a signal, 2 invalid configuration, 4 no TEE/GPU interface as configured.`,
  async run(argv) {
    const { values } = parseOptions(argv, { config: { type: 'string' } });
    const logger = createLogger(process.env.CVM_AGENT_LOG_LEVEL ?? 'info');
    installTestHooks(process.env, logger);
    const daemon = new Daemon({
      ...(values.config ? { configPath: values.config } : {}),
      logger,
      notify: (fields) => sdNotify(fields),
      peerCredentials: (socket) => {
        try {
          return peerCredentials(socket);
        } catch {
          return undefined; // restricted endpoints then deny (fail closed)
        }
      },
    });
    process.on('uncaughtException', (err) => {
      logger.fatal({ err: err.stack ?? err.message }, 'uncaught exception: exiting for systemd to restart');
      logger.flush();
      process.exit(70);
    });
    try {
      await daemon.start();
    } catch (err) {
      logger.fatal({ err: (err as Error).message }, 'could not start');
      await new Promise<void>((r) => logger.flush(() => r()));
      throw err;
    }
    await new Promise<void>((resolve) => {
      const stop = (signal: string) => {
        logger.info({ signal }, 'signal received');
        const hard = setTimeout(() => process.exit(1), 4900);
        hard.unref();
        void daemon.stop().then(resolve);
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
      process.on('SIGHUP', () => void daemon.reload());
    });
    return EXIT.OK;
  },
};
