/**
 * The doctor's I/O edge: reads the facts the pure checks judge. Everything here is read-only: stat,
 * access, reads of files, NVML queries, TPM reads, one SNP report with zero REPORT_DATA, and cache
 * lookups without fetching. Nothing is written (the optional --vtpm-refresh excepted, which writes
 * the vTPM user-data index as every attestation cycle does), the GPU ready state is never set.
 */
import { X509Certificate, randomBytes } from 'node:crypto';
import { constants, existsSync } from 'node:fs';
import { access, readdir, stat } from 'node:fs/promises';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { userInfo } from 'node:os';
import { CvmError } from '../errors.js';
import type { Config } from '../config/schema.js';
import { readBoundedText } from '../util/bounded-read.js';
import { isAllZero } from '../util/bytes.js';
import { parseSnpReport, parseCertTable } from '../formats/snp-abi/index.js';
import { parseHclReport } from '../formats/azure/hcl.js';
import { AZURE } from '../formats/tpm/constants.js';
import { publicKeyObject } from '../formats/tpm/structures.js';
import type { EvidenceBundle } from '../formats/evidence-bundle.js';
import { SnpDeviceCollector } from '../evidence/snp-device.js';
import { TpmClient } from '../evidence/tpm/tpm-client.js';
import { openTransport, type TransportSpec } from '../evidence/tpm/transport.js';
import { waitForUserData, writeUserData } from '../evidence/azure-vtpm.js';
import { decodeCcState } from '../evidence/gpu-nvml.js';
import { nvmlCertificateChain, nvmlDevices, nvmlGetReadyState, nvmlInfo, nvmlSystemCc, setNvmlLibrary } from '../native/nvml.js';
import { verifySnpReport } from '../verify/snp/snp-verifier.js';
import { parsePemChain } from '../verify/nvidia/device-chain.js';
import { CollateralStore, freshness, gatherCollateral, type StoredEntry } from '../collateral/index.js';
import { certIdFor, ocspKey } from '../collateral/fetch/ocsp-fetch.js';
import type { Check } from '../formats/checks.js';
import type { NodeFacts, TestReport } from './platform.js';
import type { VtpmFacts } from './vtpm.js';
import type { CachedItem, GpuFacts } from './gpu.js';
import type { DirFacts, UnitFacts, UserFacts, ValidityWindow } from './agent-checks.js';

const msg = (err: unknown) => (err instanceof Error ? err.message : String(err));
const code = (err: unknown) => (err instanceof CvmError ? err.code : ((err as NodeJS.ErrnoException)?.code ?? 'ERR'));

/** Bound every fact-gathering step: a hung driver or device must not hang the doctor. */
export function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([p, new Promise<T>((_, reject) => (t = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms)))]).finally(() =>
    clearTimeout(t),
  );
}

// ---- accounts ---------------------------------------------------------------------------------

export interface Accounts {
  users: Array<{ name: string; uid: number; gid: number }>;
  groups: Array<{ name: string; gid: number; members: string[] }>;
}

/** /etc/passwd and /etc/group lines (name:x:id:...); malformed lines are skipped. */
export function parseAccounts(passwd: string, group: string): Accounts {
  const users: Accounts['users'] = [];
  for (const line of passwd.split('\n')) {
    const f = line.split(':');
    if (f.length >= 4 && /^\d+$/.test(f[2]!) && /^\d+$/.test(f[3]!)) users.push({ name: f[0]!, uid: Number(f[2]), gid: Number(f[3]) });
  }
  const groups: Accounts['groups'] = [];
  for (const line of group.split('\n')) {
    const f = line.split(':');
    if (f.length >= 3 && /^\d+$/.test(f[2]!)) groups.push({ name: f[0]!, gid: Number(f[2]), members: (f[3] ?? '').split(',').filter(Boolean) });
  }
  return { users, groups };
}

export async function readAccounts(): Promise<Accounts> {
  const read = (p: string) => readBoundedText(p, 'idDatabase').catch(() => '');
  return parseAccounts(await read('/etc/passwd'), await read('/etc/group'));
}

const userName = (a: Accounts, uid: number | undefined) => a.users.find((u) => u.uid === uid)?.name;
const groupName = (a: Accounts, gid: number | undefined) => a.groups.find((g) => g.gid === gid)?.name;

/**
 * The user the daemon runs as: User= of the installed unit, else the shipped "cvm-agent" when it
 * exists, else this process. Its groups include the unit's SupplementaryGroups=.
 */
export function serviceUser(a: Accounts, unitUser: string | undefined, supplementary: readonly string[]): UserFacts {
  const pick = (name: string, why: string): UserFacts | undefined => {
    const u = a.users.find((x) => x.name === name);
    if (!u) return undefined;
    const gids = new Set([u.gid, ...a.groups.filter((g) => g.members.includes(name)).map((g) => g.gid)]);
    for (const s of supplementary) {
      const g = a.groups.find((x) => x.name === s);
      if (g) gids.add(g.gid);
    }
    return { name, uid: u.uid, gids: [...gids], why };
  };
  const self = userInfo();
  return (
    (unitUser ? pick(unitUser, 'User= of the installed unit') : undefined) ??
    pick('cvm-agent', 'the service user') ?? { name: self.username, uid: self.uid, gids: [self.gid], why: 'this process: no cvm-agent user on this machine' }
  );
}

// ---- files ------------------------------------------------------------------------------------

export async function nodeFacts(path: string, a: Accounts, tryAccess: boolean): Promise<NodeFacts> {
  try {
    const s = await stat(path);
    const f: NodeFacts = { path, exists: true, uid: s.uid, gid: s.gid, mode: s.mode & 0o7777 };
    const o = userName(a, s.uid);
    const g = groupName(a, s.gid);
    if (o) f.ownerName = o;
    if (g) f.groupName = g;
    if (tryAccess)
      f.access = await access(path, constants.R_OK | constants.W_OK).then(
        () => ({ ok: true }),
        (err: NodeJS.ErrnoException) => ({ ok: false, error: err.code ?? err.message }),
      );
    return f;
  } catch {
    return { path, exists: false };
  }
}

export async function dirFacts(path: string, a: Accounts): Promise<DirFacts> {
  try {
    const s = await stat(path);
    const d: DirFacts = { path, exists: true, isDirectory: s.isDirectory(), uid: s.uid, gid: s.gid, mode: s.mode & 0o7777 };
    const o = userName(a, s.uid);
    const g = groupName(a, s.gid);
    if (o) d.ownerName = o;
    if (g) d.groupName = g;
    return d;
  } catch {
    return { path, exists: false };
  }
}

/** Does something accept a connection on this Unix socket (without saying anything on it)? */
export function socketAnswers(path: string, ms = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ path });
    const t = setTimeout(() => {
      s.destroy();
      resolve(false);
    }, ms);
    s.once('connect', () => {
      clearTimeout(t);
      s.destroy();
      resolve(true);
    });
    s.once('error', () => {
      clearTimeout(t);
      resolve(false);
    });
  });
}

// ---- systemd ----------------------------------------------------------------------------------

const UNIT_DIRS = ['/etc/systemd/system', '/run/systemd/system', '/usr/local/lib/systemd/system', '/usr/lib/systemd/system', '/lib/systemd/system'];

export async function unitFacts(shippedPath: string): Promise<UnitFacts> {
  const read = (p: string) => readBoundedText(p, 'config').catch(() => undefined);
  const facts: UnitFacts = { dropIns: [], systemdRunning: existsSync('/run/systemd/system') };
  const shipped = await read(shippedPath);
  if (shipped !== undefined) facts.shipped = shipped;
  for (const dir of UNIT_DIRS) {
    const text = await read(join(dir, 'cvm-agent.service'));
    if (text !== undefined) {
      facts.installed = { path: join(dir, 'cvm-agent.service'), text };
      break;
    }
  }
  // Drop-ins from every directory, applied in file-name order (systemd.unit(5) "drop-in").
  const dropIns: Array<{ path: string; text: string; name: string }> = [];
  for (const dir of UNIT_DIRS) {
    const d = join(dir, 'cvm-agent.service.d');
    const names = await readdir(d).catch(() => [] as string[]);
    for (const name of names.filter((n) => n.endsWith('.conf'))) {
      if (dropIns.some((x) => x.name === name)) continue; // an earlier directory's file of the same name wins
      const text = await read(join(d, name));
      if (text !== undefined) dropIns.push({ path: join(d, name), text, name });
    }
  }
  dropIns.sort((x, y) => x.name.localeCompare(y.name));
  facts.dropIns = dropIns.map(({ path, text }) => ({ path, text }));
  return facts;
}

// ---- SEV-SNP ----------------------------------------------------------------------------------

export function certWindow(what: string, der: Uint8Array | string): ValidityWindow | undefined {
  try {
    const c = new X509Certificate(der);
    return { what, notBefore: new Date(c.validFrom), notAfter: new Date(c.validTo) };
  } catch {
    return undefined;
  }
}

export interface SnpFacts {
  test: TestReport;
  collateralChecks: Check[];
  verifierChecks: Check[];
  windows: ValidityWindow[];
}

/** The verifier's checks that say whether the endorsement key fits this chip and chains to the pinned roots. */
const KEY_CHECKS = new Set([
  'snp.cert.endorsement-key',
  'snp.product',
  'snp.chain.ask',
  'snp.chain.ark',
  'snp.cert.validity',
  'snp.tcb.vcek-match',
  'snp.chip-id',
]);

/** One report with zero REPORT_DATA from the guest device, and the certificates the host supplies with it. */
export async function snpTestReport(devicePath: string): Promise<{ test: TestReport; raw?: Buffer; certs: Buffer[] }> {
  try {
    const { report, certTable } = await new SnpDeviceCollector({ devicePath }).getExtReport(Buffer.alloc(64), 0);
    const certs =
      certTable.length === 0 || isAllZero(certTable)
        ? []
        : parseCertTable(certTable)
            .filter((e) => ['vcek', 'vlek', 'ask', 'asvk', 'ark'].includes(e.kind))
            .map((e) => Buffer.from(e.data));
    return { test: { ok: true, source: 'sev-guest', report: parseSnpReport(report), certificates: certs.length }, raw: report, certs };
  } catch (err) {
    return { test: { ok: false, source: 'sev-guest', code: code(err), message: msg(err) }, certs: [] };
  }
}

/** What the collateral gatherer finds for this report (cache only, never the network), and the chain checks. */
export async function snpCollateral(
  store: CollateralStore,
  kind: 'snp' | 'azure-snp-vtpm',
  cpuReport: Buffer,
  snpReport: Buffer,
  certs: Buffer[],
  at: Date,
): Promise<{ collateralChecks: Check[]; verifierChecks: Check[]; windows: ValidityWindow[] }> {
  const bundle: EvidenceBundle = {
    version: 1,
    agentId: 'doctor',
    nonce: Buffer.alloc(32),
    teePubKey: { kty: 'EC', crv: 'P-384', x: '', y: '' },
    simulated: false,
    cpu: { kind, source: kind === 'snp' ? 'sev-guest' : 'azure-vtpm', report: cpuReport, certificates: certs },
    gpus: [],
  };
  const g = await gatherCollateral(store, bundle, { at, online: false });
  const all = [...certs, ...g.cpuCollateral.certificates.map((c) => Buffer.from(c))];
  const v = verifySnpReport({ report: snpReport, certificates: all, crls: g.cpuCollateral.crls }, { at });
  const windows = all.map((c, i) => certWindow(i === 0 ? 'the VCEK/VLEK' : `AMD certificate ${i + 1}`, c)).filter((w): w is ValidityWindow => w !== undefined);
  return { collateralChecks: g.collateralChecks.cpu, verifierChecks: v.checks.filter((c) => KEY_CHECKS.has(c.name)), windows: windows.slice(0, 1) };
}

// ---- vTPM -------------------------------------------------------------------------------------

export async function vtpmFacts(spec: TransportSpec, where: string, refresh: boolean): Promise<{ facts: VtpmFacts; hclReport?: Buffer }> {
  let client: TpmClient;
  try {
    client = new TpmClient(await openTransport(spec));
  } catch (err) {
    const errno = (err as { details?: { errno?: string } }).details?.errno;
    return { facts: { where, open: { ok: false, message: msg(err), ...(errno ? { errno } : {}) } } };
  }
  const facts: VtpmFacts = { where, open: { ok: true } };
  let hclReport: Buffer | undefined;
  let akClaim: import('node:crypto').KeyObject | undefined;
  try {
    if (!(await client.nvExists(AZURE.HCL_REPORT_INDEX))) facts.hcl = { present: false };
    else {
      const raw = await client.nvRead(AZURE.HCL_REPORT_INDEX);
      try {
        const hcl = parseHclReport(raw);
        hclReport = raw;
        akClaim = hcl.runtimeClaims.keys.find((k) => k.kid === 'HCLAkPub')?.key;
        facts.hcl = { present: true, size: raw.length, akInClaims: akClaim !== undefined, userData: hcl.runtimeClaims.userData !== undefined };
      } catch (err) {
        facts.hcl = { present: true, problem: msg(err) };
      }
    }
    try {
      const ak = (await client.readPublic(AZURE.AK_HANDLE)).public;
      const key = publicKeyObject(ak);
      facts.ak = {
        present: true,
        type: ak.type === 'rsa' ? `RSA-${ak.keyBits}` : `ECC`,
        ...(akClaim ? { matchesClaims: key.equals(akClaim) } : {}),
      };
    } catch (err) {
      facts.ak = { present: false, problem: msg(err) };
    }
    facts.userDataIndex = (await client.nvExists(AZURE.REPORT_DATA_INDEX))
      ? { defined: true, size: (await client.nvReadPublic(AZURE.REPORT_DATA_INDEX)).dataSize }
      : { defined: false };
    if (refresh && facts.hcl?.present && facts.hcl.problem === undefined) {
      const ud = randomBytes(64);
      const t0 = Date.now();
      try {
        await writeUserData(client, ud);
        await waitForUserData(client, ud, 3000, 200);
        facts.refresh = { ok: true, ms: Date.now() - t0 };
      } catch (err) {
        facts.refresh = { ok: false, message: msg(err) };
      }
    }
  } catch (err) {
    facts.hcl ??= { present: true, problem: `TPM error: ${msg(err)}` };
  } finally {
    await client.transport.close?.().catch(() => undefined);
  }
  return hclReport ? { facts, hclReport } : { facts };
}

// ---- GPUs -------------------------------------------------------------------------------------

function rimState(e: StoredEntry | undefined, at: Date): Pick<CachedItem, 'state' | 'detail'> {
  if (!e) return { state: 'missing', detail: 'not in the collateral cache' };
  const f = freshness(e.meta, at);
  return { state: f.state, detail: `${e.meta.key.kind === 'rim' ? e.meta.key.id : e.meta.path} ${f.state} (${f.reason})` };
}

/** NVML facts and the cache lookups for RIMs and OCSP; never sets anything. */
export async function gpuFacts(config: Config, store: CollateralStore, at: Date, timeoutMs: number): Promise<{ facts: GpuFacts; windows: ValidityWindow[] }> {
  const facts: GpuFacts = {
    enabled: config.gpus.enabled as GpuFacts['enabled'],
    setReadyState: config.gpus.setReadyState,
    online: config.collateral.online,
    nvml: { available: false, reason: 'not asked' },
  };
  const windows: ValidityWindow[] = [];
  if (config.gpus.enabled === 'off' || config.tee === 'simulated') return { facts, windows };
  if (config.devices.nvmlLibrary) setNvmlLibrary(config.devices.nvmlLibrary);
  try {
    const info = await bounded(nvmlInfo(), timeoutMs, 'NVML');
    facts.nvml = info.available
      ? {
          available: true,
          library: info.library,
          driverVersion: info.driverVersion,
          deviceCount: info.deviceCount,
          ...(info.nvmlVersion ? { nvmlVersion: info.nvmlVersion } : {}),
        }
      : { available: false, reason: info.reason };
  } catch (err) {
    facts.nvml = { available: false, reason: `NVML not usable: ${msg(err)}` };
  }
  if (!facts.nvml.available) return { facts, windows };
  const driver = facts.nvml.driverVersion;
  let devices: Awaited<ReturnType<typeof nvmlDevices>> = [];
  try {
    devices = await bounded(nvmlDevices(), timeoutMs, 'NVML devices');
    facts.devices = devices.map((d) => ({
      index: d.index,
      name: d.name,
      architecture: d.architectureName,
      ...(d.vbiosVersion !== undefined ? { vbiosVersion: d.vbiosVersion } : {}),
      ...(d.ccProtectedMemory ? { protectedKib: d.ccProtectedMemory.protectedKib } : {}),
    }));
  } catch (err) {
    facts.devices = { error: msg(err) };
  }
  try {
    facts.cc = decodeCcState(await bounded(nvmlSystemCc(), timeoutMs, 'NVML CC state'));
  } catch (err) {
    facts.ccError = msg(err);
  }
  if (facts.cc && facts.cc.readyState === undefined) {
    facts.ready = await bounded(nvmlGetReadyState(), timeoutMs, 'NVML ready state').catch((err: unknown) => ({ error: msg(err) }));
  }
  if (devices.length === 0) return { facts, windows };

  // RIMs: the driver's by its id; a VBIOS RIM id needs fields of the attestation report, so it is matched by version.
  const listed = await store.list().catch(() => ({ entries: [] as StoredEntry[], problems: [] }));
  const rims = listed.entries.filter((e) => e.meta.key.kind === 'rim');
  const rimId = (e: StoredEntry) => (e.meta.key.kind === 'rim' ? e.meta.key.id : '');
  const items: CachedItem[] = [];
  const archs = new Set(devices.map((d) => d.architectureName));
  for (const arch of archs) {
    if (arch === 'hopper') {
      const id = `NV_GPU_DRIVER_GH100_${driver}`;
      items.push({
        what: `driver RIM ${id}`,
        ...rimState(
          rims.find((e) => rimId(e) === id),
          at,
        ),
      });
    } else if (arch === 'blackwell') {
      const e = rims.find((x) => rimId(x).startsWith('NV_GPU_CC_DRIVER_') && rimId(x).endsWith(`_${driver}`));
      items.push({ what: `driver RIM NV_GPU_CC_DRIVER_<chip>_${driver}`, ...rimState(e, at) });
    }
  }
  const vbiosVersions = new Set(devices.filter((d) => d.vbiosVersion).map((d) => d.vbiosVersion!));
  for (const v of vbiosVersions) {
    const suffix = `_${v.replace(/\./g, '').toUpperCase()}`;
    const e = rims.find((x) => rimId(x).startsWith('NV_GPU_VBIOS_') && rimId(x).endsWith(suffix));
    items.push({ what: `VBIOS RIM for ${v} (NV_GPU_VBIOS_<project>_<sku>_<chip>${suffix})`, ...rimState(e, at) });
  }
  facts.rims = items;

  // OCSP: the intermediates of each GPU's device chain (positions 1..n-2), as collateral/resolve.ts looks them up.
  facts.ocsp = [];
  for (const d of devices) {
    try {
      const chain = await bounded(nvmlCertificateChain(d.index), timeoutMs, 'NVML certificate chain');
      const certs = parsePemChain(chain.attestationChain.toString('latin1'));
      certs.forEach((c, i) => {
        const w = certWindow(`GPU ${d.index} certificate ${i + 1}`, c.der);
        if (w) windows.push(w);
      });
      const pairs = certs.length >= 3 ? certs.slice(1, -1).map((cert, i) => ({ cert, issuer: certs[i + 2]! })) : [];
      const entryItems: CachedItem[] = [];
      for (const { cert, issuer } of pairs) {
        const key = ocspKey(certIdFor(cert.der, issuer.der));
        const e = await store.get(key).catch(() => undefined);
        const f = e ? freshness(e.meta, at) : undefined;
        entryItems.push({
          what: `OCSP for "${cert.cn}"`,
          state: f ? f.state : 'missing',
          detail: f ? `${f.state} (${f.reason})` : 'not cached',
        });
      }
      facts.ocsp.push({ index: d.index, items: entryItems });
    } catch (err) {
      facts.ocsp.push({ index: d.index, items: [], problem: `device certificate chain unreadable: ${msg(err)}` });
    }
  }
  return { facts, windows };
}

/** The config's directories, for the facts above (the socket's parent). */
export const socketDir = (socket: string) => dirname(socket);
