/**
 * SEV-SNP evidence collector over the legacy /dev/sev-guest ioctls. Produces raw evidence (report bytes and
 * the host's certificate table); never verifies.
 *
 * Two safety rules from the driver (Linux drivers/virt/coco/sev-guest/sev-guest.c):
 *  - one request at a time (serialised here in JS, and again in C), and
 *  - after ENOTTY the VMPCK is gone until reboot: the collector latches and fails every later call at
 *    once, without touching the device, because retrying is pointless and a failed guest request is
 *    exactly what wipes a key.
 */
import { DeviceError, UsageError } from '../errors.js';
import { nativeSnpBinding, type SnpDeviceBinding } from '../native/snp.js';

export const SNP_REPORT_DATA_SIZE = 64;
export const SNP_DEFAULT_DEVICE = '/dev/sev-guest';

export interface SnpDeviceCollectorOptions {
  devicePath?: string;
  /** OS boundary; defaults to the native addon. */
  binding?: SnpDeviceBinding;
}

export interface SnpDeviceReport {
  report: Buffer;
}

export interface SnpDeviceExtReport {
  report: Buffer;
  /** GHCB certificate table (GHCB #56421 rev 2.03 §4.1.8.1), zero-padded to a page multiple; empty if the host has none. */
  certTable: Buffer;
}

export class SnpDeviceCollector {
  readonly devicePath: string;
  readonly #binding: SnpDeviceBinding;
  #queue: Promise<unknown> = Promise.resolve();
  #latched: DeviceError | undefined;

  constructor(options: SnpDeviceCollectorOptions = {}) {
    this.devicePath = options.devicePath ?? SNP_DEFAULT_DEVICE;
    this.#binding = options.binding ?? nativeSnpBinding();
  }

  /** True once the VMPCK was found disabled; every call fails until a new process after reboot. */
  get vmpckDisabled(): boolean {
    return this.#latched !== undefined;
  }

  async getReport(reportData: Uint8Array, vmpl = 0): Promise<SnpDeviceReport> {
    const data = checkInputs(reportData, vmpl);
    return this.#serial(async () => ({ report: await this.#binding.getReport(this.devicePath, data, vmpl) }));
  }

  async getExtReport(reportData: Uint8Array, vmpl = 0): Promise<SnpDeviceExtReport> {
    const data = checkInputs(reportData, vmpl);
    return this.#serial(async () => {
      const { report, certs } = await this.#binding.getExtReport(this.devicePath, data, vmpl);
      return { report, certTable: certs };
    });
  }

  /** Runs `op` after every earlier request settled; latches on ERR_SNP_VMPCK_DISABLED. */
  #serial<T>(op: () => Promise<T>): Promise<T> {
    const run = async (): Promise<T> => {
      if (this.#latched) throw this.#latchedError();
      try {
        return await op();
      } catch (err) {
        if (err instanceof DeviceError && err.code === 'ERR_SNP_VMPCK_DISABLED') this.#latched = err;
        throw err;
      }
    };
    const result = this.#queue.then(run, run);
    this.#queue = result.catch(() => undefined);
    return result;
  }

  #latchedError(): DeviceError {
    return new DeviceError(
      'ERR_SNP_VMPCK_DISABLED',
      'VMPCK disabled, reboot required: an earlier request found the guest communication key wiped; not touching the device again',
      { devicePath: this.devicePath, latched: true },
      { cause: this.#latched },
    );
  }
}

/** Copies the report data so a caller mutating its buffer cannot change a queued request. */
function checkInputs(reportData: Uint8Array, vmpl: number): Uint8Array {
  if (!(reportData instanceof Uint8Array) || reportData.length !== SNP_REPORT_DATA_SIZE) {
    throw new UsageError(
      `report data must be exactly ${SNP_REPORT_DATA_SIZE} bytes (got ${reportData instanceof Uint8Array ? reportData.length : typeof reportData})`,
    );
  }
  if (!Number.isInteger(vmpl) || vmpl < 0 || vmpl > 3) {
    throw new UsageError(`vmpl must be an integer 0..3 (got ${String(vmpl)})`);
  }
  return Uint8Array.from(reportData);
}
