/**
 * Parser for the Azure HCL report ("HCLA"), the structure the paravisor stores in vTPM NV index
 * 0x01400001 (layout: Azure's client-library SnpVmReport.h / az-cvm-vtpm src/hcl/mod.rs):
 * a 32-byte header, the 1184-byte SNP attestation report at 0x20, IGVM_REQUEST_DATA at 0x4C0 and
 * the runtime-claims JSON at 0x4D4. Pure: bytes in, structure out, ParseError otherwise.
 */
import { ParseError } from '../../errors.js';
import { parseRuntimeClaims, type RuntimeClaims } from './runtime-claims.js';

export const HCL_SIGNATURE = 0x414c4348; // "HCLA" little-endian (SnpVmReport.h)
export const HCL_HW_REPORT_OFFSET = 0x20;
export const SNP_REPORT_SIZE = 1184;
export const IGVM_REQUEST_DATA_OFFSET = 0x4c0;
export const HCL_VARIABLE_DATA_OFFSET = 0x4d4;
/** IGVM_REQUEST_DATA fixed part: data_size, version, report_type, hash_type, variable_data_size (5 x u32). */
const IGVM_FIXED_SIZE = 20;

/** IGVM report_type values (az-cvm-vtpm: 2 SNP, 4 TDX). */
export const HCL_REPORT_TYPE = { SNP: 2, TDX: 4 } as const;
/** report_data_hash_type -> node hash name (az-cvm-vtpm hcl/mod.rs: 1 SHA-256, 2 SHA-384, 3 SHA-512). */
export const HCL_HASH_TYPES: ReadonlyMap<number, 'sha256' | 'sha384' | 'sha512'> = new Map([
  [1, 'sha256'],
  [2, 'sha384'],
  [3, 'sha512'],
]);

export interface HclReport {
  version: number;
  reportSize: number;
  requestType: number;
  status: number;
  /** The embedded SNP ATTESTATION_REPORT (1184 bytes). */
  snpReport: Buffer;
  igvm: { dataSize: number; version: number; reportType: number; hashType: number; variableDataSize: number };
  /** Hash used for REPORT_DATA over the runtime claims. */
  hashAlg: 'sha256' | 'sha384' | 'sha512';
  /** The runtime-claims bytes exactly as hashed into REPORT_DATA. */
  runtimeClaimsBytes: Buffer;
  runtimeClaims: RuntimeClaims;
}

/** Error raised for an HCL report whose hardware report is Intel TDX, not SEV-SNP. */
export const TDX_MESSAGE = 'HCL report is TDX, not SEV-SNP';

export function parseHclReport(bytes: Uint8Array): HclReport {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length < HCL_VARIABLE_DATA_OFFSET)
    throw new ParseError(`HCL report: ${buf.length} bytes is shorter than the fixed part (${HCL_VARIABLE_DATA_OFFSET})`, buf.length);
  const signature = buf.readUInt32LE(0);
  if (signature !== HCL_SIGNATURE) throw new ParseError(`HCL report: signature 0x${signature.toString(16)} is not "HCLA"`, 0);
  const version = buf.readUInt32LE(4);
  if (version !== 1 && version !== 2) throw new ParseError(`HCL report: header version ${version} is not supported (1 or 2)`, 4);
  const reportSize = buf.readUInt32LE(8);
  const requestType = buf.readUInt32LE(0xc);
  const status = buf.readUInt32LE(0x10);

  const o = IGVM_REQUEST_DATA_OFFSET;
  const igvm = {
    dataSize: buf.readUInt32LE(o),
    version: buf.readUInt32LE(o + 4),
    reportType: buf.readUInt32LE(o + 8),
    hashType: buf.readUInt32LE(o + 12),
    variableDataSize: buf.readUInt32LE(o + 16),
  };
  if (igvm.reportType === HCL_REPORT_TYPE.TDX) throw new ParseError(TDX_MESSAGE, o + 8);
  if (igvm.reportType !== HCL_REPORT_TYPE.SNP) throw new ParseError(`HCL report: IGVM report_type ${igvm.reportType} is not SEV-SNP (2)`, o + 8);
  const hashAlg = HCL_HASH_TYPES.get(igvm.hashType);
  if (!hashAlg) throw new ParseError(`HCL report: report_data_hash_type ${igvm.hashType} is unknown (1 SHA-256, 2 SHA-384, 3 SHA-512)`, o + 12);
  const vds = igvm.variableDataSize;
  if (vds > buf.length - HCL_VARIABLE_DATA_OFFSET) {
    throw new ParseError(`HCL report: variable_data_size ${vds} overruns the ${buf.length}-byte report`, o + 16);
  }
  if (igvm.dataSize !== IGVM_FIXED_SIZE + vds) {
    throw new ParseError(`HCL report: IGVM data_size ${igvm.dataSize} != 20 + variable_data_size ${vds}`, o);
  }
  if (reportSize !== HCL_VARIABLE_DATA_OFFSET + vds) {
    throw new ParseError(`HCL report: report_size ${reportSize} != 0x4D4 + variable_data_size ${vds}`, 8);
  }
  const runtimeClaimsBytes = Buffer.from(buf.subarray(HCL_VARIABLE_DATA_OFFSET, HCL_VARIABLE_DATA_OFFSET + vds));
  return {
    version,
    reportSize,
    requestType,
    status,
    snpReport: Buffer.from(buf.subarray(HCL_HW_REPORT_OFFSET, HCL_HW_REPORT_OFFSET + SNP_REPORT_SIZE)),
    igvm,
    hashAlg,
    runtimeClaimsBytes,
    runtimeClaims: parseRuntimeClaims(runtimeClaimsBytes),
  };
}

/** Build an HCL report (v1 header) around an SNP report and runtime claims: used by the simulator and tests. */
export function buildHclReport(
  snpReport: Uint8Array,
  runtimeClaims: Uint8Array,
  opts: { size?: number; version?: number; hashType?: number; requestType?: number } = {},
): Buffer {
  if (snpReport.length !== SNP_REPORT_SIZE) throw new ParseError(`SNP report must be ${SNP_REPORT_SIZE} bytes, got ${snpReport.length}`);
  const meaningful = HCL_VARIABLE_DATA_OFFSET + runtimeClaims.length;
  const size = opts.size ?? meaningful;
  if (size < meaningful) throw new ParseError(`HCL report of ${meaningful} bytes does not fit in ${size}`);
  const out = Buffer.alloc(size);
  out.writeUInt32LE(HCL_SIGNATURE, 0);
  out.writeUInt32LE(opts.version ?? 1, 4);
  out.writeUInt32LE(meaningful, 8);
  out.writeUInt32LE(opts.requestType ?? 2, 0xc);
  Buffer.from(snpReport).copy(out, HCL_HW_REPORT_OFFSET);
  const o = IGVM_REQUEST_DATA_OFFSET;
  out.writeUInt32LE(IGVM_FIXED_SIZE + runtimeClaims.length, o);
  out.writeUInt32LE(1, o + 4);
  out.writeUInt32LE(HCL_REPORT_TYPE.SNP, o + 8);
  out.writeUInt32LE(opts.hashType ?? 1, o + 12);
  out.writeUInt32LE(runtimeClaims.length, o + 16);
  Buffer.from(runtimeClaims).copy(out, HCL_VARIABLE_DATA_OFFSET);
  return out;
}
