/**
 * Appraisal of a parsed report against an SnpPolicy (agent/appraise/snp-policy.ts): one named
 * check per policy key, in the spirit of go-sev-guest validate.SnpAttestation (go-sev-guest validate/validate.go).
 * Pure: report + policy + established product in, checks out. Never imports the verifiers: the
 * report comes from agent/verify/snp/snp-verifier.ts verifySnpReport via agent/attest/verify-and-appraise.ts.
 */
import { fail, pass, type Check } from '../formats/checks.js';
import { bytesToHex } from '../util/bytes.js';
import type { SnpMinTcb, SnpPolicy } from './snp-policy.js';
import { formatTcb, tcbFor, type SnpProduct, type SnpReport } from '../formats/snp-abi/index.js';

const COMPONENTS = ['bootloader', 'tee', 'snp', 'microcode', 'fmc'] as const;

const fw = (v: { major: number; minor: number; build?: number }) => `${v.major}.${v.minor}${v.build === undefined ? '' : `.${v.build}`}`;

function allowList(name: string, field: string, actual: Uint8Array, allowed: readonly string[], key: string): Check {
  const hex = bytesToHex(actual);
  if (allowed.length === 0) return pass(name, `${field} ${hex} (no allow-list configured: ${key} empty)`);
  return allowed.includes(hex)
    ? pass(name, `${field} ${hex} is in the allow-list (${allowed.length} entr${allowed.length === 1 ? 'y' : 'ies'})`)
    : fail(
        name,
        `${field} ${hex} is not in the ${key} allow-list (${allowed.length} entr${allowed.length === 1 ? 'y' : 'ies'}); add it to the policy if this image is trusted`,
      );
}

export function snpPolicyChecks(r: SnpReport, policy: SnpPolicy, product: SnpProduct | undefined): Check[] {
  const checks: Check[] = [];
  const p = r.policy;

  checks.push(
    p.debug && !policy.allowDebug
      ? fail(
          'snp.policy.debug',
          'guest POLICY.DEBUG=1: the host can read and modify guest memory; rejected (set allowDebug: true or --allow-debug only for development)',
        )
      : pass('snp.policy.debug', p.debug ? 'POLICY.DEBUG=1 allowed by policy (development only)' : 'POLICY.DEBUG=0'),
  );
  checks.push(
    p.migrateMa && !policy.allowMigrationAgent
      ? fail('snp.policy.migration-agent', 'guest POLICY.MIGRATE_MA=1: a migration agent may be associated; rejected (allowMigrationAgent: true to accept)')
      : pass('snp.policy.migration-agent', p.migrateMa ? 'POLICY.MIGRATE_MA=1 allowed by policy' : 'POLICY.MIGRATE_MA=0'),
  );
  {
    const smtOn = p.smt || r.platformInfo.smtEnabled;
    const what = `POLICY.SMT=${p.smt ? 1 : 0}, PLATFORM_INFO.SMT_EN=${r.platformInfo.smtEnabled ? 1 : 0}`;
    checks.push(smtOn && !policy.allowSmt ? fail('snp.policy.smt', `${what}: SMT is not allowed by policy (allowSmt: false)`) : pass('snp.policy.smt', what));
  }
  checks.push(
    policy.vmpl.includes(r.vmpl)
      ? pass('snp.policy.vmpl', `VMPL ${r.vmpl} is allowed (${policy.vmpl.join(', ')})`)
      : fail(
          'snp.policy.vmpl',
          `report requested at VMPL ${r.vmpl}, policy allows ${policy.vmpl.join(', ')}; set vmpl in the policy if this is expected (e.g. under an SVSM/paravisor)`,
        ),
  );
  checks.push(
    p.reservedBit17
      ? pass('snp.policy.reserved-bit17', 'POLICY bit 17 (reserved, must be 1) is set')
      : fail('snp.policy.reserved-bit17', 'POLICY bit 17 is 0 but the SNP ABI requires it to be 1; the report is malformed'),
  );
  if (product) checks.push(checkMinTcb(policy.minTcb, r.reportedTcb.raw, product));
  else checks.push(fail('snp.policy.min-tcb', 'not checked: the product (TCB layout) could not be established'));
  checks.push(allowList('snp.policy.measurement', 'MEASUREMENT', r.measurement, policy.measurements, 'measurements'));
  {
    const hex = bytesToHex(r.hostData);
    checks.push(
      policy.hostData === undefined
        ? pass('snp.policy.host-data', `HOST_DATA ${hex} (not constrained by policy)`)
        : policy.hostData === hex
          ? pass('snp.policy.host-data', `HOST_DATA matches the policy (${hex})`)
          : fail('snp.policy.host-data', `HOST_DATA ${hex} differs from the policy's ${policy.hostData}`),
    );
  }
  checks.push(allowList('snp.policy.id-key-digest', 'ID_KEY_DIGEST', r.idKeyDigest, policy.idKeyDigests, 'idKeyDigests'));
  if (policy.authorKeyDigests.length > 0 && !r.signerInfo.authorKeyEn) {
    checks.push(fail('snp.policy.author-key-digest', 'policy requires an author key (authorKeyDigests set) but AUTHOR_KEY_EN=0 in the report'));
  } else {
    checks.push(allowList('snp.policy.author-key-digest', 'AUTHOR_KEY_DIGEST', r.authorKeyDigest, policy.authorKeyDigests, 'authorKeyDigests'));
  }
  {
    const cur = r.currentVersion;
    const min = policy.minFirmware;
    if (!min) checks.push(pass('snp.policy.min-firmware', `firmware ${fw(cur)} (no minimum configured)`));
    else {
      const a = [cur.major, cur.minor, cur.build];
      const b = [min.major, min.minor, min.build ?? 0];
      const cmp = a[0]! - b[0]! || a[1]! - b[1]! || a[2]! - b[2]!;
      checks.push(
        cmp >= 0
          ? pass('snp.policy.min-firmware', `firmware ${fw(cur)} >= ${fw(min)}`)
          : fail('snp.policy.min-firmware', `firmware ${fw(cur)} is older than the policy minimum ${fw(min)}; update the host's SEV firmware`),
      );
    }
  }
  checks.push(
    r.guestSvn >= policy.minGuestSvn
      ? pass('snp.policy.guest-svn', `GUEST_SVN ${r.guestSvn} >= ${policy.minGuestSvn}`)
      : fail('snp.policy.guest-svn', `GUEST_SVN ${r.guestSvn} is below the policy minimum ${policy.minGuestSvn}`),
  );
  return checks;
}

/** "snp.policy.min-tcb": every configured component of REPORTED_TCB at or above the minimum. */
export function checkMinTcb(min: SnpMinTcb, reportedRaw: bigint, product: SnpProduct): Check {
  const name = 'snp.policy.min-tcb';
  const reported = tcbFor(reportedRaw, product);
  const set = COMPONENTS.filter((c) => min[c] !== undefined);
  if (set.length === 0) return pass(name, `no minimum TCB configured; REPORTED_TCB ${formatTcb(reported)}`);
  if (min.fmc !== undefined && product !== 'Turin') return fail(name, `policy sets minTcb.fmc but ${product} has no FMC SPL`);
  const low = set.filter((c) => (reported[c] ?? 0) < min[c]!);
  const want = set.map((c) => `${c}>=${min[c]}`).join(' ');
  if (low.length > 0) {
    return fail(
      name,
      `REPORTED_TCB below policy minimum in ${low.map((c) => `${c} (${reported[c] ?? 0} < ${min[c]})`).join(', ')}: ${formatTcb(reported)}; update host firmware/microcode`,
    );
  }
  return pass(name, `REPORTED_TCB ${formatTcb(reported)} meets ${want}`);
}
