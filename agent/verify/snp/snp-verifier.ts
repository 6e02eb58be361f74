/**
 * verifySnpAttestation: the whole SEV-SNP verification of one report, pure (bytes + collateral +
 * time in, named checks + claims out; no I/O, no clock reads). It composes the one-job modules:
 * abi (parse), signature, cert-input (classify), chain (pinned roots), crl, tcb, claims. No policy: the
 * appraisal (agent/appraise/snp-checks.ts) runs on the parsed report this returns, and
 * agent/attest/verify-and-appraise.ts verifySnpAttestation composes the two.
 * Fail closed: every check the verifier could not perform is reported as failed, never skipped.
 * Check list and rationale: SNP ABI #56860 rev 1.55 §7.3 Table 22, AMD #57230 (chain, extensions)
 * and the checks of go-sev-guest verify/verify.go and validate/validate.go.
 */
import { timingSafeEqual } from 'node:crypto';
import { ParseError } from '../../errors.js';
import { bytesToHex, isAllZero } from '../../util/bytes.js';
import { fail, pass, warn, resultOf, type Check, type VerificationResult } from '../../formats/checks.js';
import { pinnedAmdRoots, productLine, simulatedAmdRoots, type AmdProductRoots, type SimulatedRootsInput } from '../../roots/amd.js';
import {
  parseAmdCertExtensions,
  parseSnpReport,
  tcbFor,
  SNP_SIG_ALGO_ECDSA_P384_SHA384,
  type AmdCertExtensions,
  type SnpProduct,
  type SnpReport,
} from '../../formats/snp-abi/index.js';
import { classifyCertificates, type SuppliedCert } from './cert-input.js';
import { checkChain, intermediateOf, parsedRoot, selectRoots, allowedAlgs, type LeafKind } from './amd-chain.js';
import { checkRevocation, parseCrl, type ParsedCrl } from './crl.js';
import { verifyReportSignature } from './report-signature.js';
import { checkVcekTcb } from './tcb-match.js';
import { snpClaims, type SnpClaims } from './snp-claims.js';
import { kdsCrlPath, kdsUrl } from '../../util/kds-url.js';

export interface SnpVerifyInput {
  /** The 1184-byte ATTESTATION_REPORT. */
  report: Uint8Array;
  /** DER certificates: the VCEK or VLEK, optionally ASK/ASVK/ARK (compared with the pinned ones). */
  certificates?: Uint8Array[];
  /** DER CRLs from AMD KDS (signed by the product's ARK). */
  crls?: Uint8Array[];
}

export interface SnpReportVerifyOptions {
  /** Verification time (certificate validity, CRL freshness). Never read from the clock here. */
  at: Date;
  /** Expected REPORT_DATA (up to 64 bytes; shorter values are zero-padded to 64). */
  expectedReportData?: Uint8Array;
  /** Simulator roots, trusted only because the caller passes them; results then say simulated. */
  simulatedRoots?: SimulatedRootsInput[];
}

export type { SnpClaims };

/** The verification result plus what the appraisal needs: the parsed report and the established product. */
export interface SnpReportVerification extends VerificationResult<SnpClaims> {
  /** Absent when the report did not parse (then there is nothing to appraise). */
  report?: SnpReport;
  product?: SnpProduct;
}

const LEAF_LABEL: Record<LeafKind, string> = { vcek: 'VCEK', vlek: 'VLEK' };

function kdsVcekUrl(r: SnpReport, product: SnpProduct): string {
  const t = tcbFor(r.reportedTcb.raw, product);
  const hwid = product === 'Turin' ? bytesToHex(r.chipId.subarray(0, 8)) : bytesToHex(r.chipId);
  const fmc = product === 'Turin' ? `fmcSPL=${t.fmc ?? 0}&` : '';
  return `https://kdsintf.amd.com/vcek/v1/${product}/${hwid}?${fmc}blSPL=${t.bootloader}&teeSPL=${t.tee}&snpSPL=${t.snp}&ucodeSPL=${t.microcode}`;
}

/** Leaf certificate sanity: X.509 v3, EC P-384 key, AMD extensions shaped for its kind (go-sev-guest verify/verify.go). */
function leafProblems(leaf: SuppliedCert, kind: LeafKind, ext: AmdCertExtensions): string | undefined {
  const c = leaf.cert;
  if (c.version !== 3) return `${LEAF_LABEL[kind]} is X.509 v${c.version}, expected v3`;
  const keyProblem = c.publicKeyProblem;
  if (keyProblem) return `${LEAF_LABEL[kind]} public key is unusable (damaged SubjectPublicKeyInfo): ${keyProblem}`;
  const key = c.publicKey;
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'secp384r1') {
    return `${LEAF_LABEL[kind]} public key is ${key.asymmetricKeyType} ${key.asymmetricKeyDetails?.namedCurve ?? ''}, expected EC P-384`;
  }
  if (kind === 'vcek' && ext.cspId !== undefined) return 'VCEK carries a CSP_ID extension (only VLEKs do)';
  if (kind === 'vlek' && ext.cspId === undefined) return 'VLEK has no CSP_ID extension (1.3.6.1.4.1.3704.1.5)';
  if (kind === 'vlek' && ext.hwId !== undefined) return 'VLEK carries a hwID extension (only VCEKs do)';
  return undefined;
}

function checkReportData(r: SnpReport, expected: Uint8Array | undefined): Check | undefined {
  if (!expected) return undefined;
  const name = 'snp.report-data';
  if (expected.length > 64) return fail(name, `expected REPORT_DATA is ${expected.length} bytes; it is at most 64`);
  const want = Buffer.alloc(64);
  want.set(expected);
  return timingSafeEqual(want, r.reportData)
    ? pass(name, `REPORT_DATA matches the expected ${expected.length}-byte value`)
    : fail(name, `REPORT_DATA ${bytesToHex(r.reportData)} differs from the expected ${bytesToHex(want)}; the report is not bound to this nonce/key`);
}

function checkChipId(r: SnpReport, kind: LeafKind, ext: AmdCertExtensions, product: SnpProduct): Check {
  const name = 'snp.chip-id';
  const masked = isAllZero(r.chipId);
  if (kind === 'vlek') {
    return pass(name, `VLEK is not chip-specific (no hwID); CHIP_ID ${masked ? 'masked (all zero)' : bytesToHex(r.chipId)} not compared`);
  }
  if (!ext.hwId) return fail(name, 'VCEK has no hwID extension (1.3.6.1.4.1.3704.1.4); cannot bind it to a chip');
  const idLen = product === 'Turin' ? 8 : 64;
  if (ext.hwId.length !== idLen) return fail(name, `VCEK hwID is ${ext.hwId.length} bytes; ${product} VCEKs carry ${idLen}`);
  if (masked) return warn(name, 'CHIP_ID is masked (all zero, MASK_CHIP_ID): the VCEK is bound to the report only by its signature');
  const ok = timingSafeEqual(ext.hwId, r.chipId.subarray(0, idLen)) && isAllZero(r.chipId.subarray(idLen));
  return ok
    ? pass(name, `CHIP_ID equals the VCEK hwID (${bytesToHex(ext.hwId).slice(0, 16)}…, ${idLen} bytes)`)
    : fail(
        name,
        `CHIP_ID ${bytesToHex(r.chipId).slice(0, 32)}… differs from the VCEK hwID ${bytesToHex(ext.hwId).slice(0, 32)}…: this VCEK belongs to another chip`,
      );
}

export function verifySnpReport(input: SnpVerifyInput, options: SnpReportVerifyOptions): SnpReportVerification {
  const at = options.at;

  const parsed = checkReportParses(input.report);
  if (!parsed.report) return resultOf<SnpClaims>([parsed.check], undefined);
  const r = parsed.report;
  const checks: Check[] = [parsed.check, checkSignatureAlgo(r)];

  const collateral = readCollateral(input);
  const endorsement = checkEndorsementKey(r, collateral);
  checks.push(endorsement.check);
  const { leaf, ext, kind } = endorsement;
  const noLeaf = noLeafReason(kind);
  const product = checkProduct(r, ext, kind);
  checks.push(product.check);
  const chain = checkChainToRoots(product.product, leaf, kind, collateral.supplied, options.simulatedRoots, at, noLeaf);
  checks.push(...chain.checks);
  checks.push(checkSignature(r, leaf, kind, noLeaf));
  checks.push(checkLeafRevocation(collateral, chain.roots, leaf, kind, at, noLeaf));
  checks.push(...checkKeyBinding(r, leaf, ext, kind, product.product, noLeaf));

  // --- report content
  const rd = checkReportData(r, options.expectedReportData);
  if (rd) checks.push(rd);
  checks.push(checkReserved(r));
  // Simulation is flagged on the result (simulated: true) and by this check's detail; it does not by
  // itself downgrade the status, so a simulated fleet can exercise the full affirming path end to end.
  if (chain.simulated)
    checks.push(pass('snp.simulated', 'SIMULATED: signed by simulator test roots, trusted only because simulation is enabled; not evidence of real hardware'));

  const p = product.product;
  return withReport(
    resultOf(
      checks,
      snpClaims(r, { ...(p ? { product: p } : {}), ...(ext ? { productName: ext.productName } : {}), ...(ext?.cspId ? { cspId: ext.cspId } : {}) }),
      chain.simulated,
    ),
    r,
    p,
  );
}

const notChecked = (what: string) => `not checked: ${what}`;

/** Why a check that needs the endorsement key was not performed. */
function noLeafReason(kind: LeafKind | undefined): string {
  return notChecked(`no usable ${kind ? LEAF_LABEL[kind] : 'endorsement key'} (see snp.cert.endorsement-key)`);
}

/** The report itself: a raw ATTESTATION_REPORT that parses. */
function checkReportParses(bytes: Uint8Array): { check: Check; report?: SnpReport } {
  let r: SnpReport;
  try {
    r = parseSnpReport(bytes);
  } catch (err) {
    if (!(err instanceof ParseError)) throw err;
    return { check: fail('snp.report.parse', `${err.message}; expected a raw 1184-byte ATTESTATION_REPORT`) };
  }
  return { check: pass('snp.report.parse', `report version ${r.version}, ${bytes.length} bytes`), report: r };
}

/** SIGNATURE_ALGO is the one algorithm SEV-SNP defines (ECDSA P-384 with SHA-384). */
function checkSignatureAlgo(r: SnpReport): Check {
  return r.signatureAlgo === SNP_SIG_ALGO_ECDSA_P384_SHA384
    ? pass('snp.signature.algo', 'SIGNATURE_ALGO 1 (ECDSA P-384 with SHA-384)')
    : fail('snp.signature.algo', `SIGNATURE_ALGO ${r.signatureAlgo} is not 1 (ECDSA P-384 with SHA-384); unsupported or forged report`);
}

interface Collateral {
  supplied: SuppliedCert[];
  /** Why the certificates are unusable, when they are. */
  certError?: string;
  crls: ParsedCrl[];
  /** The first malformed CRL, when there is one. */
  crlError?: string;
}

/** The supplied certificates classified and CRLs parsed; problems are kept for the checks that need them. */
function readCollateral(input: SnpVerifyInput): Collateral {
  const collateral: Collateral = { supplied: [], crls: [] };
  try {
    collateral.supplied = classifyCertificates(input.certificates ?? []);
  } catch (err) {
    if (!(err instanceof ParseError)) throw err;
    collateral.certError = err.message;
  }
  (input.crls ?? []).forEach((der, i) => {
    try {
      collateral.crls.push(parseCrl(der));
    } catch (err) {
      if (!(err instanceof ParseError)) throw err;
      collateral.crlError ??= `CRL #${i + 1} is malformed: ${err.message}`;
    }
  });
  return collateral;
}

interface EndorsementStep {
  check: Check;
  /** What SIGNER_INFO says signed the report, when it is a VCEK or VLEK. */
  kind?: LeafKind;
  /** The one usable leaf certificate of that kind. */
  leaf?: SuppliedCert;
  /** Its AMD extensions; present whenever they parsed, even if the leaf is then rejected. */
  ext?: AmdCertExtensions;
}

/** Endorsement key (VCEK vs VLEK per SIGNER_INFO): exactly one well-formed leaf of that kind was supplied. */
function checkEndorsementKey(r: SnpReport, collateral: Collateral): EndorsementStep {
  const name = 'snp.cert.endorsement-key';
  const { supplied, certError } = collateral;
  const keyName = r.signerInfo.signingKeyName;
  const kind: LeafKind | undefined = keyName === 'vcek' || keyName === 'vlek' ? keyName : undefined;
  const unknown = supplied.find((s) => s.role === 'unknown');
  if (certError) return { check: fail(name, `certificates unusable: ${certError}`), ...(kind ? { kind } : {}) };
  if (!kind) return { check: fail(name, `SIGNER_INFO.SIGNING_KEY=${r.signerInfo.signingKey} (${keyName}): the report is not signed by a VCEK or VLEK`) };
  if (unknown)
    return {
      check: fail(name, `certificate "${unknown.cert.subjectCn}" is not an AMD SEV certificate (expected SEV-VCEK/SEV-VLEK, SEV-<P>, SEV-VLEK-<P>, ARK-<P>)`),
      kind,
    };
  const leaves = supplied.filter((s) => s.role === kind);
  const other = supplied.filter((s) => s.role === (kind === 'vcek' ? 'vlek' : 'vcek'));
  if (leaves.length === 0) {
    const hint =
      kind === 'vcek' && r.product
        ? `; fetch it from ${kdsVcekUrl(r, r.product)}`
        : kind === 'vlek'
          ? '; VLEKs come from the extended report certificate table'
          : '';
    const instead = other.length > 0 ? ` (a ${LEAF_LABEL[other[0]!.role as LeafKind]} was supplied instead)` : '';
    return { check: fail(name, `SIGNER_INFO says a ${LEAF_LABEL[kind]} signed this report but none was supplied${instead}${hint}`), kind };
  }
  if (leaves.length > 1 || other.length > 0) {
    return {
      check: fail(name, `ambiguous collateral: ${leaves.length + other.length} VCEK/VLEK certificates supplied; pass exactly one ${LEAF_LABEL[kind]}`),
      kind,
    };
  }
  const leaf = leaves[0]!;
  let ext: AmdCertExtensions;
  try {
    ext = parseAmdCertExtensions(leaf.cert.der);
  } catch (err) {
    if (!(err instanceof ParseError)) throw err;
    return { check: fail(name, `${LEAF_LABEL[kind]} AMD extensions are malformed: ${err.message}`), kind };
  }
  const problem = leafProblems(leaf, kind, ext);
  if (problem) return { check: fail(name, problem), kind, ext };
  return {
    check: pass(
      name,
      `${LEAF_LABEL[kind]} (SIGNER_INFO.SIGNING_KEY=${r.signerInfo.signingKey}), productName "${ext.productName}"${ext.cspId ? `, CSP ${ext.cspId}` : ''}, serial 0x${leaf.cert.serial.toString(16)}`,
    ),
    kind,
    leaf,
    ext,
  };
}

/** Product line: CPUID (v3+) is authoritative, the VCEK productName must agree; v2 has only the VCEK. */
function checkProduct(r: SnpReport, ext: AmdCertExtensions | undefined, kind: LeafKind | undefined): { check: Check; product?: SnpProduct } {
  const name = 'snp.product';
  const certProduct = ext ? productLine(ext.productName) : undefined;
  if (r.version >= 3) {
    const cpu = r.cpuid!;
    const cpuText = `CPUID family 0x${cpu.family.toString(16)} model 0x${cpu.model.toString(16)} stepping ${cpu.stepping}`;
    if (!r.product) return { check: fail(name, `${cpuText} is not a known SEV-SNP product (Milan, Genoa, Turin)`) };
    if (ext && certProduct !== r.product) {
      return {
        check: fail(
          name,
          `report ${cpuText} is ${r.product} but the ${LEAF_LABEL[kind!]} productName is "${ext.productName}"; this certificate is for another product line`,
        ),
      };
    }
    const product = r.product;
    return { check: pass(name, `${product} from ${cpuText}${ext ? `; ${LEAF_LABEL[kind!]} productName "${ext.productName}" agrees` : ''}`), product };
  }
  if (!ext) return { check: fail(name, `${notChecked('a version 2 report carries no CPUID and no VCEK productName is available')}`) };
  if (!certProduct)
    return {
      check: fail(name, `version 2 report: product taken from the ${LEAF_LABEL[kind!]} productName "${ext.productName}", which is not a known product`),
    };
  return {
    check: pass(name, `${certProduct} from the ${LEAF_LABEL[kind!]} productName "${ext.productName}" (version 2 report has no CPUID)`),
    product: certProduct,
  };
}

/** Chain to the pinned (or explicitly enabled simulated) roots of the product line. */
function checkChainToRoots(
  product: SnpProduct | undefined,
  leaf: SuppliedCert | undefined,
  kind: LeafKind | undefined,
  supplied: readonly SuppliedCert[],
  simulatedRoots: SimulatedRootsInput[] | undefined,
  at: Date,
  noLeaf: string,
): { checks: Check[]; roots?: AmdProductRoots; simulated: boolean } {
  const names = ['snp.chain.ask', 'snp.chain.ark', 'snp.cert.validity'];
  if (!product)
    return { checks: names.map((n) => fail(n, notChecked('the product line (and so the pinned roots) is unknown (see snp.product)'))), simulated: false };
  const pinned = pinnedAmdRoots(product);
  const sims = (simulatedRoots ?? []).filter((s) => productLine(s.product) === product).map(simulatedAmdRoots);
  if (!leaf || !kind) return { checks: names.map((n) => fail(n, noLeaf)), roots: pinned, simulated: false };
  let roots: AmdProductRoots = pinned;
  let simulated = false;
  let leafVerified = false;
  const selected = selectRoots(leaf.cert, kind, [pinned, ...sims]);
  if (selected) {
    roots = selected;
    simulated = selected.simulated;
    leafVerified = true;
  } else if (sims.length > 0 && !intermediateOf(pinned, kind)) {
    roots = sims[0]!;
  }
  const checks = checkChain({
    leaf: leaf.cert,
    kind,
    suppliedIntermediates: supplied.filter((s) => s.role === (kind === 'vcek' ? 'ask' : 'asvk')).map((s) => s.cert),
    suppliedArks: supplied.filter((s) => s.role === 'ark').map((s) => s.cert),
    roots,
    leafVerified,
    at,
  });
  return { checks, roots, simulated };
}

/** The report signature verifies with the endorsement key. */
function checkSignature(r: SnpReport, leaf: SuppliedCert | undefined, kind: LeafKind | undefined, noLeaf: string): Check {
  if (!leaf) return fail('snp.signature', noLeaf);
  const ok = verifyReportSignature(r.raw, leaf.cert.publicKey);
  const masked = r.signerInfo.maskChipKey ? ' (SIGNER_INFO.MASK_CHIP_KEY=1: the firmware was told not to sign with the chip key)' : '';
  return ok
    ? pass('snp.signature', `ECDSA P-384/SHA-384 signature over bytes [0x0, 0x2A0) verifies with the ${LEAF_LABEL[kind!]}`)
    : fail(
        'snp.signature',
        `report signature does not verify with the supplied ${LEAF_LABEL[kind!]}${masked}: the report was altered or the ${LEAF_LABEL[kind!]} belongs to another chip/TCB`,
      );
}

/** Revocation: the leaf and its intermediate are not on the product's CRL (signed by the ARK). */
function checkLeafRevocation(
  collateral: Collateral,
  roots: AmdProductRoots | undefined,
  leaf: SuppliedCert | undefined,
  kind: LeafKind | undefined,
  at: Date,
  noLeaf: string,
): Check {
  if (collateral.crlError) return fail('snp.revocation', collateral.crlError);
  if (!(roots && leaf && kind)) return fail('snp.revocation', leaf ? notChecked('unknown product line') : noLeaf);
  const ark = parsedRoot(roots.ark);
  const ca = intermediateOf(roots, kind);
  return checkRevocation(
    collateral.crls,
    {
      name: ark.subjectCn || `ARK-${roots.product}`,
      subjectDer: ark.subjectDer,
      publicKey: roots.ark.publicKey,
      allowedAlgs: allowedAlgs(roots),
      crlUrl: kdsUrl(kdsCrlPath(roots.product, kind)),
    },
    [
      { label: LEAF_LABEL[kind], serial: leaf.cert.serial },
      ...(ca ? [{ label: `${kind === 'vcek' ? 'ASK' : 'ASVK'} ${parsedRoot(ca).subjectCn}`, serial: parsedRoot(ca).serial }] : []),
    ],
    at,
  );
}

/** Binding of the key to this report's TCB and chip. */
function checkKeyBinding(
  r: SnpReport,
  leaf: SuppliedCert | undefined,
  ext: AmdCertExtensions | undefined,
  kind: LeafKind | undefined,
  product: SnpProduct | undefined,
  noLeaf: string,
): Check[] {
  if (leaf && ext && kind && product) {
    return [checkVcekTcb(ext, r.reportedTcb.raw, r.currentTcb.raw, product, LEAF_LABEL[kind]), checkChipId(r, kind, ext, product)];
  }
  const why = leaf ? notChecked('unknown product line (TCB layout)') : noLeaf;
  return [fail('snp.tcb.vcek-match', why), fail('snp.chip-id', why)];
}

/** Bit numbers set in a u64 mask, ascending. */
function bitNumbers(mask: bigint): number[] {
  const out: number[] = [];
  for (let i = 0; i < 64; i++) if ((mask >> BigInt(i)) & 1n) out.push(i);
  return out;
}

/**
 * Every must-be-zero field of the report is zero. PLATFORM_INFO bits the ABI revision does not
 * define are named in the detail but do not fail: firmware adds such bits (Turin sets bit 6).
 */
function checkReserved(r: SnpReport): Check {
  const undef = r.platformInfo.undefinedBits;
  const info =
    undef === 0n
      ? ''
      : `; PLATFORM_INFO bit(s) ${bitNumbers(undef).join(', ')} set, not defined by SNP ABI rev 1.58 (informational: reported by newer firmware)`;
  return r.nonZeroReserved.length === 0
    ? pass('snp.reserved', `all must-be-zero fields are zero${info}`)
    : fail('snp.reserved', `must-be-zero fields are set: ${r.nonZeroReserved.join(', ')}; the report is malformed or from unsupported firmware${info}`);
}

function withReport(result: VerificationResult<SnpClaims>, report: SnpReport, product: SnpProduct | undefined): SnpReportVerification {
  return product ? { ...result, report, product } : { ...result, report };
}
