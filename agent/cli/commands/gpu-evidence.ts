/** `cvm-agent gpu evidence --nonce HEX [--out FILE]`: collect NVIDIA's serialized GPU evidence JSON. */
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { UsageError } from '../../errors.js';
import { writeFileAtomic } from '../../util/atomic-file.js';
import { EXIT, parseOptions, type Command } from '../command.js';
import { NvmlGpuSource, toNvidiaEvidenceJson } from '../../evidence/gpu-nvml.js';
import { NVML_NONCE_SIZE } from '../../native/nvml.js';
import { nonceFromHex } from '../../util/nonce-hex.js';

/** Parses the --nonce value: exactly 64 hex digits (32 bytes, NVML_CC_GPU_CEC_NONCE_SIZE). */
export function parseGpuNonce(text: string | undefined): Buffer {
  if (text === undefined) return randomBytes(NVML_NONCE_SIZE);
  const nonce = nonceFromHex(text, { minBytes: NVML_NONCE_SIZE, maxBytes: NVML_NONCE_SIZE });
  if (!nonce) throw new UsageError(`--nonce must be ${NVML_NONCE_SIZE} bytes as ${NVML_NONCE_SIZE * 2} hex digits`);
  return nonce;
}

export const gpuEvidence: Command = {
  path: ['gpu', 'evidence'],
  usage: `Usage: cvm-agent gpu evidence [--nonce HEX] [--out FILE]

Asks every GPU for an SPDM attestation report bound to the nonce, plus its certificate chain, and
writes NVIDIA's serialized evidence JSON: [{arch, certificate: base64(PEM chain), evidence:
base64(report), nonce: hex}, ...] (the input of "cvm-agent verify gpu --evidence"). Refuses when
GPU confidential computing is off. Does not verify anything.

Options:
  --nonce HEX  32-byte nonce as 64 hex digits (default: 32 random bytes)
  --out FILE   write the JSON to FILE instead of stdout
  -h, --help   show this help

Exit codes: 0 collected, 2 usage error, 4 NVML not available or GPU CC off.`,
  async run(argv, io) {
    const { values } = parseOptions(argv, { nonce: { type: 'string' }, out: { type: 'string' } });
    const nonce = parseGpuNonce(values.nonce);
    const evidence = await new NvmlGpuSource().collect(nonce);
    const json = `${JSON.stringify(toNvidiaEvidenceJson(evidence), null, 2)}\n`;
    if (values.out !== undefined) {
      const path = resolve(io.cwd, values.out);
      try {
        await writeFileAtomic(path, json, 0o644);
      } catch (err) {
        throw new UsageError(`cannot write ${path}: ${(err as Error).message}`, { cause: err });
      }
      io.stderr.write(`wrote evidence for ${evidence.length} GPU(s) to ${path}\n`);
    } else {
      io.stdout.write(json);
    }
    return EXIT.OK;
  },
};
