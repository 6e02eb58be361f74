/**
 * Simulated NVSwitches (LS10) of a protected-PCIe (PPCIe) HGX system, behind an option: the default
 * simulation has no switches. Built from the public layout (NVIDIA/attestation-sdk
 * nv-attestation-sdk-cpp/include/nv_attestation/switch/spdm/switch_opaque_data_parser.hpp; NVIDIA/nvtrust
 * .../nv_switch_verifier/attestation/spdm_msrt_resp_msg.py) and shaped like the real public switch report
 * in test/vectors/nvidia/attestation-sdk/switch-ls10: SPDM 1.1 with 31 measurement blocks, opaque fields
 * VBIOS_VERSION (ASCII), DEVICE_PDI, MSRSCNT, SWITCH_GPU_PDIS (8 GPU PDIs then 64 port entries),
 * DISABLED_PORTS, SWITCH_POSITION_ID, SWITCH_LOCK_STATUS. The chain is "LS_10 A01 FSP FMC LF" →
 * "LS_10 A01 FSP BROM" → "SIMULATED NVIDIA LS_10 Provisioner ICA 1" → the simulated GH100 Identity →
 * the SIMULATED NVIDIA Device Identity CA (gpu-sim.ts), so it is trusted only where the simulated GPU
 * roots are, i.e. only when simulation is explicitly enabled. The switch CA, chains and PDIs are created
 * on first use next to the GPU identity (switch-sim-identity.json, 0600, TEST keys only) and reused, so
 * a controller trusting the same simulation directory can answer OCSP for the switch chains and a
 * restarted agent keeps its switches.
 */
import { createHash, randomBytes, sign } from 'node:crypto';
import { join } from 'node:path';
import { CvmError } from '../errors.js';
import { derToPem } from '../util/pem.js';
import { readBoundedText } from '../util/bounded-read.js';
import { writeFileAtomic } from '../util/atomic-file.js';
import { buildSignedRim } from './rim-build.js';
import { IDENTITY_NAME, issue, loadSimCert, simRimSigner, storeSimCert, type SimCert, type SimGpuIdentity, type StoredCert } from './gpu-sim.js';
import { switchBiosRimId } from '../verify/nvidia/switch-verify.js';
import type { SwitchBundleEntry } from '../formats/gpu-evidence-record.js';

export const SIM_SWITCH_VBIOS_VERSION = '96.10.55.00.01';
/** The real switch report activates 31 blocks; the simulated VBIOS RIM activates RIM indices 0..30. */
export const SIM_SWITCH_RIM_INDICES = Array.from({ length: 31 }, (_, i) => i);
/** An HGX H100 system: 8 GPUs, 4 NVSwitches. */
export const HGX_SWITCHES = 4;
export const HGX_GPUS = 8;

const ICA_NAME = { CN: 'SIMULATED NVIDIA LS_10 Provisioner ICA 1', O: 'NVIDIA Corporation (SIMULATED)' };

export interface SimSwitch {
  /** DEVICE_PDI, hex in report order. */
  pdi: string;
  brom: SimCert;
  leaf: SimCert;
  /** PEM, leaf first: leaf, BROM, switch ICA, the simulated GH100 Identity, the simulated root. */
  chainPem: string;
}

export interface SimPpcieSystem {
  /** The simulated "LS_10 Provisioner ICA", issued by the simulated GH100 Identity. */
  ica: SimCert;
  switches: SimSwitch[];
  /** The GPU PDIs the switches report (a GPU report does not carry its own). */
  gpuPdis: string[];
  /** The VBIOS RIM matching the simulated switch measurements, by RIM id. */
  rims: Map<string, string>;
}

export function simSwitchMeasurement(rimIndex: number, version: string): Buffer {
  return createHash('sha384').update(`cvm-agent simulated NVSwitch VBIOS ${version} measurement ${rimIndex}`).digest();
}

const hex16 = (salt: Buffer, what: string) => createHash('sha256').update(salt).update(what).digest('hex').slice(0, 16);

/** Create the switches of a simulated HGX system under the simulated GPU identity's CAs (in memory; see loadOrCreateSimPpcieSystem). */
export function createSimPpcieSystem(id: SimGpuIdentity, switchCount = HGX_SWITCHES, gpuCount = HGX_GPUS): SimPpcieSystem {
  if (gpuCount > 8) throw new CvmError('ERR_INVALID_ARGUMENT', `an LS10 switch reports at most 8 GPU PDIs, ${gpuCount} requested`);
  const salt = createHash('sha256').update(id.root.der).update(randomBytes(16)).digest();
  const ica = issue(ICA_NAME, { name: IDENTITY_NAME, key: id.identity.key }, true, 0x5000n);
  const switches = Array.from({ length: switchCount }, (_, j): SimSwitch => {
    const pdi = hex16(salt, `switch-${j}`);
    const brom = issue(
      { CN: 'LS_10 A01 FSP BROM', O: 'NVIDIA Corporation (SIMULATED)', serialNumber: `50${pdi.toUpperCase()}` },
      ica,
      true,
      BigInt(`0x50${pdi}`),
    );
    const leafSerial = BigInt(`0x${hex16(salt, `leaf-${j}`)}`);
    const leaf = issue({ CN: 'LS_10 A01 FSP FMC LF', O: 'NVIDIA Corporation (SIMULATED)' }, brom, false, leafSerial);
    return { pdi, brom, leaf, chainPem: '' };
  });
  const gpuPdis = Array.from({ length: gpuCount }, (_, i) => hex16(salt, `gpu-${i}`));
  return withSwitchChains(id, { ica, switches, gpuPdis, rims: simulatedSwitchRims(id) });
}

function withSwitchChains(id: SimGpuIdentity, system: SimPpcieSystem): SimPpcieSystem {
  for (const sw of system.switches) sw.chainPem = [sw.leaf.der, sw.brom.der, system.ica.der, id.identity.der, id.root.der].map((der) => derToPem(der)).join('');
  return system;
}

const rimMemo = new Map<string, Map<string, string>>();

/** The signed switch VBIOS RIM matching the simulated switch measurements, by RIM id (memoised per RIM signer). */
export function simulatedSwitchRims(id: SimGpuIdentity): Map<string, string> {
  const { signer, memoKey: key } = simRimSigner(id);
  const hit = rimMemo.get(key);
  if (hit) return hit;
  const rim = buildSignedRim({
    kind: 'vbios',
    version: SIM_SWITCH_VBIOS_VERSION,
    product: 'LS10',
    signer,
    measurements: SIM_SWITCH_RIM_INDICES.map((i) => ({
      index: i,
      active: true,
      alternatives: [simSwitchMeasurement(i, SIM_SWITCH_VBIOS_VERSION)],
      name: `Measurement_${i}_SIM`,
    })),
  });
  const rims = new Map([[switchBiosRimId(SIM_SWITCH_VBIOS_VERSION), rim]]);
  rimMemo.set(key, rims);
  return rims;
}

export const SWITCH_SIM_FILE = 'switch-sim-identity.json';
const FILE_VERSION = 1;

interface StoredSystem {
  version: number;
  /** SHA-256 of the simulated root the switch CA chains to: a recreated GPU identity invalidates the file. */
  rootSha256: string;
  ica: StoredCert;
  gpuPdis: string[];
  switches: { pdi: string; brom: StoredCert; leaf: StoredCert }[];
}

/**
 * Load the simulated HGX system's switches from the GPU identity's directory, creating them on first use
 * (with `create`; a verifier that only trusts the directory passes false and gets undefined when there is
 * none). A file made under another simulated root is replaced (create) or ignored.
 */
export async function loadOrCreateSimPpcieSystem(id: SimGpuIdentity, create = true): Promise<SimPpcieSystem | undefined> {
  const path = join(id.dir, SWITCH_SIM_FILE);
  const rootSha256 = createHash('sha256').update(id.root.der).digest('hex');
  let stored: StoredSystem | undefined;
  try {
    stored = JSON.parse(await readBoundedText(path, 'simulationState')) as StoredSystem;
    if (stored.version !== FILE_VERSION || stored.rootSha256 !== rootSha256) stored = undefined;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
      throw new CvmError('ERR_SIMULATION', `cannot read the simulated NVSwitches ${path}: ${(err as Error).message}`, { cause: err });
  }
  if (stored) {
    return withSwitchChains(id, {
      ica: loadSimCert(stored.ica),
      gpuPdis: stored.gpuPdis,
      switches: stored.switches.map((s) => ({ pdi: s.pdi, brom: loadSimCert(s.brom), leaf: loadSimCert(s.leaf), chainPem: '' })),
      rims: simulatedSwitchRims(id),
    });
  }
  if (!create) return undefined;
  const system = createSimPpcieSystem(id);
  const out: StoredSystem = {
    version: FILE_VERSION,
    rootSha256,
    ica: storeSimCert(system.ica),
    gpuPdis: system.gpuPdis,
    switches: system.switches.map((s) => ({ pdi: s.pdi, brom: storeSimCert(s.brom), leaf: storeSimCert(s.leaf) })),
  };
  await writeFileAtomic(path, JSON.stringify(out, null, 1), 0o600);
  return system;
}

function tlv(type: number, value: Uint8Array): Buffer {
  const h = Buffer.alloc(4);
  h.writeUInt16LE(type, 0);
  h.writeUInt16LE(value.length, 2);
  return Buffer.concat([h, value]);
}

export interface SimSwitchReportOptions {
  nonce: Uint8Array;
  /** Override the GPU PDIs this switch reports (hostile tests: a switch claiming another GPU). */
  gpuPdis?: string[];
  /** Override the switch's own PDI. */
  pdi?: string;
}

/** Build and sign switch `j`'s SPDM 1.1 report (request ‖ MEASUREMENTS response ‖ signature). */
export function buildSimulatedSwitchReport(system: SimPpcieSystem, j: number, opts: SimSwitchReportOptions): Buffer {
  const sw = system.switches[j];
  if (!sw) throw new CvmError('ERR_INVALID_ARGUMENT', `no simulated switch ${j} (have ${system.switches.length})`);
  if (opts.nonce.length !== 32) throw new CvmError('ERR_INVALID_ARGUMENT', `the switch nonce must be 32 bytes, got ${opts.nonce.length}`);
  const request = Buffer.concat([Buffer.from([0x11, 0xe0, 0x01, 0xff]), opts.nonce, Buffer.from([0x00])]);
  const blocks: Buffer[] = [];
  for (const rimIndex of SIM_SWITCH_RIM_INDICES) {
    const header = Buffer.alloc(7);
    header[0] = rimIndex + 1;
    header[1] = 0x01;
    header.writeUInt16LE(51, 2);
    header[4] = 0x01;
    header.writeUInt16LE(48, 5);
    blocks.push(header, simSwitchMeasurement(rimIndex, SIM_SWITCH_VBIOS_VERSION));
  }
  const record = Buffer.concat(blocks);
  const gpuPdis = opts.gpuPdis ?? system.gpuPdis;
  const pdiBytes = Buffer.alloc(64);
  gpuPdis.slice(0, 8).forEach((p, i) => Buffer.from(p, 'hex').copy(pdiBytes, i * 8));
  // Two ports per GPU, the rest unconnected (0xff), as the real report's port entries look.
  const ports = Buffer.alloc(64, 0xff);
  gpuPdis.slice(0, 8).forEach((_, i) => ports.fill(i, i * 2, i * 2 + 2));
  const msrscnt = Buffer.alloc(4 * SIM_SWITCH_RIM_INDICES.length);
  SIM_SWITCH_RIM_INDICES.forEach((_, i) => msrscnt.writeUInt32LE(1, i * 4));
  const opaque = Buffer.concat([
    tlv(6, Buffer.from(SIM_SWITCH_VBIOS_VERSION, 'latin1')),
    tlv(22, Buffer.from(opts.pdi ?? sw.pdi, 'hex')),
    tlv(12, msrscnt),
    tlv(26, Buffer.concat([pdiBytes, ports])),
    tlv(23, Buffer.from([0x00, 0x00])),
    tlv(24, Buffer.from([j & 0xff, 0])),
    tlv(25, Buffer.from([1, 0])),
  ]);
  const head = Buffer.from([0x11, 0x60, 0x00, 0x00, SIM_SWITCH_RIM_INDICES.length, record.length & 0xff, (record.length >> 8) & 0xff, 0]);
  const opaqueLen = Buffer.alloc(2);
  opaqueLen.writeUInt16LE(opaque.length, 0);
  const signed = Buffer.concat([request, head, record, randomBytes(32), opaqueLen, opaque]);
  return Buffer.concat([signed, sign('sha384', signed, { key: sw.leaf.key, dsaEncoding: 'ieee-p1363' })]);
}

/**
 * A deliberate fault in one simulated switch's evidence, for end-to-end tests only (agent/daemon/test-hooks.ts):
 * `signature` flips a byte of its signed measurement record (the signature no longer verifies);
 * `foreign-gpu` has it report, correctly signed, a GPU PDI that belongs to no GPU of the system.
 */
export interface SwitchTamper {
  index: number;
  how: 'signature' | 'foreign-gpu';
}

/** Every switch's evidence for one nonce, as the bundle's `switches[]` carries it (with `tamper`, one switch's damaged). */
export function collectSimulatedSwitches(system: SimPpcieSystem, nonce: Uint8Array, tamper?: SwitchTamper): SwitchBundleEntry[] {
  return system.switches.map((sw, j) => {
    let report: Buffer;
    if (tamper?.index === j && tamper.how === 'foreign-gpu') {
      const foreign = createHash('sha256').update('a GPU of another system').digest('hex').slice(0, 16);
      report = buildSimulatedSwitchReport(system, j, { nonce, gpuPdis: [foreign, ...system.gpuPdis.slice(1)] });
    } else {
      report = buildSimulatedSwitchReport(system, j, { nonce });
      // Request (37 bytes) and MEASUREMENTS header (8), then the first block's 7-byte header: a measurement byte.
      const at = 37 + 8 + 7;
      if (tamper?.index === j && tamper.how === 'signature') report.writeUInt8(report.readUInt8(at) ^ 0x01, at);
    }
    return { index: j, arch: 'LS10', report, certChainPem: sw.chainPem };
  });
}
