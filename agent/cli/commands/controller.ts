/**
 * `cvm-agent controller`: run the reference controller in the foreground (pino JSON logs to stdout)
 * until SIGTERM/SIGINT, then close the link, the listener and pending state writes cleanly.
 */
import { EXIT, parseOptions, type Command } from '../command.js';
import { UsageError } from '../../errors.js';
import { loadControllerConfig } from '../../controller/config.js';
import { Controller } from '../../controller/controller-server.js';
import { createLogger } from '../../util/log.js';

function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]+)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new UsageError(`--listen must be HOST:PORT (e.g. 127.0.0.1:8443 or [::1]:8443), got "${text}"`);
  return { host: (m[1] ?? m[2])!, port };
}

export const controllerCommand: Command = {
  path: ['controller'],
  usage: `Usage: cvm-agent controller [--config FILE] [--listen HOST:PORT]

Runs the reference controller in the foreground: agents connect over WebSocket (${'/v1/link'}, subprotocol
cvm-agent.v1) with a bearer token, are challenged with fresh nonces, and receive a signed EAR token and
the secrets the config releases to them. GET / shows the fleet page, GET /v1/agents the JSON.
Configuration keys: docs/controller.md. Logs are pino JSON on stdout. SIGTERM or SIGINT stops it.

Options:
  --config FILE       controller config (YAML); without it: defaults, which accept no agent
  --listen HOST:PORT  override listen.host/listen.port (port 0 picks a free port)
  -h, --help          show this help

Exit codes: 0 stopped cleanly, 1 the store's database has a newer schema than this controller knows
(ERR_STORE_SCHEMA: run a newer controller), 2 invalid config or arguments, 4 the listen address
cannot be bound or the store (store.url) cannot be reached, 70 internal error.`,
  async run(argv) {
    const { values, positionals } = parseOptions(argv, { config: { type: 'string' }, listen: { type: 'string' } });
    if (positionals.length > 0) throw new UsageError('unexpected arguments');
    const listen = values.listen === undefined ? undefined : parseListen(values.listen);
    const resolved = await loadControllerConfig(values.config);
    // The agent's logger factory: same line shape. Synchronous, as before: a line is out before the
    // event it reports is acknowledged, even if the process is killed right after.
    const log = createLogger(resolved.config.logLevel, { service: 'cvm-agent-controller', sync: true });
    const controller = await Controller.start(resolved, { log, ...(listen ? { listen } : {}) });
    const cfg = resolved.config;
    if (controller.signer.ephemeral)
      log.warn(
        cfg.store
          ? 'no signingKey configured: this replica signs tokens with its own key generated in memory; other replicas and restarts cannot verify them (configure one signingKey on every replica)'
          : 'no signingKey configured: tokens are signed with a key generated in memory; they cannot be verified after a restart',
      );
    if (resolved.tokens.length === 0 && !cfg.tls?.requireClientCert) log.warn('no agents.tokens configured: every agent connection will be refused');
    if (cfg.simulation.trust)
      log.warn({ dir: cfg.simulation.dir }, 'simulation.trust is ON: SIMULATED test roots are trusted (demo/tests only); results say SIMULATED');
    if (!cfg.stateDir && !cfg.store) log.warn('no stateDir or store: agent state (event seq, verdicts) is kept in memory only');
    const addr = controller.address();
    log.info({ url: addr.url, link: addr.wsUrl, tls: cfg.tls !== undefined }, 'controller listening');
    await new Promise<void>((resolve) => {
      const stop = (signal: string) => {
        log.info({ signal }, 'stopping');
        process.off('SIGTERM', onTerm);
        process.off('SIGINT', onInt);
        resolve();
      };
      const onTerm = () => stop('SIGTERM');
      const onInt = () => stop('SIGINT');
      process.on('SIGTERM', onTerm);
      process.on('SIGINT', onInt);
    });
    await controller.close();
    log.info('stopped');
    return EXIT.OK;
  },
};
