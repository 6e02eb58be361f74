/**
 * Azure SNP-vTPM verification on real public evidence (test/vectors/snp/README.md §4): the CoCo
 * attester evidence v1/v2 and trustee's Genoa sample verify end to end at a pinned time; tampering
 * with each bound part fails the right named check.
 */
import { describe, expect, it } from 'vitest';
import { createPublicKey } from 'node:crypto';
import { vector } from '../../../helpers/paths.js';
import {
  parseAzureEvidence,
  parseImdsCertification,
  expectationsFor,
  qualifyingDataFor,
  type AzureEvidence,
} from '../../../../agent/formats/azure/evidence-formats.js';
import { verifyAzureEvidence } from '../../../../agent/attest/verify-and-appraise.js';
import { verifyQuote, verifyQuoteSignature } from '../../../../agent/verify/azure/quote.js';
import { parseHclReport } from '../../../../agent/formats/azure/hcl.js';
import { ParseError } from '../../../../agent/errors.js';
import type { Check } from '../../../../agent/formats/checks.js';
import { findCheck } from '../../../helpers/checks.js';

const AT = new Date('2025-06-01T00:00:00Z');
const V2_NONCE = Buffer.from('982f5c6e45df0ed3f10b6f60b02f0c8390e281300f3805e2279c16168cd6ae9aa398f647caa2338748cd0fd9f5f819ef', 'hex');
const GENOA_NONCE = Buffer.from('0218488bae25d2509232bf676f1a66a30d7372add909109b36016ef136f2938ca05475f8b46094de6b64270ea35d950f', 'hex');

const load = (f: string) => parseAzureEvidence(vector(`snp/${f}`).toString('utf8'));
/** Everything except revocation (no CRL in the vectors) passes. */
function expectAllPassButRevocation(checks: Check[]) {
  const bad = checks.filter((c) => (!c.ok || c.warning) && c.name !== 'snp.revocation');
  expect(bad, JSON.stringify(bad, null, 1)).toEqual([]);
  const rev = findCheck(checks, 'snp.revocation');
  expect(rev.warning === true || !rev.ok).toBe(true);
}

describe('verifyAzureEvidence on real evidence', () => {
  const cases: [string, string, Buffer][] = [
    ['v1 (Milan)', 'trustee_az-snp-vtpm_evidence-v1.json', Buffer.from('challenge')],
    ['v2 (Milan, user-data = nonce)', 'trustee_az-snp-vtpm_evidence-v2.json', V2_NONCE],
    ['Genoa (HCLA v2, int arrays)', 'trustee_az-snp-vtpm_evidence-genoa.json', GENOA_NONCE],
  ];
  for (const [label, file, nonce] of cases) {
    it(`${label}: quote, PCR digest, binding, SNP signature and chain all pass`, () => {
      const ev = load(file);
      const r = verifyAzureEvidence(ev, { at: AT, nonce });
      for (const n of [
        'azure.hcl.parse',
        'azure.hcl.report-data',
        'azure.quote.signature',
        'azure.quote.nonce',
        'azure.quote.pcr-digest',
        'snp.signature',
        'snp.chain.ask',
        'snp.chain.ark',
        'snp.policy.vmpl',
        'snp.tcb.vcek-match',
      ]) {
        expect(findCheck(r.checks, n).ok, `${n}: ${findCheck(r.checks, n).detail}`).toBe(true);
      }
      expectAllPassButRevocation(r.checks);
      expect(r.simulated).toBe(false);
      expect(r.claims?.snp?.vmpl).toBe(0);
      expect(Object.keys(r.claims?.quote?.pcrs ?? {})).toHaveLength(24);
    });
  }

  it('v2 checks the runtime user-data against the nonce', () => {
    const r = verifyAzureEvidence(load('trustee_az-snp-vtpm_evidence-v2.json'), { at: AT, nonce: V2_NONCE });
    expect(findCheck(r.checks, 'azure.user-data').ok).toBe(true);
  });

  it('Genoa evidence is recognised as such and its SNP report is a Genoa v3 report', () => {
    const ev = load('trustee_az-snp-vtpm_evidence-genoa.json');
    expect(ev.format).toBe('trustee-genoa');
    const r = verifyAzureEvidence(ev, { at: AT, nonce: GENOA_NONCE });
    expect(r.claims?.hcl.version).toBe(2);
    expect(findCheck(r.checks, 'snp.product').detail).toContain('Genoa');
  });

  it('a wrong nonce fails azure.quote.nonce only', () => {
    const r = verifyAzureEvidence(load('trustee_az-snp-vtpm_evidence-v1.json'), { at: AT, nonce: Buffer.from('challengf') });
    const c = findCheck(r.checks, 'azure.quote.nonce');
    expect(c.ok).toBe(false);
    expect(c.detail).toMatch(/extraData .* != the nonce/);
    expect(findCheck(r.checks, 'azure.quote.signature').ok).toBe(true);
    expect(r.status).toBe('contraindicated');
  });

  it('without a nonce, freshness is a warning, not a pass', () => {
    const r = verifyAzureEvidence(load('trustee_az-snp-vtpm_evidence-v1.json'), { at: AT });
    const c = findCheck(r.checks, 'azure.quote.nonce');
    expect(c.ok && c.warning).toBe(true);
    expect(r.checks.some((x) => x.name === 'azure.user-data')).toBe(false);
  });

  it('v2 with a nonce whose user-data does not match fails azure.user-data', () => {
    const ev = load('trustee_az-snp-vtpm_evidence-v2.json');
    // v1's report has zero user-data: swap it in, keep v2's quote
    const v1 = load('trustee_az-snp-vtpm_evidence-v1.json');
    const r = verifyAzureEvidence({ ...ev, hclReport: v1.hclReport, certificates: v1.certificates }, { at: AT, nonce: V2_NONCE });
    expect(findCheck(r.checks, 'azure.user-data').ok).toBe(false);
    // and v1's AK did not sign v2's quote
    expect(findCheck(r.checks, 'azure.quote.signature').ok).toBe(false);
    expect(findCheck(r.checks, 'azure.quote.signature').detail).toMatch(/not made by the vTPM AK/);
  });

  it('a tampered PCR value fails azure.quote.pcr-digest', () => {
    const ev = load('trustee_az-snp-vtpm_evidence-v1.json');
    const pcrs = ev.quote.pcrs.map((p) => Buffer.from(p));
    pcrs[7]![0]! ^= 1;
    const r = verifyAzureEvidence({ ...ev, quote: { ...ev.quote, pcrs } }, { at: AT, nonce: Buffer.from('challenge') });
    const c = findCheck(r.checks, 'azure.quote.pcr-digest');
    expect(c.ok).toBe(false);
    expect(c.detail).toMatch(/PCR values were altered/);
    expect(findCheck(r.checks, 'azure.quote.signature').ok).toBe(true);
  });

  it('a missing PCR value fails azure.quote.pcr-digest', () => {
    const ev = load('trustee_az-snp-vtpm_evidence-v1.json');
    const r = verifyAzureEvidence({ ...ev, quote: { ...ev.quote, pcrs: ev.quote.pcrs.slice(1) } }, { at: AT, nonce: Buffer.from('challenge') });
    expect(findCheck(r.checks, 'azure.quote.pcr-digest').detail).toMatch(/selects 24 PCRs but the evidence carries 23/);
  });

  it('a tampered quote message fails the signature', () => {
    const ev = load('trustee_az-snp-vtpm_evidence-v1.json');
    const message = Buffer.from(ev.quote.message);
    message[message.length - 1]! ^= 0x80; // last byte of pcrDigest
    const r = verifyAzureEvidence({ ...ev, quote: { ...ev.quote, message } }, { at: AT, nonce: Buffer.from('challenge') });
    expect(findCheck(r.checks, 'azure.quote.signature').ok).toBe(false);
    expect(findCheck(r.checks, 'azure.quote.pcr-digest').ok).toBe(false);
  });

  it('tampered runtime claims break the REPORT_DATA binding (and the SNP report still verifies)', () => {
    const ev = load('trustee_az-snp-vtpm_evidence-v1.json');
    const hcl = Buffer.from(ev.hclReport);
    const at = hcl.indexOf('"tpm-enabled":true');
    expect(at).toBeGreaterThan(0);
    hcl.write('"tpm-enabled":tru ', at, 'latin1'); // invalid JSON: used below for the parse failure
    const hcl2 = Buffer.from(ev.hclReport);
    const vm = hcl2.indexOf('26F8BC30');
    hcl2.write('36F8BC30', vm, 'latin1'); // still valid JSON, different vmUniqueId
    const r = verifyAzureEvidence({ ...ev, hclReport: hcl2 }, { at: AT, nonce: Buffer.from('challenge') });
    const c = findCheck(r.checks, 'azure.hcl.report-data');
    expect(c.ok).toBe(false);
    expect(c.detail).toMatch(/not the ones the SNP report vouches for/);
    expect(findCheck(r.checks, 'snp.signature').ok).toBe(true);
    // the malformed-JSON variant fails parsing instead
    const r2 = verifyAzureEvidence({ ...ev, hclReport: hcl }, { at: AT });
    expect(findCheck(r2.checks, 'azure.hcl.parse').ok).toBe(false);
    expect(r2.status).toBe('contraindicated');
  });

  it('a tampered SNP report fails snp.signature', () => {
    const ev = load('trustee_az-snp-vtpm_evidence-v1.json');
    const hcl = Buffer.from(ev.hclReport);
    hcl[0x20 + 0x90]! ^= 1; // MEASUREMENT byte inside the signed area
    const r = verifyAzureEvidence({ ...ev, hclReport: hcl }, { at: AT, nonce: Buffer.from('challenge') });
    expect(findCheck(r.checks, 'snp.signature').ok).toBe(false);
  });

  it('without a VCEK the SNP part fails closed', () => {
    const ev = load('trustee_az-snp-vtpm_evidence-v1.json');
    const r = verifyAzureEvidence({ ...ev, certificates: [] }, { at: AT, nonce: Buffer.from('challenge') });
    expect(findCheck(r.checks, 'snp.cert.endorsement-key').ok).toBe(false);
    expect(r.ok).toBe(false);
  });

  it('the TDX HCL report is rejected as not SEV-SNP', () => {
    const ev = load('trustee_az-snp-vtpm_evidence-v1.json');
    const r = verifyAzureEvidence({ ...ev, hclReport: vector('snp/azuretools_snp_hcl_report_ACTUALLY_TDX.bin') }, { at: AT });
    expect(r.checks).toHaveLength(1);
    expect(r.checks[0]).toMatchObject({ name: 'azure.hcl.parse', ok: false });
    expect(r.checks[0]!.detail).toContain('HCL report is TDX, not SEV-SNP');
    expect(r.status).toBe('contraindicated');
  });
});

describe('azure_hcl-report-snp.bin with azure_certs.pem (VCEK of another chip)', () => {
  const hcl = vector('snp/azure_hcl-report-snp.bin');
  it('parses and its REPORT_DATA binding holds', () => {
    const parsed = parseHclReport(hcl);
    expect(parsed.runtimeClaims.keys.map((k) => k.kid)).toEqual(['HCLAkPub']);
    expect(parsed.runtimeClaims.vmConfiguration?.['current-time']).toBeTypeOf('number');
  });
  it('fails snp.signature saying the VCEK does not match', () => {
    const quoteBin = vector('snp/azure_quote.bin');
    const ev: AzureEvidence = {
      format: 'coco-v1',
      hclReport: hcl,
      quote: decodeAzureQuoteBin(quoteBin),
      certificates: pemCerts(vector('snp/azure_certs.pem').toString()),
    };
    const r = verifyAzureEvidence(ev, { at: AT });
    expect(findCheck(r.checks, 'azure.hcl.report-data').ok).toBe(true);
    const sig = findCheck(r.checks, 'snp.signature');
    expect(sig.ok).toBe(false);
    expect(sig.detail).toMatch(/does not verify with the supplied VCEK.*VCEK belongs to another chip/);
    expect(r.status).toBe('contraindicated');
  });
});

/** az-cvm-vtpm's quote.bin: u64le len + signature, u64le len + TPMS_ATTEST, u64le count + count x 32-byte PCRs. */
function decodeAzureQuoteBin(b: Buffer) {
  let p = 0;
  const take = () => {
    const n = Number(b.readBigUInt64LE(p));
    p += 8;
    const out = b.subarray(p, p + n);
    p += n;
    return out;
  };
  const signature = take();
  const message = take();
  const count = Number(b.readBigUInt64LE(p));
  p += 8;
  const pcrs = Array.from({ length: count }, (_, i) => b.subarray(p + 32 * i, p + 32 * (i + 1)));
  return { message, signature: { format: 'raw' as const, bytes: signature }, pcrs };
}
const pemCerts = (t: string) =>
  [...t.matchAll(/-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g)].map((m) => Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64'));

describe('azure_quote.bin with azure_akpub.pem', () => {
  const quote = decodeAzureQuoteBin(vector('snp/azure_quote.bin'));
  const ak = createPublicKey(vector('snp/azure_akpub.pem'));
  it('verifies (RSASSA-PKCS1-v1_5/SHA-256), nonce "challenge", PCR digest', () => {
    const v = verifyQuote(quote, ak, undefined, { nonce: Buffer.from('challenge') });
    expect(v.checks.map((c) => [c.name, c.ok])).toEqual([
      ['azure.quote.signature', true],
      ['azure.quote.nonce', true],
      ['azure.quote.pcr-digest', true],
    ]);
    expect(v.attest?.quote?.pcrSelect[0]?.pcrs).toEqual(Array.from({ length: 24 }, (_, i) => i));
  });
  it('does not verify under another key', () => {
    const other = load('trustee_az-snp-vtpm_evidence-v1.json');
    const otherAk = parseHclReport(other.hclReport).runtimeClaims.keys[0]!.key!;
    expect(verifyQuoteSignature(quote.message, quote.signature, otherAk).ok).toBe(false);
    const flipped = Buffer.from(quote.signature.bytes);
    flipped[10]! ^= 1;
    expect(verifyQuoteSignature(quote.message, { format: 'raw', bytes: flipped }, ak).ok).toBe(false);
  });
  it('no AK fails the signature check with the reason', () => {
    const v = verifyQuote(quote, undefined, 'HCLAkPub is unusable: bad', {});
    expect(v.checks[0]).toMatchObject({ name: 'azure.quote.signature', ok: false });
    expect(v.checks[0]!.detail).toContain('HCLAkPub is unusable');
  });
  it('a non-quote message fails azure.quote.parse', () => {
    const v = verifyQuote({ ...quote, message: quote.message.subarray(0, 20) }, ak, undefined, {});
    expect(v.checks).toEqual([expect.objectContaining({ name: 'azure.quote.parse', ok: false })]);
  });
});

describe('evidence formats', () => {
  it('decodes CoCo v1/v2 and rejects unknown shapes with ParseError', () => {
    expect(load('trustee_az-snp-vtpm_evidence-v1.json').format).toBe('coco-v1');
    expect(load('trustee_az-snp-vtpm_evidence-v2.json').format).toBe('coco-v2');
    for (const bad of [
      '[]',
      '{}',
      'nope',
      '{"version":3,"tpm_quote":{}}',
      '{"kind":"x"}',
      '{"kind":"azure-snp-vtpm","version":1,"quote":{"message":"zz"}}',
      '{"quote":{"message":[256],"pcrs":[],"signature":[]},"report":[1]}',
      '{"version":1,"tpm_quote":{"message":"00","signature":"00","pcrs":"x"},"hcl_report":"AA"}',
    ]) {
      expect(() => parseAzureEvidence(bad), bad).toThrow(ParseError);
    }
  });
  it('derives our binding expectations: user-data = nonce padded, extraData = SHA-256(padded)', () => {
    const e = expectationsFor('cvm-agent', Buffer.from('abc'));
    expect(e.userData?.toString()).toBe('abc');
    expect(e.quoteNonce).toEqual(qualifyingDataFor(Buffer.from('abc')));
    expect(expectationsFor('coco-v1', Buffer.from('abc')).userData).toBeUndefined();
    expect(expectationsFor('coco-v2', Buffer.from('abc')).quoteNonce?.toString()).toBe('abc');
    expect(() => qualifyingDataFor(Buffer.alloc(65))).toThrow(ParseError);
  });
  it('parses the Azure IMDS THIM certification JSON', () => {
    const pem = vector('snp/trustee_az-snp-vtpm_vcek.pem').toString();
    const certs = [...pem.matchAll(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g)].map((m) => m[0]);
    const json = JSON.stringify({ vcekCert: certs[0], certificateChain: `${certs[1]}\n${certs[2]}`, tcbm: '...' });
    const { vcek, chain } = parseImdsCertification(json);
    expect(vcek).toEqual(pemCerts(certs[0]!)[0]);
    expect(chain).toHaveLength(2);
    expect(() => parseImdsCertification('{"vcekCert":5}')).toThrow(ParseError);
    expect(() => parseImdsCertification('{')).toThrow(ParseError);
    expect(() => parseImdsCertification(JSON.stringify({ vcekCert: pem }))).toThrow(/holds 3 certificates/);
  });
});
