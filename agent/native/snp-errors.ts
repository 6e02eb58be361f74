/**
 * Decodes the error numbers a failed SEV-SNP guest request leaves behind: the 64-bit `exitinfo2`
 * (bits 31:0 AMD-SP firmware status, bits 63:32 VMM error; include/uapi/linux/sev-guest.h, sev-guest.c) and the
 * MSG_REPORT_RSP status (include/uapi/linux/psp-sev.h SEV_RET_*). Pure: numbers in, names and human reasons out.
 */

export interface DecodedCode {
  code: number;
  /** Stable upper-case name, e.g. "INVALID_PARAM"; "UNKNOWN_0x2a" when not in the table. */
  name: string;
  /** What it means and what to do, for an operator. */
  reason: string;
}

/** SEV firmware status codes (torvalds/linux include/uapi/linux/psp-sev.h `enum sev_ret_code`;
 *  go-sev-guest abi/amdsp.go). Guest requests can only meaningfully see a handful of them. */
const FIRMWARE: ReadonlyMap<number, [string, string]> = new Map([
  [0x00, ['SUCCESS', 'success']],
  [0x01, ['INVALID_PLATFORM_STATE', 'the platform is in the wrong state for this command (report to the host operator)']],
  [0x02, ['INVALID_GUEST_STATE', 'the guest is in the wrong state for this command']],
  [0x03, ['INVALID_CONFIG', 'the platform configuration is invalid (host error, unexpected for a guest request)']],
  [0x04, ['INVALID_LEN', 'a buffer is too small for the command (agent bug, please report)']],
  [0x05, ['ALREADY_OWNED', 'platform is already owned (host error, unexpected for a guest request)']],
  [0x06, ['INVALID_CERTIFICATE', 'invalid certificate (host error, unexpected for a guest request)']],
  [0x07, ['POLICY_FAILURE', 'the guest policy does not allow this request']],
  [0x08, ['INACTIVE', 'the guest is inactive']],
  [0x09, ['INVALID_ADDRESS', 'an address in the request is invalid (kernel or agent bug)']],
  [0x0a, ['BAD_SIGNATURE', 'bad signature (launch-time error, unexpected here)']],
  [0x0b, ['BAD_MEASUREMENT', 'bad measurement (launch-time error, unexpected here)']],
  [0x0c, ['ASID_OWNED', 'ASID already owned (kernel error, unexpected)']],
  [0x0d, ['INVALID_ASID', 'invalid ASID (kernel error, unexpected)']],
  [0x0e, ['WBINVD_REQUIRED', 'WBINVD required (host error, unexpected)']],
  [0x0f, ['DFFLUSH_REQUIRED', 'DF_FLUSH required (host error, unexpected)']],
  [0x10, ['INVALID_GUEST', 'invalid guest handle (host error, unexpected)']],
  [0x11, ['INVALID_COMMAND', 'the firmware does not know this command (kernel/firmware too old?)']],
  [0x12, ['ACTIVE', 'guest is active (host error, unexpected)']],
  [0x13, ['HWERROR_PLATFORM', 'a hardware error affected the platform (report to the host operator)']],
  [0x14, ['HWERROR_UNSAFE', 'a hardware error affected the platform and buffers are unsafe (report to the host operator)']],
  [0x15, ['UNSUPPORTED', 'the firmware does not support this feature']],
  [0x16, ['INVALID_PARAM', "invalid parameter: check the requested VMPL (must be >= the guest's own VMPL and <= 3) and reserved fields"]],
  [0x17, ['RESOURCE_LIMIT', 'the firmware ran out of a resource; retry later']],
  [0x18, ['SECURE_DATA_INVALID', 'part-specific secure data failed integrity checks (report to the host operator)']],
  [0x19, ['INVALID_PAGE_SIZE', 'RMP: invalid page size']],
  [0x1a, ['INVALID_PAGE_STATE', 'RMP: invalid page state']],
  [0x1b, ['INVALID_MDATA_ENTRY', 'RMP: invalid metadata entry']],
  [0x1c, ['INVALID_PAGE_OWNER', 'RMP: ASID mismatch between accessors']],
  [0x1d, ['AEAD_OFLOW', 'AEAD message counter overflow: the VMPCK can no longer be used; reboot the VM']],
  [0x1f, ['RING_BUFFER_EXIT', 'ring buffer mode exited (host error, unexpected)']],
  [0x20, ['RMP_INIT_REQUIRED', 'RMP initialisation required (host error, unexpected)']],
  [0x21, ['BAD_SVN', 'bad SVN (platform management error, unexpected)']],
  [0x22, ['BAD_VERSION', 'bad version (platform management error, unexpected)']],
  [0x23, ['SHUTDOWN_REQUIRED', 'shutdown required (platform management error, unexpected)']],
  [0x24, ['UPDATE_FAILED', 'firmware update failed (platform management error, unexpected)']],
  [0x25, ['RESTORE_REQUIRED', 'restore required (platform management error, unexpected)']],
  [0x26, ['RMP_INITIALIZATION_FAILED', 'RMP initialisation failed (host error, unexpected)']],
  [0x27, ['INVALID_KEY', 'invalid key: the requested signing key (VCEK/VLEK) is not available']],
]);

/** VMM (hypervisor) errors in exitinfo2[63:32] (include/uapi/linux/sev-guest.h SNP_GUEST_VMM_ERR_*). */
const VMM: ReadonlyMap<number, [string, string]> = new Map([
  [0, ['NONE', 'no hypervisor error']],
  [1, ['INVALID_LEN', 'the certificate buffer was too small; the driver reported the size it needs']],
  [2, ['BUSY', 'the host is throttling guest requests; the kernel already retried for up to 60 s']],
]);

/** exitinfo2 values that are not firmware results (Linux sev-guest.c, include/uapi/linux/psp-sev.h SEV_RET_NO_FW_CALL). */
export const EXITINFO2_DRIVER_DEFAULT = 0xffn;
export const EXITINFO2_NO_FW_CALL = 0xffff_ffff_ffff_ffffn;

export function decodeFirmwareError(code: number): DecodedCode {
  const hit = FIRMWARE.get(code);
  if (hit) return { code, name: hit[0], reason: hit[1] };
  return {
    code,
    name: `UNKNOWN_0x${code.toString(16)}`,
    reason: `unrecognised SEV firmware status 0x${code.toString(16)} (see the SEV-SNP ABI specification)`,
  };
}

export function decodeVmmError(code: number): DecodedCode {
  const hit = VMM.get(code);
  if (hit) return { code, name: hit[0], reason: hit[1] };
  return { code, name: `UNKNOWN_0x${code.toString(16)}`, reason: `unrecognised hypervisor error 0x${code.toString(16)}` };
}

export interface DecodedExitInfo2 {
  exitinfo2: bigint;
  /** The firmware never answered: the value is a kernel placeholder, not a firmware status. */
  noFirmwareResult: boolean;
  firmware: DecodedCode;
  vmm: DecodedCode;
  /** One line for an operator, e.g. "firmware INVALID_PARAM (0x16): invalid parameter ...". */
  summary: string;
}

/** Accepts the addon's decimal string, a bigint or a safe integer; anything else decodes as 0xff. */
export function decodeExitInfo2(value: bigint | string | number): DecodedExitInfo2 {
  let e: bigint;
  try {
    e = typeof value === 'bigint' ? value : BigInt(value);
  } catch {
    e = EXITINFO2_DRIVER_DEFAULT;
  }
  e = BigInt.asUintN(64, e);
  const fw = Number(e & 0xffff_ffffn);
  const vmm = Number(e >> 32n);
  const hex = `0x${e.toString(16).padStart(16, '0')}`;
  if (e === EXITINFO2_NO_FW_CALL || e === EXITINFO2_DRIVER_DEFAULT) {
    const why =
      e === EXITINFO2_NO_FW_CALL
        ? 'the request never reached the firmware (SEV_RET_NO_FW_CALL)'
        : 'the driver failed before the firmware answered (exitinfo2 left at its 0xff default)';
    return {
      exitinfo2: e,
      noFirmwareResult: true,
      firmware: decodeFirmwareError(fw),
      vmm: decodeVmmError(vmm),
      summary: `exitinfo2 ${hex}: ${why}`,
    };
  }
  const firmware = decodeFirmwareError(fw);
  const vmmCode = decodeVmmError(vmm);
  const parts: string[] = [];
  if (vmm !== 0) parts.push(`hypervisor ${vmmCode.name} (${vmm}): ${vmmCode.reason}`);
  if (fw !== 0 || vmm === 0) parts.push(`firmware ${firmware.name} (0x${fw.toString(16)}): ${firmware.reason}`);
  return { exitinfo2: e, noFirmwareResult: false, firmware, vmm: vmmCode, summary: `exitinfo2 ${hex}: ${parts.join('; ')}` };
}

/** MSG_REPORT_RSP status codes use the same firmware table (include/uapi/linux/psp-sev.h: 0x16, 0x27). */
export function decodeReportStatus(status: number): DecodedCode {
  return decodeFirmwareError(status);
}
