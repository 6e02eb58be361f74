/**
 * The command table: each command's words and one-line summary (what --help lists), and the module
 * that implements it, imported only when that command runs or its usage is shown. A process loads
 * the code of the one command it runs: `run` never loads the verifier CLIs, the controller, the
 * doctor or the demo. Add new commands here.
 */
import type { CommandEntry } from '../command.js';

/** In the order `cvm-agent --help` lists them: try it, check the machine, run it, ask it, collect, verify, manage. */
export const commands: CommandEntry[] = [
  {
    path: ['demo'],
    summary: 'controller + agent on a simulated SEV-SNP CPU and simulated GPUs, end to end (no TEE needed)',
    load: async () => (await import('./demo.js')).demoCommand,
  },
  {
    path: ['doctor'],
    summary: 'check the TEE, vTPM, GPUs, the agent setup and the controller link, and say what to fix',
    load: async () => (await import('./doctor.js')).doctorCommand,
  },
  { path: ['run'], summary: 'run the agent daemon in the foreground (systemd runs this)', load: async () => (await import('./run.js')).runCommand },
  {
    path: ['status'],
    summary: "show the running agent's status (a table on a terminal, JSON otherwise)",
    load: async () => (await import('./agent-queries.js')).statusCommand,
  },
  {
    path: ['health'],
    summary: 'print ok | degraded | failing and why (for scripts, probes and ExecCondition=)',
    load: async () => (await import('./agent-queries.js')).healthCommand,
  },
  {
    path: ['attest'],
    summary: 'run an attestation cycle now (joins a running one) and print the EAR',
    load: async () => (await import('./agent-queries.js')).attestCommand,
  },
  {
    path: ['evidence'],
    summary: 'fetch fresh evidence bound to your nonce (for your own verifier)',
    load: async () => (await import('./agent-queries.js')).evidenceCommand,
  },
  {
    path: ['token'],
    summary: 'print the controller-issued attestation token, if still valid',
    load: async () => (await import('./agent-queries.js')).tokenCommand,
  },
  {
    path: ['snp', 'report'],
    summary: 'fetch a raw SEV-SNP attestation report (device, configfs-tsm or simulated)',
    load: async () => (await import('./snp-report.js')).snpReportCommand,
  },
  {
    path: ['gpu', 'list'],
    summary: 'list the GPUs NVML sees with their confidential-computing state',
    load: async () => (await import('./gpu-list.js')).gpuList,
  },
  {
    path: ['gpu', 'evidence'],
    summary: 'collect GPU attestation evidence (NVIDIA serialized evidence JSON)',
    load: async () => (await import('./gpu-evidence.js')).gpuEvidence,
  },
  {
    path: ['gpu', 'ready'],
    summary: 'show the GPU ready state, or set it after every GPU passes attestation',
    load: async () => (await import('./gpu-ready.js')).gpuReady,
  },
  {
    path: ['azure', 'evidence'],
    summary: 'collect Azure CVM evidence (HCL report + vTPM quote) from /dev/tpmrm0 or a swtpm socket',
    load: async () => (await import('./azure-evidence.js')).azureEvidenceCommand,
  },
  {
    path: ['verify', 'snp'],
    summary: 'verify a SEV-SNP attestation report against the pinned AMD roots and a policy',
    load: async () => (await import('./verify-snp.js')).verifySnpCommand,
  },
  {
    path: ['verify', 'gpu'],
    summary: 'verify NVIDIA GPU attestation evidence offline (report, chain, RIMs, OCSP)',
    load: async () => (await import('./verify-gpu.js')).verifyGpuCommand,
  },
  {
    path: ['verify', 'azure'],
    summary: 'verify Azure confidential VM evidence (HCL report + vTPM quote + SEV-SNP report)',
    load: async () => (await import('./verify-azure.js')).verifyAzureCommand,
  },
  {
    path: ['collateral', 'import'],
    summary: 'store collateral files (VCEK/VLEK, ASK/ARK, CRL, RIM, OCSP, IMDS JSON, bundle) in the cache',
    load: async () => (await import('./collateral.js')).collateralImport,
  },
  {
    path: ['collateral', 'list'],
    summary: 'list cached collateral with its freshness',
    load: async () => (await import('./collateral.js')).collateralList,
  },
  {
    path: ['collateral', 'export'],
    summary: 'export the cache as a JSON bundle or a directory (for air-gapped machines)',
    load: async () => (await import('./collateral.js')).collateralExport,
  },
  {
    path: ['config', 'check'],
    summary: 'validate a config file as the daemon would and print the effective configuration',
    load: async () => (await import('./config-check.js')).configCheck,
  },
  {
    path: ['controller'],
    summary: 'run the reference controller (agent link, verdicts, secrets, fleet page)',
    load: async () => (await import('./controller.js')).controllerCommand,
  },
];
