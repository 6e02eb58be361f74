/** Runs test/native/fixtures/nvml-probe.mjs in a child process against a fake libnvidia-ml. */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { repoRoot, fakesDir, vectorsDir } from '../helpers/paths.js';
import { built } from '../helpers/built.js';

const run = promisify(execFile);
export const FAKE_NVML = join(fakesDir, 'libnvidia-ml.so.1');
export const FAKE_NVML_NOCC = join(fakesDir, 'libnvidia-ml-nocc.so.1');
export const ADDON = join(repoRoot, 'build', 'Release', 'cvm_native.node');
const PROBE = built('test/native/fixtures/nvml-probe.mjs');

export const HOPPER_550 = join(vectorsDir, 'nvidia', 'nvtrust', 'hopper-550');
export const REPORT_550 = join(HOPPER_550, 'hopperAttestationReport.txt');
export const CHAIN_550 = join(HOPPER_550, 'hopperCertChain.txt');
export const REPORT_535 = join(vectorsDir, 'nvidia', 'attestation-sdk', 'hopper-535', 'hopperAttestationReport.txt');

export function assertBuilt(): void {
  for (const f of [ADDON, FAKE_NVML, FAKE_NVML_NOCC]) {
    if (!existsSync(f)) throw new Error(`${f} is missing: run "npm run build:native && npm run build:fakes"`);
  }
}

/** Environment without any inherited FAKE_NVML_* / CVM_NVML_* settings. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('FAKE_NVML_') && !k.startsWith('CVM_NVML_') && k !== 'LD_LIBRARY_PATH') env[k] = v;
  }
  return env;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type ProbeResult = any;

/** `library`: a path for CVM_NVML_LIBRARY, or null for "no NVML at all". */
export async function probe(scenario: string, args: object, env: Record<string, string>, library: string | null = FAKE_NVML): Promise<ProbeResult> {
  const childEnv = { ...cleanEnv(), ...env };
  if (library !== null) childEnv.CVM_NVML_LIBRARY = library;
  const { stdout } = await run(process.execPath, [PROBE, scenario, JSON.stringify(args)], {
    cwd: repoRoot,
    env: childEnv,
    timeout: 30_000,
  });
  return JSON.parse(stdout.trim().split('\n').pop() ?? '{}');
}
