/**
 * SEV-SNP ABI: parsers and serializers for the attestation report, TCB_VERSION, the GHCB
 * certificate table and the AMD VCEK/VLEK certificate extensions. Pure functions, ParseError on
 * malformed input. Layout facts: shared/reference/snp.md §1.4, §3, §4.2.
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
