import { X509Certificate } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ParseError } from '../../../../../agent/errors.js';
import { NVIDIA_RIM_ROOT_SHA256, nvidiaRimRoot } from '../../../../../agent/roots/nvidia-rim.js';
import type { Check } from '../../../../../agent/formats/checks.js';
import { parseRim, verifyRim, verifyRimChain, verifyRimSignature } from '../../../../../agent/verify/nvidia/rim/index.js';
import { vector, vectorsDir } from '../../../../helpers/paths.js';

interface IndexEntry {
  sha256: string;
  rim?: {
    colloquialVersion: string;
    active: number;
    x509_in_keyinfo: number;
    signer_cert: { subject: string; not_before: string; not_after: string };
    keyinfo_chain_links_verify: boolean;
    xmldsig_digest_ok: boolean;
    xmldsig_signature_ok: boolean;
  };
}
const index = JSON.parse(vector('nvidia/index.json').toString('utf8')) as { files: Record<string, IndexEntry> };
const rimInfo = (rel: string) => index.files[rel]!.rim!;
const text = (rel: string): string => vector(`nvidia/${rel}`).toString('utf8');
const pemToDer = (pem: string): Buffer => new X509Certificate(pem).raw;
const DAY = 86_400_000;

/** Times inside / after the signer's validity, taken from index.json (independently computed). */
function signerWindow(rel: string): { inside: Date; after: Date } {
  const s = rimInfo(rel).signer_cert;
  return { inside: new Date(Date.parse(s.not_before.replace(' ', 'T')) + DAY), after: new Date(Date.parse(s.not_after.replace(' ', 'T')) + DAY) };
}

function byName(checks: Check[]): Record<string, Check> {
  return Object.fromEntries(checks.map((c) => [c.name, c]));
}
const NAMES = ['rim.schema', 'rim.signature.reference', 'rim.signature.value', 'rim.chain', 'rim.chain.validity'];

const VBIOS = readdirSync(join(vectorsDir, 'nvidia/nvtrust/rims-vbios-samples'))
  .filter((f) => f.endsWith('.swidtag'))
  .sort()
  .map((f) => `nvtrust/rims-vbios-samples/${f}`);
const GENUINE = [
  ...VBIOS,
  'nvtrust/hopper-545-complete/Driver_RIM_test_no_gpu.swidtag',
  'nvtrust/hopper-545-complete/1010_0200_882_96005E0001_test_no_gpu.swidtag',
  'attestation-sdk/rims/NV_GPU_DRIVER_GH100_550.144.03.xml',
  'attestation-sdk/negative/NV_GPU_VBIOS_1010_0200_882_96005E0001_measurement_mismatch.xml',
];

describe('pinned NVIDIA CoRIM signing root', () => {
  it('is the nvtrust/attestation-sdk root, checked by SHA-256 at load', () => {
    const root = nvidiaRimRoot();
    expect(NVIDIA_RIM_ROOT_SHA256).toBe('12977b5115acb0381179279fffeb5a8c4d264971ebb32298023a465fa41df5d1');
    expect(root.der.equals(pemToDer(text('nvtrust/roots/verifier_RIM_root.pem')))).toBe(true);
    expect(root.x509.subject).toContain('CN=NVIDIA CoRIM signing Root CA');
  });
});

describe('genuine NVIDIA RIMs verify at a pinned time inside their signer validity', () => {
  it('there are 24 VBIOS samples', () => expect(VBIOS).toHaveLength(24));

  it.each(GENUINE)('%s', (rel) => {
    const { inside } = signerWindow(rel);
    const checks = verifyRimSignature(text(rel), { at: inside });
    expect(checks.map((c) => c.name)).toEqual(NAMES);
    for (const c of checks) expect(c, c.detail).toMatchObject({ ok: true });
    expect(byName(checks)['rim.chain']!.detail).toContain('pinned NVIDIA CoRIM signing Root CA');
  });

  it.each(GENUINE)('%s fails rim.chain.validity the day after its signer expired', (rel) => {
    const { after } = signerWindow(rel);
    const c = byName(verifyRimSignature(text(rel), { at: after }));
    expect(c['rim.chain.validity']!.ok).toBe(false);
    expect(c['rim.chain.validity']!.detail).toMatch(/expired/);
    // Everything else still holds: the failure is specific.
    expect(c['rim.signature.reference']!.ok && c['rim.signature.value']!.ok && c['rim.chain']!.ok).toBe(true);
  });

  it('fails validity before the signer was issued', () => {
    const c = byName(verifyRimSignature(text('attestation-sdk/rims/NV_GPU_DRIVER_GH100_550.144.03.xml'), { at: new Date('2024-06-01T00:00:00Z') }));
    expect(c['rim.chain.validity']).toMatchObject({ ok: false });
    expect(c['rim.chain.validity']!.detail).toMatch(/not yet valid/);
  });

  it('an invalid verification time fails closed', () => {
    const c = byName(verifyRimSignature(text('attestation-sdk/rims/NV_GPU_DRIVER_GH100_550.144.03.xml'), { at: new Date('not a date') }));
    expect(c['rim.chain.validity']).toMatchObject({ ok: false });
  });

  it('verifyRim parses once and returns the model with the checks', () => {
    const rel = 'attestation-sdk/rims/NV_GPU_DRIVER_GH100_550.144.03.xml';
    const { checks, rim } = verifyRim(text(rel), { at: new Date('2026-01-15T00:00:00Z') });
    expect(checks.every((c) => c.ok)).toBe(true);
    expect(rim?.colloquialVersion).toBe('550.144.03');
  });
});

describe('negative RIM vectors (attestation-sdk/negative)', () => {
  it('incorrect_signature_driver_rim.xml: digest fine, SignatureValue does not verify', () => {
    const rel = 'attestation-sdk/negative/incorrect_signature_driver_rim.xml';
    expect(rimInfo(rel)).toMatchObject({ xmldsig_digest_ok: true, xmldsig_signature_ok: false });
    const c = byName(verifyRimSignature(text(rel), { at: signerWindow(rel).inside }));
    expect(c['rim.signature.reference']!.ok).toBe(true);
    expect(c['rim.signature.value']!.ok).toBe(false);
    expect(c['rim.chain']!.ok).toBe(true);
  });

  it('incorrect_cert_chain_driver_rim.xml: XML-DSig verifies, the 2-cert KeyInfo does not reach the pinned root', () => {
    const rel = 'attestation-sdk/negative/incorrect_cert_chain_driver_rim.xml';
    expect(rimInfo(rel).x509_in_keyinfo).toBe(2);
    const c = byName(verifyRimSignature(text(rel), { at: signerWindow(rel).inside }));
    expect(c['rim.signature.reference']!.ok).toBe(true);
    expect(c['rim.signature.value']!.ok).toBe(true);
    expect(c['rim.chain']!.ok).toBe(false);
    expect(c['rim.chain']!.detail).toMatch(/not signed by pinned NVIDIA CoRIM signing Root CA/);
  });

  it('incorrect_rim_root.crt as the only anchor: a genuine chain fails', () => {
    const wrongRoot = pemToDer(text('attestation-sdk/negative/incorrect_rim_root.crt'));
    const certs = parseRim(text('attestation-sdk/rims/NV_GPU_DRIVER_GH100_550.144.03.xml')).signerCerts;
    const r = verifyRimChain(certs, [{ der: wrongRoot, label: 'incorrect root' }], new Date('2026-01-15T00:00:00Z'));
    expect(r.checks[0]).toMatchObject({ name: 'rim.chain', ok: false });
    expect(r.leafKey).toBeUndefined();
    // The same chain with the pinned root passes, so the failure is the root's.
    expect(verifyRimChain(certs, [{ der: nvidiaRimRoot().der, label: 'pinned' }], new Date('2026-01-15T00:00:00Z')).checks[0]!.ok).toBe(true);
  });

  it('an overlong KeyInfo list is refused before any certificate work', () => {
    const certs = parseRim(text('attestation-sdk/rims/NV_GPU_DRIVER_GH100_550.144.03.xml')).signerCerts;
    const r = verifyRimChain(
      Array.from({ length: 9 }, () => certs[0]!),
      [{ der: nvidiaRimRoot().der, label: 'pinned' }],
      new Date('2026-01-15T00:00:00Z'),
    );
    expect(r.checks[0]!.detail).toMatch(/at most 8/);
    expect(r.checks.every((c) => !c.ok)).toBe(true);
  });

  it('incorrect_rim_root.crt as an extra root does not rescue the broken chain (it is the leaf, not a CA)', () => {
    const wrongRoot = pemToDer(text('attestation-sdk/negative/incorrect_rim_root.crt'));
    const rel = 'attestation-sdk/negative/incorrect_cert_chain_driver_rim.xml';
    const c = byName(verifyRimSignature(text(rel), { at: signerWindow(rel).inside, extraRoots: [wrongRoot] }));
    expect(c['rim.chain']!.ok).toBe(false);
  });

  it('*_measurement_mismatch (driver, edited after signing): the Reference digest fails, the signature over SignedInfo holds', () => {
    const rel = 'attestation-sdk/negative/NV_GPU_DRIVER_GH100_535.86.09_measurement_mismatch.xml';
    expect(rimInfo(rel)).toMatchObject({ xmldsig_digest_ok: false, xmldsig_signature_ok: true });
    const c = byName(verifyRimSignature(text(rel), { at: signerWindow(rel).inside }));
    expect(c['rim.signature.reference']!.ok).toBe(false);
    expect(c['rim.signature.reference']!.detail).toMatch(/modified after signing/);
    expect(c['rim.signature.value']!.ok).toBe(true);
  });

  it('*_expired.xml: validity fails (signer valid one day, 2025-01-01) and the edited content fails the digest', () => {
    const rel = 'attestation-sdk/negative/NV_GPU_DRIVER_GH100_570.124.03_expired.xml';
    const c = byName(verifyRimSignature(text(rel), { at: new Date('2025-06-01T00:00:00Z') }));
    expect(c['rim.chain.validity']!.ok).toBe(false);
    expect(c['rim.chain.validity']!.detail).toMatch(/RIM L4 Signer.*expired: valid 2025-01-01T00:00:00Z to 2025-01-02T00:00:00Z/);
    expect(c['rim.signature.reference']!.ok).toBe(false);
    expect(c['rim.chain']!.ok).toBe(true);
  });
});

describe('tampering', () => {
  const rel = 'nvtrust/hopper-545-complete/Driver_RIM_test_no_gpu.swidtag';
  const xml = text(rel);
  const at = new Date('2024-06-01T00:00:00Z');
  const sigStart = xml.indexOf('<ds:Signature');

  it('any single alphanumeric change inside the signed content breaks the reference digest (or the parse)', () => {
    const positions = [...xml.slice(0, sigStart)].flatMap((ch, i) => (/[A-Za-z0-9]/.test(ch) ? [i] : []));
    const alnum = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
    fc.assert(
      fc.property(fc.constantFrom(...positions), fc.nat(alnum.length - 2), (pos, k) => {
        const orig = xml[pos]!;
        const repl = alnum.replace(orig, '')[k]!;
        const mutated = xml.slice(0, pos) + repl + xml.slice(pos + 1);
        let checks: Check[];
        try {
          checks = verifyRimSignature(mutated, { at });
        } catch (e) {
          if (e instanceof ParseError) return; // no longer well-formed: also rejected
          throw e;
        }
        const c = byName(checks);
        expect(checks.some((x) => !x.ok)).toBe(true);
        // Changing the namespace-free structure can also break the schema, but the digest always breaks.
        expect(c['rim.signature.reference']!.ok).toBe(false);
      }),
      { numRuns: 300 },
    );
  });

  it('changing a measurement digest is detected', () => {
    const hash = '0e0ee161b59bf124ce6b6dca6efa7616d28077862c0e57dca7d5efd63d00eeed4851922941e846a38c464cbedbc168d9';
    const mutated = xml.replace(hash, hash.replace(/^0e/, '0f'));
    expect(mutated).not.toBe(xml);
    expect(byName(verifyRimSignature(mutated, { at }))['rim.signature.reference']!.ok).toBe(false);
  });

  it('canonically equivalent changes (attribute whitespace, quote style) keep the digest', () => {
    const mutated = xml.replace('corpus="false" name="GH100"', 'corpus=\'false\'\n   name="GH100"');
    expect(mutated).not.toBe(xml);
    expect(verifyRimSignature(mutated, { at }).every((c) => c.ok)).toBe(true);
  });

  it('changing SignedInfo breaks the signature value', () => {
    const mutated = xml.replace('<ds:Reference URI="">', '<ds:Reference URI="" Id="x">');
    const c = byName(verifyRimSignature(mutated, { at }));
    expect(c['rim.signature.value']!.ok).toBe(false);
  });

  it('a root placed in KeyInfo is ignored: swapping it for another self-signed root changes nothing', () => {
    const deviceRoot = pemToDer(text('nvtrust/roots/verifier_device_root.pem')).toString('base64');
    const certs = [...xml.matchAll(/<ds:X509Certificate>([^<]+)<\/ds:X509Certificate>/g)];
    const last = certs[certs.length - 1]!;
    const mutated = xml.replace(last[1]!, deviceRoot);
    const c = byName(verifyRimSignature(mutated, { at }));
    expect(c['rim.chain']!.ok).toBe(true);
    expect(c['rim.chain']!.detail).toMatch(/own root "[^"]*NVIDIA Device Identity CA[^"]*" was ignored/);
  });

  it('dropping the GH100 CA from KeyInfo breaks the chain', () => {
    const certs = [...xml.matchAll(/<ds:X509Certificate>[^<]+<\/ds:X509Certificate>/g)];
    const mutated = xml.replace(certs[2]![0], '');
    const c = byName(verifyRimSignature(mutated, { at }));
    expect(c['rim.chain']!.ok).toBe(false);
    expect(c['rim.signature.value']!.ok).toBe(true);
  });

  it('a second signature, a foreign Reference URI or other algorithms fail closed', () => {
    const sig = xml.slice(sigStart, xml.indexOf('</SoftwareIdentity>'));
    const two = xml.replace('</SoftwareIdentity>', `${sig}</SoftwareIdentity>`);
    expect(byName(verifyRimSignature(two, { at }))['rim.signature.reference']).toMatchObject({ ok: false });
    const uri = xml.replace('<ds:Reference URI="">', '<ds:Reference URI="#x">');
    expect(byName(verifyRimSignature(uri, { at }))['rim.signature.reference']!.detail).toMatch(/URI "#x"/);
    const c14n10 = xml.replace(
      '<ds:CanonicalizationMethod Algorithm="http://www.w3.org/2006/12/xml-c14n11"/>',
      '<ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>',
    );
    expect(byName(verifyRimSignature(c14n10, { at }))['rim.signature.value']).toMatchObject({ ok: false });
    const noSig = xml.slice(0, sigStart) + '</SoftwareIdentity>';
    const checks = verifyRimSignature(noSig, { at });
    expect(checks.map((c) => c.name)).toEqual(NAMES);
    expect(checks.filter((c) => !c.ok).map((c) => c.name)).toEqual(NAMES.slice(1));
  });

  it('mutations anywhere (signature and certificates included) give checks or a ParseError, never another error', () => {
    // ~4 ms per verification (ECDSA + chain), so 500 runs rather than FC_RUNS.
    const tokens = ['<', '>', '"', '=', 'A', '/', '+', '==', ' ', 'ds:', '<ds:X509Certificate>', '</ds:X509Certificate>', 'MII', '&amp;'];
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(), fc.constantFrom(...tokens), fc.boolean()), { minLength: 1, maxLength: 3 }), (edits) => {
        let s = xml;
        for (const [pos, tok, insert] of edits) {
          const i = sigStart + (pos % (s.length - sigStart));
          s = insert ? s.slice(0, i) + tok + s.slice(i) : s.slice(0, i) + s.slice(i + tok.length);
        }
        try {
          const checks = verifyRimSignature(s, { at });
          expect(checks.map((c) => c.name)).toEqual(NAMES);
        } catch (e) {
          if (!(e instanceof ParseError)) throw e;
        }
      }),
      { numRuns: 500 },
    );
  });

  it('not well-formed XML is a ParseError; a DOCTYPE is refused', () => {
    expect(() => verifyRimSignature(xml.slice(0, 1000), { at })).toThrow(ParseError);
    expect(() => verifyRimSignature(`<!DOCTYPE x [<!ENTITY e "e">]>${xml}`, { at })).toThrow(/DOCTYPE/);
  });
});
