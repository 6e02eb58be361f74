/**
 * Azure vTPM checks (pure): the TPM resource manager, the HCL report NV index, the AK, and the
 * user-data index the agent writes its binding to. Facts in, findings out (doctor/gather-vtpm.ts).
 */
import { fail, pass, skipped, type Finding } from './finding.js';
import type { TeeKind } from './platform.js';

const A = 'vtpm' as const;

export interface VtpmFacts {
  /** Where the TPM was opened ("/dev/tpmrm0" or "unix:/path" for swtpm). */
  where: string;
  open: { ok: true } | { ok: false; message: string; errno?: string };
  /** NV 0x01400001: absent, present but unparseable, or parsed. */
  hcl?: { present: false } | { present: true; problem: string } | { present: true; problem?: undefined; size: number; akInClaims: boolean; userData: boolean };
  /** The AK at 0x81000003: absent, or present with whether it equals HCLAkPub of the runtime claims (undefined: not comparable). */
  ak?: { present: false; problem?: string } | { present: true; type: string; matchesClaims?: boolean };
  /** NV 0x01400002 (user data): its size when defined. */
  userDataIndex?: { defined: false } | { defined: true; size: number };
  /** --vtpm-refresh: the live refresh, when asked for. */
  refresh?: { ok: true; ms: number } | { ok: false; message: string };
}

export function vtpmFindings(tee: TeeKind, f: VtpmFacts | undefined): Finding[] {
  const ids = ['vtpm.device', 'vtpm.hcl-report', 'vtpm.ak', 'vtpm.user-data'];
  if (tee !== 'azure' || !f) {
    const because = tee === 'azure' ? 'the TPM was not checked' : `not an Azure vTPM guest (the agent uses ${tee === 'none' ? 'no TEE' : tee})`;
    return ids.map((id) => skipped(id, A, because));
  }
  const out: Finding[] = [];
  if (!f.open.ok) {
    const fix =
      f.open.errno === 'EACCES' || f.open.errno === 'EPERM'
        ? 'run the doctor as root or as the service user (group tss: SupplementaryGroups=tss in cvm-agent.service); /dev/tpmrm0 should be root:tss 0660 (systemd/60-cvm-agent.rules)'
        : f.open.errno === 'ENOENT'
          ? 'this VM has no vTPM resource manager: enable the vTPM (Azure: securityType ConfidentialVM) and load tpm_crb/tpm_tis, or set devices.tpm'
          : 'check the TPM device (devices.tpm) and "dmesg | grep -i tpm"';
    out.push(fail('vtpm.device', A, `cannot open ${f.where}: ${f.open.message}`, fix));
    for (const id of ids.slice(1)) out.push(skipped(id, A, `the TPM cannot be opened (see vtpm.device)`));
    return out;
  }
  out.push(pass('vtpm.device', A, `${f.where} opened`));
  const hcl = f.hcl;
  if (!hcl || !hcl.present)
    out.push(
      fail(
        'vtpm.hcl-report',
        A,
        'NV index 0x01400001 (the HCL report) is not defined: the paravisor did not provision this vTPM, or this is not an Azure confidential VM',
        'deploy an Azure confidential VM (securityType: ConfidentialVM, vTPM on); on a bare SEV-SNP guest set tee: snp',
      ),
    );
  else if (hcl.problem !== undefined)
    out.push(
      fail(
        'vtpm.hcl-report',
        A,
        `NV index 0x01400001 does not hold a usable HCL report: ${hcl.problem}`,
        'check the VM image and the paravisor (an Azure CVM writes "HCLA" reports); report it to the platform',
      ),
    );
  else
    out.push(
      pass(
        'vtpm.hcl-report',
        A,
        `HCL report (${hcl.size} bytes) parses; runtime claims ${hcl.akInClaims ? 'carry HCLAkPub' : 'lack HCLAkPub'}${hcl.userData ? ' and user-data' : ''}`,
      ),
    );
  const ak = f.ak;
  if (!ak || !ak.present)
    out.push(
      fail(
        'vtpm.ak',
        A,
        `no attestation key at persistent handle 0x81000003${ak?.problem ? ` (${ak.problem})` : ''}`,
        'the paravisor provisions the AK at boot: restart the VM; if it persists, the image is not an Azure CVM image',
      ),
    );
  else if (ak.matchesClaims === false)
    out.push(
      fail(
        'vtpm.ak',
        A,
        `the AK at 0x81000003 (${ak.type}) is not the HCLAkPub of the HCL report: quotes will not verify`,
        'restart the VM so the paravisor re-provisions the AK and the report',
      ),
    );
  else out.push(pass('vtpm.ak', A, `AK at 0x81000003 (${ak.type})${ak.matchesClaims ? ' equals HCLAkPub in the HCL report' : ''}`));
  out.push(userDataFinding(f));
  return out;
}

function userDataFinding(f: VtpmFacts): Finding {
  const id = 'vtpm.user-data';
  const idx = f.userDataIndex;
  if (idx?.defined && idx.size !== 64)
    return fail(
      id,
      A,
      `NV index 0x01400002 is ${idx.size} bytes; the agent writes 64 bytes of user data there`,
      'remove the index so the agent defines it again: tpm2_nvundefine 0x01400002 (while the agent is stopped)',
    );
  const where = idx?.defined ? 'NV index 0x01400002 is defined (64 bytes)' : 'NV index 0x01400002 is not defined yet (the agent defines it on the first cycle)';
  if (!f.refresh)
    return pass(
      id,
      A,
      `${where}; the live refresh was not tried (it writes the index)`,
      'cvm-agent doctor --vtpm-refresh (while the daemon is not attesting), or cvm-agent azure evidence --nonce-text test',
    );
  if (f.refresh.ok) return pass(id, A, `${where}; the paravisor refreshed the HCL report with new user data in ${f.refresh.ms} ms`);
  return fail(
    id,
    A,
    `${where}; writing user data did not refresh the HCL report: ${f.refresh.message}`,
    'the paravisor does not regenerate the report: update the VM (Azure CVM guest images refresh on NV write); a plain TPM or swtpm never does',
  );
}
