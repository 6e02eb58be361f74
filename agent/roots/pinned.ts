/**
 * Embedded trust anchors: a PEM compiled into the package plus the SHA-256 of its DER. The digest is
 * asserted when the PEM is first parsed, so a corrupted or edited embed fails loudly instead of
 * silently pinning something else. Each root module keeps its own constants and error wording.
 */
import { X509Certificate, createHash } from 'node:crypto';
import { CvmError } from '../errors.js';

export interface PinnedCert {
  der: Buffer;
  x509: X509Certificate;
  /** lower-case hex SHA-256 of the DER. */
  sha256: string;
}

/** Parse an embedded PEM and check its DER's SHA-256; a mismatch throws what `mismatch(got)` builds. */
export function loadPinnedPem(pem: string, expectedSha256: string, mismatch: (got: string) => Error): PinnedCert {
  const x509 = new X509Certificate(pem);
  const der = x509.raw;
  const sha256 = createHash('sha256').update(der).digest('hex');
  if (sha256 !== expectedSha256) throw mismatch(sha256);
  return { der, x509, sha256 };
}

/**
 * A lazily parsed, cached pinned root. A digest mismatch throws CvmError ERR_PINNED_ROOT
 * ("embedded <name> has SHA-256 …") on every call; nothing is cached until the check passes.
 */
export function lazyPinnedRoot(name: string, pem: string, expectedSha256: string): () => { der: Buffer; x509: X509Certificate } {
  let cached: { der: Buffer; x509: X509Certificate } | undefined;
  return () => {
    if (cached) return cached;
    const { der, x509 } = loadPinnedPem(
      pem,
      expectedSha256,
      (got) => new CvmError('ERR_PINNED_ROOT', `embedded ${name} has SHA-256 ${got}, expected ${expectedSha256}`),
    );
    cached = { der, x509 };
    return cached;
  };
}
