/** `cvm-agent doctor`: check everything the agent depends on, in order, and name the fix for each finding. */
import { EXIT, parseOptions, type Command } from '../command.js';
import { DEFAULT_CONFIG_PATH } from '../../config/load.js';
import { exitCodeFor, findingsJson, formatFindings } from '../../doctor/finding.js';
import { runDoctor } from '../../doctor/run-doctor.js';

export const doctorCommand: Command = {
  path: ['doctor'],
  usage: `Usage: cvm-agent doctor [--config FILE] [--json] [--swtpm ADDR] [--vtpm-refresh]

Checks, in the order the agent depends on them, everything attestation needs on this VM, and names
the fix (a command to run or a config key to set) for each finding. Every check runs; a check that
cannot run says why (skipped). Run it as root or as the service user (cvm-agent).

  platform    which TEE (bare SEV-SNP, configfs-tsm, Azure vTPM, none), the kernel, the sev-guest
              module and /dev/sev-guest (owner, group, mode as systemd/60-cvm-agent.rules sets them),
              configfs-tsm, a test report (version, VMPL, product), and whether the VCEK/VLEK and
              CRL for it are at hand and chain to the pinned AMD roots
  vtpm        (Azure) /dev/tpmrm0, the HCL report NV index, the AK, the user-data index
  gpu         NVML and the driver, the GPUs, CC mode, DevTools, environment, multi-GPU mode, ready
              state, driver/VBIOS RIMs and OCSP responses in the collateral cache and their freshness
  agent       the config (the same validation as "run"), the state directory, the API socket's
              directory and group, the systemd unit against the shipped one, the clock against the
              certificate validity windows the agent needs
  controller  (when controller.url is set) DNS, TCP, TLS with controller.caFile, the bearer token
              (WebSocket upgrade), protocol version (hello/welcome; not sent while the daemon runs)

Read-only: it writes no state, never sets the GPU ready state, fetches no collateral and sends no
evidence to the controller. Each finding is documented in docs/troubleshooting.md.

Options:
  --config FILE   the config file (default ${DEFAULT_CONFIG_PATH}; missing default = defaults)
  --json          print one JSON object {status, exitCode, summary, config, findings: [{id, area,
                  status, detail, fix}]}
  --swtpm ADDR    talk to a swtpm server socket (HOST:PORT or unix:PATH) instead of devices.tpm
  --vtpm-refresh  also write random user data to vTPM NV 0x01400002 and wait for the paravisor to
                  refresh the HCL report (do not use while the daemon is attesting)
  -h, --help      show this help

Exit codes: 0 every check passed (or was skipped), 3 warnings only, 1 a check failed,
            2 usage error or the config file cannot be read.`,
  async run(argv, io) {
    const { values } = parseOptions(argv, {
      config: { type: 'string' },
      json: { type: 'boolean' },
      swtpm: { type: 'string' },
      'vtpm-refresh': { type: 'boolean' },
    });
    const r = await runDoctor({
      env: io.env,
      ...(values.config !== undefined ? { configPath: values.config } : {}),
      ...(values.swtpm !== undefined ? { swtpm: values.swtpm } : {}),
      vtpmRefresh: values['vtpm-refresh'] === true,
    });
    io.stdout.write(values.json ? `${JSON.stringify(findingsJson(r.findings, { config: r.configPath }), null, 2)}\n` : formatFindings(r.findings));
    const code = exitCodeFor(r.findings);
    return code === 1 ? EXIT.FAILED : code === 3 ? EXIT.WARNING : EXIT.OK;
  },
};
