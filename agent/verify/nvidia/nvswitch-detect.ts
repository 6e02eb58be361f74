/**
 * Recognise NVSwitch (LS10) evidence, so the callers route it to the switch verifier
 * (verify/nvidia/switch-verify.ts) and the GPU verifier refuses it by name ("NVSwitch evidence is not
 * GPU evidence") instead of failing deep in the GPU opaque-data decoder (the switch's VBIOS_VERSION
 * field is ASCII, not the GPU's 8 bytes). Markers,
 * from NVIDIA nvtrust attestation_sdk: the evidence "arch" LS10 (nvswitch/attest_nvswitch_remote.py
 * sends arch "LS10"; NSCQ_ARCH_LS10 in nscq_attestation.h), the switch-only opaque field 26
 * OPAQUE_FIELD_ID_SWITCH_GPU_PDIS (nv_switch_verifier/attestation/spdm_msrt_resp_msg.py), and an
 * LS10 device certificate name ("LS_10 A01 FSP FMC LF" in attestation-sdk unit-tests/testdata/switchCertChain.txt). Pure: bytes in, reason out.
 */
import { ParseError } from '../../errors.js';
import { parseSpdmResponse, SPDM_REQUEST_LENGTH } from './spdm.js';
import { parseOpaqueFields, type OpaqueField } from './opaque.js';
import type { Certificate } from '../../formats/x509/certificate.js';

/** Opaque field 26: the GPU PDIs a switch reports (switch reports only). */
const OPAQUE_SWITCH_GPU_PDIS = 26;

/** The GPU verifier's refusal; `verify gpu`, the bundle and verifyGpus send switch evidence to the switch verifier. */
export const NVSWITCH_UNSUPPORTED = 'NVSwitch evidence is not GPU evidence: verify it as a switch';

/** Why this evidence is NVSwitch (LS10) evidence, or undefined when nothing says so. */
/**
 * `fields`, when given, are this report's opaque fields as the GPU report parser already split them
 * (parseGpuReport runs the same SPDM and TLV parsers over the same bytes), so they are not parsed twice.
 */
export function nvswitchEvidenceReason(
  report: Uint8Array,
  evidenceArch: string | undefined,
  certs?: readonly Certificate[],
  fields?: readonly OpaqueField[],
): string | undefined {
  if (evidenceArch !== undefined && /^(ls10|nvswitch)$/i.test(evidenceArch)) return `the evidence names architecture ${evidenceArch}`;
  if (certs !== undefined && certs.length > 0 && (/^LS_?10\b/.test(certs[0]!.cn) || (certs.length > 1 && /^LS_?10\b/.test(certs[1]!.cn))))
    return 'the device certificate chain is an LS10 (NVSwitch) chain';
  try {
    const opaque = fields ?? parseOpaqueFields(parseSpdmResponse(report.subarray(SPDM_REQUEST_LENGTH)).opaqueData);
    if (opaque.some((f) => f.type === OPAQUE_SWITCH_GPU_PDIS)) return 'the report carries the switch-only opaque field SWITCH_GPU_PDIS (26)';
  } catch (err) {
    if (!(err instanceof ParseError)) throw err; // not a readable SPDM response: the GPU report parser names the problem
  }
  return undefined;
}
