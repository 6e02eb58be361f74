/**
 * GPU device certificate chains (NVML attestationCertChain: PEM, leaf first, 5 certs:
 * AK leaf "GH100 A01 GSP FMC LF" → "GSP BROM" → Provisioner ICA → "GH100 Identity" → root;
 * nvtrust cc_admin_utils.py verify_gpu_certificate_chain). Pure: certificates + pinned root + time in, checks out.
 * As nvtrust and the C++ SDK do, the root the device sends is dropped and the pinned root appended
 * (nvml/gpu_cert_chains.py); exactly 5 certificates are required (cc_admin_utils.py MAX_CERT_CHAIN_LENGTH).
 * Certificates are parsed by formats/x509 (every part decoded up front: this is device evidence) and
 * links checked by verify/x509 isIssuedBy, memoised by certificate hash.
 */
import { ParseError } from '../../errors.js';
import { fail, pass, type Check } from '../../formats/checks.js';
import { parseCertificateEager, type Certificate } from '../../formats/x509/certificate.js';
import { pemBlocks } from '../../util/pem.js';
import { BoundedCache } from '../../util/bounded-cache.js';
import { isIssuedBy } from '../x509/cert-signature.js';
import { MAX_GPU_CHAIN_PEM_LENGTH } from '../../formats/gpu-evidence-record.js';

/** Device chains are 5 long on Hopper and Blackwell (MAX_CERT_CHAIN_LENGTH = 5). */
export const GPU_CHAIN_LENGTH = 5;
/** The chain text bound of the GPU evidence record (formats/gpu-evidence-record.ts). */
export const MAX_CHAIN_PEM_LENGTH = MAX_GPU_CHAIN_PEM_LENGTH;
const MAX_CERTS = 16;

/** Split PEM text into DER certificates; anything but whitespace/NULs between blocks is an error. */
export function splitPemCertificates(pem: string): Buffer[] {
  if (pem.length > MAX_CHAIN_PEM_LENGTH) throw new ParseError(`certificate chain: ${pem.length} characters exceeds ${MAX_CHAIN_PEM_LENGTH}`);
  return pemBlocks(pem, 'CERTIFICATE', { what: 'certificate chain', noun: 'certificates', maxBlocks: MAX_CERTS });
}

/**
 * Parsed chains by their PEM text. A parsed certificate holds OpenSSL's X509 and key objects:
 * ~15 KiB of RSS each (measured: 20,000 distinct parsed certificates), and a cached chain keeps its
 * certificates alive even after the certificate cache lets them go. A 10,000-machine fleet has
 * 80,000 chains with 2 certificates of their own each (AK leaf, BROM): 80,000 x (2 x 16 KiB + ~10 KiB
 * of PEM key) ~ 3.3 GB, far too much to keep. So this cache holds the chains of the machines seen
 * most recently (the daemon's own GPUs, a controller's recent verdicts) and is bounded by what it
 * retains: per chain, its key (UTF-16 worst case) plus CHAIN_OWN_CERT_BYTES for each of its two
 * per-GPU certificates (the shared ICA/Identity/root are counted by the certificate cache):
 * 1,024 chains ~ 1,024 x 42 KiB ~ 42 MiB, capped at 48 MiB. A chain evicted here is parsed again
 * (~0.2 ms a certificate); its link signatures stay in the fleet-sized link cache
 * (verify/x509/cert-signature.ts) and its OCSP signatures in the OCSP cache, so no signature is
 * verified again.
 */
export const CHAIN_OWN_CERT_BYTES = 16 * 1024;
export const CHAIN_CACHE_LIMITS = { maxEntries: 1024, maxBytes: 48 * 1024 * 1024 } as const;
const chainCache = new BoundedCache<Certificate[]>(CHAIN_CACHE_LIMITS);

/** Parse a PEM chain (memoised by its text). */
export function parsePemChain(pem: string): Certificate[] {
  const hit = chainCache.get(pem);
  if (hit) return hit;
  const certs = splitPemCertificates(pem).map((der, i) => {
    try {
      return parseCertificateEager(der);
    } catch (err) {
      if (err instanceof ParseError) throw new ParseError(`certificate ${i} in the chain: ${err.message}`, undefined, { cause: err });
      throw err;
    }
  });
  // The key is counted once by the cache (as its length); add it again for two-byte strings.
  chainCache.set(pem, certs, pem.length + Math.min(certs.length, 2) * CHAIN_OWN_CERT_BYTES);
  return certs;
}

function validAt(c: Certificate, at: Date): boolean {
  return c.notBefore.getTime() <= at.getTime() && at.getTime() <= c.notAfter.getTime();
}

export interface ChainResult {
  /** gpu.chain: length, links among the supplied certificates, CA flags, validity at `at`. */
  chain: Check;
  /** gpu.chain.root: the chain ends in the pinned root. */
  root: Check;
  /** The certificates as verified: supplied certs minus the supplied root, plus the pinned root. */
  verified: Certificate[];
  /** Earliest notAfter over the chain (claims: cert expiration). */
  earliestNotAfter?: Date;
}

/**
 * Verify a device chain against a pinned root at time `at`.
 * `rootName` names the anchor in messages ("NVIDIA Device Identity CA" or the simulated one).
 */
export function verifyDeviceChain(
  certs: Certificate[],
  pinnedRoot: Certificate,
  at: Date,
  rootName: string,
  expectedLength = GPU_CHAIN_LENGTH,
  prefix: 'gpu' | 'switch' = 'gpu',
): ChainResult {
  const chainName = `${prefix}.chain`;
  const rootCheck = `${prefix}.chain.root`;
  const problems: string[] = [];
  if (certs.length !== expectedLength) problems.push(`expected ${expectedLength} certificates, got ${certs.length}`);
  const supplied = certs.length > 1 ? certs.slice(0, -1) : certs.slice();
  const suppliedRoot = certs.length > 1 ? certs[certs.length - 1] : undefined;
  const verified = [...supplied, pinnedRoot];

  for (let i = 0; i + 1 < supplied.length; i++) {
    if (!isIssuedBy(supplied[i]!, supplied[i + 1]!)) {
      problems.push(`certificate ${i} (${supplied[i]!.cn}) is not signed by certificate ${i + 1} (${supplied[i + 1]!.cn})`);
    }
  }
  for (let i = 1; i < supplied.length; i++) {
    if (!supplied[i]!.isCa) problems.push(`certificate ${i} (${supplied[i]!.cn}) is not a CA (basicConstraints)`);
  }
  let earliest: Date | undefined;
  for (const [i, c] of verified.entries()) {
    if (!validAt(c, at))
      problems.push(`certificate ${i} (${c.cn}) is not valid at ${at.toISOString()} (valid ${c.notBefore.toISOString()} to ${c.notAfter.toISOString()})`);
    if (!earliest || c.notAfter < earliest) earliest = c.notAfter;
  }
  const chain =
    problems.length === 0
      ? pass(chainName, `${certs.length} certificates, every link verifies and is valid at ${at.toISOString()}; leaf ${supplied[0]?.cn ?? '?'}`)
      : fail(chainName, `device certificate chain invalid: ${problems.join('; ')}`);

  const top = supplied[supplied.length - 1];
  let root: Check;
  if (!top) root = fail(rootCheck, 'no certificates to anchor');
  else if (suppliedRoot && suppliedRoot.sha256 !== pinnedRoot.sha256) {
    root = fail(rootCheck, `the chain ends in "${suppliedRoot.subject}" (SHA-256 ${suppliedRoot.sha256}), not the pinned ${rootName} (${pinnedRoot.sha256})`);
  } else if (!isIssuedBy(top, pinnedRoot)) {
    root = fail(rootCheck, `certificate ${supplied.length - 1} (${top.cn}) is not signed by the pinned ${rootName}`);
  } else {
    root = pass(rootCheck, `anchored in the pinned ${rootName} (SHA-256 ${pinnedRoot.sha256})`);
  }
  return { chain, root, verified, ...(earliest ? { earliestNotAfter: earliest } : {}) };
}
