/**
 * GPU device certificate chains (NVML attestationCertChain: PEM, leaf first, 5 certs:
 * AK leaf "GH100 A01 GSP FMC LF" → "GSP BROM" → Provisioner ICA → "GH100 Identity" → root;
 * reference/nvidia-gpu.md §2.1 step 3, §4.3). Pure: certificates + pinned root + time in, checks out.
 * As nvtrust and the C++ SDK do, the root the device sends is dropped and the pinned root appended
 * (§8 item 5); exactly 5 certificates are required (cc_admin_utils.py MAX_CERT_CHAIN_LENGTH).
 * Signature results are memoised by certificate hash: they are pure, so repeated verification is cheap.
 */
import { X509Certificate, createHash, type KeyObject } from 'node:crypto';
import { ParseError } from '../../errors.js';
import { fail, pass, type Check } from '../../formats/checks.js';
import {
  childrenAtLeast,
  decodeInteger,
  decodeTime,
  encodedOf,
  expectTag,
  parseDer,
  TAG,
  valueOf,
  certificateExtensions,
  children,
  decodeBitString,
} from '../../util/der.js';
import { pemBlocksStrict } from '../../util/pem.js';
import { BoundedCache } from '../../util/bounded-cache.js';
import { MAX_GPU_CHAIN_PEM_LENGTH } from '../../formats/gpu-evidence.js';

/** Device chains are 5 long on Hopper and Blackwell (MAX_CERT_CHAIN_LENGTH = 5). */
export const GPU_CHAIN_LENGTH = 5;
/** The chain text bound of the GPU evidence record (formats/gpu-evidence.ts). */
export const MAX_CHAIN_PEM_LENGTH = MAX_GPU_CHAIN_PEM_LENGTH;
const MAX_CERTS = 16;

export interface ParsedCert {
  der: Buffer;
  sha256: string;
  x509: X509Certificate;
  publicKey: KeyObject;
  serial: bigint;
  /** Encoded Name (SEQUENCE) of issuer and subject, for OCSP CertID and name chaining. */
  issuerDer: Uint8Array;
  subjectDer: Uint8Array;
  /** subjectPublicKey BIT STRING contents (OCSP issuerKeyHash input). */
  publicKeyBits: Uint8Array;
  notBefore: Date;
  notAfter: Date;
  subject: string;
  /** Common name, for messages. */
  cn: string;
  extensions: Map<string, { critical: boolean; value: Uint8Array }>;
  isCa: boolean;
}

// Bounded in bytes: a parsed certificate keeps its DER plus decoded fields (counted as twice the DER).
const certCache = new BoundedCache<ParsedCert>({ maxEntries: 4096, maxBytes: 16 * 1024 * 1024 });

/** Parse one DER certificate (strict DER walk for the fields, node:crypto for keys/signatures). */
export function parseCertificate(der: Uint8Array): ParsedCert {
  const key = createHash('sha256').update(der).digest('hex');
  const hit = certCache.get(key);
  if (hit) return hit;
  const cert = expectTag(parseDer(der), TAG.SEQUENCE, 'Certificate');
  const [tbs] = childrenAtLeast(cert, 3, 'Certificate');
  const f = childrenAtLeast(expectTag(tbs!, TAG.SEQUENCE, 'TBSCertificate'), 6, 'TBSCertificate');
  const o = f[0]!.tag === 0xa0 ? 1 : 0; // [0] EXPLICIT version is optional
  if (f.length < 6 + o) throw new ParseError('certificate: TBSCertificate too short', tbs!.start);
  const serial = decodeInteger(f[o]!);
  const issuer = expectTag(f[o + 2]!, TAG.SEQUENCE, 'issuer');
  const validity = childrenAtLeast(expectTag(f[o + 3]!, TAG.SEQUENCE, 'validity'), 2, 'validity');
  const subject = expectTag(f[o + 4]!, TAG.SEQUENCE, 'subject');
  const spki = childrenAtLeast(expectTag(f[o + 5]!, TAG.SEQUENCE, 'subjectPublicKeyInfo'), 2, 'subjectPublicKeyInfo');
  const publicKeyBits = decodeBitString(spki[1]!);
  const extensions = certificateExtensions(der);
  let x509: X509Certificate;
  let publicKey: KeyObject;
  try {
    x509 = new X509Certificate(Buffer.from(der));
    publicKey = x509.publicKey; // OpenSSL decodes the key lazily; a bad key throws here
  } catch (err) {
    throw new ParseError(`certificate: ${(err as Error).message}`, 0, { cause: err });
  }
  const parsed: ParsedCert = {
    der: Buffer.from(der),
    sha256: key,
    x509,
    publicKey,
    serial,
    issuerDer: encodedOf(issuer),
    subjectDer: encodedOf(subject),
    publicKeyBits,
    notBefore: decodeTime(validity[0]!),
    notAfter: decodeTime(validity[1]!),
    subject: x509.subject.replace(/\n/g, ', '),
    cn: /(?:^|\n)CN=([^\n]*)/.exec(x509.subject)?.[1] ?? x509.subject.replace(/\n/g, ', '),
    extensions,
    isCa: basicConstraintsCa(extensions),
  };
  certCache.set(key, parsed, 2 * der.byteLength);
  return parsed;
}

/** basicConstraints (2.5.29.19) cA flag; absent extension = not a CA. */
function basicConstraintsCa(ext: Map<string, { value: Uint8Array }>): boolean {
  const bc = ext.get('2.5.29.19');
  if (!bc) return false;
  const seq = expectTag(parseDer(bc.value), TAG.SEQUENCE, 'BasicConstraints');
  const first = children(seq)[0];
  return first !== undefined && first.tag === TAG.BOOLEAN && valueOf(first)[0] !== 0;
}

/** Split PEM text into DER certificates; anything but whitespace/NULs between blocks is an error. */
export function splitPemCertificates(pem: string): Buffer[] {
  if (pem.length > MAX_CHAIN_PEM_LENGTH) throw new ParseError(`certificate chain: ${pem.length} characters exceeds ${MAX_CHAIN_PEM_LENGTH}`);
  return pemBlocksStrict(pem, 'CERTIFICATE', { what: 'certificate chain', noun: 'certificates', maxBlocks: MAX_CERTS });
}

const chainCache = new BoundedCache<ParsedCert[]>({ maxEntries: 1024, maxBytes: 16 * 1024 * 1024 });

/** Parse a PEM chain (memoised by its text). */
export function parsePemChain(pem: string): ParsedCert[] {
  const hit = chainCache.get(pem);
  if (hit) return hit;
  const certs = splitPemCertificates(pem).map((der, i) => {
    try {
      return parseCertificate(der);
    } catch (err) {
      if (err instanceof ParseError) throw new ParseError(`certificate ${i} in the chain: ${err.message}`, undefined, { cause: err });
      throw err;
    }
  });
  // The certificates themselves are counted by certCache; here the PEM key and the array.
  chainCache.set(pem, certs, 64 * certs.length);
  return certs;
}

const linkCache = new BoundedCache<boolean>({ maxEntries: 4096, maxBytes: 1024 * 1024 });

/** Is `child` signed by `issuer`'s key with matching names? Memoised (pure). */
export function isIssuedBy(child: ParsedCert, issuer: ParsedCert): boolean {
  const key = `${child.sha256}:${issuer.sha256}`;
  const hit = linkCache.get(key);
  if (hit !== undefined) return hit;
  let ok = Buffer.compare(Buffer.from(child.issuerDer), Buffer.from(issuer.subjectDer)) === 0;
  if (ok) {
    try {
      ok = child.x509.verify(issuer.publicKey);
    } catch {
      ok = false;
    }
  }
  linkCache.set(key, ok, 8);
  return ok;
}

function validAt(c: ParsedCert, at: Date): boolean {
  return c.notBefore.getTime() <= at.getTime() && at.getTime() <= c.notAfter.getTime();
}

export interface ChainResult {
  /** gpu.chain: length, links among the supplied certificates, CA flags, validity at `at`. */
  chain: Check;
  /** gpu.chain.root: the chain ends in the pinned root. */
  root: Check;
  /** The certificates as verified: supplied certs minus the supplied root, plus the pinned root. */
  verified: ParsedCert[];
  /** Earliest notAfter over the chain (claims: cert expiration). */
  earliestNotAfter?: Date;
}

/**
 * Verify a device chain against a pinned root at time `at`.
 * `rootName` names the anchor in messages ("NVIDIA Device Identity CA" or the simulated one).
 */
export function verifyDeviceChain(certs: ParsedCert[], pinnedRoot: ParsedCert, at: Date, rootName: string, expectedLength = GPU_CHAIN_LENGTH): ChainResult {
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
      ? pass('gpu.chain', `${certs.length} certificates, every link verifies and is valid at ${at.toISOString()}; leaf ${supplied[0]?.cn ?? '?'}`)
      : fail('gpu.chain', `device certificate chain invalid: ${problems.join('; ')}`);

  const top = supplied[supplied.length - 1];
  let root: Check;
  if (!top) root = fail('gpu.chain.root', 'no certificates to anchor');
  else if (suppliedRoot && suppliedRoot.sha256 !== pinnedRoot.sha256) {
    root = fail(
      'gpu.chain.root',
      `the chain ends in "${suppliedRoot.subject}" (SHA-256 ${suppliedRoot.sha256}), not the pinned ${rootName} (${pinnedRoot.sha256})`,
    );
  } else if (!isIssuedBy(top, pinnedRoot)) {
    root = fail('gpu.chain.root', `certificate ${supplied.length - 1} (${top.cn}) is not signed by the pinned ${rootName}`);
  } else {
    root = pass('gpu.chain.root', `anchored in the pinned ${rootName} (SHA-256 ${pinnedRoot.sha256})`);
  }
  return { chain, root, verified, ...(earliest ? { earliestNotAfter: earliest } : {}) };
}
