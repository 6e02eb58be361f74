/** `cvm-agent config check [FILE]`: validate a config file and print the effective configuration. */
import { EXIT, parseOptions, type Command } from '../command.js';
import { loadConfigFile, DEFAULT_CONFIG_PATH } from '../../config/load.js';
import { loadPolicyFile } from '../../appraise/policy.js';

export const configCheck: Command = {
  path: ['config', 'check'],
  summary: 'validate a config file and print the effective configuration',
  usage: `Usage: cvm-agent config check [FILE] [--json]

Validates FILE (default ${DEFAULT_CONFIG_PATH}) against the schema (see docs/config.md) and prints
the effective configuration with defaults filled in. Every problem is listed with its key. The
policy file named by policy.file is read and validated too (as the daemon does at start and reload).

Options:
  --json      print the effective configuration as JSON (default: YAML-like summary)
  -h, --help  show this help

Exit codes: 0 valid, 2 invalid or unreadable.`,
  async run(argv, io) {
    const { values, positionals } = parseOptions(argv, { json: { type: 'boolean' } }, true);
    if (positionals.length > 1) {
      io.stderr.write('cvm-agent config check: at most one FILE\n');
      return EXIT.USAGE;
    }
    const { config, path, found } = await loadConfigFile(positionals[0]);
    // The daemon refuses to start (or reload) on a bad policy file: so does the check.
    if (config.policy.file) await loadPolicyFile(config.policy.file);
    if (values.json) {
      io.stdout.write(`${JSON.stringify(config, null, 2)}\n`);
    } else {
      io.stdout.write(`${found ? `${path}: valid` : `${path}: not found, using defaults`}\n`);
      io.stdout.write(`${JSON.stringify(config, null, 2)}\n`);
    }
    return EXIT.OK;
  },
};
