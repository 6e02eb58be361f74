/**
 * TCB comparisons: the VCEK/VLEK's SPL extensions against the report's REPORTED_TCB (the TCB the key
 * was derived for), decoded with the product's byte layout (Turin puts FMC first, virtee/sev from_turin_bytes).
 * The policy minimum (snp.policy.min-tcb) is appraisal: agent/appraise/snp-checks.ts. REPORTED, not CURRENT: a host may have loaded newer microcode since the key
 * was derived (the trustee vector has CURRENT ucode 206, REPORTED 115, and verifies; go-sev-guest validate/validate.go).
 */
import { fail, pass, type Check } from '../../formats/checks.js';
import { formatTcb, tcbFor, tcbLayoutFor, type AmdCertExtensions, type SnpProduct } from '../../formats/snp-abi/index.js';

type Component = 'bootloader' | 'tee' | 'snp' | 'microcode' | 'fmc';

function certSpls(ext: AmdCertExtensions): Record<Component, number | undefined> {
  return { bootloader: ext.blSpl, tee: ext.teeSpl, snp: ext.snpSpl, microcode: ext.ucodeSpl, fmc: ext.fmcSpl };
}

function formatCertTcb(ext: AmdCertExtensions, product: SnpProduct): string {
  const s = `bl=${ext.blSpl} tee=${ext.teeSpl} snp=${ext.snpSpl} ucode=${ext.ucodeSpl}`;
  return product === 'Turin' ? `fmc=${ext.fmcSpl ?? 'absent'} ${s}` : s;
}

/**
 * "snp.tcb.vcek-match": cert SPLs == REPORTED_TCB for every component of the product's layout, the
 * reserved SPLs (spl4..spl7) zero or absent, and the cert TCB not above CURRENT_TCB
 * (go-sev-guest validate.go tcbNeError / tcbGtError).
 */
export function checkVcekTcb(ext: AmdCertExtensions, reportedRaw: bigint, currentRaw: bigint, product: SnpProduct, keyName: string): Check {
  const name = 'snp.tcb.vcek-match';
  const reported = tcbFor(reportedRaw, product);
  const current = tcbFor(currentRaw, product);
  const cert = certSpls(ext);
  const comps: Component[] = product === 'Turin' ? ['fmc', 'bootloader', 'tee', 'snp', 'microcode'] : ['bootloader', 'tee', 'snp', 'microcode'];
  const both = `${keyName} ${formatCertTcb(ext, product)}; REPORTED_TCB ${formatTcb(reported)}`;
  if (product === 'Turin' && ext.fmcSpl === undefined) return fail(name, `${keyName} has no fmcSPL extension required for Turin; ${both}`);
  const mismatched = comps.filter((c) => (cert[c] ?? 0) !== (reported[c] ?? 0));
  if (mismatched.length > 0) {
    return fail(name, `${keyName} TCB does not match REPORTED_TCB (${mismatched.join(', ')} differ): ${both}; fetch the ${keyName} for this TCB`);
  }
  if (reported.reservedBits !== 0n) return fail(name, `REPORTED_TCB has non-zero reserved bytes: ${formatTcb(reported)}`);
  const reservedSpl = (['spl4', 'spl5', 'spl6', 'spl7'] as const).filter((k) => (ext[k] ?? 0) !== 0);
  if (reservedSpl.length > 0) return fail(name, `${keyName} has non-zero reserved SPLs ${reservedSpl.join(', ')}`);
  const above = comps.filter((c) => (cert[c] ?? 0) > (current[c] ?? 0));
  if (above.length > 0) {
    return fail(
      name,
      `${keyName} TCB is above CURRENT_TCB (${above.join(', ')}): ${keyName} ${formatCertTcb(ext, product)}; CURRENT_TCB ${formatTcb(current)}`,
    );
  }
  return pass(name, `${both} (layout ${tcbLayoutFor(product)})`);
}
