/**
 * Platform checks (pure): which TEE the daemon would use, the kernel, the sev-guest module and device
 * node, configfs-tsm, the test report, and whether the VCEK/VLEK and CRL the verifier will need are at
 * hand. Facts in, findings out; doctor/gather-*.ts collects the facts.
 */
import type { Config } from '../config/schema.js';
import type { Check } from '../formats/checks.js';
import type { SnpReport } from '../formats/snp-abi/index.js';
import { fail, pass, skipped, warn, type Finding } from './finding.js';

const A = 'platform' as const;

/** The interface the daemon will use: what openSources (daemon/sources.ts) picks for `tee`. */
export type TeeKind = 'snp' | 'tsm' | 'azure' | 'simulated' | 'none';

/** A path's owner, group and mode, and whether this process may read and write it. */
export interface NodeFacts {
  path: string;
  exists: boolean;
  uid?: number;
  gid?: number;
  /** Permission bits (mode & 0o7777). */
  mode?: number;
  /** The group's name from /etc/group, when known. */
  groupName?: string;
  ownerName?: string;
  /** R/W access for this process (access(2)); undefined when not tried. */
  access?: { ok: boolean; error?: string };
}

export interface TeeFacts {
  configured: Config['tee'];
  sevGuest: NodeFacts;
  tsmRoot: { path: string; exists: boolean };
  tpm: { path: string; exists: boolean };
  /** The vTPM holds the Azure HCL report index (NV 0x01400001): undefined when the TPM was not opened. */
  hclIndex?: boolean;
}

/** The kind openSources would choose (tee: auto probes sev-guest, then configfs-tsm, then the TPM). */
export function effectiveTee(f: TeeFacts): TeeKind {
  switch (f.configured) {
    case 'simulated':
      return 'simulated';
    case 'snp':
      return 'snp';
    case 'tsm':
      return 'tsm';
    case 'azure':
      return 'azure';
    default:
      if (f.sevGuest.exists) return 'snp';
      if (f.tsmRoot.exists) return 'tsm';
      if (f.tpm.exists) return 'azure';
      return 'none';
  }
}

const NO_TEE_FIX =
  'run the agent in an AMD SEV-SNP guest (check "dmesg | grep -i sev-snp"; load the driver with "modprobe sev-guest") or an Azure confidential VM; to try the agent without one, set tee: simulated';

export function teeFinding(f: TeeFacts): Finding {
  const kind = effectiveTee(f);
  const how = f.configured === 'auto' ? 'detected (tee: auto)' : `configured (tee: ${f.configured})`;
  switch (kind) {
    case 'simulated':
      return pass('platform.tee', A, 'tee: simulated: the built-in SIMULATED TEE; no hardware is checked and every result says SIMULATED');
    case 'none':
      return fail(
        'platform.tee',
        A,
        `no confidential-computing interface: ${f.sevGuest.path}, ${f.tsmRoot.path} and ${f.tpm.path} are all missing`,
        NO_TEE_FIX,
      );
    case 'snp':
      return f.sevGuest.exists
        ? pass('platform.tee', A, `SEV-SNP guest (bare, ${f.sevGuest.path}), ${how}`)
        : fail('platform.tee', A, `tee: snp but ${f.sevGuest.path} does not exist`, `load the guest driver ("modprobe sev-guest"), or set tee: auto`);
    case 'tsm':
      return f.tsmRoot.exists
        ? pass('platform.tee', A, `SEV-SNP guest through configfs-tsm (${f.tsmRoot.path}), ${how}`)
        : fail(
            'platform.tee',
            A,
            `tee: tsm but ${f.tsmRoot.path} does not exist`,
            'mount configfs ("mount -t configfs none /sys/kernel/config"; kernel >= 6.7), or set tee: auto',
          );
    case 'azure':
      if (!f.tpm.exists)
        return fail(
          'platform.tee',
          A,
          `tee: azure but ${f.tpm.path} does not exist`,
          'set devices.tpm to the vTPM resource manager (/dev/tpmrm0), or set tee: auto',
        );
      if (f.hclIndex === false)
        return fail(
          'platform.tee',
          A,
          `the daemon would use the TPM at ${f.tpm.path}, but it holds no Azure HCL report (NV index 0x01400001): a plain TPM, not an Azure confidential VM`,
          'deploy an Azure confidential VM (securityType: ConfidentialVM, vTPM on), or on SEV-SNP load the guest driver ("modprobe sev-guest") and set tee: snp',
        );
      return pass('platform.tee', A, `Azure confidential VM (paravisor; HCL report in the vTPM at ${f.tpm.path}), ${how}`);
  }
}

/** "6.1.0-18-cloud-amd64" -> [6, 1]. */
export function kernelVersion(release: string): [number, number] | undefined {
  const m = /^(\d+)\.(\d+)/.exec(release);
  return m ? [Number(m[1]), Number(m[2])] : undefined;
}

const atLeast = (v: [number, number], major: number, minor: number) => v[0] > major || (v[0] === major && v[1] >= minor);

/** sev-guest with SNP_GET_EXT_REPORT: Linux 5.19; configfs-tsm reports: 6.7 (Documentation/ABI/testing/configfs-tsm). */
export function kernelFinding(release: string, tee: TeeKind): Finding {
  const v = kernelVersion(release);
  if (!v) return warn('platform.kernel', A, `kernel release "${release}" has no version number`, 'check "uname -r"');
  if (tee === 'simulated') return pass('platform.kernel', A, `Linux ${release}`);
  if (tee === 'none' && !atLeast(v, 5, 19))
    return warn(
      'platform.kernel',
      A,
      `Linux ${release} is older than 5.19, the first with the SEV-SNP guest driver (sev-guest)`,
      'boot a kernel >= 5.19 built with CONFIG_SEV_GUEST (a current distribution cloud kernel)',
    );
  if (tee === 'tsm' && !atLeast(v, 6, 7))
    return warn(
      'platform.kernel',
      A,
      `Linux ${release} is older than 6.7, the first with configfs-tsm reports`,
      'boot a kernel >= 6.7, or use /dev/sev-guest (tee: snp)',
    );
  return pass('platform.kernel', A, `Linux ${release}`);
}

export interface ModuleFacts {
  /** /sys/module/sev_guest exists (loaded as a module, or built in with parameters). */
  loaded: boolean;
}

export function sevGuestModuleFinding(tee: TeeKind, mod: ModuleFacts, dev: NodeFacts): Finding {
  const id = 'platform.sev-guest.module';
  if (tee !== 'snp' && tee !== 'none')
    return skipped(id, A, `not used: the agent uses ${tee === 'simulated' ? 'the simulated TEE' : tee === 'tsm' ? 'configfs-tsm' : 'the Azure vTPM'}`);
  if (dev.exists) return pass(id, A, mod.loaded ? 'sev_guest is loaded' : 'sev_guest is not listed in /sys/module (built into the kernel); its device exists');
  if (mod.loaded)
    return fail(
      id,
      A,
      `sev_guest is loaded but ${dev.path} does not exist: udev did not create the node`,
      'udevadm trigger --action=add --subsystem-match=misc --sysname-match=sev-guest (and check devices.sevGuest)',
    );
  return fail(
    id,
    A,
    'the sev_guest module is not loaded',
    'modprobe sev-guest, and make it permanent: echo sev-guest > /etc/modules-load.d/sev-guest.conf (an SEV-SNP guest is needed: "dmesg | grep -i sev")',
  );
}

/** What systemd/60-cvm-agent.rules and cvm-agent.service expect of /dev/sev-guest. */
export const SEV_GUEST_EXPECTED = { group: 'cvm-agent-tee', mode: 0o660 } as const;

const octal = (m: number | undefined) => (m === undefined ? '?' : `0${(m & 0o777).toString(8).padStart(3, '0')}`);

export function sevGuestDeviceFinding(tee: TeeKind, dev: NodeFacts): Finding {
  const id = 'platform.sev-guest.device';
  if (tee !== 'snp') return skipped(id, A, tee === 'none' ? `${dev.path} does not exist` : 'not used by this TEE');
  if (!dev.exists) return fail(id, A, `${dev.path} does not exist`, 'modprobe sev-guest (see platform.sev-guest.module)');
  const owner = `${dev.ownerName ?? dev.uid}:${dev.groupName ?? dev.gid} ${octal(dev.mode)}`;
  if (dev.access && !dev.access.ok)
    return fail(
      id,
      A,
      `${dev.path} is ${owner} and this user cannot open it (${dev.access.error ?? 'access denied'})`,
      `run the doctor as root or as the service user; the daemon gets it through group ${SEV_GUEST_EXPECTED.group} (SupplementaryGroups= in cvm-agent.service): install systemd/60-cvm-agent.rules and run "udevadm trigger --action=change --subsystem-match=misc --sysname-match=sev-guest"`,
    );
  if (dev.groupName !== SEV_GUEST_EXPECTED.group || ((dev.mode ?? 0) & 0o777) !== SEV_GUEST_EXPECTED.mode)
    return warn(
      id,
      A,
      `${dev.path} is ${owner}; the unit expects group ${SEV_GUEST_EXPECTED.group} mode 0660 (systemd/60-cvm-agent.rules), or the service (User=cvm-agent) cannot open it`,
      'install the udev rule (sudo systemd/install.sh, or the .deb) and apply it: sudo udevadm trigger --action=change --subsystem-match=misc --sysname-match=sev-guest',
    );
  return pass(id, A, `${dev.path} is ${owner}, as the unit expects`);
}

export function tsmFinding(tee: TeeKind, tsm: { path: string; exists: boolean }): Finding {
  const id = 'platform.configfs-tsm';
  if (tsm.exists)
    return pass(id, A, `${tsm.path} is available${tee === 'tsm' ? ' and used' : ` (the agent uses ${tee === 'snp' ? '/dev/sev-guest' : tee} first)`}`);
  if (tee === 'tsm')
    return fail(
      id,
      A,
      `${tsm.path} does not exist`,
      'mount configfs ("mount -t configfs none /sys/kernel/config"; kernel >= 6.7 with CONFIG_TSM_REPORTS), or set tee: snp',
    );
  return skipped(id, A, `${tsm.path} is not available; not needed${tee === 'snp' ? ': the agent uses /dev/sev-guest' : ''}`);
}

/** The outcome of asking for one report with zero REPORT_DATA. */
export type TestReport =
  | { ok: true; source: 'sev-guest' | 'configfs-tsm' | 'azure-hcl'; report: SnpReport; certificates: number }
  | { ok: false; source: 'sev-guest' | 'configfs-tsm' | 'azure-hcl'; code: string; message: string }
  | { ok: 'skipped'; because: string };

function reportErrorFix(code: string): string {
  switch (code) {
    case 'ERR_SNP_DEVICE_ABSENT':
      return 'modprobe sev-guest (see platform.sev-guest.module)';
    case 'ERR_SNP_DEVICE_ACCESS':
      return 'run the doctor as root or the service user; install systemd/60-cvm-agent.rules (see platform.sev-guest.device)';
    case 'ERR_SNP_VMPCK_DISABLED':
      return 'reboot the VM: the kernel wiped the guest key (VMPCK) after a failed request, and only a reboot restores it';
    case 'ERR_SNP_FIRMWARE':
    case 'ERR_SNP_REPORT_STATUS':
      return 'check "dmesg | grep -i sev" and the host SEV firmware; if later requests say "VMPCK disabled", reboot the VM';
    case 'ERR_NATIVE_UNAVAILABLE':
      return 'reinstall the package (its prebuilds/ addon), or build it: npm run build:native';
    default:
      return 'check "dmesg | grep -i sev" and docs/troubleshooting.md (platform.snp.report)';
  }
}

export function testReportFinding(t: TestReport): Finding {
  const id = 'platform.snp.report';
  if (t.ok === 'skipped') return skipped(id, A, t.because);
  if (t.ok === false) return fail(id, A, `a test report from ${t.source} failed: ${t.message} [${t.code}]`, reportErrorFix(t.code));
  const r = t.report;
  const product = r.product ?? 'unknown';
  const signer = r.signerInfo.signingKeyName.toUpperCase();
  const detail = `${t.source}: report version ${r.version}, VMPL ${r.vmpl}, product ${product}, signed by the ${signer}${t.source === 'azure-hcl' ? ' (embedded in the HCL report)' : `, ${t.certificates} certificate(s) from the host`}`;
  if (r.version < 3)
    return warn(
      id,
      A,
      `${detail}; a version 2 report names no product, so the VCEK's product line is guessed from the cache`,
      'update the host SEV-SNP firmware (1.55 or later writes version 3+ reports with the CPUID family/model)',
    );
  return pass(id, A, detail);
}

/**
 * The endorsement key and its chain: what the collateral gatherer found (collateral.vcek) and the
 * verifier's product, chain, validity, TCB and chip-id checks with it (the signature is left to
 * "cvm-agent attest": the doctor's report carries no nonce).
 */
export function vcekFinding(t: TestReport, collateralChecks: readonly Check[], verifierChecks: readonly Check[], online: boolean): Finding {
  const id = 'platform.snp.vcek';
  if (t.ok !== true) return skipped(id, A, 'no test report to look the endorsement key up for (see platform.snp.report)');
  // "not checked: ..." follows from an earlier check and adds nothing an operator can act on.
  const picked = [...collateralChecks.filter((c) => c.name === 'collateral.vcek'), ...verifierChecks.filter((c) => !c.detail.startsWith('not checked'))];
  const bad = picked.filter((c) => !c.ok);
  const warned = picked.filter((c) => c.ok && c.warning);
  const fix = online
    ? 'the agent fetches it (collateral.online: true) at the first cycle; to check now: cvm-agent collateral list'
    : `import it: "cvm-agent collateral import FILE" (the VCEK from AMD KDS, the URL in the detail, or Azure IMDS), or set collateral.online: true`;
  if (bad.length > 0) {
    const missing = bad.some((c) => c.name === 'collateral.vcek' || c.name === 'snp.cert.endorsement-key');
    return fail(
      id,
      A,
      bad.map((c) => `${c.name}: ${c.detail}`).join('; '),
      missing ? fix : 'the cached endorsement key does not match this chip or product: remove it and import the right one (cvm-agent collateral list)',
    );
  }
  if (warned.length > 0) return warn(id, A, warned.map((c) => `${c.name}: ${c.detail}`).join('; '), fix);
  const leaf = collateralChecks.find((c) => c.name === 'collateral.vcek');
  return pass(
    id,
    A,
    `${leaf ? leaf.detail : 'the host supplied the endorsement key'}; chain to the pinned AMD roots verified for ${t.report.product ?? 'the product'}`,
  );
}

export function crlFinding(t: TestReport, collateralChecks: readonly Check[]): Finding {
  const id = 'platform.snp.crl';
  if (t.ok !== true) return skipped(id, A, 'no test report (see platform.snp.report)');
  const c = collateralChecks.find((x) => x.name === 'collateral.crl');
  if (!c) return skipped(id, A, 'the report is not signed by a VCEK or VLEK');
  const fix = 'import the CRL: "cvm-agent collateral import FILE" (AMD KDS /vcek/v1/<product>/crl), or set collateral.online: true';
  if (!c.ok) return fail(id, A, c.detail, fix);
  if (c.warning) return warn(id, A, c.detail, fix);
  // An offline miss passes in the gatherer (snp.revocation warns instead); the doctor says it plainly.
  if (/not in the collateral cache/.test(c.detail)) return warn(id, A, `no CRL cached: revocation is not checked and every cycle warns (snp.revocation)`, fix);
  return pass(id, A, c.detail);
}
