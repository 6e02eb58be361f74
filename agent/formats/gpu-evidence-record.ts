/**
 * The one GPU evidence record: what the GPU verifier takes (verify/nvidia/gpu-verify.ts), what the
 * evidence bundle carries per GPU, and what NVIDIA's serialized evidence JSON decodes to. One mapper
 * per format: collected evidence -> record (`gpuRecordOf`, evidence/gpu-nvml.ts, next to the collected
 * type); NVIDIA JSON <-> record (formats/nvidia-evidence-json.ts); bundle JSON <-> record (here).
 */

/** NVML_CC_GPU_ATTESTATION_REPORT_SIZE (0x2000, nvml.h): no genuine report is larger. */
export const MAX_GPU_REPORT_LENGTH = 0x2000;
/** NVML_GPU_ATTESTATION_CERT_CHAIN_SIZE is 0x1400; leave room for other PEM producers. */
export const MAX_GPU_CHAIN_PEM_LENGTH = 64 * 1024;

/** NVML CC state as the evidence layer decodes it (evidence/gpu-nvml.ts GpuCcState), the part a record keeps. */
export interface GpuCcFacts {
  ccEnabled: boolean;
  devToolsMode: boolean;
  environment: string;
}

/** What NVML said about a GPU: not signed by the GPU, used for consistency checks only. */
export interface GpuNvmlFacts {
  driverVersion?: string;
  vbiosVersion?: string;
  cc?: GpuCcFacts;
}

export interface GpuEvidenceRecord {
  /** GPU index, for messages and multi-GPU results. */
  index?: number;
  /** Claimed architecture ("HOPPER", "hopper", ...); checked against the chain. */
  arch?: string;
  /** Raw NVML attestationReport bytes. */
  report: Uint8Array;
  /** NVML attestationCertChain: PEM text (latin1, every byte one char), leaf first. */
  certChainPem: string;
  /** The nonce the collector says it used (NVIDIA JSON); verification still needs the verifier's nonce. */
  nonce?: Buffer;
  nvml?: GpuNvmlFacts;
}

/** The record as an evidence bundle carries it: index, arch and NVML facts always present. */
export interface GpuBundleEntry extends GpuEvidenceRecord {
  index: number;
  arch: string;
  report: Buffer;
  nvml: GpuNvmlFacts;
}

/** Record -> the bundle's `gpus[]` JSON entry (binary fields base64). */
export function gpuEntryToJson(g: GpuBundleEntry): Record<string, unknown> {
  return { index: g.index, arch: g.arch, report: Buffer.from(g.report).toString('base64'), certChainPem: g.certChainPem, nvml: g.nvml };
}

/** The bundle parser's field reader, so an entry's problems read like the rest of the bundle's. */
export interface BundleFields {
  fail(path: string, what: string): never;
  obj(v: unknown, path: string): Record<string, unknown>;
  str(v: unknown, path: string, max: number): string;
  base64(v: unknown, path: string): Buffer;
}

/** The bundle's `gpus[i]` JSON entry (hostile) -> record. */
export function gpuEntryFromJson(g: unknown, i: number, r: BundleFields): GpuBundleEntry {
  const e = r.obj(g, `gpus[${i}]`);
  if (typeof e.index !== 'number' || !Number.isInteger(e.index) || e.index < 0 || e.index > 63) r.fail(`gpus[${i}].index`, 'must be an integer 0..63');
  const nvml = e.nvml === undefined ? {} : r.obj(e.nvml, `gpus[${i}].nvml`);
  const entry: GpuBundleEntry = {
    index: e.index,
    arch: r.str(e.arch, `gpus[${i}].arch`, 32),
    report: r.base64(e.report, `gpus[${i}].report`),
    certChainPem: r.str(e.certChainPem, `gpus[${i}].certChainPem`, MAX_GPU_CHAIN_PEM_LENGTH),
    nvml: {},
  };
  if (nvml.driverVersion !== undefined) entry.nvml.driverVersion = r.str(nvml.driverVersion, `gpus[${i}].nvml.driverVersion`, 64);
  if (nvml.vbiosVersion !== undefined) entry.nvml.vbiosVersion = r.str(nvml.vbiosVersion, `gpus[${i}].nvml.vbiosVersion`, 64);
  if (nvml.cc !== undefined) {
    const cc = r.obj(nvml.cc, `gpus[${i}].nvml.cc`);
    if (typeof cc.ccEnabled !== 'boolean' || typeof cc.devToolsMode !== 'boolean') r.fail(`gpus[${i}].nvml.cc`, 'must have boolean ccEnabled and devToolsMode');
    entry.nvml.cc = { ccEnabled: cc.ccEnabled, devToolsMode: cc.devToolsMode, environment: r.str(cc.environment, `gpus[${i}].nvml.cc.environment`, 32) };
  }
  return entry;
}

/**
 * An NVSwitch (LS10) record as the bundle's optional `switches[]` carries it: the NSCQ report and chain
 * in the same shape as a GPU's (no NVML facts: a switch has no driver).
 */
export interface SwitchBundleEntry {
  index: number;
  arch: string;
  report: Buffer;
  certChainPem: string;
}

/** Record -> the bundle's `switches[]` JSON entry. */
export function switchEntryToJson(s: SwitchBundleEntry): Record<string, unknown> {
  return { index: s.index, arch: s.arch, report: Buffer.from(s.report).toString('base64'), certChainPem: s.certChainPem };
}

/** The bundle's `switches[i]` JSON entry (hostile) -> record. */
export function switchEntryFromJson(v: unknown, i: number, r: BundleFields): SwitchBundleEntry {
  const e = r.obj(v, `switches[${i}]`);
  if (typeof e.index !== 'number' || !Number.isInteger(e.index) || e.index < 0 || e.index > 63) r.fail(`switches[${i}].index`, 'must be an integer 0..63');
  return {
    index: e.index,
    arch: r.str(e.arch, `switches[${i}].arch`, 32),
    report: r.base64(e.report, `switches[${i}].report`),
    certChainPem: r.str(e.certChainPem, `switches[${i}].certChainPem`, MAX_GPU_CHAIN_PEM_LENGTH),
  };
}
