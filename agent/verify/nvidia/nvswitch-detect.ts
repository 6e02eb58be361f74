/**
 * Recognise NVSwitch (LS10) evidence offered on the GPU path, so it is refused by name ("NVSwitch
 * evidence is not supported") instead of failing deep in the GPU opaque-data decoder (the switch's
 * VBIOS_VERSION field is not the GPU's 8 bytes). Interim until switch verification exists. Markers,
 * from NVIDIA nvtrust attestation_sdk: the evidence "arch" LS10 (nvswitch/attest_nvswitch_remote.py
 * sends arch "LS10"; NSCQ_ARCH_LS10 in nscq_attestation.h), the switch-only opaque field 26
 * OPAQUE_FIELD_ID_SWITCH_GPU_PDIS (nv_switch_verifier/attestation/spdm_msrt_resp_msg.py), and an
 * LS10 device certificate name. Pure: bytes in, reason out.
 */
import { ParseError } from '../../errors.js';
import { parseSpdmResponse, SPDM_REQUEST_LENGTH } from './spdm.js';
import { parseOpaqueFields, type OpaqueField } from './opaque.js';
import type { Certificate } from '../../formats/x509/certificate.js';

/** Opaque field 26: the GPU PDIs a switch reports (switch reports only). */
const OPAQUE_SWITCH_GPU_PDIS = 26;

export const NVSWITCH_UNSUPPORTED = 'NVSwitch evidence is not supported';

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
  if (certs !== undefined && certs.length > 0 && (/^LS10\b/.test(certs[0]!.cn) || (certs.length > 1 && /^LS10\b/.test(certs[1]!.cn))))
    return 'the device certificate chain is an LS10 (NVSwitch) chain';
  try {
    const opaque = fields ?? parseOpaqueFields(parseSpdmResponse(report.subarray(SPDM_REQUEST_LENGTH)).opaqueData);
    if (opaque.some((f) => f.type === OPAQUE_SWITCH_GPU_PDIS)) return 'the report carries the switch-only opaque field SWITCH_GPU_PDIS (26)';
  } catch (err) {
    if (!(err instanceof ParseError)) throw err; // not a readable SPDM response: the GPU report parser names the problem
  }
  return undefined;
}
