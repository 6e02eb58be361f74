/**
 * The RIM signing chain (agent/verify/nvidia/rim/rim-signer-chain.ts) link by link against OpenSSL:
 * every combination of the issuer's basicConstraints and keyUsage, the child's authorityKeyIdentifier,
 * issuer Name and signing key, and the leaf's keyUsage, built with the simulation's X.509 builder, gives
 * the same rim.chain verdict as node:crypto X509Certificate (X509_check_ca, X509_check_issued,
 * X509_verify) with the leaf's digitalSignature rule. The chain reads certificates with our own parser,
 * so this is what shows it refuses everything OpenSSL's issued-by check refuses; and it still requires
 * OpenSSL to read every KeyInfo certificate, as the chain did when it was built on X509Certificate.
 */
import { X509Certificate, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseRim, verifyRimChain, verifyRimSignature } from '../../../../../agent/verify/nvidia/rim/index.js';
import { vector } from '../../../../helpers/paths.js';
import {
  authorityKeyIdentifier,
  basicConstraints,
  buildCertificate,
  keyUsage,
  subjectKeyIdentifier,
  type ExtensionSpec,
  type KeyUsageName,
  type NameSpec,
} from '../../../../../agent/simulation/x509-builder.js';

const p384 = (): KeyObject => generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).privateKey;
/** The public half of a private key. */
const pub = (k: KeyObject): KeyObject => createPublicKey(k);

const rootKey = p384();
const intKey = p384();
const leafKey = p384();
const otherKey = p384();
const ROOT: NameSpec = { CN: 'Test RIM Root CA', O: 'Test' };
const INT: NameSpec = { CN: 'Test RIM CA', O: 'Test' };
const LEAF: NameSpec = { CN: 'Test RIM Signer', O: 'Test' };
const ROOT_ID = Buffer.alloc(20, 0xa1);
const INT_ID = Buffer.alloc(20, 0xb2);
const notBefore = new Date('2024-01-01T00:00:00Z');
const notAfter = new Date('2030-01-01T00:00:00Z');
const at = new Date('2025-01-01T00:00:00Z');

/** The self-signed test root, a CA with these key usages. */
const rootWith = (usages: Parameters<typeof keyUsage>[0]) =>
  buildCertificate({
    serial: 1,
    issuer: ROOT,
    subject: ROOT,
    notBefore,
    notAfter,
    subjectPublicKey: pub(rootKey),
    issuerKey: rootKey,
    signature: 'ecdsa-sha384',
    extensions: [basicConstraints({ ca: true }), keyUsage(usages), subjectKeyIdentifier(ROOT_ID)],
  });
const root = rootWith(['keyCertSign', 'cRLSign']);
const rootX = new X509Certificate(root);

interface Variant {
  intCa: 'ca' | 'not-ca' | 'absent';
  intKu: KeyUsageName[] | undefined;
  akid: 'absent' | 'match' | 'mismatch';
  leafIssuer: 'right' | 'wrong';
  signer: 'int' | 'other';
  leafKu: KeyUsageName[] | undefined;
}

function build(v: Variant): Buffer[] {
  const intExt: ExtensionSpec[] = [subjectKeyIdentifier(INT_ID), authorityKeyIdentifier(ROOT_ID)];
  if (v.intCa !== 'absent') intExt.push(basicConstraints({ ca: v.intCa === 'ca' }));
  if (v.intKu) intExt.push(keyUsage(v.intKu));
  const int = buildCertificate({
    serial: 2,
    issuer: ROOT,
    subject: INT,
    notBefore,
    notAfter,
    subjectPublicKey: pub(intKey),
    issuerKey: rootKey,
    signature: 'ecdsa-sha384',
    extensions: intExt,
  });
  const leafExt: ExtensionSpec[] = [basicConstraints({ ca: false })];
  if (v.akid !== 'absent') leafExt.push(authorityKeyIdentifier(v.akid === 'match' ? INT_ID : Buffer.alloc(20, 0xee)));
  if (v.leafKu) leafExt.push(keyUsage(v.leafKu));
  const leaf = buildCertificate({
    serial: 3,
    issuer: v.leafIssuer === 'right' ? INT : { CN: 'Someone Else', O: 'Test' },
    subject: LEAF,
    notBefore,
    notAfter,
    subjectPublicKey: pub(leafKey),
    issuerKey: v.signer === 'int' ? intKey : otherKey,
    signature: 'ecdsa-sha384',
    extensions: leafExt,
  });
  return [leaf, int];
}

/**
 * The verdict of the previous OpenSSL-based chain: the leaf may sign (RFC 5280 §4.2.1.3, read from the
 * variant: node:crypto does not expose keyUsage), each issuer is a CA, checkIssued and verify.
 */
function openssl([leafDer, intDer]: Buffer[], leafKu: KeyUsageName[] | undefined): boolean {
  const leaf = new X509Certificate(leafDer!);
  const int = new X509Certificate(intDer!);
  if (leafKu !== undefined && !leafKu.includes('digitalSignature')) return false;
  const link = (child: X509Certificate, parent: X509Certificate) => parent.ca && child.checkIssued(parent) && child.verify(parent.publicKey);
  return link(leaf, int) && link(int, rootX);
}

const variants: Variant[] = [];
for (const intCa of ['ca', 'not-ca', 'absent'] as const)
  for (const intKu of [undefined, ['keyCertSign'], ['digitalSignature']] as (KeyUsageName[] | undefined)[])
    for (const akid of ['absent', 'match', 'mismatch'] as const)
      for (const leafIssuer of ['right', 'wrong'] as const)
        for (const signer of ['int', 'other'] as const)
          for (const leafKu of [undefined, ['digitalSignature'], ['keyCertSign']] as (KeyUsageName[] | undefined)[])
            variants.push({ intCa, intKu, akid, leafIssuer, signer, leafKu });

describe('verifyRimChain agrees with OpenSSL on every link variant', () => {
  it(`${variants.length} variants: same rim.chain verdict, and the genuine shape passes`, () => {
    let passed = 0;
    for (const v of variants) {
      const certs = build(v);
      const r = verifyRimChain(certs, [{ der: root, label: 'test root' }], at);
      const expected = openssl(certs, v.leafKu);
      expect({ v, ok: r.checks[0]!.ok }, r.checks[0]!.detail).toEqual({ v, ok: expected });
      expect(r.leafKey !== undefined).toBe(expected);
      if (expected) passed++;
    }
    // Not vacuous: some variants pass (the genuine shape among them) and most fail.
    expect(passed).toBeGreaterThan(0);
    expect(passed).toBeLessThan(variants.length / 4);
  });

  it('a root without keyCertSign in its keyUsage is no anchor', () => {
    const noSign = rootWith(['cRLSign']);
    const certs = build({ intCa: 'ca', intKu: ['keyCertSign'], akid: 'match', leafIssuer: 'right', signer: 'int', leafKu: ['digitalSignature'] });
    expect(verifyRimChain(certs, [{ der: root, label: 'test root' }], at).checks[0]!.ok).toBe(true);
    const r = verifyRimChain(certs, [{ der: noSign, label: 'test root' }], at);
    expect(r.checks[0]).toMatchObject({ name: 'rim.chain', ok: false });
    expect(r.checks[0]!.detail).toMatch(/not signed by test root/);
  });
});

describe('every KeyInfo certificate must also be one OpenSSL reads', () => {
  const xml = vector('nvidia/nvtrust/hopper-545-complete/Driver_RIM_test_no_gpu.swidtag').toString('utf8');
  const at2 = new Date('2024-06-01T00:00:00Z');
  const ders = parseRim(xml).signerCerts;
  /** The CN "NVIDIA ..." turned into invalid UTF-8 wherever it occurs: our DER reader takes it, OpenSSL refuses the certificate. */
  const unreadable = (der: Buffer, cn: string): Buffer => {
    const hex = Buffer.from(cn).toString('hex');
    const out = Buffer.from(
      der
        .toString('hex')
        .split(hex)
        .join(`ff${hex.slice(2)}`),
      'hex',
    );
    expect(out.equals(der)).toBe(false);
    expect(() => new X509Certificate(out)).toThrow();
    return out;
  };
  const texts = [...xml.matchAll(/<ds:X509Certificate>([^<]+)<\/ds:X509Certificate>/g)].map((m) => m[1]!);
  /** The XML with KeyInfo certificate `i` replaced. */
  const replaceCert = (i: number, by: Buffer): string => xml.replace(texts[i]!, by.toString('base64'));

  it('the genuine KeyInfo chain (root byte-equal to the pinned root) passes', () => {
    expect(texts).toHaveLength(4);
    const c = verifyRimSignature(xml, { at: at2 });
    expect(c.every((x) => x.ok)).toBe(true);
  });

  it('an ignored self-issued root that OpenSSL cannot read fails rim.chain, as before', () => {
    const bad = unreadable(ders[3]!, 'NVIDIA CoRIM signing Root CA');
    const c = Object.fromEntries(verifyRimSignature(replaceCert(3, bad), { at: at2 }).map((x) => [x.name, x]));
    expect(c['rim.chain']).toMatchObject({ ok: false });
    expect(c['rim.chain']!.detail).toMatch(/not a valid X\.509 certificate/);
    expect(c['rim.signature.value']!.ok).toBe(true);
  });

  it('a signer certificate OpenSSL cannot read fails rim.signature.value and rim.chain', () => {
    const bad = unreadable(ders[0]!, 'NVIDIA Reference Value L3 GH100 001');
    const c = Object.fromEntries(verifyRimSignature(replaceCert(0, bad), { at: at2 }).map((x) => [x.name, x]));
    expect(c['rim.signature.value']).toMatchObject({ ok: false, detail: 'no readable signer certificate in KeyInfo' });
    expect(c['rim.chain']!.ok).toBe(false);
  });
});
