/**
 * SEV-SNP ABI: parsers and serializers for the attestation report, TCB_VERSION, the GHCB
 * certificate table and the AMD VCEK/VLEK certificate extensions. Pure functions, ParseError on
 * malformed input. Layout facts: AMD SEV-SNP Firmware ABI #56860 rev 1.58 table "ATTESTATION_REPORT Structure" (report),
 * GHCB #56421 rev 2.03 §4.1.8.1 (cert table), AMD VCEK/KDS #57230 and go-sev-guest abi/abi.go, kds/kds.go.
 */
export type * from './abi-types.js';
export {
  SNP_REPORT_SIZE,
  SNP_SIGNED_END,
  SNP_MIN_REPORT_VERSION,
  SNP_MAX_REPORT_VERSION,
  SNP_SIG_ALGO_ECDSA_P384_SHA384,
  parseSnpReport,
  serializeSnpReport,
  signedBytes,
  signatureP1363,
  signatureFromP1363,
  decodePolicy,
  decodePlatformInfo,
  PLATFORM_INFO_DEFINED_MASK,
  decodeSignerInfo,
  reservedRanges,
} from './attestation-report.js';
export { decodeTcb, encodeTcb, formatTcb, tcbFor, tcbLayoutFor, tcbLayoutForFamily, productFromCpuid, productFromName, type TcbParts } from './tcb-version.js';
export {
  CERT_TABLE_ENTRY_SIZE,
  CERT_TABLE_GUIDS,
  parseCertTable,
  serializeCertTable,
  guidToText,
  guidToBytes,
  type CertTableInput,
} from './cert-table.js';
export { AMD_OID, parseAmdCertExtensions } from './amd-extensions.js';
