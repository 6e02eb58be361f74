/**
 * `cvm-agent verify gpu`: verify NVIDIA GPU attestation evidence offline (report + device chain, or
 * NVIDIA's serialized evidence JSON with any number of GPUs), with RIMs from files or a directory and
 * OCSP responses from files. Thin edge: read files, call the pure verifier, print, map to exit codes.
 */
import { readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { UsageError } from '../../errors.js';
import { InputFileError, readBoundedSync } from '../../util/bounded-read.js';
import { parseOptions, type CliIO, type Command } from '../command.js';
import { exitForStatus, formatChecks, formatInput, inputJson, parseAt, readInput, type InputFormat } from '../verify-output.js';
import { DEFAULT_GPU_POLICY, parseGpuPolicy } from '../../appraise/gpu-policy.js';
import { decodeGpuEvidenceFile, decodeGpuReportFile, GPU_INPUT_FORMATS } from '../../formats/gpu-input.js';
import type { MultiGpuResult } from '../../verify/nvidia/multi-gpu.js';
import { verifyGpus, type GpuVerifyOptions } from '../../attest/verify-and-appraise.js';
import type { GpuSkip } from '../../verify/nvidia/gpu-verify.js';
import type { GpuEvidenceRecord } from '../../formats/gpu-evidence-record.js';
import { GPU_NONCE_BYTES, nonceFromHex } from '../../util/nonce-hex.js';

const usage = `Usage: cvm-agent verify gpu (--report FILE --chain FILE | --evidence FILE) [--nonce HEX]
                         [--driver-rim FILE] [--vbios-rim FILE] [--switch-rim FILE] [--rim-dir DIR]
                         [--ocsp FILE]... [--skip rim|revocation]... [--at ISO8601] [--policy FILE]
                         [--sim-dir DIR] [--json]

Verify NVIDIA confidential-computing GPU evidence offline: the SPDM report signature with the
attestation key, the device certificate chain up to the pinned NVIDIA Device Identity CA, the FWID,
the architecture, the nonce, the driver and VBIOS RIMs (XML signature + chain) and every golden
measurement, and revocation (when OCSP responses are given).

NVSwitch (LS10) evidence of a protected-PCIe (PPCIe) HGX system is accepted next to the GPU evidence
(entries with arch "LS10" in the evidence JSON, or an LS10 report): each switch is verified the same
way (report signature, its LS_10 chain to the same pinned root, nonce, its switch VBIOS RIM
NV_SWITCH_BIOS_5612_0002_890_<version> and measurements, revocation) and printed as a switch row;
with both GPUs and switches, ppcie.topology checks that they agree (8 GPUs each naming the same 4
switches, every switch naming the same 8 GPUs). Switch evidence alone is verified switch by switch
and the topology is a warning (not evaluated).

Options:
  --report FILE       NVML attestation report: raw bytes or hex text
  --chain FILE        NVML attestation certificate chain (PEM, leaf first)
  --evidence FILE     GPU evidence JSON (formats below); every entry is verified
  --nonce HEX         the 32-byte nonce the evidence must carry (without it freshness is a warning)
  --driver-rim FILE   driver RIM (SWID XML), e.g. NV_GPU_DRIVER_GH100_550.90.07.xml
  --vbios-rim FILE    VBIOS RIM (SWID XML)
  --switch-rim FILE   NVSwitch VBIOS RIM (SWID XML), e.g. NV_SWITCH_BIOS_5612_0002_890_9610550001.xml
  --rim-dir DIR       directory of RIMs named by RIM id (NV_GPU_... or NV_SWITCH_...[.xml|.swidtag]) or nvtrust sample names
  --ocsp FILE         DER OCSP response for a device-chain certificate. Repeatable.
                      Without any, the result is at best "warning" (revocation not checked).
  --skip WHAT         rim | revocation: skip those checks explicitly (they then show as warnings). Repeatable.
  --at ISO8601        verification time for certificate validity (default: now)
  --policy FILE       GPU appraisal policy, a YAML or JSON mapping (see agent/appraise/gpu-policy.ts;
                      an empty file is an error, {} means the defaults)
  --sim-dir DIR       ALSO trust the simulated GPU roots stored in DIR; results then say SIMULATED.
                      For the demo and tests only — never for real evidence.
  --json              print {ok, status, simulated, gpus: [{index, ok, status, claims, checks}],
                      switches: [...] (only with NVSwitch evidence), checks, input}
  -h, --help          show this help

Input formats (detected; the output names the one found as "input"):
${GPU_INPUT_FORMATS.map((l) => `  ${l}`).join('\n')}

A missing RIM is a failure naming the RIM id unless --skip rim is given.

Exit codes:
  0  verified, every check passed (affirming)
  1  a check failed (contraindicated)
  2  usage error or unreadable/malformed input (also a file over its size limit, docs/config.md)
  3  verified with warnings only (e.g. revocation not checked)
  70 internal error (a bug: report it with the output of cvm-agent --version)
`;

const MAX_RIM_DIR_FILES = 2000;

/** RIM id for a file name: NV_GPU_<...>[.xml|.swidtag], or nvtrust's <project>_<sku>_<chip>_<ver>_PROD.swidtag. */
export function rimIdFromFileName(name: string): string | undefined {
  const direct = /^(NV_(?:GPU|SWITCH)_[A-Za-z0-9_.-]+?)(?:\.xml|\.swidtag)?$/.exec(name);
  if (direct) return direct[1];
  const sample = /^([0-9A-Za-z]+_[0-9A-Za-z]+_[0-9A-Za-z]+_[0-9A-Fa-f]{10})_PROD\.swidtag$/.exec(name);
  if (sample) return `NV_GPU_VBIOS_${sample[1]!.toUpperCase()}`;
  return undefined;
}

function loadRimDir(dir: string, io: CliIO): Map<string, string> {
  const path = resolve(io.cwd, dir);
  let names: string[];
  try {
    names = readdirSync(path);
  } catch (err) {
    throw new UsageError(`cannot read RIM directory "${dir}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const byId = new Map<string, string>();
  for (const name of names.slice(0, MAX_RIM_DIR_FILES)) {
    const id = rimIdFromFileName(name);
    if (!id) continue;
    try {
      byId.set(id, readBoundedSync(join(path, name), 'rim').toString('utf8'));
    } catch (err) {
      // Not a regular file or over the RIM cap: not a RIM (a missing RIM then fails naming its id).
      if (err instanceof InputFileError || (err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw new UsageError(`cannot read RIM "${join(dir, name)}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  return byId;
}

function parseNonce(value: string | undefined): Buffer | undefined {
  if (value === undefined) return undefined;
  const nonce = nonceFromHex(value, { minBytes: GPU_NONCE_BYTES, maxBytes: GPU_NONCE_BYTES, trim: true, prefix: 'any-case' });
  if (!nonce) throw new UsageError('--nonce: expected 64 hex digits (32 bytes)');
  return nonce;
}

/** DER OCSP response, or base64 of one (as some tools store them). */
function ocspBytes(bytes: Buffer): Buffer {
  if (bytes[0] === 0x30) return bytes;
  const text = bytes
    .toString('latin1')
    .replace(/-----[A-Z ]+-----/g, '')
    .replace(/\s+/g, '');
  if (/^[A-Za-z0-9+/]+={0,2}$/.test(text)) return Buffer.from(text, 'base64');
  return bytes;
}

/** The same table as `verify snp` and `verify azure` (verify-output.ts), one per GPU, then the cross-GPU checks. */
function printText(result: MultiGpuResult, io: CliIO, input: InputFormat): void {
  const parts: string[] = [];
  for (const [i, r] of result.perGpu.entries()) {
    const c = r.claims;
    const what = c ? `${c.arch ?? '?'} driver ${c.driverVersion ?? '?'} VBIOS ${c.vbiosVersion ?? '?'} ueid ${c.ueid ?? '?'}` : 'unparsed report';
    parts.push(formatChecks(`GPU ${i} (${what})`, r.status, r.simulated, r.checks));
  }
  for (const [i, r] of result.perSwitch.entries()) {
    const c = r.claims;
    const what = c ? `LS10 VBIOS ${c.vbiosVersion ?? '?'} PDI ${c.switchPdi ?? '?'} ueid ${c.ueid ?? '?'}` : 'unparsed report';
    parts.push(formatChecks(`NVSwitch ${i} (${what})`, r.status, r.simulated, r.checks));
  }
  if (result.checks.length > 0) parts.push(formatChecks('Across GPUs', result.status, result.simulated, result.checks));
  parts.push(`overall: ${result.status.toUpperCase()}${result.simulated ? ' (SIMULATED)' : ''}\n${formatInput(input)}`);
  io.stdout.write(parts.join('\n'));
}

function toJson(result: MultiGpuResult, input: InputFormat): unknown {
  return {
    ok: result.ok,
    status: result.status,
    simulated: result.simulated,
    gpus: result.perGpu.map((r, index) => ({
      index,
      ok: r.ok,
      status: r.status,
      claims: r.claims ?? null,
      checks: r.checks.map((c) => ({ name: c.name, ok: c.ok, detail: c.detail })),
    })),
    ...(result.perSwitch.length > 0
      ? {
          switches: result.perSwitch.map((r, index) => ({
            index,
            ok: r.ok,
            status: r.status,
            claims: r.claims ?? null,
            checks: r.checks.map((c) => ({ name: c.name, ok: c.ok, detail: c.detail })),
          })),
        }
      : {}),
    checks: result.checks.map((c) => ({ name: c.name, ok: c.ok, detail: c.detail })),
    input: inputJson(input),
  };
}

async function run(argv: string[], io: CliIO): Promise<number> {
  const { values } = parseOptions(argv, {
    report: { type: 'string' },
    chain: { type: 'string' },
    evidence: { type: 'string' },
    nonce: { type: 'string' },
    'driver-rim': { type: 'string' },
    'vbios-rim': { type: 'string' },
    'switch-rim': { type: 'string' },
    'rim-dir': { type: 'string' },
    ocsp: { type: 'string', multiple: true },
    skip: { type: 'string', multiple: true },
    at: { type: 'string' },
    policy: { type: 'string' },
    'sim-dir': { type: 'string' },
    json: { type: 'boolean' },
  });
  const hasPair = values.report !== undefined || values.chain !== undefined;
  if (hasPair && values.evidence !== undefined) throw new UsageError('give either --report/--chain or --evidence, not both');
  if (!hasPair && values.evidence === undefined) throw new UsageError('missing evidence: give --report FILE --chain FILE, or --evidence FILE');
  if (hasPair && (values.report === undefined || values.chain === undefined)) throw new UsageError('--report and --chain go together');

  const skip = new Set<GpuSkip>();
  for (const s of values.skip ?? []) {
    if (s !== 'rim' && s !== 'revocation') throw new UsageError(`--skip: "${s}" is not rim or revocation`);
    skip.add(s);
  }
  const options: GpuVerifyOptions & { switchBiosRim?: string } = { at: parseAt(values.at), skip, policy: DEFAULT_GPU_POLICY };
  const nonce = parseNonce(values.nonce);
  if (nonce) options.expectedNonce = nonce;
  if (values.policy !== undefined)
    options.policy = parseGpuPolicy(readInput(values.policy, io, 'policy', 'policy').toString('utf8'), `GPU policy "${values.policy}"`);

  const rims: NonNullable<GpuVerifyOptions['rims']> = {};
  if (values['driver-rim'] !== undefined) rims.driver = readInput(values['driver-rim'], io, 'driver RIM', 'rim').toString('utf8');
  if (values['vbios-rim'] !== undefined) rims.vbios = readInput(values['vbios-rim'], io, 'VBIOS RIM', 'rim').toString('utf8');
  if (values['rim-dir'] !== undefined) rims.byId = loadRimDir(values['rim-dir'], io);
  if (values['switch-rim'] !== undefined) options.switchBiosRim = readInput(values['switch-rim'], io, 'switch RIM', 'rim').toString('utf8');
  options.rims = rims;
  if (values.ocsp) options.ocsp = values.ocsp.map((f) => ocspBytes(readInput(f, io, 'OCSP response', 'ocsp')));
  if (values['sim-dir'] !== undefined) {
    // Loaded only with --sim-dir: the simulated roots never reach a production verification.
    const { loadSimGpuIdentity, simulatedRoots } = await import('../../simulation/gpu-sim.js');
    try {
      options.simulatedRoots = simulatedRoots(await loadSimGpuIdentity(resolve(io.cwd, values['sim-dir'])));
    } catch (err) {
      throw new UsageError(`--sim-dir: ${(err as Error).message}`);
    }
  }

  let list: GpuEvidenceRecord[];
  let input: InputFormat;
  if (values.evidence !== undefined) {
    const decoded = decodeGpuEvidenceFile(readInput(values.evidence, io, 'evidence', 'gpuEvidence'));
    list = decoded.gpus;
    input = { format: decoded.format, name: decoded.name, notes: [] };
  } else {
    const report = decodeGpuReportFile(readInput(values.report!, io, 'report', 'gpuReport'));
    list = [{ report: report.report, certChainPem: readInput(values.chain!, io, 'certificate chain', 'certificate').toString('latin1') }];
    input = { format: `report-${report.encoding}`, name: `${report.name} + PEM chain`, notes: [] };
  }

  const result = await verifyGpus(list, options);
  if (values.json) io.stdout.write(`${JSON.stringify(toJson(result, input), null, 2)}\n`);
  else printText(result, io, input);
  return exitForStatus(result.status); // result.ok ⇔ affirming or warning (multi-gpu.ts)
}

export const verifyGpuCommand: Command = {
  path: ['verify', 'gpu'],
  usage,
  run,
};
