/**
 * Simulated NVIDIA GPUs (README.md "Security model"): a software device chain
 * ("SIMULATED NVIDIA Device Identity CA" → Identity → Provisioner ICA → per-GPU "GH100 A01 GSP BROM" →
 * AK leaf "GH100 A01 GSP FMC LF" with the Hopper FWID extension, all P-384), SPDM 1.1 reports built
 * and signed in software in exactly the real layout (DSP0274 1.1 MEASUREMENTS as nvtrust spdm_msrt_resp_msg.py parses it), and signed RIMs
 * whose golden values match the simulated measurements. The identity is created on first use in a
 * directory and reused. None of this is trusted unless the verifier is handed `simulatedRoots()`,
 * i.e. unless simulation is explicitly enabled; results then say simulated.
 */
import { createHash, createPrivateKey, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { readBoundedText } from '../util/bounded-read.js';
import { join } from 'node:path';
import { CvmError, DeviceError } from '../errors.js';
import { writeFileAtomic } from '../util/atomic-file.js';
import { integer, octetString, oid, sequence } from '../util/der-writer.js';
import { basicConstraints, buildCertificate, keyUsage, type NameSpec } from './x509-builder.js';
import { buildSignedRim } from './rim-build.js';
import { threadPoolSigner, type ReportSigner, type SignJob } from './report-signer.js';
import { driverRimId, vbiosRimId } from '../verify/nvidia/rim/ids.js';
import { OID_HOPPER_FWID, OID_SHA384 } from '../verify/nvidia/fwid.js';
import type { SimulatedRoots } from '../verify/nvidia/gpu-verify.js';
import {
  deviceCcOff,
  type GpuCollectOutcome,
  type GpuDriverFacts,
  type GpuEvidence,
  type GpuInfo,
  type GpuSource,
  type GpuSystemState,
  type GpuCcState,
} from '../evidence/gpu-nvml.js';
import { derToPem } from '../util/pem.js';

export const SIM_FILE = 'gpu-sim-identity.json';
const FILE_VERSION = 1;
const NOT_BEFORE = new Date('2020-01-01T00:00:00Z');
const NOT_AFTER = new Date('9999-12-31T23:59:59Z');

/** Driver RIM activates RIM indices 7 and 21..40; VBIOS RIM 0..6 and 8..12 (as the genuine NVIDIA RIMs do). */
export const SIM_DRIVER_RIM_INDICES = [7, ...Array.from({ length: 20 }, (_, i) => 21 + i)];
export const SIM_VBIOS_RIM_INDICES = [0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12];

export interface SimCert {
  der: Buffer;
  key: KeyObject;
}

export interface SimGpuChain {
  brom: SimCert;
  leaf: SimCert;
  fwid: Buffer;
  /** PEM, leaf first, 5 certificates (as NVML returns it). */
  chainPem: string;
}

export interface SimGpuIdentity {
  dir: string;
  root: SimCert;
  identity: SimCert;
  ica: SimCert;
  rimRoot: SimCert;
  rimSigner: SimCert;
  gpus: SimGpuChain[];
}

/** A simulated certificate and its private key as the simulation files store them (PEM). */
export interface StoredCert {
  certPem: string;
  keyPem: string;
}
interface StoredIdentity {
  version: number;
  root: StoredCert;
  identity: StoredCert;
  ica: StoredCert;
  rimRoot: StoredCert;
  rimSigner: StoredCert;
  gpus: { brom: StoredCert; leaf: StoredCert; fwid: string }[];
}

const fromPem = (text: string): Buffer => Buffer.from(text.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, ''), 'base64');
const p384 = (): { privateKey: KeyObject; publicKey: KeyObject } => generateKeyPairSync('ec', { namedCurve: 'P-384' });
export const storeSimCert = (c: SimCert): StoredCert => ({ certPem: derToPem(c.der), keyPem: c.key.export({ type: 'pkcs8', format: 'pem' }).toString() });
export const loadSimCert = (s: StoredCert): SimCert => ({ der: fromPem(s.certPem), key: createPrivateKey(s.keyPem) });

/** Issue a P-384 test certificate under a simulated CA (also used for the simulated NVSwitch chains, switch-sim.ts). */
export function issue(
  subject: NameSpec,
  issuer: { name: NameSpec; key: KeyObject },
  ca: boolean,
  serial: bigint,
  extra: { oid: string; value: Uint8Array }[] = [],
): SimCert & { name: NameSpec } {
  const pair = p384();
  const der = buildCertificate({
    serial,
    issuer: issuer.name,
    subject,
    notBefore: NOT_BEFORE,
    notAfter: NOT_AFTER,
    subjectPublicKey: pair.publicKey,
    extensions: [basicConstraints({ ca }), keyUsage(ca ? ['keyCertSign', 'cRLSign'] : ['digitalSignature']), ...extra],
    issuerKey: issuer.key,
    signature: 'ecdsa-sha384',
  });
  return { der, key: pair.privateKey, name: subject };
}

function selfSigned(subject: NameSpec, serial: bigint): SimCert & { name: NameSpec } {
  const pair = p384();
  const der = buildCertificate({
    serial,
    issuer: subject,
    subject,
    notBefore: NOT_BEFORE,
    notAfter: NOT_AFTER,
    subjectPublicKey: pair.publicKey,
    extensions: [basicConstraints({ ca: true }), keyUsage(['keyCertSign', 'cRLSign'])],
    issuerKey: pair.privateKey,
    signature: 'ecdsa-sha384',
  });
  return { der, key: pair.privateKey, name: subject };
}

const ROOT_NAME: NameSpec = { CN: 'SIMULATED NVIDIA Device Identity CA', O: 'NVIDIA (SIMULATED)' };
export const IDENTITY_NAME: NameSpec = { CN: 'SIMULATED NVIDIA GH100 Identity', O: 'NVIDIA Corporation (SIMULATED)' };
const ICA_NAME: NameSpec = { CN: 'SIMULATED NVIDIA GH100 Provisioner ICA 1', O: 'NVIDIA Corporation (SIMULATED)' };
const RIM_ROOT_NAME: NameSpec = { CN: 'SIMULATED NVIDIA CoRIM signing Root CA', O: 'NVIDIA (SIMULATED)' };
const RIM_SIGNER_NAME: NameSpec = { CN: 'SIMULATED HCC RIM L4 Signer', O: 'NVIDIA Corporation (SIMULATED)' };

/** The Hopper FWID extension layout: SEQ { INTEGER 1, SubjectPublicKeyInfo, SEQ { sha384, OCTET STRING } } (fwid.ts). */
function fwidExtension(leafPublic: KeyObject, fwid: Uint8Array): { oid: string; value: Buffer } {
  return {
    oid: OID_HOPPER_FWID,
    value: sequence(integer(1), leafPublic.export({ type: 'spki', format: 'der' }), sequence(oid(OID_SHA384), octetString(fwid))),
  };
}

function newGpu(ica: { name: NameSpec; key: KeyObject }, index: number, salt: Buffer): SimGpuChain {
  const serialHex = createHash('sha256').update(salt).update(`brom-${index}`).digest('hex').slice(0, 18).toUpperCase();
  const brom = issue({ CN: 'GH100 A01 GSP BROM', O: 'NVIDIA Corporation (SIMULATED)', serialNumber: serialHex }, ica, true, BigInt(`0x${serialHex}`));
  const leafPair = p384();
  const fwid = createHash('sha384').update(salt).update(`fwid-${index}`).digest();
  const leafSerial = BigInt(`0x${createHash('sha256').update(salt).update(`ak-${index}`).digest('hex').slice(0, 38)}`);
  const leafDer = buildCertificate({
    serial: leafSerial,
    issuer: brom.name,
    subject: { CN: 'GH100 A01 GSP FMC LF', O: 'NVIDIA Corporation (SIMULATED)', serialNumber: leafSerial.toString(16).toUpperCase() },
    notBefore: NOT_BEFORE,
    notAfter: NOT_AFTER,
    subjectPublicKey: leafPair.publicKey,
    extensions: [keyUsage(['digitalSignature']), fwidExtension(leafPair.publicKey, fwid)],
    issuerKey: brom.key,
    signature: 'ecdsa-sha384',
  });
  return { brom, leaf: { der: leafDer, key: leafPair.privateKey }, fwid, chainPem: '' };
}

function withChainPem(id: Omit<SimGpuIdentity, 'gpus'> & { gpus: SimGpuChain[] }): SimGpuIdentity {
  for (const g of id.gpus) g.chainPem = [g.leaf.der, g.brom.der, id.ica.der, id.identity.der, id.root.der].map((der) => derToPem(der)).join('');
  return id;
}

/**
 * Load the simulated identity from `dir`, creating it (and any missing GPUs up to `gpuCount`) on first
 * use. The file holds private keys of TEST roots only; it is written 0600.
 */
export async function loadOrCreateSimGpuIdentity(dir: string, gpuCount = 1, create = true): Promise<SimGpuIdentity> {
  if (!Number.isInteger(gpuCount) || gpuCount < 1 || gpuCount > 64)
    throw new CvmError('ERR_INVALID_ARGUMENT', `simulated GPU count must be 1..64, got ${gpuCount}`);
  const path = join(dir, SIM_FILE);
  let stored: StoredIdentity | undefined;
  try {
    stored = JSON.parse(await readBoundedText(path, 'simulationState')) as StoredIdentity;
    if (stored.version !== FILE_VERSION) stored = undefined;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
      throw new CvmError('ERR_SIMULATION', `cannot read simulated GPU identity ${path}: ${(err as Error).message}`, { cause: err });
  }
  if (!stored && !create) throw new CvmError('ERR_SIMULATION', `no simulated GPU identity in ${dir} (expected ${SIM_FILE})`);
  let id: SimGpuIdentity;
  let changed = false;
  if (stored) {
    const base = {
      dir,
      root: loadSimCert(stored.root),
      identity: loadSimCert(stored.identity),
      ica: loadSimCert(stored.ica),
      rimRoot: loadSimCert(stored.rimRoot),
      rimSigner: loadSimCert(stored.rimSigner),
    };
    id = withChainPem({
      ...base,
      gpus: stored.gpus.map((g) => ({ brom: loadSimCert(g.brom), leaf: loadSimCert(g.leaf), fwid: Buffer.from(g.fwid, 'hex'), chainPem: '' })),
    });
  } else {
    const root = selfSigned(ROOT_NAME, 1n);
    const identity = issue(IDENTITY_NAME, root, true, 2n);
    const ica = issue(ICA_NAME, identity, true, 3n);
    const rimRoot = selfSigned(RIM_ROOT_NAME, 1n);
    const rimSigner = issue(RIM_SIGNER_NAME, rimRoot, false, 2n);
    id = { dir, root, identity, ica, rimRoot, rimSigner, gpus: [] };
    changed = true;
  }
  const salt = createHash('sha256').update(id.root.der).digest();
  while (create && id.gpus.length < gpuCount) {
    id.gpus.push(newGpu({ name: ICA_NAME, key: id.ica.key }, id.gpus.length, salt));
    changed = true;
  }
  withChainPem(id);
  if (changed) {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const out: StoredIdentity = {
      version: FILE_VERSION,
      root: storeSimCert(id.root),
      identity: storeSimCert(id.identity),
      ica: storeSimCert(id.ica),
      rimRoot: storeSimCert(id.rimRoot),
      rimSigner: storeSimCert(id.rimSigner),
      gpus: id.gpus.map((g) => ({ brom: storeSimCert(g.brom), leaf: storeSimCert(g.leaf), fwid: g.fwid.toString('hex') })),
    };
    await writeFileAtomic(path, JSON.stringify(out, null, 1), 0o600);
  }
  return id;
}

/** Load an existing simulated identity (never creates one): for verifiers that trust it explicitly. */
export function loadSimGpuIdentity(dir: string): Promise<SimGpuIdentity> {
  return loadOrCreateSimGpuIdentity(dir, 1, false);
}

/** The roots a verifier must be handed (explicitly) to accept simulated GPUs. */
export function simulatedRoots(id: SimGpuIdentity): SimulatedRoots {
  return { deviceRoot: id.root.der, rimRoot: id.rimRoot.der, simulated: true };
}

export interface SimReportOptions {
  nonce: Uint8Array;
  driverVersion?: string;
  vbiosVersion?: string;
  /** RIM indices whose runtime value is deliberately wrong (for negative tests and demos). */
  tamperRimIndices?: number[];
  /** Opaque FEATURE_FLAG (written with OPAQUE_DATA_VERSION 1) when given. */
  featureFlag?: number;
  /** PPCIe: the PDIs of the NVSwitches this GPU is connected to, hex as the switches report them (switch-sim.ts); written little-endian in opaque field 22. */
  switchPdis?: string[];
}

export const SIM_DRIVER_VERSION = '550.90.07';
export const SIM_VBIOS_VERSION = '96.00.9F.00.01';
const SIM_PROJECT = { project: '1010', projectSku: '0200', chipSku: '882' };

/** Deterministic golden value for a RIM index: the report and the simulated RIMs both use it. */
export function simMeasurement(kind: 'driver' | 'vbios', rimIndex: number, version: string): Buffer {
  const key = `${kind} ${version} measurement ${rimIndex}`;
  let m = measurementMemo.get(key);
  if (!m) {
    // Every report of every simulated GPU repeats these 32 digests: computed once per version (a handful of entries).
    if (measurementMemo.size >= 4096) measurementMemo.clear();
    m = createHash('sha384').update(`cvm-agent simulated GPU ${key}`).digest();
    measurementMemo.set(key, m);
  }
  return Buffer.from(m);
}

const measurementMemo = new Map<string, Buffer>();

/** nvtrust format_vbios_version in reverse: "96.00.9F.00.01" → 8 bytes 00 9f 00 96 01 00 00 00. */
function encodeVbiosVersion(v: string): Buffer {
  const parts = v.split('.');
  if (parts.length !== 5 || parts.some((p) => !/^[0-9A-Fa-f]{2}$/.test(p)))
    throw new CvmError('ERR_INVALID_ARGUMENT', `VBIOS version "${v}" is not NN.NN.NN.NN.NN hex`);
  const t = parts.join(''); // h[8:16] + h[6:8] of the reversed hex
  const h = `000000${t.slice(8, 10)}${t.slice(0, 8)}`;
  return Buffer.from(h, 'hex').reverse();
}

function tlv(type: number, value: Uint8Array): Buffer {
  const h = Buffer.alloc(4);
  h.writeUInt16LE(type, 0);
  h.writeUInt16LE(value.length, 2);
  return Buffer.concat([h, value]);
}

const asciiField = (s: string, width: number): Buffer => {
  const b = Buffer.alloc(Math.max(width, s.length + 1));
  b.write(s, 'latin1');
  return b;
};

/** Build and sign an SPDM 1.1 report for simulated GPU `index` (DSP0274 1.1 layout with NVIDIA opaque TLVs). */
export function buildSimulatedReport(id: SimGpuIdentity, index: number, opts: SimReportOptions): Buffer {
  const { signed, key } = unsignedReport(id, index, opts);
  return Buffer.concat([signed, sign('sha384', signed, { key, dsaEncoding: 'ieee-p1363' })]);
}

/** The signed part of a simulated report and its key, for a batch signer (report-signer.ts); append the signature to it. */
export function simulatedReportToSign(id: SimGpuIdentity, index: number, opts: SimReportOptions): SignJob & { data: Buffer } {
  const { signed, key } = unsignedReport(id, index, opts);
  return { data: signed, key };
}

/** The signed part of a simulated report (request + MEASUREMENTS response up to the signature) and the key that signs it. */
function unsignedReport(id: SimGpuIdentity, index: number, opts: SimReportOptions): { signed: Buffer; key: KeyObject } {
  const gpu = id.gpus[index];
  if (!gpu) throw new CvmError('ERR_INVALID_ARGUMENT', `no simulated GPU ${index} (have ${id.gpus.length})`);
  if (opts.nonce.length !== 32) throw new CvmError('ERR_INVALID_ARGUMENT', `the GPU nonce must be 32 bytes, got ${opts.nonce.length}`);
  const driver = opts.driverVersion ?? SIM_DRIVER_VERSION;
  const vbios = opts.vbiosVersion ?? SIM_VBIOS_VERSION;
  const tamper = new Set(opts.tamperRimIndices ?? []);

  const request = Buffer.concat([Buffer.from([0x11, 0xe0, 0x01, 0xff]), opts.nonce, Buffer.from([0x00])]);
  const blocks: Buffer[] = [];
  for (let rimIndex = 0; rimIndex < 64; rimIndex++) {
    let value: Buffer = Buffer.alloc(48);
    if (SIM_DRIVER_RIM_INDICES.includes(rimIndex)) value = simMeasurement('driver', rimIndex, driver);
    else if (SIM_VBIOS_RIM_INDICES.includes(rimIndex)) value = simMeasurement('vbios', rimIndex, vbios);
    if (tamper.has(rimIndex)) value = createHash('sha384').update(value).update('tampered').digest();
    const header = Buffer.alloc(7);
    header[0] = rimIndex + 1; // SPDM index = RIM index + 1 (nvtrust get_measurements)
    header[1] = 0x01; // DMTF
    header.writeUInt16LE(51, 2);
    header[4] = 0x01;
    header.writeUInt16LE(48, 5);
    blocks.push(header, value);
  }
  const record = Buffer.concat(blocks);
  const msrscnt = Buffer.alloc(256);
  for (let i = 0; i < 64; i++) msrscnt.writeUInt32LE(SIM_DRIVER_RIM_INDICES.includes(i) || SIM_VBIOS_RIM_INDICES.includes(i) ? 1 : 0, i * 4);
  const board = Buffer.alloc(4);
  board.writeUInt32LE(945, 0);
  const opaqueParts = [
    tlv(6, encodeVbiosVersion(vbios)),
    tlv(14, board),
    tlv(15, asciiField(SIM_PROJECT.chipSku, 9)),
    tlv(16, asciiField('0', 5)),
    tlv(17, asciiField(SIM_PROJECT.project, 5)),
    tlv(18, asciiField(SIM_PROJECT.projectSku, 5)),
    tlv(19, Buffer.alloc(2)),
    tlv(3, asciiField(driver, driver.length + 1)),
    tlv(4, Buffer.from('8001000000000000', 'hex')),
    tlv(12, msrscnt),
    tlv(13, Buffer.from('00c00100', 'hex')),
    tlv(11, Buffer.from([0x55])),
    tlv(20, gpu.fwid),
    tlv(21, Buffer.from([0x55])),
  ];
  if (opts.switchPdis) opaqueParts.push(tlv(22, Buffer.concat(opts.switchPdis.map((p) => Buffer.from(p, 'hex').reverse()))));
  if (opts.featureFlag !== undefined) opaqueParts.push(tlv(34, Buffer.from([1, 0])), tlv(36, Buffer.from([opts.featureFlag & 0xff, 0])));
  const opaque = Buffer.concat(opaqueParts);
  const head = Buffer.from([0x11, 0x60, 0x00, 0x00, 64, record.length & 0xff, (record.length >> 8) & 0xff, (record.length >> 16) & 0xff]);
  const opaqueLen = Buffer.alloc(2);
  opaqueLen.writeUInt16LE(opaque.length, 0);
  return { signed: Buffer.concat([request, head, record, randomBytes(32), opaqueLen, opaque]), key: gpu.leaf.key };
}

export interface SimRims {
  driverId: string;
  vbiosId: string;
  driver: string;
  vbios: string;
  byId: Map<string, string>;
}

const rimMemo = new Map<string, SimRims>();

/** The simulated RIM signer (key and KeyInfo chain), and the digest of its certificate that keys RIM memos. */
export function simRimSigner(id: SimGpuIdentity): { signer: { key: SimCert['key']; chain: Buffer[] }; memoKey: string } {
  return {
    signer: { key: id.rimSigner.key, chain: [id.rimSigner.der, id.rimRoot.der] },
    memoKey: createHash('sha256').update(id.rimSigner.der).digest('hex'),
  };
}

/** Signed driver + VBIOS RIMs matching buildSimulatedReport's measurements (memoised per identity+versions). */
export function simulatedRims(id: SimGpuIdentity, driverVersion = SIM_DRIVER_VERSION, vbiosVersion = SIM_VBIOS_VERSION): SimRims {
  const { signer, memoKey } = simRimSigner(id);
  const key = `${memoKey}|${driverVersion}|${vbiosVersion}`;
  const hit = rimMemo.get(key);
  if (hit) return hit;
  const driver = buildSignedRim({
    kind: 'driver',
    version: driverVersion,
    signer,
    measurements: SIM_DRIVER_RIM_INDICES.map((i) => ({
      index: i,
      active: true,
      alternatives: [simMeasurement('driver', i, driverVersion)],
      name: `HashedMeasurement_${i}_SIM`,
    })),
  });
  const vbios = buildSignedRim({
    kind: 'vbios',
    version: vbiosVersion,
    signer,
    measurements: SIM_VBIOS_RIM_INDICES.map((i) => ({
      index: i,
      active: true,
      alternatives: [simMeasurement('vbios', i, vbiosVersion)],
      name: `HashedMeasurement_${i}_SIM`,
    })),
  });
  const driverId = driverRimId(driverVersion, 'hopper');
  const vbiosId = vbiosRimId({ ...SIM_PROJECT, vbiosVersion });
  const rims = {
    driverId,
    vbiosId,
    driver,
    vbios,
    byId: new Map([
      [driverId, driver],
      [vbiosId, vbios],
    ]),
  };
  rimMemo.set(key, rims);
  return rims;
}

/**
 * A GpuSource of N simulated H100s, for `tee: simulated` (same interface as the NVML source).
 * With `facts` (config simulation.nvml), the driver's side is real NVML: which GPUs are listed, each
 * GPU's CC mode, and the ready state are read from and written to the library, while the signed
 * evidence stays simulated. That is how the ready-state gate and its consequences are exercised
 * against a driver (the test fake libnvidia-ml) without GPUs.
 */
export class SimulatedGpuSource implements GpuSource {
  private ready = false;
  /** PPCIe (simulated HGX, switch-sim.ts): the switch PDIs every GPU reports (opaque 22), with feature flag 2. */
  ppcieSwitchPdis: string[] | undefined;
  /** Who signs the reports (report-signer.ts); the daemon sets its verification worker. */
  signer: ReportSigner = threadPoolSigner;
  constructor(
    private readonly id: SimGpuIdentity,
    private readonly count = id.gpus.length,
    private readonly cc: GpuCcState = { environment: 'sim', ccEnabled: true, devToolsMode: false },
    private readonly facts?: GpuDriverFacts,
  ) {
    if (count > id.gpus.length) throw new CvmError('ERR_INVALID_ARGUMENT', `identity has ${id.gpus.length} simulated GPUs, ${count} requested`);
  }

  /** How many simulated GPUs the driver lists now (all of them without facts). */
  private async present(): Promise<number> {
    if (!this.facts) return this.count;
    return Math.min(this.count, (await this.facts.devices()).length);
  }

  async list(): Promise<GpuInfo[]> {
    const n = await this.present();
    return Array.from({ length: n }, (_, index) => ({
      index,
      uuid: this.uuid(index),
      name: 'NVIDIA H100 (SIMULATED)',
      architecture: 'hopper',
      vbiosVersion: SIM_VBIOS_VERSION,
    }));
  }

  async systemState(): Promise<GpuSystemState> {
    const n = await this.present();
    const cc = this.facts ? { ...this.cc, ccEnabled: (await this.facts.systemCc()).ccEnabled } : this.cc;
    return { driverVersion: SIM_DRIVER_VERSION, deviceCount: n, cc: { ...cc, readyState: await this.getReadyState() } };
  }

  /** The evidence of the GPUs `indices` for one nonce; their reports signed in one batch, as real GPUs sign in parallel. */
  private async evidence(indices: readonly number[], nonce: Uint8Array, ccEnabled = this.cc.ccEnabled): Promise<GpuEvidence[]> {
    const opts = this.ppcieSwitchPdis ? { nonce, switchPdis: this.ppcieSwitchPdis, featureFlag: 2 } : { nonce };
    const jobs = indices.map((index) => simulatedReportToSign(this.id, index, opts));
    const signatures = jobs.length > 0 ? await this.signer(jobs) : [];
    return indices.map((index, i) => ({
      index,
      uuid: this.uuid(index),
      name: 'NVIDIA H100 (SIMULATED)',
      architecture: 'hopper',
      driverVersion: SIM_DRIVER_VERSION,
      vbiosVersion: SIM_VBIOS_VERSION,
      nonce: Buffer.from(nonce),
      report: Buffer.concat([jobs[i]!.data, signatures[i]!]),
      certChainPem: this.id.gpus[index]!.chainPem,
      cc: { ...this.cc, ccEnabled },
    }));
  }

  async collect(nonce: Uint8Array): Promise<GpuEvidence[]> {
    const settled = await this.collectSettled(nonce);
    const failed = settled.find((o): o is { index: number; error: Error } => 'error' in o);
    if (failed) throw failed.error;
    return settled.map((o) => (o as { evidence: GpuEvidence }).evidence);
  }

  async collectSettled(nonce: Uint8Array): Promise<GpuCollectOutcome[]> {
    if (!this.facts) {
      const all = await this.evidence(
        Array.from({ length: this.count }, (_, index) => index),
        nonce,
      );
      return all.map((evidence) => ({ index: evidence.index, evidence }));
    }
    const [systemCc, devices] = await Promise.all([this.facts.systemCc(), this.facts.devices()]);
    const cc: GpuCcState = { ...this.cc, ccEnabled: systemCc.ccEnabled, ...(systemCc.multiGpuMode ? { multiGpuMode: systemCc.multiGpuMode } : {}) };
    const listed = devices.slice(0, this.count);
    // Like the driver: a GPU that is not in CC mode gives no attestation report.
    const off = new Map(listed.map((d) => [d.index, deviceCcOff(cc, d)] as const));
    const signed = await this.evidence(
      listed.filter((d) => !off.get(d.index)).map((d) => d.index),
      nonce,
      true,
    );
    return listed.map((d): GpuCollectOutcome => {
      const why = off.get(d.index);
      if (why) return { index: d.index, error: new DeviceError('ERR_GPU_CC_OFF', why, { index: d.index }) };
      return { index: d.index, evidence: signed.find((e) => e.index === d.index)! };
    });
  }

  async getReadyState(): Promise<boolean> {
    return this.facts ? this.facts.getReadyState() : this.ready;
  }

  async setReadyState(ready: boolean): Promise<void> {
    if (this.facts) await this.facts.setReadyState(ready);
    else this.ready = ready;
  }

  private readonly uuids: string[] = [];

  private uuid(index: number): string {
    let u = this.uuids[index];
    if (u === undefined) {
      const h = createHash('sha256').update(this.id.gpus[index]!.leaf.der).digest('hex');
      u = this.uuids[index] = `GPU-${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
    }
    return u;
  }
}
