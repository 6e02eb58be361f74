/** `cvm-agent config check [FILE]`: validate a config file exactly as `run` does, and print the effective configuration. */
import { EXIT, parseOptions, type Command } from '../command.js';
import { DEFAULT_CONFIG_PATH } from '../../config/load.js';
import { loadValidatedConfig } from '../../daemon/preflight.js';

export const configCheck: Command = {
  path: ['config', 'check'],
  usage: `Usage: cvm-agent config check [FILE] [--json]

Validates FILE (default ${DEFAULT_CONFIG_PATH}) with the same checks "cvm-agent run" and SIGHUP
run, so "valid" means the daemon will start with it: the schema (see docs/config.md), the cron
expression (node-cron's parser), user and group names in api.authorization (from /etc/passwd and
/etc/group), every referenced file read within its size limit and parsed (policy.file with its
id/snp/gpu sections, controller.caFile/certFile/keyFile/tokenFile/tokenKey, devices.nvmlLibrary),
the agent id (controller.agentId or the host name), the directory of api.socket, and
consequences.systemctl when units are listed. Prints the effective configuration with defaults
filled in, and the staleness bound in force. Every problem is listed with its key. Run it as the
user the daemon runs as (cvm-agent) for file permissions to match.

Options:
  --json      print the effective configuration as JSON only
  -h, --help  show this help

Exit codes: 0 valid, 2 invalid or unreadable.`,
  async run(argv, io) {
    const { values, positionals } = parseOptions(argv, { json: { type: 'boolean' } }, true);
    if (positionals.length > 1) {
      io.stderr.write('cvm-agent config check: at most one FILE\n');
      return EXIT.USAGE;
    }
    const { config, path, found, maxAgeSec, policy } = await loadValidatedConfig(positionals[0], io.env);
    if (values.json) {
      io.stdout.write(`${JSON.stringify(config, null, 2)}\n`);
    } else {
      io.stdout.write(
        `${found ? `${path}: valid` : `${path}: not found, using defaults`} (policy "${policy.id}", attestation counts as stale after ${maxAgeSec} s)\n`,
      );
      io.stdout.write(`${JSON.stringify(config, null, 2)}\n`);
    }
    return EXIT.OK;
  },
};
