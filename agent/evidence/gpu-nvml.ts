/**
 * GPU evidence source over NVML: lists the GPUs, reads the system CC state, and collects one
 * attestation report + certificate chain per GPU for a caller-chosen 32-byte nonce (all GPUs in
 * parallel). It never verifies; the verifier (agent/verify/nvidia) does. Call order follows the
 * reference clients (nvtrust local_gpu_verifier cc_admin.py; attestation-sdk nvml_client.cpp): CC state first, refuse when neither CC nor PPCIe is on.
 */
import { DeviceError, UsageError } from '../errors.js';
import {
  NVML_NONCE_SIZE,
  nvmlAttestationReport,
  nvmlCertificateChain,
  nvmlDevices,
  nvmlGetReadyState,
  nvmlInfo,
  nvmlSetReadyState,
  nvmlSystemCc,
  type NvmlDevice,
  type NvmlSystemCc,
} from '../native/nvml.js';
import { isNvmlNotSupported } from '../native/nvml-errors.js';
import type { GpuBundleEntry } from '../formats/gpu-evidence-record.js';
import { nvidiaEvidenceEntryOf, type NvidiaEvidenceEntry } from '../formats/nvidia-evidence-json.js';

export type GpuArchitecture = 'hopper' | 'blackwell' | 'ampere' | 'ada' | 'unknown' | (string & {});

/** Decoded nvmlConfComputeSystemState/Settings (constants: nvml.h NVML_CC_SYSTEM_*). */
export interface GpuCcState {
  environment: 'unavailable' | 'sim' | 'prod' | 'unknown';
  ccEnabled: boolean;
  devToolsMode: boolean;
  multiGpuMode?: 'none' | 'protected-pcie' | 'nvle' | 'unknown';
  /** NVML_CC_ACCEPTING_CLIENT_REQUESTS_TRUE, when readable. */
  readyState?: boolean;
  cpuCaps?: 'none' | 'amd-sev' | 'intel-tdx' | 'amd-sev-snp' | 'amd-snp-vtom' | 'unknown';
  gpusCcCapable?: boolean;
}

export interface GpuInfo {
  index: number;
  uuid: string;
  name: string;
  architecture: GpuArchitecture;
  architectureId?: number;
  vbiosVersion?: string;
  pciBusId?: string;
  ccProtectedMemory?: { protectedKib: number; unprotectedKib: number };
  /** Optional fields NVML could not give (field -> NVML_ERROR_* name). */
  fieldErrors?: Record<string, string>;
}

export interface GpuSystemState {
  driverVersion: string;
  nvmlVersion?: string;
  deviceCount: number;
  /** Absent when the driver has no CC support; ccError then says why. */
  cc?: GpuCcState;
  ccError?: string;
}

export interface GpuEvidence {
  index: number;
  uuid: string;
  name: string;
  architecture: GpuArchitecture;
  driverVersion: string;
  vbiosVersion: string;
  /** The nonce the report was requested with (it must reappear at report offset 4, DSP0274 1.1 GET_MEASUREMENTS). */
  nonce: Buffer;
  /** attestationReport[0:attestationReportSize] as NVML returned it. */
  report: Buffer;
  /** NVML attestationCertChain text (5 PEM certs, leaf first). */
  certChainPem: string;
  cc: GpuCcState;
}

/** The one mapper from collected evidence to the GPU evidence record (formats/gpu-evidence-record.ts; NVML's unsigned facts kept for consistency checks). */
export function gpuRecordOf(g: GpuEvidence): GpuBundleEntry {
  return {
    index: g.index,
    arch: g.architecture,
    report: g.report,
    certChainPem: g.certChainPem,
    nvml: {
      driverVersion: g.driverVersion,
      vbiosVersion: g.vbiosVersion,
      cc: { ccEnabled: g.cc.ccEnabled, devToolsMode: g.cc.devToolsMode, environment: g.cc.environment },
    },
  };
}

/** One GPU's part of a collection: its evidence, or why it has none (attributed to that GPU). */
export type GpuCollectOutcome = { index: number; evidence: GpuEvidence } | { index: number; error: Error };

/** What the agent needs from any GPU source (NVML here, simulated GPUs elsewhere). */
export interface GpuSource {
  list(): Promise<GpuInfo[]>;
  systemState(): Promise<GpuSystemState>;
  collect(nonce: Uint8Array): Promise<GpuEvidence[]>;
  /**
   * Like collect, but one GPU failing (CC off on that GPU, the GPU lost) does not hide the others:
   * each GPU gets its evidence or its own error. Throws only when no GPU can be asked at all.
   */
  collectSettled?(nonce: Uint8Array): Promise<GpuCollectOutcome[]>;
  getReadyState(): Promise<boolean>;
  setReadyState(ready: boolean): Promise<void>;
}

/**
 * Why one GPU cannot be attested because of its CC mode, or undefined. System-wide: neither CC nor
 * protected-PCIe is on (the reference clients refuse then). Per GPU: NVML reports no protected
 * memory for it, i.e. that GPU is not in CC mode even though the system is.
 */
export function deviceCcOff(cc: GpuCcState, d: Pick<NvmlDevice, 'index' | 'ccProtectedMemory'>): string | undefined {
  if (!cc.ccEnabled && cc.multiGpuMode !== 'protected-pcie')
    return `GPU ${d.index}: confidential computing is off (ccFeature disabled and not in protected-PCIe mode)`;
  if (cc.ccEnabled && d.ccProtectedMemory !== undefined && d.ccProtectedMemory.protectedKib === 0)
    return `GPU ${d.index}: CC mode is off on this GPU (NVML reports no protected memory)`;
  return undefined;
}

/** The driver's view through NVML, for sources whose evidence comes from elsewhere (simulation.nvml). */
export interface GpuDriverFacts {
  systemCc(): Promise<GpuCcState>;
  devices(): Promise<NvmlDevice[]>;
  getReadyState(): Promise<boolean>;
  setReadyState(ready: boolean): Promise<void>;
}

export const nvmlDriverFacts: GpuDriverFacts = {
  systemCc: async () => {
    await requireNvml();
    return decodeCcState(await nvmlSystemCc());
  },
  devices: async () => {
    await requireNvml();
    return nvmlDevices();
  },
  getReadyState: () => nvmlGetReadyState(),
  setReadyState: (ready) => nvmlSetReadyState(ready),
};

const ENVIRONMENTS = ['unavailable', 'sim', 'prod'] as const;
const MULTI_GPU = ['none', 'protected-pcie', 'nvle'] as const;
const CPU_CAPS = ['none', 'amd-sev', 'intel-tdx', 'amd-sev-snp', 'amd-snp-vtom'] as const;

export function decodeCcState(raw: NvmlSystemCc): GpuCcState {
  const state: GpuCcState = {
    environment: ENVIRONMENTS[raw.environment] ?? 'unknown',
    ccEnabled: raw.ccFeature === 1,
    devToolsMode: raw.devToolsMode !== 0,
  };
  if (raw.multiGpuMode !== undefined) state.multiGpuMode = MULTI_GPU[raw.multiGpuMode] ?? 'unknown';
  if (raw.readyState !== undefined) state.readyState = raw.readyState === 1;
  if (raw.capabilities) {
    state.cpuCaps = CPU_CAPS[raw.capabilities.cpuCaps] ?? 'unknown';
    state.gpusCcCapable = raw.capabilities.gpusCaps === 1;
  }
  return state;
}

function toGpuInfo(d: NvmlDevice): GpuInfo {
  const info: GpuInfo = { index: d.index, uuid: d.uuid, name: d.name, architecture: d.architectureName };
  if (d.architecture !== undefined) info.architectureId = d.architecture;
  if (d.vbiosVersion !== undefined) info.vbiosVersion = d.vbiosVersion;
  if (d.pciBusId !== undefined) info.pciBusId = d.pciBusId;
  if (d.ccProtectedMemory !== undefined) info.ccProtectedMemory = d.ccProtectedMemory;
  if (d.fieldErrors !== undefined) info.fieldErrors = d.fieldErrors;
  return info;
}

/** Throws ERR_NVML_UNAVAILABLE ("NVML not available: ...") when there is no usable NVML. */
async function requireNvml(): Promise<{ driverVersion: string; nvmlVersion?: string; deviceCount: number }> {
  const info = await nvmlInfo();
  if (!info.available) {
    const details: Record<string, unknown> = {};
    if (info.nvmlReturn !== undefined) details.nvmlReturn = info.nvmlReturn;
    if (info.nvmlName !== undefined) details.nvmlName = info.nvmlName;
    throw new DeviceError('ERR_NVML_UNAVAILABLE', info.reason, details);
  }
  return info;
}

export class NvmlGpuSource implements GpuSource {
  async list(): Promise<GpuInfo[]> {
    await requireNvml();
    return (await nvmlDevices()).map(toGpuInfo);
  }

  async systemState(): Promise<GpuSystemState> {
    const info = await requireNvml();
    const state: GpuSystemState = { driverVersion: info.driverVersion, deviceCount: info.deviceCount };
    if (info.nvmlVersion !== undefined) state.nvmlVersion = info.nvmlVersion;
    try {
      state.cc = decodeCcState(await nvmlSystemCc());
    } catch (err) {
      if (!isNvmlNotSupported(err)) throw err;
      state.ccError = (err as Error).message;
    }
    return state;
  }

  /** One report + chain per GPU, all GPUs in parallel, all bound to `nonce`. */
  async collect(nonce: Uint8Array): Promise<GpuEvidence[]> {
    if (!(nonce instanceof Uint8Array) || nonce.length !== NVML_NONCE_SIZE) {
      throw new UsageError(`GPU nonce must be exactly ${NVML_NONCE_SIZE} bytes`);
    }
    const info = await requireNvml();
    const cc = decodeCcState(await nvmlSystemCc());
    // Reference clients refuse unless CC is on or the system is in protected-PCIe mode (nvtrust cc_admin.py; attestation-sdk nvml_client.cpp).
    if (!cc.ccEnabled && cc.multiGpuMode !== 'protected-pcie') {
      throw new DeviceError(
        'ERR_GPU_CC_OFF',
        'GPU confidential computing is off (ccFeature disabled and not in protected-PCIe mode): enable CC mode on the host before attesting',
        { ccFeature: cc.ccEnabled, multiGpuMode: cc.multiGpuMode },
      );
    }
    const devices = await nvmlDevices();
    const nonceCopy = Buffer.from(nonce);
    return Promise.all(devices.map((d) => this.collectOne(d, info.driverVersion, nonceCopy, cc)));
  }

  async collectSettled(nonce: Uint8Array): Promise<GpuCollectOutcome[]> {
    if (!(nonce instanceof Uint8Array) || nonce.length !== NVML_NONCE_SIZE) {
      throw new UsageError(`GPU nonce must be exactly ${NVML_NONCE_SIZE} bytes`);
    }
    const info = await requireNvml();
    const cc = decodeCcState(await nvmlSystemCc());
    const devices = await nvmlDevices();
    const nonceCopy = Buffer.from(nonce);
    return Promise.all(
      devices.map(async (d): Promise<GpuCollectOutcome> => {
        const off = deviceCcOff(cc, d);
        if (off) return { index: d.index, error: new DeviceError('ERR_GPU_CC_OFF', off, { index: d.index }) };
        try {
          return { index: d.index, evidence: await this.collectOne(d, info.driverVersion, nonceCopy, cc) };
        } catch (err) {
          return { index: d.index, error: err instanceof Error ? err : new Error(String(err)) };
        }
      }),
    );
  }

  private async collectOne(d: NvmlDevice, driverVersion: string, nonce: Buffer, cc: GpuCcState): Promise<GpuEvidence> {
    if (d.vbiosVersion === undefined) {
      throw new DeviceError(
        'ERR_NVML',
        `GPU ${d.index}: the VBIOS version is needed for attestation but NVML gave ${d.fieldErrors?.vbiosVersion ?? 'nothing'}`,
        {
          function: 'nvmlDeviceGetVbiosVersion',
          nvmlName: d.fieldErrors?.vbiosVersion,
        },
      );
    }
    const [report, chain] = await Promise.all([nvmlAttestationReport(d.index, nonce), nvmlCertificateChain(d.index)]);
    return {
      index: d.index,
      uuid: d.uuid,
      name: d.name,
      architecture: d.architectureName,
      driverVersion,
      vbiosVersion: d.vbiosVersion,
      nonce: Buffer.from(nonce),
      report: report.report,
      // PEM is ASCII; latin1 keeps every byte as one char so nothing is silently replaced.
      certChainPem: chain.attestationChain.toString('latin1'),
      cc,
    };
  }

  getReadyState(): Promise<boolean> {
    return nvmlGetReadyState();
  }

  setReadyState(ready: boolean): Promise<void> {
    return nvmlSetReadyState(ready);
  }
}

/** Serialises collected evidence in the format NRAS and NVIDIA's SDKs exchange (through the record). */
export function toNvidiaEvidenceJson(evidence: readonly GpuEvidence[]): NvidiaEvidenceEntry[] {
  return evidence.map((e) => nvidiaEvidenceEntryOf(gpuRecordOf(e), e.nonce));
}
