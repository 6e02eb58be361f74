/**
 * Typed wrapper over the addon's NVML functions (native/src/nvml.c). Every call runs on the libuv
 * pool; failures become DeviceError with details {nvmlReturn, nvmlName, function} so callers can
 * branch on the NVML code. No NVML library: nvmlInfo() resolves {available:false}, other calls throw
 * DeviceError ERR_NVML_UNAVAILABLE.
 */
import { DeviceError, UsageError, CvmError, isErrorCode } from '../errors.js';
import { nvmlHint } from './nvml-errors.js';
import { loadNative, type NativeAddon } from './addon-loader.js';

/** NVML_CC_GPU_CEC_NONCE_SIZE (nvml.h). */
export const NVML_NONCE_SIZE = 32;

export type NvmlInfo =
  | { available: true; library: string; driverVersion: string; nvmlVersion?: string; deviceCount: number }
  | { available: false; reason: string; library?: string; nvmlReturn?: number; nvmlName?: string };

export interface NvmlDevice {
  index: number;
  uuid: string;
  name: string;
  /** NVML_DEVICE_ARCH_* number, when NVML could tell. */
  architecture?: number;
  architectureName: string;
  vbiosVersion?: string;
  boardId?: number;
  pciBusId?: string;
  ccProtectedMemory?: { protectedKib: number; unprotectedKib: number };
  /** Optional fields NVML could not give: field -> NVML_ERROR_* name. */
  fieldErrors?: Record<string, string>;
}

export interface NvmlSystemCc {
  environment: number;
  ccFeature: number;
  devToolsMode: number;
  multiGpuMode?: number;
  settings?: { version: number; environment: number; ccFeature: number; devToolsMode: number; multiGpuMode: number };
  capabilities?: { cpuCaps: number; gpusCaps: number };
  readyState?: number;
  fieldErrors?: Record<string, string>;
}

export interface NvmlAttestationReport {
  /** attestationReport[0:attestationReportSize]. */
  report: Buffer;
  isCecValid: boolean;
  cecReport?: Buffer;
}

export interface NvmlCertificateChain {
  /** attestationCertChain[0:attestationCertChainSize]: PEM text, leaf first (nvml.h nvmlConfComputeGpuCertificate_t). */
  attestationChain: Buffer;
  /** certChain[0:certChainSize]: undocumented, no verifier reads it. */
  certChain: Buffer;
}

/** NVML_DEVICE_ARCH_* (nvml.h): 9 Hopper and 10 Blackwell are the CC-capable ones (nvtrust GPU_ARCHITECTURE_MAP). */
const ARCHITECTURES: Readonly<Record<number, string>> = {
  2: 'kepler',
  3: 'maxwell',
  4: 'pascal',
  5: 'volta',
  6: 'turing',
  7: 'ampere',
  8: 'ada',
  9: 'hopper',
  10: 'blackwell',
};

export function architectureName(arch: number | undefined): string {
  return arch === undefined ? 'unknown' : (ARCHITECTURES[arch] ?? 'unknown');
}

interface RawNvmlError extends Error {
  code?: string;
  nvmlReturn?: number;
  nvmlName?: string;
  function?: string;
}

/** Turn whatever the addon threw into the agent's typed errors. */
export function toNvmlError(err: unknown): Error {
  if (err instanceof CvmError) return err;
  const raw = err as RawNvmlError;
  const code = isErrorCode(raw?.code) ? raw.code : 'ERR_NVML';
  const message = raw?.message ?? String(err);
  if (code === 'ERR_INVALID_ARGUMENT') return new UsageError(message, { cause: err });
  const details: Record<string, unknown> = {};
  if (typeof raw.nvmlReturn === 'number') details.nvmlReturn = raw.nvmlReturn;
  if (typeof raw.nvmlName === 'string') details.nvmlName = raw.nvmlName;
  if (typeof raw.function === 'string') details.function = raw.function;
  const hint = typeof raw.nvmlReturn === 'number' && raw.nvmlReturn !== 0 ? `: ${nvmlHint(raw.nvmlReturn)}` : '';
  return new DeviceError(code, `${message}${hint}`, details, { cause: err });
}

type AddonFn = (...args: unknown[]) => Promise<unknown>;

/** devices.nvmlLibrary, once setNvmlLibrary() was called; otherwise CVM_NVML_LIBRARY (the CLI's override). */
let libraryPath: string | undefined;
let libraryChosen = false;
let librarySent = false;

/**
 * Which libnvidia-ml to load (devices.nvmlLibrary; undefined: the loader's default name). It takes
 * effect only before the first NVML call: the loaded library stays for the life of the process.
 */
export function setNvmlLibrary(path: string | undefined): void {
  libraryPath = path;
  libraryChosen = true;
  librarySent = false;
}

/** Hand the library path to the addon as an argument, before its first NVML call. */
function sendLibraryPath(addon: NativeAddon): void {
  if (librarySent) return;
  const set = addon.nvmlSetLibrary;
  if (typeof set !== 'function') {
    throw new DeviceError('ERR_NATIVE_UNAVAILABLE', 'the native addon has no nvmlSetLibrary(); rebuild it with "npm run build:native"');
  }
  const path = libraryChosen ? libraryPath : process.env.CVM_NVML_LIBRARY;
  (set as (p: string | null) => boolean)(path ? path : null);
  librarySent = true;
}

function addonFn(name: string): AddonFn {
  const addon: NativeAddon = loadNative();
  sendLibraryPath(addon);
  const fn = addon[name];
  if (typeof fn !== 'function') {
    throw new DeviceError('ERR_NATIVE_UNAVAILABLE', `the native addon has no ${name}(); rebuild it with "npm run build:native"`);
  }
  return fn as unknown as AddonFn;
}

async function call<T>(name: string, ...args: unknown[]): Promise<T> {
  try {
    return (await addonFn(name)(...args)) as T;
  } catch (err) {
    throw toNvmlError(err);
  }
}

function checkIndex(index: number): void {
  if (!Number.isInteger(index) || index < 0 || index > 255) throw new UsageError(`GPU index must be an integer from 0 to 255, got ${index}`);
}

/** Whether NVML can be used, with the driver version and device count. Never throws for a missing library. */
export async function nvmlInfo(): Promise<NvmlInfo> {
  let fn: AddonFn;
  try {
    fn = addonFn('nvmlInfo');
  } catch (err) {
    return { available: false, reason: `NVML not available: ${(err as Error).message}` };
  }
  try {
    return (await fn()) as NvmlInfo;
  } catch (err) {
    throw toNvmlError(err);
  }
}

export async function nvmlDevices(): Promise<NvmlDevice[]> {
  const raw = await call<Omit<NvmlDevice, 'architectureName'>[]>('nvmlDevices');
  return raw.map((d) => ({ ...d, architectureName: architectureName(d.architecture) }));
}

export function nvmlSystemCc(): Promise<NvmlSystemCc> {
  return call<NvmlSystemCc>('nvmlSystemCc');
}

/** Fetches the SPDM attestation report of one GPU for a caller-chosen 32-byte nonce. */
export function nvmlAttestationReport(index: number, nonce: Uint8Array): Promise<NvmlAttestationReport> {
  checkIndex(index);
  if (!(nonce instanceof Uint8Array) || nonce.length !== NVML_NONCE_SIZE) {
    return Promise.reject(new UsageError(`GPU nonce must be exactly ${NVML_NONCE_SIZE} bytes, got ${nonce?.length ?? 'none'}`));
  }
  return call<NvmlAttestationReport>('nvmlAttestationReport', index, Buffer.from(nonce));
}

export function nvmlCertificateChain(index: number): Promise<NvmlCertificateChain> {
  checkIndex(index);
  return call<NvmlCertificateChain>('nvmlCertificateChain', index);
}

export function nvmlGetReadyState(): Promise<boolean> {
  return call<boolean>('nvmlGetReadyState');
}

/** Marks the GPUs as accepting work (or not). Needs root on real hardware; may be one-way per boot (nvml.h nvmlSystemSetConfComputeGpusReadyState). */
export async function nvmlSetReadyState(ready: boolean): Promise<void> {
  if (typeof ready !== 'boolean') throw new UsageError('ready state must be a boolean');
  await call<boolean>('nvmlSetReadyState', ready);
}

export function nvmlGetKeyRotationThreshold(): Promise<{ attackerAdvantage: number }> {
  return call<{ attackerAdvantage: number }>('nvmlGetKeyRotationThreshold');
}
