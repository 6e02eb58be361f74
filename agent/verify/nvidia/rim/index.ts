/**
 * NVIDIA RIM (Reference Integrity Manifest) verification: public API.
 *
 * Typical use by the GPU report verifier:
 *   const { checks, rim } = verifyRim(xml, { at });            // schema + XML-DSig + chain, one parse
 *   const rim = parseRim(xml);                                  // or: model only (untrusted)
 *   compareMeasurements(blocks, driverRim, vbiosRim, { nvdec0Status });
 * `blocks` is keyed by the SPDM measurement block Index as in the report (1-based); RIM index i is
 * compared with block i+1 (nvtrust MeasurementRecord.get_measurements).
 * Check names: rim.schema, rim.signature.reference, rim.signature.value, rim.chain, rim.chain.validity,
 * rim.measurements, rim.measurements.index-conflict, rim.measurements.count, rim.measurements.nvdec0,
 * rim.measurement.<index>, rim.driver.version / rim.vbios.version (checkRimVersion).
 * verifyRimSignature/verifyRim throw ParseError only when the text is not well-formed XML (or is refused:
 * DOCTYPE, size, depth); every other problem is a failed named check.
 */
export type { Rim, RimMeasurement, GpuArch } from './rim-types.js';
export { parseRim, rimFromDocument, SWID_NS, RIMIM_NS, SHA384_NS, DSIG_NS } from './parse.js';
export { verifyRimSignature, verifyRim, verifyRimDocument, type RimVerifyOptions } from './rim-signature.js';
export { verifyRimChain, type RimAnchor, type RimChainResult } from './rim-signer-chain.js';
export {
  compareMeasurements,
  compareMeasurementsDetailed,
  NVDEC0_ENABLED,
  NVDEC0_DISABLED,
  NVDEC0_RIM_INDEX,
  type CompareOptions,
  type MeasurementMismatch,
  type MeasurementComparison,
} from './measurements.js';
export { driverRimId, vbiosRimId, vbiosRimFileName, type VbiosRimIdInput } from './ids.js';
export { checkRimVersion } from './rim-version.js';
