/**
 * Typed wrapper over the addon's SEV-SNP functions (native/src/snp.c): narrows the raw surface and
 * turns the addon's coded Errors into DeviceErrors whose details carry the decoded firmware/VMM codes.
 */
import { CvmError, DeviceError, UsageError, isErrorCode } from '../errors.js';
import { decodeExitInfo2, decodeReportStatus } from './snp-errors.js';
import { loadNative } from './addon-loader.js';

export interface SnpExtResult {
  report: Buffer;
  /** Raw GHCB certificate table as the host supplied it (page-padded; empty when none). */
  certs: Buffer;
}

/** The OS boundary the SNP collector needs; injectable so the collector can be tested without the addon. */
export interface SnpDeviceBinding {
  getReport(devicePath: string, reportData: Uint8Array, vmpl: number): Promise<Buffer>;
  getExtReport(devicePath: string, reportData: Uint8Array, vmpl: number): Promise<SnpExtResult>;
}

interface RawSnpAddon {
  snpGetReport(devicePath: string, reportData: Uint8Array, vmpl: number): Promise<Buffer>;
  snpGetExtReport(devicePath: string, reportData: Uint8Array, vmpl: number): Promise<SnpExtResult>;
}

/** Error codes the C layer produces (see native/src/snp.c `snp_error`). */
export const SNP_NATIVE_CODES = [
  'ERR_SNP_DEVICE_ABSENT',
  'ERR_SNP_DEVICE_ACCESS',
  'ERR_SNP_FIRMWARE',
  'ERR_SNP_VMPCK_DISABLED',
  'ERR_SNP_IOCTL',
  'ERR_SNP_REPORT_STATUS',
  'ERR_SNP_REPORT_SIZE',
  'ERR_SNP_CERTS_TOO_LARGE',
  'ERR_SNP_CERTS_UNSTABLE',
] as const;

const VMPCK_REASON =
  "VMPCK disabled, reboot required: the sev-guest driver wiped this VM's VMPCK after an earlier failed guest " +
  'request (it does so to prevent AES-GCM IV reuse), and every further request fails until the VM reboots';

/** Maps an addon rejection to a typed error; never throws. */
export function toSnpError(err: unknown, devicePath: string): CvmError {
  if (err instanceof CvmError) return err;
  const e = (err ?? {}) as { code?: unknown; message?: unknown; [k: string]: unknown };
  const code = isErrorCode(e.code) ? e.code : 'ERR_SNP_IOCTL';
  const raw = typeof e.message === 'string' ? e.message : String(err);
  const details: Record<string, unknown> = { devicePath };
  for (const key of ['errno', 'syscall', 'exitinfo2', 'attempts', 'status', 'reportSize', 'certsLength', 'limit']) {
    if (e[key] !== undefined) details[key] = e[key];
  }
  const opts = { cause: err };
  switch (code) {
    case 'ERR_INVALID_ARGUMENT':
      return new UsageError(raw, opts);
    case 'ERR_SNP_DEVICE_ABSENT':
      return new DeviceError(code, `no SEV-SNP guest device: ${raw} (not an SEV-SNP guest, or the sev-guest module is not loaded)`, details, opts);
    case 'ERR_SNP_DEVICE_ACCESS':
      return new DeviceError(code, `${raw} (run as root or grant the agent's user access to ${devicePath})`, details, opts);
    case 'ERR_SNP_VMPCK_DISABLED':
      return new DeviceError(code, VMPCK_REASON, details, opts);
    case 'ERR_SNP_FIRMWARE': {
      const decoded = decodeExitInfo2(
        typeof e.exitinfo2 === 'string' || typeof e.exitinfo2 === 'bigint' || typeof e.exitinfo2 === 'number' ? e.exitinfo2 : 0xff,
      );
      details.exitinfo2 = decoded.exitinfo2.toString();
      details.firmwareError = decoded.firmware;
      details.vmmError = decoded.vmm;
      return new DeviceError(
        code,
        `SEV-SNP guest request failed: ${decoded.summary}. After most such failures the kernel disables the VMPCK; if later requests report "VMPCK disabled", reboot the VM`,
        details,
        opts,
      );
    }
    case 'ERR_SNP_REPORT_STATUS': {
      const status = typeof e.status === 'number' ? decodeReportStatus(e.status) : undefined;
      if (status) details.reportStatus = status;
      return new DeviceError(
        code,
        `firmware refused the report: ${status ? `${status.name} (0x${status.code.toString(16)}): ${status.reason}` : raw}`,
        details,
        opts,
      );
    }
    default:
      return new DeviceError(code, raw, details, opts);
  }
}

/** The addon binding, loaded on first use; throws DeviceError ERR_NATIVE_UNAVAILABLE without a build. */
export function nativeSnpBinding(): SnpDeviceBinding {
  let raw: RawSnpAddon | undefined;
  const addon = (): RawSnpAddon => {
    if (!raw) {
      const loaded = loadNative() as unknown as Partial<RawSnpAddon>;
      if (typeof loaded.snpGetReport !== 'function' || typeof loaded.snpGetExtReport !== 'function') {
        throw new DeviceError('ERR_NATIVE_UNAVAILABLE', 'the native addon has no SEV-SNP functions (rebuild with "npm run build:native")');
      }
      raw = loaded as RawSnpAddon;
    }
    return raw;
  };
  return {
    async getReport(devicePath, reportData, vmpl) {
      const a = addon();
      try {
        return await a.snpGetReport(devicePath, reportData, vmpl);
      } catch (err) {
        throw toSnpError(err, devicePath);
      }
    },
    async getExtReport(devicePath, reportData, vmpl) {
      const a = addon();
      try {
        return await a.snpGetExtReport(devicePath, reportData, vmpl);
      } catch (err) {
        throw toSnpError(err, devicePath);
      }
    },
  };
}
