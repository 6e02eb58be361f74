/**
 * The certificate chain ARK → ASK (or ASVK for VLEKs) → VCEK/VLEK, anchored in pinned roots only
 * (AMD #57230; go-sev-guest#185: a verifier that trusts a supplied ARK by name is broken).
 * A supplied ASK/ASVK/ARK is allowed only if it is byte-identical to the pinned one for the product.
 * Every AMD signature must be RSASSA-PSS SHA-384/MGF1-SHA-384/salt 48 — decoded, not byte-compared.
 */
import { fail, pass, type Check } from '../../formats/checks.js';
import type { AmdProductRoots, RootCert } from '../../roots/amd.js';
import { parseCertificate, type Certificate } from '../../formats/x509/certificate.js';
import { describeSigAlg, type SigAlg } from '../../formats/x509/sig-alg.js';
import { bytesEqual } from '../../util/bytes.js';
import { isIssuedBy, verifyCertSignature } from '../x509/cert-signature.js';

export type LeafKind = 'vcek' | 'vlek';

/** Signature algorithms a root set may use: AMD only RSASSA-PSS; the simulator may use ECDSA. */
export function allowedAlgs(roots: AmdProductRoots): readonly SigAlg['kind'][] {
  return roots.simulated ? ['rsa-pss-sha384', 'ecdsa-sha384'] : ['rsa-pss-sha384'];
}

const parsedRoots = new WeakMap<RootCert, Certificate>();
/** Pinned certs are parsed once per process. */
export function parsedRoot(root: RootCert): Certificate {
  let p = parsedRoots.get(root);
  if (!p) {
    p = parseCertificate(root.der);
    parsedRoots.set(root, p);
  }
  return p;
}

/** The CA that signs this leaf kind: ASK for VCEKs, ASVK for VLEKs. */
export function intermediateOf(roots: AmdProductRoots, kind: LeafKind): RootCert | undefined {
  return kind === 'vcek' ? roots.ask : roots.asvk;
}

const intermediateName = (roots: AmdProductRoots, kind: LeafKind) => (kind === 'vcek' ? `SEV-${roots.product} (ASK)` : `SEV-VLEK-${roots.product} (ASVK)`);

function signedBy(cert: Certificate, issuer: RootCert, algs: readonly SigAlg['kind'][]): boolean {
  return algs.includes(cert.sigAlg.kind) && verifyCertSignature(cert, issuer.publicKey);
}

/**
 * Among candidate root sets (pinned first, then simulated ones the caller enabled), the one whose
 * ASK/ASVK signed the leaf; undefined when none did.
 */
export function selectRoots(leaf: Certificate, kind: LeafKind, candidates: readonly AmdProductRoots[]): AmdProductRoots | undefined {
  for (const roots of candidates) {
    const ca = intermediateOf(roots, kind);
    // The VCEK/VLEK -> ASK/ASVK link goes through the fleet-sized link memo (one entry per machine's VCEK).
    if (ca && allowedAlgs(roots).includes(leaf.sigAlg.kind) && isIssuedBy(leaf, parsedRoot(ca))) return roots;
  }
  return undefined;
}

// Self-signature and ASK←ARK results of root sets never change: verify each once per process.
const rootSetOk = new WeakMap<AmdProductRoots, { ark: boolean; ask: boolean; asvk: boolean }>();
function rootSetSignatures(roots: AmdProductRoots) {
  let r = rootSetOk.get(roots);
  if (!r) {
    const algs = allowedAlgs(roots);
    const ark = parsedRoot(roots.ark);
    const under = (c: RootCert | undefined) => !!c && bytesEqual(parsedRoot(c).issuerDer, ark.subjectDer) && signedBy(parsedRoot(c), roots.ark, algs);
    r = { ark: bytesEqual(ark.issuerDer, ark.subjectDer) && signedBy(ark, roots.ark, algs), ask: under(roots.ask), asvk: under(roots.asvk) };
    rootSetOk.set(roots, r);
  }
  return r;
}

export interface ChainInput {
  leaf: Certificate;
  kind: LeafKind;
  /** ASK/ASVK and ARK supplied with the evidence, if any (compared with the pinned ones). */
  suppliedIntermediates: readonly Certificate[];
  suppliedArks: readonly Certificate[];
  /** The root set selectRoots chose, or the product's pinned set when none verified. */
  roots: AmdProductRoots;
  /** True when selectRoots found the leaf's signature under roots' intermediate. */
  leafVerified: boolean;
  at: Date;
}

/** "snp.chain.ask", "snp.chain.ark", "snp.cert.validity". */
export function checkChain(input: ChainInput): Check[] {
  const { leaf, kind, roots, at } = input;
  const checks: Check[] = [];
  const ca = intermediateOf(roots, kind);
  const caName = intermediateName(roots, kind);
  const arkName = `ARK-${roots.product}`;
  const pinnedWord = roots.simulated ? 'simulated' : 'pinned';
  const sigs = rootSetSignatures(roots);
  const leafName = kind === 'vcek' ? 'VCEK' : 'VLEK';

  // snp.chain.ask
  {
    const name = 'snp.chain.ask';
    const foreign = ca ? input.suppliedIntermediates.find((c) => !bytesEqual(c.der, ca.der)) : undefined;
    if (!ca) checks.push(fail(name, `no ${pinnedWord} ${caName} for ${roots.product}: a ${leafName} cannot be verified with these roots`));
    else if (foreign) {
      checks.push(
        fail(
          name,
          `supplied intermediate "${foreign.subjectCn}" (serial 0x${foreign.serial.toString(16)}) is not the ${pinnedWord} ${caName}; remove it or fetch the genuine chain from AMD KDS`,
        ),
      );
    } else if (!(kind === 'vcek' ? sigs.ask : sigs.asvk)) {
      checks.push(fail(name, `${pinnedWord} ${caName} is not signed by ${arkName}; the embedded roots are inconsistent`));
    } else if (!allowedAlgs(roots).includes(leaf.sigAlg.kind) || !input.leafVerified) {
      const why = !allowedAlgs(roots).includes(leaf.sigAlg.kind)
        ? `uses signature algorithm ${describeSigAlg(leaf.sigAlg)} (expected RSASSA-PSS SHA-384, salt 48)`
        : `is not signed by the ${pinnedWord} ${caName} (issuer "${leaf.issuerCn}")`;
      checks.push(fail(name, `${leafName} ${why}; it is not an AMD-issued ${leafName} for ${roots.product}`));
    } else {
      checks.push(pass(name, `${leafName} signed by the ${pinnedWord} ${caName} (RSASSA-PSS SHA-384); ${caName} signed by ${arkName}`));
    }
  }

  // snp.chain.ark
  {
    const name = 'snp.chain.ark';
    const foreign = input.suppliedArks.find((c) => !bytesEqual(c.der, roots.ark.der));
    if (foreign) {
      checks.push(
        fail(
          name,
          `supplied root "${foreign.subjectCn}" is not the ${pinnedWord} ${arkName} (SHA-256 ${roots.ark.sha256}); it is not trusted — remove it or use AMD's ${arkName}`,
        ),
      );
    } else if (!sigs.ark) {
      checks.push(fail(name, `${pinnedWord} ${arkName} is not validly self-signed`));
    } else {
      checks.push(pass(name, `${pinnedWord} ${arkName} (SHA-256 ${roots.ark.sha256})${input.suppliedArks.length > 0 ? '; the supplied ARK matches it' : ''}`));
    }
  }

  // snp.cert.validity
  {
    const name = 'snp.cert.validity';
    const chain: Certificate[] = [leaf, ...(ca ? [parsedRoot(ca)] : []), parsedRoot(roots.ark)];
    const t = at.getTime();
    const bad = chain.find((c) => t < c.notBefore.getTime() || t > c.notAfter.getTime());
    if (bad) {
      const when = t < bad.notBefore.getTime() ? 'not yet valid' : 'expired';
      checks.push(
        fail(
          name,
          `${bad.subjectCn} is ${when} at ${at.toISOString()} (valid ${bad.notBefore.toISOString()} .. ${bad.notAfter.toISOString()}); ${when === 'expired' ? `fetch a current ${bad === leaf ? leafName : 'certificate'}` : 'check the verification time/clock'}`,
        ),
      );
    } else {
      checks.push(pass(name, `${chain.map((c) => c.subjectCn).join(', ')} valid at ${at.toISOString()} (${leafName} until ${leaf.notAfter.toISOString()})`));
    }
  }
  return checks;
}
