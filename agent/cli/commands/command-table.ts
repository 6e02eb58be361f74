/**
 * The command table. Each command lives in its own module; add new ones here.
 */
import type { Command } from '../command.js';
import { gpuList } from './gpu-list.js';
import { gpuEvidence } from './gpu-evidence.js';
import { gpuReady } from './gpu-ready.js';
import { configCheck } from './config-check.js';
import { verifySnpCommand } from './verify-snp.js';
import { verifyGpuCommand } from './verify-gpu.js';
import { snpReportCommand } from './snp-report.js';
import { verifyAzureCommand } from './verify-azure.js';
import { azureEvidenceCommand } from './azure-evidence.js';
import { demoCommand } from './demo.js';
import { runCommand } from './run.js';
import { statusCommand, healthCommand, attestCommand, evidenceCommand, tokenCommand } from './agent-queries.js';
import { collateralCommands } from './collateral.js';
import { controllerCommand } from './controller.js';
import { doctorCommand } from './doctor.js';

/** In the order `cvm-agent --help` lists them: try it, check the machine, run it, ask it, collect, verify, manage. */
export const commands: Command[] = [
  demoCommand,
  doctorCommand,
  runCommand,
  statusCommand,
  healthCommand,
  attestCommand,
  evidenceCommand,
  tokenCommand,
  snpReportCommand,
  gpuList,
  gpuEvidence,
  gpuReady,
  azureEvidenceCommand,
  verifySnpCommand,
  verifyGpuCommand,
  verifyAzureCommand,
  ...collateralCommands,
  configCheck,
  controllerCommand,
];
