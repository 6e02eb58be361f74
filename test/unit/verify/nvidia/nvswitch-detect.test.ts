/**
 * NVSwitch (LS10) evidence on the GPU path is refused by name ("NVSwitch evidence is not GPU evidence",
 * check gpu.nvswitch), never a GPU parse error about VBIOS bytes. The real switch report
 * (test/vectors/nvidia/attestation-sdk/switch-ls10) is tested in switch-verify.test.ts; the reports here
 * are built from the real Hopper 545 report by adding the switch-only opaque field 26 (SWITCH_GPU_PDIS,
 * nvtrust nv_switch_verifier spdm_msrt_resp_msg.py) and giving VBIOS_VERSION a non-GPU length; their
 * signatures no longer verify, which is not what is tested.
 */
import { describe, expect, it } from 'vitest';
import { vector } from '../../../helpers/paths.js';
import { reportBytesFromFile } from '../../../../agent/verify/nvidia/gpu-report.js';
import { parseSpdmResponse, SPDM_REQUEST_LENGTH } from '../../../../agent/verify/nvidia/spdm.js';
import { parseOpaqueFields } from '../../../../agent/verify/nvidia/opaque.js';
import { nvswitchEvidenceReason } from '../../../../agent/verify/nvidia/nvswitch-detect.js';
import { verifyGpuReport } from '../../../../agent/verify/nvidia/gpu-verify.js';

const C = 'nvidia/nvtrust/hopper-545-complete';
const gpuReport = reportBytesFromFile(vector(`${C}/attestationReport.txt`));
const chainPem = vector(`${C}/gpuAkCertChain.txt`).toString('latin1');
const nonce = Buffer.from('4cff7f5380ead8fad8ec2c531c110aca4302a88f603792801a8ca29ee151af2e', 'hex');
const AT = new Date('2024-06-01T00:00:00Z');

const tlv = (type: number, value: Uint8Array) => Buffer.concat([Buffer.from([type & 0xff, type >> 8, value.length & 0xff, value.length >> 8]), value]);

/** The GPU report with its opaque data rewritten (lengths fixed, signature left as it was). */
function withOpaque(edit: (fields: ReturnType<typeof parseOpaqueFields>) => Buffer[]): Buffer {
  const response = parseSpdmResponse(gpuReport.subarray(SPDM_REQUEST_LENGTH));
  const opaque = Buffer.concat(edit(parseOpaqueFields(response.opaqueData)));
  const lenAt = SPDM_REQUEST_LENGTH + response.opaqueOffset - 2;
  const after = SPDM_REQUEST_LENGTH + response.opaqueOffset + response.opaqueLength;
  const len = Buffer.from([opaque.length & 0xff, opaque.length >> 8]);
  return Buffer.concat([gpuReport.subarray(0, lenAt), len, opaque, gpuReport.subarray(after)]);
}

const switchLike = withOpaque((fields) => [
  ...fields.map((f) => (f.type === 6 ? tlv(6, Buffer.alloc(5, 0x11)) : tlv(f.type, f.value))),
  tlv(26, Buffer.alloc(64)),
]);

describe('NVSwitch (LS10) evidence on the GPU path', () => {
  it('a real GPU report is not mistaken for a switch', () => {
    expect(nvswitchEvidenceReason(gpuReport, 'HOPPER')).toBeUndefined();
    expect(nvswitchEvidenceReason(gpuReport, undefined)).toBeUndefined();
  });

  it.each([
    ['a report with SWITCH_GPU_PDIS (26) and a switch-length VBIOS_VERSION', switchLike, undefined, /SWITCH_GPU_PDIS/],
    ['evidence arch "LS10" (what nvtrust sends for switches)', gpuReport, 'LS10', /architecture LS10/],
  ] as const)('%s → gpu.nvswitch fails: "NVSwitch evidence is not GPU evidence"', (_label, report, arch, why) => {
    const r = verifyGpuReport({ report, certChainPem: chainPem, ...(arch ? { arch } : {}) }, { at: AT, expectedNonce: nonce });
    expect(r.ok).toBe(false);
    expect(r.checks.map((c) => c.name)).toEqual(['gpu.nvswitch']);
    expect(r.checks[0]!.detail).toMatch(/NVSwitch evidence is not GPU evidence/);
    expect(r.checks[0]!.detail).toMatch(why);
    expect(r.checks[0]!.detail).not.toMatch(/VBIOS/);
  });

  it('without the switch marker the same VBIOS damage is a GPU parse failure (what the marker prevents)', () => {
    const vbiosOnly = withOpaque((fields) => fields.map((f) => (f.type === 6 ? tlv(6, Buffer.alloc(5, 0x11)) : tlv(f.type, f.value))));
    const r = verifyGpuReport({ report: vbiosOnly, certChainPem: chainPem }, { at: AT, expectedNonce: nonce });
    expect(r.checks[0]).toMatchObject({ name: 'gpu.report.parse', ok: false });
    expect(r.checks[0]!.detail).toMatch(/VBIOS_VERSION/);
  });
});
