/**
 * `cvm-agent gpu ready [--set] [--json]`: show the GPU ready state, or set it after attesting
 * every GPU. --set never writes unconditionally: it collects fresh evidence from all GPUs, verifies and
 * appraises each one as the attestation cycle does (attest/verify-and-appraise.ts verifyGpuEvidence), and
 * hands the verdicts to applyGpuReadyState, which writes only if the shared ready-state decision
 * (appraise/gpu-ready-decision.ts) allows it.
 */
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { ParseError, UsageError } from '../../errors.js';
import { InputFileError, readBoundedText } from '../../util/bounded-read.js';
import { verifyGpuEvidence } from '../../attest/verify-and-appraise.js';
import { EXIT, parseOptions, type Command } from '../command.js';
import { gpuRecordOf, NvmlGpuSource, type GpuEvidence, type GpuSource } from '../../evidence/gpu-nvml.js';
import { applyGpuReadyState } from '../../attest/apply-gpu-ready.js';
import type { GpuVerdict } from '../../appraise/gpu-ready-decision.js';
import { NVML_NONCE_SIZE } from '../../native/nvml.js';
import { failureLines } from '../../formats/checks.js';

/** Verifies one GPU's evidence against the nonce it was requested with. */
export type GpuVerifier = (evidence: GpuEvidence, nonce: Buffer) => Promise<{ ok: boolean; detail?: string }>;

export interface GpuVerifierOptions {
  /** Driver and VBIOS RIM XML files (reference values); without them the RIM checks fail closed. */
  driverRim?: string;
  vbiosRim?: string;
  cwd: string;
}

export interface GpuReadyDeps {
  source: () => GpuSource;
  verifier: (options: GpuVerifierOptions) => Promise<GpuVerifier>;
}

async function readRim(cwd: string, file: string | undefined, what: string): Promise<string | undefined> {
  if (file === undefined) return undefined;
  const path = resolve(cwd, file);
  try {
    return await readBoundedText(path, 'rim', { streams: true });
  } catch (err) {
    if (err instanceof InputFileError) throw new ParseError(`the ${what} RIM ${err.message}`, undefined, { cause: err });
    throw new UsageError(`cannot read the ${what} RIM ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/** The project's full GPU verifier (agent/verify/nvidia verifyGpuEvidence), at the current time. */
export async function defaultGpuVerifier(options: GpuVerifierOptions): Promise<GpuVerifier> {
  const driver = await readRim(options.cwd, options.driverRim, 'driver');
  const vbios = await readRim(options.cwd, options.vbiosRim, 'VBIOS');
  const rims: { driver?: string; vbios?: string } = {};
  if (driver !== undefined) rims.driver = driver;
  if (vbios !== undefined) rims.vbios = vbios;
  return async (evidence, nonce) => {
    const result = verifyGpuEvidence(gpuRecordOf(evidence), { at: new Date(), expectedNonce: nonce, rims });
    const failed = failureLines(result.checks);
    return { ok: result.ok, detail: failed.length > 0 ? failed.join('; ') : result.status };
  };
}

export function makeGpuReadyCommand(deps: GpuReadyDeps): Command {
  return {
    path: ['gpu', 'ready'],
    usage: `Usage: cvm-agent gpu ready [--set [--driver-rim FILE] [--vbios-rim FILE]] [--json]

Without --set, shows whether the GPUs accept work (NVML "GPUs ready state") and the CC mode.
With --set, collects fresh evidence from every GPU (random 32-byte nonce), verifies each one, and
marks the GPUs ready ONLY if every GPU passed. If any GPU fails, nothing is written and the failing
GPUs are listed. Verification is the full local NVIDIA check (report signature, nonce, device chain to
the pinned NVIDIA root, FWID, driver/VBIOS consistency, RIM measurements); without RIM files the RIM
checks fail and the state is left unset. Setting the state needs root on real hardware and may not
be undoable until reboot.

Options:
  --set              attest all GPUs, then set the ready state if all passed
  --driver-rim FILE  driver RIM XML (reference measurements) for --set
  --vbios-rim FILE   VBIOS RIM XML for --set
  --json             print the result as JSON
  -h, --help         show this help

Exit codes: 0 shown / set (or already set), 1 a GPU failed verification (not set),
            2 usage error, 4 NVML not available, GPU CC off, or the driver refused.`,
    async run(argv, io) {
      const { values } = parseOptions(argv, {
        set: { type: 'boolean' },
        json: { type: 'boolean' },
        'driver-rim': { type: 'string' },
        'vbios-rim': { type: 'string' },
      });
      const source = deps.source();
      if (!values.set) {
        const state = await source.systemState();
        const ready = await source.getReadyState();
        const out = { ready, deviceCount: state.deviceCount, cc: state.cc };
        io.stdout.write(
          values.json ? `${JSON.stringify(out, null, 2)}\n` : `GPUs ready (accepting work): ${ready ? 'yes' : 'no'} (${state.deviceCount} GPU(s))\n`,
        );
        return EXIT.OK;
      }
      const verifierOptions: GpuVerifierOptions = { cwd: io.cwd };
      if (values['driver-rim'] !== undefined) verifierOptions.driverRim = values['driver-rim'];
      if (values['vbios-rim'] !== undefined) verifierOptions.vbiosRim = values['vbios-rim'];
      const verify = await deps.verifier(verifierOptions);
      const nonce = randomBytes(NVML_NONCE_SIZE);
      const evidence = await source.collect(nonce);
      const verdicts: GpuVerdict[] = await Promise.all(
        evidence.map(async (e) => {
          try {
            const r = await verify(e, nonce);
            return { index: e.index, ok: r.ok === true, ...(r.detail !== undefined ? { detail: r.detail } : {}) };
          } catch (err) {
            return { index: e.index, ok: false, detail: (err as Error).message };
          }
        }),
      );
      // Compare with the device count NVML reports now, not just what was collected.
      const { deviceCount } = await source.systemState();
      const outcome = await applyGpuReadyState(source, verdicts, deviceCount);
      const out = { set: outcome.set, wrote: outcome.wrote, reason: outcome.reason, verdicts };
      if (values.json) {
        io.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
      } else {
        for (const v of verdicts) io.stdout.write(`GPU ${v.index}: ${v.ok ? 'passed' : `FAILED${v.detail ? `: ${v.detail}` : ''}`}\n`);
        io.stdout.write(`${outcome.reason}\n`);
      }
      if (outcome.set) return EXIT.OK;
      return outcome.error ? EXIT.UNAVAILABLE : EXIT.FAILED;
    },
  };
}

export const gpuReady: Command = makeGpuReadyCommand({ source: () => new NvmlGpuSource(), verifier: defaultGpuVerifier });
