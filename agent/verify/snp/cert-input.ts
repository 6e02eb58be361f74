/**
 * Certificates supplied with the evidence: decode the container (PEM, DER, or a GHCB certificate
 * table, GHCB #56421 rev 2.03 §4.1.8.1), parse each certificate once, and sort them into roles by subject CN
 * (AMD names: SEV-VCEK, SEV-VLEK, SEV-<P> (ASK), SEV-VLEK-<P> (ASVK), ARK-<P>; go-sev-guest verify/verify.go).
 * A role is only a label: nothing supplied here is trusted until chain.ts matches it to pinned roots.
 */
import { ParseError } from '../../errors.js';
import { parseDer } from '../../util/der.js';
import { parseCertTable } from '../../formats/snp-abi/index.js';
import { parseCertificate, type Certificate } from '../../formats/x509/certificate.js';
import { pemBlocks } from '../../util/pem.js';

export type CertRole = 'vcek' | 'vlek' | 'ask' | 'asvk' | 'ark' | 'unknown';

export interface SuppliedCert {
  role: CertRole;
  /** Product named by the CN for ASK/ASVK/ARK ("Milan" from "SEV-Milan"). */
  productName?: string;
  cert: Certificate;
}

export function roleOf(cert: Certificate): { role: CertRole; productName?: string } {
  const cn = cert.subjectCn;
  if (cn === 'SEV-VCEK') return { role: 'vcek' };
  if (cn === 'SEV-VLEK') return { role: 'vlek' };
  let m = /^SEV-VLEK-([A-Za-z]+)$/.exec(cn);
  if (m) return { role: 'asvk', productName: m[1]! };
  m = /^ARK-([A-Za-z]+)$/.exec(cn);
  if (m) return { role: 'ark', productName: m[1]! };
  m = /^SEV-([A-Za-z]+)$/.exec(cn);
  if (m) return { role: 'ask', productName: m[1]! };
  // Not an AMD name: an EC leaf is still usable as the endorsement key candidate.
  return { role: 'unknown' };
}

/** Parse and classify DER certificates. Malformed DER is a ParseError naming the position. */
export function classifyCertificates(ders: readonly Uint8Array[]): SuppliedCert[] {
  return ders.map((der, i) => {
    let cert: Certificate;
    try {
      cert = parseCertificate(der);
    } catch (err) {
      if (err instanceof ParseError) throw new ParseError(`certificate #${i + 1}: ${err.message}`, err.offset, { cause: err });
      throw err;
    }
    return { ...roleOf(cert), cert };
  });
}

/**
 * Certificates from one file: PEM (one or more), a single DER certificate, or a GHCB certificate
 * table (the `certs` blob of SNP_GET_EXT_REPORT / configfs-tsm auxblob). Returns DER certificates.
 */
export function certificatesFromBytes(bytes: Uint8Array, what = 'certificate file'): Uint8Array[] {
  const head = Buffer.from(bytes.subarray(0, Math.min(bytes.length, 64)))
    .toString('latin1')
    .trimStart();
  if (head.startsWith('-----BEGIN')) {
    const certs = pemBlocks(Buffer.from(bytes).toString('latin1'));
    if (certs.length === 0) throw new ParseError(`${what}: PEM without any CERTIFICATE block`);
    return certs;
  }
  if (bytes.length === 0) throw new ParseError(`${what}: empty`);
  if (bytes[0] === 0x30) {
    try {
      parseDer(bytes);
      return [bytes];
    } catch {
      // not a single DER object: maybe a certificate table whose first GUID byte is 0x30
    }
  }
  let entries;
  try {
    entries = parseCertTable(bytes);
  } catch (err) {
    throw new ParseError(`${what}: neither PEM, DER nor a GHCB certificate table (${(err as Error).message})`, undefined, { cause: err });
  }
  const certs = entries.filter((e) => e.kind === 'vcek' || e.kind === 'vlek' || e.kind === 'ask' || e.kind === 'asvk' || e.kind === 'ark').map((e) => e.data);
  if (certs.length === 0) throw new ParseError(`${what}: certificate table holds no VCEK/VLEK/ASK/ARK entries`);
  return certs;
}
