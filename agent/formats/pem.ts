/**
 * PEM certificate blocks (RFC 7468 section 5): the text framing shared by collectors, collateral and
 * verifiers. Pure; no certificate parsing here.
 */
const PEM_RE = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]*?)-----END CERTIFICATE-----/g;

/** All CERTIFICATE blocks of a PEM text (other block types are ignored). */
export function pemCertificates(text: string): Buffer[] {
  const out: Buffer[] = [];
  for (const m of text.matchAll(PEM_RE)) out.push(Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64'));
  return out;
}
