/**
 * SPDM 1.1 GET_MEASUREMENTS request + MEASUREMENTS response, as NVML returns them in
 * `attestationReport` (nvtrust spdm_msrt_req_msg.py / spdm_msrt_resp_msg.py; DMTF DSP0274 1.1 §10.11).
 * Pure and bounds-checked: every malformed input raises ParseError with an offset.
 * Multi-byte integers are little-endian.
 */
import { ParseError } from '../../errors.js';

/** GET_MEASUREMENTS request: always 37 bytes when a signature is requested (DSP0274 1.1 GET_MEASUREMENTS, offsets 0..36). */
export const SPDM_REQUEST_LENGTH = 37;
/** ECDSA P-384 raw r||s (nvtrust HopperSettings.signature_length = 96). */
export const SPDM_SIGNATURE_LENGTH = 96;
export const SPDM_NONCE_LENGTH = 32;
export const SPDM_VERSION_1_1 = 0x11;
export const SPDM_GET_MEASUREMENTS = 0xe0;
export const SPDM_MEASUREMENTS = 0x60;
/** MeasurementSpecification bit for DMTF (DSP0274 1.1 Table 45; nvtrust raises MeasurementSpecificationError otherwise). */
export const DMTF_MEASUREMENT_SPEC = 0x01;

export interface SpdmMeasurementsRequest {
  spdmVersion: number;
  requestResponseCode: number;
  param1: number;
  param2: number;
  /** Requester nonce (report offset 4): equals the nonce handed to NVML. */
  nonce: Uint8Array;
  slotIdParam: number;
}

export interface MeasurementBlock {
  /** 1-based SPDM index; RIM Resource index i corresponds to block i+1 (nvtrust MeasurementRecord.get_measurements). */
  index: number;
  measurementSpecification: number;
  measurementSize: number;
  /** DMTFSpecMeasurementValueType: bit 7 set = raw bit stream, clear = digest. */
  valueType: number;
  valueSize: number;
  value: Uint8Array;
}

export interface SpdmMeasurementsResponse {
  spdmVersion: number;
  requestResponseCode: number;
  param1: number;
  param2: number;
  numberOfBlocks: number;
  measurementRecordLength: number;
  blocks: MeasurementBlock[];
  /** Responder nonce (random; nvtrust and attestation-sdk do not check it). */
  nonce: Uint8Array;
  opaqueLength: number;
  opaqueData: Uint8Array;
  /** Offset of the opaque data within the response. */
  opaqueOffset: number;
  signature: Uint8Array;
}

function u8(b: Uint8Array, off: number, what: string): number {
  if (off >= b.length) throw new ParseError(`SPDM: truncated before ${what}`, off);
  return b[off]!;
}

function u16(b: Uint8Array, off: number, what: string): number {
  if (off + 2 > b.length) throw new ParseError(`SPDM: truncated before ${what}`, off);
  return b[off]! | (b[off + 1]! << 8);
}

function take(b: Uint8Array, off: number, len: number, what: string): Uint8Array {
  if (off + len > b.length) throw new ParseError(`SPDM: ${what} needs ${len} bytes, only ${Math.max(0, b.length - off)} left`, off);
  return b.subarray(off, off + len);
}

export function parseSpdmRequest(bytes: Uint8Array): SpdmMeasurementsRequest {
  if (bytes.length !== SPDM_REQUEST_LENGTH) {
    throw new ParseError(`SPDM request: expected ${SPDM_REQUEST_LENGTH} bytes, got ${bytes.length}`, 0);
  }
  const req: SpdmMeasurementsRequest = {
    spdmVersion: bytes[0]!,
    requestResponseCode: bytes[1]!,
    param1: bytes[2]!,
    param2: bytes[3]!,
    nonce: bytes.subarray(4, 4 + SPDM_NONCE_LENGTH),
    slotIdParam: bytes[36]!,
  };
  if (req.spdmVersion !== SPDM_VERSION_1_1) throw new ParseError(`SPDM request: unsupported version 0x${hex8(req.spdmVersion)} (only 1.1)`, 0);
  if (req.requestResponseCode !== SPDM_GET_MEASUREMENTS) {
    throw new ParseError(`SPDM request: code 0x${hex8(req.requestResponseCode)} is not GET_MEASUREMENTS (0xe0)`, 1);
  }
  // Param1 bit 0 = "signature requested" (DSP0274 1.1 Table 36); without it there is no signature to check.
  if ((req.param1 & 0x01) === 0) throw new ParseError('SPDM request: signature not requested (Param1 bit 0 clear)', 2);
  return req;
}

function parseBlock(b: Uint8Array, off: number, end: number): MeasurementBlock {
  // DSP0274 1.1 Table 45 (measurement block) + Table 46 (DMTF measurement).
  if (off + 4 > end) throw new ParseError('SPDM: truncated measurement block header', off);
  const index = b[off]!;
  const measurementSpecification = b[off + 1]!;
  const measurementSize = b[off + 2]! | (b[off + 3]! << 8);
  if (index === 0 || index === 0xff) throw new ParseError(`SPDM: reserved measurement index ${index}`, off);
  if (measurementSpecification !== DMTF_MEASUREMENT_SPEC) {
    throw new ParseError(`SPDM: measurement block ${index} has MeasurementSpecification 0x${hex8(measurementSpecification)}, expected DMTF (0x01)`, off + 1);
  }
  if (off + 4 + measurementSize > end) throw new ParseError(`SPDM: measurement block ${index} overruns the measurement record`, off);
  if (measurementSize < 3) throw new ParseError(`SPDM: measurement block ${index} too short for a DMTF header`, off + 2);
  const valueType = b[off + 4]!;
  const valueSize = b[off + 5]! | (b[off + 6]! << 8);
  if (valueSize + 3 !== measurementSize) {
    throw new ParseError(`SPDM: measurement block ${index}: value size ${valueSize} + 3 != measurement size ${measurementSize}`, off + 5);
  }
  return { index, measurementSpecification, measurementSize, valueType, valueSize, value: b.subarray(off + 7, off + 7 + valueSize) };
}

/** MEASUREMENTS response with a trailing 96-byte signature; nothing may follow the signature. */
export function parseSpdmResponse(bytes: Uint8Array): SpdmMeasurementsResponse {
  const spdmVersion = u8(bytes, 0, 'SPDMVersion');
  const requestResponseCode = u8(bytes, 1, 'RequestResponseCode');
  const param1 = u8(bytes, 2, 'Param1');
  const param2 = u8(bytes, 3, 'Param2');
  if (spdmVersion !== SPDM_VERSION_1_1) throw new ParseError(`SPDM response: unsupported version 0x${hex8(spdmVersion)} (only 1.1)`, 0);
  if (requestResponseCode !== SPDM_MEASUREMENTS) {
    throw new ParseError(`SPDM response: code 0x${hex8(requestResponseCode)} is not MEASUREMENTS (0x60)`, 1);
  }
  const numberOfBlocks = u8(bytes, 4, 'NumberOfBlocks');
  if (7 >= bytes.length) throw new ParseError('SPDM: truncated before MeasurementRecordLength', 5);
  const measurementRecordLength = bytes[5]! | (bytes[6]! << 8) | (bytes[7]! << 16); // LE24
  const recordStart = 8;
  const recordEnd = recordStart + measurementRecordLength;
  take(bytes, recordStart, measurementRecordLength, 'MeasurementRecord');

  const blocks: MeasurementBlock[] = [];
  const seen = new Set<number>();
  let p = recordStart;
  while (p < recordEnd) {
    const block = parseBlock(bytes, p, recordEnd);
    if (seen.has(block.index)) throw new ParseError(`SPDM: duplicate measurement index ${block.index}`, p);
    seen.add(block.index);
    blocks.push(block);
    p += 4 + block.measurementSize;
  }
  if (blocks.length !== numberOfBlocks) {
    throw new ParseError(`SPDM: NumberOfBlocks says ${numberOfBlocks} but the record holds ${blocks.length}`, 4);
  }

  const nonce = take(bytes, recordEnd, SPDM_NONCE_LENGTH, 'responder Nonce');
  const opaqueLength = u16(bytes, recordEnd + SPDM_NONCE_LENGTH, 'OpaqueLength');
  const opaqueOffset = recordEnd + SPDM_NONCE_LENGTH + 2;
  const opaqueData = take(bytes, opaqueOffset, opaqueLength, 'OpaqueData');
  const sigOffset = opaqueOffset + opaqueLength;
  const signature = take(bytes, sigOffset, SPDM_SIGNATURE_LENGTH, 'Signature');
  if (sigOffset + SPDM_SIGNATURE_LENGTH !== bytes.length) {
    throw new ParseError(`SPDM: ${bytes.length - sigOffset - SPDM_SIGNATURE_LENGTH} trailing bytes after the signature`, sigOffset + SPDM_SIGNATURE_LENGTH);
  }
  return {
    spdmVersion,
    requestResponseCode,
    param1,
    param2,
    numberOfBlocks,
    measurementRecordLength,
    blocks,
    nonce,
    opaqueLength,
    opaqueData,
    opaqueOffset,
    signature,
  };
}

function hex8(n: number): string {
  return n.toString(16).padStart(2, '0');
}

/** A whole device report: request, response, the device's decoded opaque data and what the signature covers. */
export interface SpdmReport<Opaque> {
  bytes: Uint8Array;
  request: SpdmMeasurementsRequest;
  response: SpdmMeasurementsResponse;
  opaque: Opaque;
  /** Request ‖ response without the signature (DSP0274 1.1: hashed with SHA-384, no signing context). */
  signedBytes: Uint8Array;
  signature: Uint8Array;
  /** SPDM index (1-based) → measurement value. */
  measurements: Map<number, Uint8Array>;
}

/**
 * Split a device report (the GET_MEASUREMENTS request followed by the MEASUREMENTS response, as GPUs
 * and NVSwitches return it) and decode its opaque data with the device's own `parseOpaque`. `what`
 * names the device in errors; `tooLong` says why `maxLength` is the limit.
 */
export function parseSpdmReport<Opaque>(
  bytes: Uint8Array,
  what: string,
  limit: { maxLength: number; tooLong: string },
  parseOpaque: (data: Uint8Array, baseOffset: number) => Opaque,
): SpdmReport<Opaque> {
  if (bytes.length > limit.maxLength) throw new ParseError(`${what}: ${bytes.length} bytes exceeds ${limit.tooLong}`, 0);
  if (bytes.length < SPDM_REQUEST_LENGTH) throw new ParseError(`${what}: ${bytes.length} bytes is shorter than the SPDM request`, 0);
  const request = parseSpdmRequest(bytes.subarray(0, SPDM_REQUEST_LENGTH));
  let response: SpdmMeasurementsResponse;
  try {
    response = parseSpdmResponse(bytes.subarray(SPDM_REQUEST_LENGTH));
  } catch (err) {
    // Report offsets are more useful than response offsets when reading a hex dump.
    if (err instanceof ParseError && err.offset !== undefined) {
      throw new ParseError(err.message.replace(/ \(at offset \d+\)$/, ''), err.offset + SPDM_REQUEST_LENGTH);
    }
    throw err;
  }
  const opaque = parseOpaque(response.opaqueData, SPDM_REQUEST_LENGTH + response.opaqueOffset);
  const measurements = new Map<number, Uint8Array>();
  for (const b of response.blocks) measurements.set(b.index, b.value);
  return {
    bytes,
    request,
    response,
    opaque,
    signedBytes: bytes.subarray(0, bytes.length - SPDM_SIGNATURE_LENGTH),
    signature: response.signature,
    measurements,
  };
}
