/**
 * The one certificate signature check, shared by the AMD chain and CRLs (verify/snp) and the GPU
 * device chain and OCSP responders (verify/nvidia): node:crypto over the TBS bytes under the
 * decoded algorithm (formats/x509/sig-alg.ts), so the parameters are the ones we asserted.
 * Pure: certificates and keys in, a boolean out.
 */
import { verify as cryptoVerify, constants, type KeyObject } from 'node:crypto';
import { BoundedCache } from '../../util/bounded-cache.js';
import { bytesEqual } from '../../util/bytes.js';
import type { Certificate } from '../../formats/x509/certificate.js';
import { sameSigAlg, type SigAlg } from '../../formats/x509/sig-alg.js';

/**
 * Verify `signature` over `data` with `key` under a decoded algorithm. Unsupported algorithms and
 * crypto errors (wrong key type, malformed signature) are a failed verification, not an exception.
 */
export function verifyWithAlg(alg: SigAlg, data: Uint8Array, signature: Uint8Array, key: KeyObject): boolean {
  try {
    switch (alg.kind) {
      case 'rsa-pss-sha384':
        if (key.asymmetricKeyType !== 'rsa' && key.asymmetricKeyType !== 'rsa-pss') return false;
        return cryptoVerify('sha384', data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 48 }, signature);
      case 'rsa-pkcs1-sha384':
        if (key.asymmetricKeyType !== 'rsa') return false;
        return cryptoVerify('sha384', data, { key, padding: constants.RSA_PKCS1_PADDING }, signature);
      case 'ecdsa-sha384':
        if (key.asymmetricKeyType !== 'ec') return false;
        return cryptoVerify('sha384', data, { key, dsaEncoding: 'der' }, signature);
      default:
        return false;
    }
  } catch {
    return false;
  }
}

/** Did `issuerKey` sign `cert`? (Outer and TBS algorithms must agree, RFC 5280 §4.1.1.2.) */
export function verifyCertSignature(cert: Certificate, issuerKey: KeyObject): boolean {
  if (!sameSigAlg(cert.sigAlg, cert.tbsSigAlg)) return false;
  return verifyWithAlg(cert.sigAlg, cert.tbs, cert.signature, issuerKey);
}

/**
 * Link results are pure, so memoised by the pair of certificate fingerprints (a GPU chain is
 * re-verified every cycle). Sized for a controller serving 10,000 machines, each re-attesting:
 *   distinct links per machine: 8 GPUs x 2 (AK leaf -> BROM, BROM -> ICA) + 1 (VCEK -> ASK) = 17
 *   (ICA -> Identity, ASK -> ARK, the RIM signer chains and the roots are shared by the fleet);
 *   17 x 10,000 = 170,000 links -> 2^18 = 262,144 entries (headroom for certificates rotating).
 *   An entry is its key (64 + 1 + 64 hex characters) plus LINK_ENTRY_BYTES for the Map slot, the
 *   entry object and the string header (V8, 64-bit): ~210 bytes, so 262,144 entries ~ 52 MiB,
 *   the byte cap. Least recently used first; it only fills with what the process verifies, so the
 *   daemon (a handful of chains) never holds more than a few kilobytes.
 */
export const LINK_ENTRY_BYTES = 80;
export const LINK_CACHE_LIMITS = { maxEntries: 262_144, maxBytes: 262_144 * (129 + LINK_ENTRY_BYTES) } as const;
const linkCache = new BoundedCache<boolean>(LINK_CACHE_LIMITS);

/** Is `child` issued by `issuer`: its issuer Name equals the issuer's subject and the issuer's key signed it? */
export function isIssuedBy(child: Certificate, issuer: Certificate): boolean {
  const key = `${child.sha256}:${issuer.sha256}`;
  const hit = linkCache.get(key);
  if (hit !== undefined) return hit;
  let ok = bytesEqual(child.issuerDer, issuer.subjectDer);
  if (ok) {
    try {
      ok = verifyCertSignature(child, issuer.publicKey);
    } catch {
      ok = false; // an unusable issuer key signs nothing
    }
  }
  linkCache.set(key, ok, LINK_ENTRY_BYTES);
  return ok;
}
