/**
 * A software SEV-SNP "device" for the demo, development and tests (README.md "Security model").
 *
 * On first use it creates TEST roots (ARK, ASK) and a VCEK whose certificate carries the real AMD
 * extension layout (AMD #57230), persists them in `dir`, and afterwards reuses them. Reports are
 * real v3 ATTESTATION_REPORT bytes (SNP ABI #56860 rev 1.55 §7.3 Table 22) signed with ECDSA P-384 over [0, 0x2A0), r/s
 * little-endian, exactly like firmware output, so the verifier exercises its normal code paths.
 *
 * Nothing here is trusted by default: the verifier accepts these roots only when the caller enables
 * simulation, and results then say SIMULATED. Every certificate subject says SIMULATED in O and OU;
 * the CNs keep AMD's names (ARK-Genoa, SEV-Genoa, SEV-VCEK) because the verifier sorts certificates
 * into roles by CN (AMD #57230).
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPair, randomBytes, X509Certificate, type KeyObject } from 'node:crypto';
import { chmod, link, mkdir, stat, unlink, writeFile } from 'node:fs/promises';
import { readBoundedText } from '../util/bounded-read.js';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ConfigError, CvmError } from '../errors.js';
import { ia5String, integer } from '../util/der-writer.js';
import { basicConstraints, buildCertificate, buildCrl, crlDistributionPoint, keyUsage, type NameSpec } from './x509-builder.js';
import { AMD_OID, SNP_SIGNED_END, encodeTcb, serializeCertTable, serializeSnpReport, signatureFromP1363 } from '../formats/snp-abi/index.js';
import type { TcbParts } from '../formats/snp-abi/index.js';
import { kdsCrlPath, kdsUrl } from '../util/kds-url.js';
import { threadPoolSigner, type ReportSigner } from './report-signer.js';

const generateKeyPairAsync = promisify(generateKeyPair);

export const SIM_PRODUCT = 'Genoa' as const;
/** Genoa CPUID as a v3 report encodes it: family 0x19, model 0x11, stepping 1 (virtee/sev src/lib.rs identify_cpu). */
export const SIM_CPUID = { family: 0x19, model: 0x11, stepping: 1 } as const;
/** SPLs of the simulated platform (a real Genoa TCB seen on Azure: 10/0/23/84, test/vectors/snp/README.md §4). */
export const SIM_TCB: TcbParts = { bootloader: 10, tee: 0, snp: 23, microcode: 84 };
export const SIM_FIRMWARE = { major: 1, minor: 55, build: 40 } as const;
/** POLICY 0x30000: SMT allowed, reserved bit 17 set, DEBUG off (go-sev-guest abi/abi.go ParseSnpPolicy). */
export const SIM_DEFAULT_POLICY = 0x30000n;
/** PLATFORM_INFO: SMT enabled (bit 0), go-sev-guest ParseSnpPlatformInfo. */
const SIM_PLATFORM_INFO = 0x1n;
/** Measurement of the simulated "guest image": a fixed, recognisable SHA-384. */
export const SIM_DEFAULT_MEASUREMENT = createHash('sha384').update('cvm-agent SIMULATED SEV-SNP guest').digest();

/** The simulated device's state file in its directory (the controller checks for it so it never creates roots). */
export const SNP_SIM_FILE = 'snp-sim-state.json';
const STATE_VERSION = 1;

export interface SimReportOptions {
  vmpl?: number;
  policy?: bigint;
  measurement?: Uint8Array;
  hostData?: Uint8Array;
  /** Report version, 2..5 (default 3). CPUID is written for 3+, MIT vectors for 5. */
  version?: number;
}

export interface SimReport {
  report: Buffer;
  vcek: Buffer;
  ask: Buffer;
  ark: Buffer;
}

export interface SimExtReport extends SimReport {
  /** GHCB certificate table (VCEK, ASK, ARK; RFC 4122 GUIDs), GHCB #56421 rev 2.03 §4.1.8.1. */
  certTable: Buffer;
}

export interface SimRoots {
  product: typeof SIM_PRODUCT;
  ark: Buffer;
  ask: Buffer;
  simulated: true;
}

/** What is persisted (one file, mode 0600, written atomically). */
interface SimState {
  stateVersion: number;
  product: typeof SIM_PRODUCT;
  chipId: string;
  reportId: string;
  tcb: TcbParts;
  arkKey: string;
  askKey: string;
  vcekKey: string;
  ark: string;
  ask: string;
  vcek: string;
}

/** AMD's DN with SIMULATED in O and OU (AMD: OU=Engineering, C=US, L=Santa Clara, ST=CA, O=Advanced Micro Devices). */
const simName = (cn: string): NameSpec => ({
  OU: 'SIMULATED - test roots, not AMD',
  C: 'US',
  L: 'Santa Clara',
  ST: 'CA',
  O: 'SIMULATED Advanced Micro Devices',
  CN: cn,
});

const YEAR_MS = 365.25 * 24 * 3600 * 1000;

/** VCEK extensions in AMD's layout (AMD #57230; go-sev-guest kds/kds.go): structVersion 0, productName, SPLs, spl4..7 = 0, 64-byte raw hwID. */
function vcekExtensions(tcb: TcbParts, chipId: Buffer) {
  return [
    { oid: AMD_OID.structVersion, value: integer(0) },
    { oid: AMD_OID.productName, value: ia5String(SIM_PRODUCT) },
    { oid: AMD_OID.blSpl, value: integer(tcb.bootloader) },
    { oid: AMD_OID.teeSpl, value: integer(tcb.tee) },
    { oid: AMD_OID.spl4, value: integer(0) },
    { oid: AMD_OID.spl5, value: integer(0) },
    { oid: AMD_OID.spl6, value: integer(0) },
    { oid: AMD_OID.spl7, value: integer(0) },
    { oid: AMD_OID.snpSpl, value: integer(tcb.snp) },
    { oid: AMD_OID.ucodeSpl, value: integer(tcb.microcode) },
    { oid: AMD_OID.hwId, value: chipId }, // raw bytes, no DER tag, as the KDS issues it
  ];
}

async function createState(now: Date): Promise<SimState> {
  // Real ARK/ASK keys are RSA-4096; RSA-2048 keeps first-use generation fast and is enough for TEST roots.
  const [ark, ask, vcek] = await Promise.all([
    generateKeyPairAsync('rsa', { modulusLength: 2048 }),
    generateKeyPairAsync('rsa', { modulusLength: 2048 }),
    generateKeyPairAsync('ec', { namedCurve: 'P-384' }),
  ]);
  const chipId = randomBytes(64);
  const notBefore = new Date(Math.floor(now.getTime() / 1000) * 1000 - 24 * 3600 * 1000);
  const crlDp = crlDistributionPoint(kdsUrl(kdsCrlPath(SIM_PRODUCT, 'vcek')));
  const arkDer = buildCertificate({
    serial: 0x20000, // AMD: ARK serials 0x10000/0x20000/0x30000 (the KDS cert_chain roots)
    issuer: simName(`ARK-${SIM_PRODUCT}`),
    subject: simName(`ARK-${SIM_PRODUCT}`),
    notBefore,
    notAfter: new Date(notBefore.getTime() + 25 * YEAR_MS),
    subjectPublicKey: ark.publicKey,
    issuerKey: ark.privateKey,
    signature: 'rsa-pss-sha384',
    extensions: [basicConstraints({ ca: true }), keyUsage(['keyCertSign', 'cRLSign']), crlDp],
  });
  const askDer = buildCertificate({
    serial: 0x20001,
    issuer: simName(`ARK-${SIM_PRODUCT}`),
    subject: simName(`SEV-${SIM_PRODUCT}`),
    notBefore,
    notAfter: new Date(notBefore.getTime() + 25 * YEAR_MS),
    subjectPublicKey: ask.publicKey,
    issuerKey: ark.privateKey,
    signature: 'rsa-pss-sha384',
    extensions: [basicConstraints({ ca: true, pathLen: 0 }), keyUsage(['keyCertSign', 'cRLSign']), crlDp],
  });
  const vcekDer = buildCertificate({
    serial: 0, // AMD VCEKs have serial 0 (vectors README)
    issuer: simName(`SEV-${SIM_PRODUCT}`),
    subject: simName('SEV-VCEK'),
    notBefore,
    notAfter: new Date(notBefore.getTime() + 7 * YEAR_MS),
    subjectPublicKey: vcek.publicKey,
    issuerKey: ask.privateKey,
    signature: 'rsa-pss-sha384',
    extensions: vcekExtensions(SIM_TCB, chipId),
  });
  const pem = (k: KeyObject) => k.export({ type: 'pkcs8', format: 'pem' }).toString();
  return {
    stateVersion: STATE_VERSION,
    product: SIM_PRODUCT,
    chipId: chipId.toString('hex'),
    reportId: randomBytes(32).toString('hex'),
    tcb: { ...SIM_TCB },
    arkKey: pem(ark.privateKey),
    askKey: pem(ask.privateKey),
    vcekKey: pem(vcek.privateKey),
    ark: arkDer.toString('base64'),
    ask: askDer.toString('base64'),
    vcek: vcekDer.toString('base64'),
  };
}

/**
 * Write-once publication: write a private temp file, then hard-link it to the final name. link()
 * fails if the name exists, so two processes racing on first use agree on one set of roots.
 * Returns false if another writer won.
 */
async function publishOnce(path: string, data: string): Promise<boolean> {
  const tmp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  await writeFile(tmp, data, { mode: 0o600, flag: 'wx' });
  try {
    await link(tmp, path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}

function loadState(text: string, path: string): SimState {
  const bad = (why: string): never => {
    throw new ConfigError(`simulated SNP state ${path} is unusable (${why}); delete the directory to recreate the test roots`);
  };
  let s: SimState;
  try {
    s = JSON.parse(text) as SimState;
  } catch {
    return bad('not JSON');
  }
  if (s?.stateVersion !== STATE_VERSION || s.product !== SIM_PRODUCT) bad('unknown state version');
  for (const k of ['chipId', 'reportId', 'arkKey', 'askKey', 'vcekKey', 'ark', 'ask', 'vcek'] as const) {
    if (typeof s[k] !== 'string' || s[k].length === 0) bad(`missing ${k}`);
  }
  if (!/^[0-9a-f]{128}$/.test(s.chipId) || !/^[0-9a-f]{64}$/.test(s.reportId)) bad('bad chipId/reportId');
  try {
    encodeTcb(s.tcb, 'legacy');
  } catch {
    bad('bad tcb');
  }
  return s;
}

export class SimulatedSnpDevice {
  readonly dir: string;
  /** Who signs the reports (report-signer.ts); the daemon sets its verification worker. */
  signer: ReportSigner = threadPoolSigner;
  readonly chipId: Buffer;
  readonly tcb: TcbParts;
  readonly #reportId: Buffer;
  readonly #vcekKey: KeyObject;
  readonly #arkKey: KeyObject;
  readonly #ark: Buffer;
  readonly #ask: Buffer;
  readonly #vcek: Buffer;

  private constructor(dir: string, state: SimState) {
    this.dir = dir;
    this.chipId = Buffer.from(state.chipId, 'hex');
    this.#reportId = Buffer.from(state.reportId, 'hex');
    this.tcb = { ...state.tcb };
    this.#vcekKey = createPrivateKey(state.vcekKey);
    this.#arkKey = createPrivateKey(state.arkKey);
    this.#ark = Buffer.from(state.ark, 'base64');
    this.#ask = Buffer.from(state.ask, 'base64');
    this.#vcek = Buffer.from(state.vcek, 'base64');
    // Consistency: the persisted chain must hold together and the VCEK must match its key.
    const [ark, ask, vcek] = [this.#ark, this.#ask, this.#vcek].map((d) => new X509Certificate(d)) as [X509Certificate, X509Certificate, X509Certificate];
    const spki = (k: KeyObject) => k.export({ type: 'spki', format: 'der' });
    if (!ark.verify(ark.publicKey) || !ask.verify(ark.publicKey) || !vcek.verify(ask.publicKey)) {
      throw new ConfigError(`simulated SNP state in ${dir}: certificate chain does not verify; delete the directory to recreate it`);
    }
    if (!spki(ark.publicKey).equals(spki(createPublicKey(this.#arkKey)))) {
      throw new ConfigError(`simulated SNP state in ${dir}: ARK key does not match its certificate; delete the directory to recreate it`);
    }
    if (!spki(vcek.publicKey).equals(spki(createPublicKey(this.#vcekKey)))) {
      throw new ConfigError(`simulated SNP state in ${dir}: VCEK key does not match its certificate; delete the directory to recreate it`);
    }
  }

  /** Open (creating on first use) the simulated device whose state lives in `dir` (mode 0700). */
  static async open(dir: string, opts: { now?: Date } = {}): Promise<SimulatedSnpDevice> {
    const path = join(dir, SNP_SIM_FILE);
    let text: string | undefined;
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const st = await stat(dir);
      if (!st.isDirectory()) throw new ConfigError(`simulated SNP state path ${dir} is not a directory`);
      if ((st.mode & 0o077) !== 0) await chmod(dir, 0o700); // private keys live here
      text = await readBoundedText(path, 'simulationState').catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return undefined;
        throw err;
      });
      if (text === undefined) {
        const state = await createState(opts.now ?? new Date());
        const data = JSON.stringify(state, null, 2);
        text = (await publishOnce(path, data)) ? data : await readBoundedText(path, 'simulationState');
      }
    } catch (err) {
      if (err instanceof CvmError) throw err;
      throw new ConfigError(`simulated SNP state directory ${dir}: ${(err as Error).message}`, { cause: err });
    }
    const state = loadState(text, path);
    try {
      return new SimulatedSnpDevice(dir, state);
    } catch (err) {
      if (err instanceof CvmError) throw err;
      throw new ConfigError(`simulated SNP state ${path} is unusable (${(err as Error).message}); delete the directory to recreate the test roots`, {
        cause: err,
      });
    }
  }

  /** The test roots; the verifier trusts them only when the caller enables simulation. */
  roots(): SimRoots {
    return { product: SIM_PRODUCT, ark: Buffer.from(this.#ark), ask: Buffer.from(this.#ask), simulated: true };
  }

  /**
   * An empty CRL signed by the test ARK, as AMD KDS serves at /vcek/v1/{P}/crl (AMD #57230), valid
   * from an hour before `at` for 7 days: lets a simulated chain pass the revocation check.
   */
  crl(at: Date = new Date()): Buffer {
    const thisUpdate = new Date(Math.floor(at.getTime() / 1000) * 1000 - 3600 * 1000);
    return buildCrl({
      issuer: simName(`ARK-${SIM_PRODUCT}`),
      issuerKey: this.#arkKey,
      signature: 'rsa-pss-sha384',
      thisUpdate,
      nextUpdate: new Date(thisUpdate.getTime() + 7 * 24 * 3600 * 1000),
      revoked: [],
    });
  }

  /**
   * A signed report carrying `reportData` (64 bytes). The second argument may be a VMPL number
   * (the shape of SnpDeviceCollector.getReport) or options.
   */
  async getReport(reportData: Uint8Array, opts: SimReportOptions | number = {}): Promise<SimReport> {
    const o = typeof opts === 'number' ? { vmpl: opts } : opts;
    return { report: await this.#sign(reportData, o), vcek: Buffer.from(this.#vcek), ask: Buffer.from(this.#ask), ark: Buffer.from(this.#ark) };
  }

  /** getReport plus the GHCB certificate table the host would supply (VCEK, ASK, ARK). */
  async getExtReport(reportData: Uint8Array, opts: SimReportOptions | number = {}): Promise<SimExtReport> {
    const r = await this.getReport(reportData, opts);
    return {
      ...r,
      certTable: serializeCertTable([
        { kind: 'vcek', data: r.vcek },
        { kind: 'ask', data: r.ask },
        { kind: 'ark', data: r.ark },
      ]),
    };
  }

  async #sign(reportData: Uint8Array, o: SimReportOptions): Promise<Buffer> {
    const invalid = (m: string): never => {
      throw new CvmError('ERR_INVALID_ARGUMENT', `simulated SNP device: ${m}`);
    };
    if (!(reportData instanceof Uint8Array) || reportData.length !== 64) invalid('REPORT_DATA must be exactly 64 bytes');
    const vmpl = o.vmpl ?? 0;
    if (!Number.isInteger(vmpl) || vmpl < 0 || vmpl > 3) invalid(`VMPL ${vmpl} is not 0..3`); // include/uapi/linux/sev-guest.h
    const version = o.version ?? 3;
    if (!Number.isInteger(version) || version < 2 || version > 5) invalid(`report version ${version} is not 2..5`);
    const tcb = encodeTcb(this.tcb, 'legacy'); // Genoa: legacy TCB_VERSION layout (virtee/sev from_legacy_bytes)
    const fields = {
      version,
      guestSvn: 0,
      policy: o.policy ?? SIM_DEFAULT_POLICY,
      vmpl,
      signatureAlgo: 1,
      currentTcb: tcb,
      platformInfo: SIM_PLATFORM_INFO,
      signerInfo: { authorKeyEn: false, maskChipKey: false, signingKey: 0 }, // signed by the VCEK
      reportData,
      measurement: o.measurement ?? SIM_DEFAULT_MEASUREMENT,
      ...(o.hostData === undefined ? {} : { hostData: o.hostData }),
      reportId: this.#reportId,
      reportedTcb: tcb, // == the VCEK's SPLs, as on real hardware
      cpuid: SIM_CPUID,
      chipId: this.chipId,
      committedTcb: tcb,
      currentVersion: SIM_FIRMWARE,
      committedVersion: SIM_FIRMWARE,
      launchTcb: tcb,
      ...(version >= 5 ? { launchMitVector: 0n, currentMitVector: 0n } : {}),
    };
    const unsigned = serializeSnpReport(fields); // throws ERR_INVALID_ARGUMENT on bad measurement/hostData sizes
    // Off the event loop (report-signer.ts): the thread pool, or the daemon's verification worker.
    const [sig] = await this.signer([{ data: unsigned.subarray(0, SNP_SIGNED_END), key: this.#vcekKey }]);
    return serializeSnpReport({ ...fields, signature: signatureFromP1363(sig!) });
  }
}
