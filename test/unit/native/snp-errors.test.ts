/** Decoding of SEV-SNP guest-request errors and the typed errors the native wrapper builds. */
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { decodeExitInfo2, decodeFirmwareError, decodeVmmError, decodeReportStatus } from '../../../agent/native/snp-errors.js';
import { toSnpError } from '../../../agent/native/snp.js';
import { DeviceError, UsageError } from '../../../agent/errors.js';
import { FC_RUNS } from '../../helpers/paths.js';

describe('decodeFirmwareError / decodeVmmError', () => {
  it('names the codes a guest request can see (psp-sev.h enum order)', () => {
    expect(decodeFirmwareError(0x16)).toMatchObject({ code: 0x16, name: 'INVALID_PARAM' });
    expect(decodeFirmwareError(0x1d)).toMatchObject({ name: 'AEAD_OFLOW' });
    expect(decodeFirmwareError(0x1d).reason).toMatch(/reboot/);
    expect(decodeFirmwareError(0x27)).toMatchObject({ name: 'INVALID_KEY' });
    expect(decodeFirmwareError(0x07)).toMatchObject({ name: 'POLICY_FAILURE' });
    expect(decodeFirmwareError(0x15)).toMatchObject({ name: 'UNSUPPORTED' });
    expect(decodeReportStatus(0x16).name).toBe('INVALID_PARAM');
  });

  it('reports unknown codes by number instead of guessing', () => {
    expect(decodeFirmwareError(0x1e).name).toBe('UNKNOWN_0x1e');
    expect(decodeFirmwareError(0x99).reason).toMatch(/0x99/);
    expect(decodeVmmError(7).name).toBe('UNKNOWN_0x7');
  });

  it('names the VMM errors (SNP_GUEST_VMM_ERR_INVALID_LEN=1, BUSY=2)', () => {
    expect(decodeVmmError(1).name).toBe('INVALID_LEN');
    expect(decodeVmmError(2).name).toBe('BUSY');
    expect(decodeVmmError(0).name).toBe('NONE');
  });
});

describe('decodeExitInfo2', () => {
  it('splits firmware (31:0) and VMM (63:32) halves', () => {
    const d = decodeExitInfo2('4294967318'); // (1 << 32) | 0x16
    expect(d.exitinfo2).toBe((1n << 32n) | 0x16n);
    expect(d.firmware.name).toBe('INVALID_PARAM');
    expect(d.vmm.name).toBe('INVALID_LEN');
    expect(d.summary).toMatch(/hypervisor INVALID_LEN .*firmware INVALID_PARAM/);
  });

  it('recognises the kernel placeholders that are not firmware results', () => {
    expect(decodeExitInfo2(0xff).noFirmwareResult).toBe(true);
    expect(decodeExitInfo2('18446744073709551615').summary).toMatch(/never reached the firmware/);
    expect(decodeExitInfo2(0x16).noFirmwareResult).toBe(false);
  });

  it('a pure VMM error does not invent a firmware status', () => {
    const d = decodeExitInfo2(2n << 32n);
    expect(d.summary).toMatch(/BUSY/);
    expect(d.summary).not.toMatch(/firmware/);
  });

  it('never throws, whatever it is given', () => {
    fc.assert(
      fc.property(fc.oneof(fc.bigInt(), fc.string(), fc.double(), fc.integer()), (v) => {
        const d = decodeExitInfo2(v as never);
        expect(d.exitinfo2 >= 0n && d.exitinfo2 < 1n << 64n).toBe(true);
        expect(typeof d.summary).toBe('string');
      }),
      { numRuns: FC_RUNS },
    );
  });
});

describe('toSnpError', () => {
  const native = (code: string, extra: Record<string, unknown> = {}) => Object.assign(new Error(`native ${code}`), { code, ...extra });

  it('ERR_SNP_FIRMWARE gets decoded details and a reason', () => {
    const e = toSnpError(native('ERR_SNP_FIRMWARE', { errno: 5, exitinfo2: '29', fwError: 29, vmmError: 0 }), '/dev/sev-guest');
    expect(e).toBeInstanceOf(DeviceError);
    expect(e.code).toBe('ERR_SNP_FIRMWARE');
    expect((e as DeviceError).details).toMatchObject({ exitinfo2: '29', firmwareError: { name: 'AEAD_OFLOW' }, devicePath: '/dev/sev-guest', errno: 5 });
    expect(e.message).toMatch(/AEAD_OFLOW/);
  });

  it('ERR_SNP_VMPCK_DISABLED says reboot required', () => {
    const e = toSnpError(native('ERR_SNP_VMPCK_DISABLED', { errno: 25 }), '/dev/sev-guest');
    expect(e.code).toBe('ERR_SNP_VMPCK_DISABLED');
    expect(e.message).toMatch(/VMPCK disabled, reboot required/);
  });

  it('argument errors become UsageError; anything unknown stays a DeviceError', () => {
    expect(toSnpError(native('ERR_INVALID_ARGUMENT'), '/x')).toBeInstanceOf(UsageError);
    const odd = toSnpError('boom', '/x');
    expect(odd).toBeInstanceOf(DeviceError);
    expect(odd.code).toBe('ERR_SNP_IOCTL');
    expect(toSnpError(undefined, '/x')).toBeInstanceOf(DeviceError);
  });
});
