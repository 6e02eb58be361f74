/**
 * NVML return codes (nvmlReturn_t in nvml.h) with a reason an operator can act on.
 * The addon puts the name on its errors itself; this table adds the "what to do" text and lets
 * callers branch on a code without string matching.
 */
import { DeviceError } from '../errors.js';

export interface NvmlReturnInfo {
  name: string;
  /** What it usually means for the agent and what to do about it. */
  hint: string;
}

export const NVML_RETURN: Readonly<Record<number, NvmlReturnInfo>> = {
  0: { name: 'NVML_SUCCESS', hint: 'no error' },
  1: { name: 'NVML_ERROR_UNINITIALIZED', hint: 'NVML was not initialised; this is an agent bug, please report it' },
  2: { name: 'NVML_ERROR_INVALID_ARGUMENT', hint: 'NVML rejected an argument; for the ready state this can mean a terminal state was reached (reboot the VM)' },
  3: { name: 'NVML_ERROR_NOT_SUPPORTED', hint: 'the GPU or driver does not support this query; is confidential computing enabled on the GPU?' },
  4: { name: 'NVML_ERROR_NO_PERMISSION', hint: 'insufficient permissions; setting the GPU ready state needs root' },
  5: { name: 'NVML_ERROR_ALREADY_INITIALIZED', hint: 'NVML was already initialised' },
  6: { name: 'NVML_ERROR_NOT_FOUND', hint: 'the requested object was not found' },
  7: { name: 'NVML_ERROR_INSUFFICIENT_SIZE', hint: 'a buffer was too small; this is an agent bug, please report it' },
  8: { name: 'NVML_ERROR_INSUFFICIENT_POWER', hint: 'a GPU power cable is not attached properly' },
  9: { name: 'NVML_ERROR_DRIVER_NOT_LOADED', hint: 'the NVIDIA kernel driver is not loaded; check "nvidia-smi" and dmesg' },
  10: { name: 'NVML_ERROR_TIMEOUT', hint: 'the driver timed out; retry, then check the GPU' },
  11: { name: 'NVML_ERROR_IRQ_ISSUE', hint: 'the kernel detected an interrupt problem with a GPU' },
  12: { name: 'NVML_ERROR_LIBRARY_NOT_FOUND', hint: 'a library NVML needs is missing; reinstall the NVIDIA driver' },
  13: { name: 'NVML_ERROR_FUNCTION_NOT_FOUND', hint: 'the installed driver lacks this function; confidential computing needs driver R535 or newer' },
  14: { name: 'NVML_ERROR_CORRUPTED_INFOROM', hint: 'the GPU infoROM is corrupted' },
  15: { name: 'NVML_ERROR_GPU_IS_LOST', hint: 'the GPU fell off the bus or stopped responding; the VM needs attention' },
  16: { name: 'NVML_ERROR_RESET_REQUIRED', hint: 'the GPU needs a reset' },
  17: { name: 'NVML_ERROR_OPERATING_SYSTEM', hint: 'the operating system blocked the call' },
  18: { name: 'NVML_ERROR_LIB_RM_VERSION_MISMATCH', hint: 'the NVML library and the kernel driver versions differ; reboot after a driver update' },
  19: { name: 'NVML_ERROR_IN_USE', hint: 'the GPU is in use' },
  20: { name: 'NVML_ERROR_MEMORY', hint: 'out of memory' },
  21: { name: 'NVML_ERROR_NO_DATA', hint: 'no data' },
  22: { name: 'NVML_ERROR_VGPU_ECC_NOT_SUPPORTED', hint: 'ECC is not supported with vGPU' },
  23: { name: 'NVML_ERROR_INSUFFICIENT_RESOURCES', hint: 'insufficient resources' },
  24: { name: 'NVML_ERROR_FREQ_NOT_SUPPORTED', hint: 'frequency not supported' },
  25: { name: 'NVML_ERROR_ARGUMENT_VERSION_MISMATCH', hint: 'the driver expects another struct version; update the agent or the driver' },
  26: { name: 'NVML_ERROR_DEPRECATED', hint: 'the function is deprecated' },
  27: { name: 'NVML_ERROR_NOT_READY', hint: 'the GPU is not ready yet; retry' },
  28: { name: 'NVML_ERROR_GPU_NOT_FOUND', hint: 'no such GPU' },
  29: { name: 'NVML_ERROR_INVALID_STATE', hint: 'the call is not allowed in the current state (e.g. after the GPUs were marked ready)' },
  999: { name: 'NVML_ERROR_UNKNOWN', hint: 'the driver reported an unknown error; check dmesg and nvidia-smi' },
};

export const NVML_ERROR_NOT_SUPPORTED = 3;
export const NVML_ERROR_FUNCTION_NOT_FOUND = 13;

export function nvmlReturnName(code: number): string {
  return NVML_RETURN[code]?.name ?? 'NVML_ERROR_UNRECOGNIZED';
}

export function nvmlHint(code: number): string {
  return NVML_RETURN[code]?.hint ?? `NVML returned an unrecognised code ${code}`;
}

/** The NVML return code carried by an agent error, if any. */
export function nvmlReturnOf(err: unknown): number | undefined {
  if (err instanceof DeviceError && typeof err.details.nvmlReturn === 'number') return err.details.nvmlReturn;
  return undefined;
}

/** True when the driver or GPU cannot do this at all (not a transient failure). */
export function isNvmlNotSupported(err: unknown): boolean {
  const rc = nvmlReturnOf(err);
  return rc === NVML_ERROR_NOT_SUPPORTED || rc === NVML_ERROR_FUNCTION_NOT_FOUND;
}
