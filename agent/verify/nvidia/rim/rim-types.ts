/**
 * NVIDIA RIM (Reference Integrity Manifest) model: an ISO/IEC 19770-2:2015 SWID tag with TCG RIM-IM
 * attributes and an enveloped XML-DSig (ISO/IEC 19770-2:2015 SWID tag; W3C XML-DSig).
 */

/** One `<Resource type="Measurement">` of the RIM payload. */
export interface RimMeasurement {
  /** RIM index, 0-based. It is compared with SPDM measurement block `index + 1` (nvtrust MeasurementRecord.get_measurements). */
  index: number;
  /** `name` attribute, e.g. "HashedMeasurement_1_FSP". */
  name: string;
  /** `active="True"`: only active measurements are golden values. */
  active: boolean;
  /** `size` attribute: the expected byte length of the runtime measurement (48 for SHA-384). */
  size?: number;
  /** Accepted digests (`ns2:Hash0..HashN-1` in namespace xmlenc#sha384). */
  alternatives: Buffer[];
}

export interface Rim {
  /** SoftwareIdentity@tagId. */
  tagId: string;
  /** SoftwareIdentity@name, e.g. "GH100". */
  name: string;
  /** SoftwareIdentity@version (the tag's own version, e.g. "1.0"). */
  version: string;
  /** Meta@colloquialVersion: the driver version ("545.00") or VBIOS version ("96.00.5E.00.01"). */
  colloquialVersion: string;
  /** Meta@product, e.g. "GH100". */
  product?: string;
  /** Meta@edition, e.g. "GPU". */
  edition?: string;
  /** Firmware manufacturer (Meta@rim:FirmwareManufacturer, else the first Entity@name). */
  manufacturer?: string;
  /** Meta@rim:FirmwareManufacturerId ("5703"): the `oemid` claim. */
  manufacturerId?: string;
  /** SoftwareIdentity/File@name or Meta@rim:... when present (not in current NVIDIA RIMs). */
  fileName?: string;
  /** Meta@persistentId when present. */
  persistentId?: string;
  /** All 64 (or however many) measurement resources in document order. */
  measurements: RimMeasurement[];
  /** KeyInfo/X509Data/X509Certificate, DER, in document order (leaf first). Untrusted until verified. */
  signerCerts: Buffer[];
}

export type GpuArch = 'hopper' | 'blackwell';
