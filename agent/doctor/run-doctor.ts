/**
 * `cvm-agent doctor`: gathers the facts (./gather.ts, ./probe-controller.ts) and runs every check
 * (./platform.ts, ./vtpm.ts, ./gpu.ts, ./agent-checks.ts, ./controller.ts) in the order the agent
 * depends on them. Every check runs; none stops the others. Read-only (see ./gather.ts).
 */
import { X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { release, hostname } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../errors.js';
import { DEFAULT_CONFIG_PATH } from '../config/load.js';
import { parseConfig, type Config } from '../config/schema.js';
import { readBoundedText } from '../util/bounded-read.js';
import { VERSION } from '../util/agent-version.js';
import { parseHclReport } from '../formats/azure/hcl.js';
import { parseSnpReport } from '../formats/snp-abi/index.js';
import { parseTransportSpec, type TransportSpec } from '../evidence/tpm/transport.js';
import { packageRoot } from '../native/addon-loader.js';
import { CollateralStore } from '../collateral/index.js';
import { agentIdFrom, applySystemdDirectories, validateConfig } from '../daemon/preflight.js';
import { tokenFileFrom } from '../daemon/link.js';
import type { Finding } from './finding.js';
import {
  crlFinding,
  effectiveTee,
  kernelFinding,
  sevGuestDeviceFinding,
  sevGuestModuleFinding,
  teeFinding,
  testReportFinding,
  tsmFinding,
  vcekFinding,
  type TeeFacts,
  type TestReport,
} from './platform.js';
import { vtpmFindings, type VtpmFacts } from './vtpm.js';
import { gpuFindings } from './gpu.js';
import {
  clockFinding,
  configFinding,
  serviceDirectives,
  socketFinding,
  stateDirFinding,
  unitFinding,
  type ConfigFacts,
  type ValidityWindow,
} from './agent-checks.js';
import { controllerFindings, type ControllerProbe } from './controller-checks.js';
import { probeController } from './probe-controller.js';
import {
  bounded,
  certWindow,
  dirFacts,
  gpuFacts,
  nodeFacts,
  readAccounts,
  serviceUser,
  snpCollateral,
  snpTestReport,
  socketAnswers,
  unitFacts,
  vtpmFacts,
} from './gather.js';

export interface DoctorOptions {
  /** --config FILE; undefined: the default path (a missing default file means "defaults"). */
  configPath?: string;
  env: NodeJS.ProcessEnv;
  /** --swtpm HOST:PORT | unix:PATH: a swtpm socket instead of devices.tpm. */
  swtpm?: string;
  /** --vtpm-refresh: write user data to the vTPM and wait for the HCL report to pick it up. */
  vtpmRefresh?: boolean;
  /** Per step (device, NVML, network); default 10 s. */
  timeoutMs?: number;
  now?: () => Date;
}

export interface DoctorResult {
  configPath: string;
  findings: Finding[];
}

/** The config as `run` would load it; unreadable is a usage error (exit 2), invalid is a finding. */
async function loadConfig(path: string | undefined, env: NodeJS.ProcessEnv): Promise<{ config: Config; facts: ConfigFacts }> {
  const file = path ?? DEFAULT_CONFIG_PATH;
  let text = '';
  let found = true;
  try {
    text = await readBoundedText(file, 'config');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && path === undefined) found = false;
    else throw new ConfigError(`${file}: cannot read: ${(err as Error).message}`, { cause: err });
  }
  const problems: string[] = [];
  let config: Config;
  let usedDefaults = false;
  try {
    config = parseConfig(text, file);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    problems.push(...problemLines(err.message));
    config = parseConfig('');
    usedDefaults = true;
  }
  config = applySystemdDirectories(config, env);
  if (!usedDefaults) {
    try {
      await validateConfig(config, env, file);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      problems.push(...problemLines(err.message));
    }
  }
  return { config, facts: { path: file, found, problems, usedDefaults } };
}

/** "<source>: N problems:\n  - a\n  - b" -> [a, b] (config/validate.ts problemsError). */
function problemLines(message: string): string[] {
  const lines = message
    .split('\n')
    .filter((l) => l.startsWith('  - '))
    .map((l) => l.slice(4));
  return lines.length > 0 ? lines : [message];
}

const msg = (err: unknown) => (err instanceof Error ? err.message : String(err));

export async function runDoctor(opts: DoctorOptions): Promise<DoctorResult> {
  const now = (opts.now ?? (() => new Date()))();
  const timeoutMs = opts.timeoutMs ?? 10_000;
  let swtpm: TransportSpec | undefined;
  if (opts.swtpm !== undefined) swtpm = parseTransportSpec(opts.swtpm, 'swtpm');
  const { config, facts: configFacts } = await loadConfig(opts.configPath, opts.env);
  const accounts = await readAccounts();
  const store = new CollateralStore(config.collateral.dir);
  const windows: ValidityWindow[] = [];

  // ---- platform and vTPM (the TEE choice needs to know whether the TPM is an Azure vTPM)
  const dev = config.devices;
  const teeFacts: TeeFacts = {
    configured: config.tee,
    sevGuest: await nodeFacts(dev.sevGuest, accounts, true),
    tsmRoot: { path: dev.tsmRoot, exists: existsSync(dev.tsmRoot) },
    tpm: swtpm ? { path: opts.swtpm!, exists: true } : { path: dev.tpm, exists: existsSync(dev.tpm) },
  };
  let tee = effectiveTee(teeFacts);
  let vtpm: VtpmFacts | undefined;
  let hclReport: Buffer | undefined;
  if (tee === 'azure') {
    const spec: TransportSpec = swtpm ?? { kind: 'device', path: dev.tpm };
    try {
      const r = await bounded(vtpmFacts(spec, swtpm ? opts.swtpm! : dev.tpm, opts.vtpmRefresh === true), timeoutMs + 5000, 'the TPM');
      vtpm = r.facts;
      hclReport = r.hclReport;
    } catch (err) {
      vtpm = { where: swtpm ? opts.swtpm! : dev.tpm, open: { ok: false, message: msg(err) } };
    }
    if (vtpm.open.ok) teeFacts.hclIndex = vtpm.hcl?.present === true;
    tee = effectiveTee(teeFacts);
  }

  let test: TestReport;
  let snp = { collateralChecks: [] as import('../formats/checks.js').Check[], verifierChecks: [] as import('../formats/checks.js').Check[] };
  if (tee === 'snp' && teeFacts.sevGuest.exists) {
    const r = await bounded(snpTestReport(dev.sevGuest), timeoutMs, 'the SEV-SNP guest device').catch(
      (err): Awaited<ReturnType<typeof snpTestReport>> => ({ test: { ok: false, source: 'sev-guest', code: 'ERR_TIMEOUT', message: msg(err) }, certs: [] }),
    );
    test = r.test;
    if (r.raw) {
      const c = await snpCollateral(store, 'snp', r.raw, r.raw, r.certs, now);
      snp = c;
      windows.push(...c.windows);
    }
  } else if (tee === 'azure' && hclReport) {
    try {
      const embedded = parseHclReport(hclReport).snpReport;
      test = { ok: true, source: 'azure-hcl', report: parseSnpReport(embedded), certificates: 0 };
      const c = await snpCollateral(store, 'azure-snp-vtpm', hclReport, embedded, [], now);
      snp = c;
      windows.push(...c.windows);
    } catch (err) {
      test = { ok: false, source: 'azure-hcl', code: 'ERR_PARSE', message: msg(err) };
    }
  } else if (tee === 'tsm') {
    test = {
      ok: 'skipped',
      because: 'the doctor does not request configfs-tsm reports (each creates a configfs entry); try: cvm-agent snp report --source tsm',
    };
  } else {
    test = {
      ok: 'skipped',
      because: tee === 'simulated' ? 'tee: simulated' : tee === 'azure' ? 'no HCL report (see vtpm.hcl-report)' : 'no SEV-SNP interface (see platform.tee)',
    };
  }

  const findings: Finding[] = [
    teeFinding(teeFacts),
    kernelFinding(release(), tee),
    sevGuestModuleFinding(tee, { loaded: existsSync('/sys/module/sev_guest') }, teeFacts.sevGuest),
    sevGuestDeviceFinding(tee, teeFacts.sevGuest),
    tsmFinding(tee, teeFacts.tsmRoot),
    testReportFinding(test),
    vcekFinding(test, snp.collateralChecks, snp.verifierChecks, config.collateral.online),
    crlFinding(test, snp.collateralChecks),
    ...vtpmFindings(tee, vtpm),
  ];

  // ---- GPUs
  const gpu = await gpuFacts(config, store, now, timeoutMs);
  windows.push(...gpu.windows);
  findings.push(...gpuFindings(gpu.facts, tee === 'simulated'));

  // ---- agent
  const units = await unitFacts(join(packageRoot(), 'systemd', 'cvm-agent.service'));
  const unitDirectives = units.installed ? serviceDirectives([units.installed.text, ...units.dropIns.map((d) => d.text)]) : undefined;
  const user = serviceUser(
    accounts,
    unitDirectives?.get('User')?.[0],
    (unitDirectives?.get('SupplementaryGroups') ?? ['tss cvm-agent-tee']).join(' ').split(/\s+/),
  );
  const sock = config.api.socket;
  const sockDir = await dirFacts(join(sock, '..'), accounts);
  const sockNode = await dirFacts(sock, accounts);
  const answers = sockNode.exists ? await socketAnswers(sock) : false;
  const activated = Number(opts.env.LISTEN_FDS ?? '0') > 0;
  findings.push(
    configFinding(configFacts),
    stateDirFinding(await dirFacts(config.state.dir, accounts), user),
    socketFinding({ path: sock, dir: sockDir, ...(sockNode.exists ? { node: sockNode, answers } : {}), activated }),
    unitFinding(units),
  );

  // ---- controller (its CA goes into the clock check too)
  let probe: ControllerProbe | undefined;
  const c = config.controller;
  if (c.url) {
    const read = (p: string | undefined, kind: 'certificate' | 'privateKey' | 'token') =>
      p ? readBoundedText(p, kind).catch(() => undefined) : Promise.resolve(undefined);
    const [ca, cert, key] = await Promise.all([read(c.caFile, 'certificate'), read(c.certFile, 'certificate'), read(c.keyFile, 'privateKey')]);
    for (const pem of ca?.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []) {
      const w = certWindow(`controller CA "${safeSubject(pem)}"`, pem);
      if (w) windows.push(w);
    }
    const tokenFile = tokenFileFrom(config, opts.env);
    const token = tokenFile ? (await read(tokenFile, 'token'))?.trim() : undefined;
    let agentId: string;
    try {
      agentId = agentIdFrom(config);
    } catch {
      agentId = hostname();
    }
    probe = await bounded(
      probeController({
        url: c.url,
        insecure: c.insecure,
        agentId,
        version: VERSION,
        daemonRunning: answers,
        timeoutMs: Math.min(timeoutMs, 5000),
        ...(c.caFile ? { caFile: c.caFile } : {}),
        ...(ca ? { ca } : {}),
        ...(cert ? { cert } : {}),
        ...(key ? { key } : {}),
        ...(tokenFile ? { tokenFile } : {}),
        ...(token ? { token } : {}),
      }),
      timeoutMs * 4,
      'the controller probe',
    ).catch((err): ControllerProbe => ({ url: c.url!, insecure: c.insecure, clientCert: false, dns: { ok: false, detail: msg(err) } }));
  }
  findings.push(clockFinding(now, windows), ...controllerFindings(probe));
  return { configPath: configFacts.path, findings };
}

function safeSubject(pem: string): string {
  try {
    return new X509Certificate(pem).subject.replace(/\n/g, ', ').slice(0, 80);
  } catch {
    return '?';
  }
}
