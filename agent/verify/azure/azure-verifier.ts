/**
 * verifyAzureEvidence: Azure confidential VM (SEV-SNP paravisor + vTPM) evidence, pure.
 * Recipe (trustee deps/verifier/src/az_snp_vtpm/mod.rs `evaluate`):
 *   1. parse the HCL report (azure.hcl.parse);
 *   2. REPORT_DATA[0:n] == H(runtime claims) with the header's hash, rest zero (azure.hcl.report-data);
 *   3. the TPM quote verifies under HCLAkPub from those claims (azure.quote.signature);
 *   4. quote extraData == the expected nonce (azure.quote.nonce) and the PCR digest (azure.quote.pcr-digest);
 *   5. runtime user-data == the expected binding (azure.user-data), when one is expected;
 *   6. the SNP report by the SEV-SNP verifier (snp.*: VCEK chain to pinned roots, signature, TCB).
 * The SNP policy (with VMPL 0, the paravisor's level) is appraisal: agent/attest/verify-and-appraise.ts
 * verifyAzureEvidence appends it from the parsed SNP report this returns.
 * The AK is only as trustworthy as the SNP signature and step 2: every check must pass.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { fail, pass, resultOf, type Check, type VerificationResult } from '../../formats/checks.js';
import { verifySnpReport, type SnpClaims, type SnpReportVerification } from '../snp/snp-verifier.js';
import type { SnpProduct, SnpReport } from '../../formats/snp-abi/index.js';
import type { SimulatedRootsInput } from '../../roots/amd.js';
import { isAllZero } from '../../util/bytes.js';
import { parseHclReport, type HclReport } from '../../formats/azure/hcl.js';
import { findKey } from '../../formats/azure/runtime-claims.js';
import { verifyQuote, type QuoteClaims } from './quote.js';
import { expectationsFor, USER_DATA_SIZE, type AzureEvidence, type AzureEvidenceFormat } from '../../formats/azure/evidence-formats.js';

/** REPORT_DATA offset/size in the SNP ATTESTATION_REPORT (SNP ABI #56860 rev 1.55 §7.3 Table 22, offset 0x50). */
const REPORT_DATA_OFFSET = 0x50;
const REPORT_DATA_SIZE = 64;

export interface AzureReportVerifyOptions {
  /** Verification time for certificates (never read from the clock here). */
  at: Date;
  /** The verifier's nonce; its meaning per evidence format is in evidence-formats.ts expectationsFor(). */
  nonce?: Uint8Array;
  /** Extra DER certificates (VCEK / ASK / ARK), e.g. from IMDS THIM or --cert. */
  certificates?: Uint8Array[];
  crls?: Uint8Array[];
  /** Simulated AMD roots, trusted only when passed (simulation explicitly enabled). */
  simulatedRoots?: SimulatedRootsInput[];
}

export interface AzureClaims {
  format: AzureEvidenceFormat;
  hcl: {
    version: number;
    hashAlg: string;
    vmConfiguration: Record<string, unknown> | undefined;
    userData: string | undefined;
    keys: string[];
  };
  quote: QuoteClaims | undefined;
  snp: SnpClaims | undefined;
}

/** The verification result plus the parsed SNP report and product, for the SNP appraisal. */
export interface AzureReportVerification extends VerificationResult<AzureClaims> {
  snpReport?: SnpReport;
  snpProduct?: SnpProduct;
}

const eq = (a: Uint8Array, b: Uint8Array) => a.length === b.length && timingSafeEqual(a, b);

/** REPORT_DATA binds the runtime claims: H(claims) then zeros (trustee az_snp_vtpm verify_report_data). */
export function checkReportDataBinding(hcl: HclReport): Check {
  const name = 'azure.hcl.report-data';
  const reportData = hcl.snpReport.subarray(REPORT_DATA_OFFSET, REPORT_DATA_OFFSET + REPORT_DATA_SIZE);
  const digest = createHash(hcl.hashAlg).update(hcl.runtimeClaimsBytes).digest();
  if (!eq(reportData.subarray(0, digest.length), digest)) {
    return fail(
      name,
      `REPORT_DATA[0:${digest.length}] ${reportData.subarray(0, digest.length).toString('hex')} != ${hcl.hashAlg.toUpperCase()}(runtime claims) ${digest.toString('hex')}: the runtime claims (and the AK in them) are not the ones the SNP report vouches for`,
    );
  }
  if (!isAllZero(reportData.subarray(digest.length))) {
    return fail(name, `REPORT_DATA[${digest.length}:64] is not zero: not an HCL-generated report`);
  }
  return pass(name, `REPORT_DATA = ${hcl.hashAlg.toUpperCase()}(runtime claims) || zeros: the SNP report vouches for the runtime claims and HCLAkPub`);
}

/** HCL user-data must start with the expected binding and be zero after it (trustee v2: "starts with the nonce"). */
export function checkUserData(userData: Buffer | undefined, expected: Uint8Array): Check {
  const name = 'azure.user-data';
  if (expected.length > USER_DATA_SIZE) return fail(name, `expected binding is ${expected.length} bytes; user-data holds at most ${USER_DATA_SIZE}`);
  if (!userData) return fail(name, 'the runtime claims carry no "user-data": the HCL report was not regenerated with the binding');
  const want = Buffer.alloc(Math.max(USER_DATA_SIZE, userData.length));
  want.set(expected);
  const got = Buffer.alloc(want.length);
  got.set(userData);
  if (userData.length !== USER_DATA_SIZE || !eq(got, want)) {
    return fail(
      name,
      `runtime user-data ${userData.toString('hex') || '(empty)'} != expected ${want.toString('hex')}: the HCL report is not bound to this nonce (stale report, or it was read before the paravisor refreshed it)`,
    );
  }
  return pass(name, `runtime user-data carries the expected ${expected.length}-byte binding`);
}

export function verifyAzureReport(evidence: AzureEvidence, options: AzureReportVerifyOptions): AzureReportVerification {
  const parsed = checkHclParses(evidence.hclReport);
  if (!parsed.hcl) return resultOf<AzureClaims>([parsed.check], undefined);
  const hcl = parsed.hcl;
  const checks: Check[] = [parsed.check, checkReportDataBinding(hcl)];

  const expected = expectedBindings(evidence.format, options.nonce);
  if (!expected.expect) return resultOf<AzureClaims>([...checks, expected.check], undefined);
  const expect = expected.expect;

  const q = checkQuote(hcl, evidence.quote, expect);
  checks.push(...q.checks);
  if (expect.userData) checks.push(checkUserData(hcl.runtimeClaims.userData, expect.userData));
  const snp = verifyEmbeddedSnpReport(hcl, evidence, options);
  checks.push(...snp.checks);

  const result: AzureReportVerification = resultOf(checks, azureClaims(evidence.format, hcl, q.claims, snp.claims), snp.simulated);
  if (snp.report) result.snpReport = snp.report;
  if (snp.product) result.snpProduct = snp.product;
  return result;
}

/** The HCL report parses (azure.hcl.parse). */
function checkHclParses(bytes: AzureEvidence['hclReport']): { check: Check; hcl?: HclReport } {
  let hcl: HclReport;
  try {
    hcl = parseHclReport(bytes);
  } catch (err) {
    return { check: fail('azure.hcl.parse', `${(err as Error).message}`) };
  }
  return {
    check: pass(
      'azure.hcl.parse',
      `HCL report v${hcl.version}, SEV-SNP, ${hcl.runtimeClaimsBytes.length}-byte runtime claims hashed with ${hcl.hashAlg.toUpperCase()}`,
    ),
    hcl,
  };
}

type Expectations = ReturnType<typeof expectationsFor>;

/** What this evidence format binds the nonce to; a nonce the format cannot carry fails azure.quote.nonce. */
function expectedBindings(
  format: AzureEvidenceFormat,
  nonce: Uint8Array | undefined,
): { expect: Expectations; check?: undefined } | { expect?: undefined; check: Check } {
  try {
    return { expect: expectationsFor(format, nonce) };
  } catch (err) {
    return { check: fail('azure.quote.nonce', (err as Error).message) };
  }
}

/** The TPM quote verifies under HCLAkPub from the runtime claims, with the expected nonce. */
function checkQuote(hcl: HclReport, quote: AzureEvidence['quote'], expect: Expectations): ReturnType<typeof verifyQuote> {
  const ak = findKey(hcl.runtimeClaims, 'HCLAkPub');
  const akProblem = !ak ? 'the runtime claims have no HCLAkPub key' : ak.key ? undefined : `HCLAkPub is unusable: ${ak.problem}`;
  return verifyQuote(quote, ak?.key, akProblem, {
    ...(expect.quoteNonce ? { nonce: expect.quoteNonce } : {}),
    ...(expect.quoteNonceLabel ? { nonceLabel: expect.quoteNonceLabel } : {}),
  });
}

/** The SNP report inside the HCL report, by the SEV-SNP verifier (snp.*). */
function verifyEmbeddedSnpReport(hcl: HclReport, evidence: AzureEvidence, options: AzureReportVerifyOptions): SnpReportVerification {
  return verifySnpReport(
    { report: hcl.snpReport, certificates: [...evidence.certificates, ...(options.certificates ?? [])], ...(options.crls ? { crls: options.crls } : {}) },
    { at: options.at, ...(options.simulatedRoots ? { simulatedRoots: options.simulatedRoots } : {}) },
  );
}

function azureClaims(format: AzureEvidenceFormat, hcl: HclReport, quote: QuoteClaims | undefined, snp: SnpClaims | undefined): AzureClaims {
  return {
    format,
    hcl: {
      version: hcl.version,
      hashAlg: hcl.hashAlg,
      vmConfiguration: hcl.runtimeClaims.vmConfiguration,
      userData: hcl.runtimeClaims.userData?.toString('hex'),
      keys: hcl.runtimeClaims.keys.map((k) => k.kid),
    },
    quote,
    snp,
  };
}
