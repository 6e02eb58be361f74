/** The one PEM toolkit: one writer, one lax and one strict splitter, behaving as the copies they replaced. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ParseError } from '../../../agent/errors.js';
import { derToPem, pemBlocks, pemBlockTexts } from '../../../agent/util/pem.js';

const strict = (t: string) => pemBlocks(t, 'CERTIFICATE', { what: 'certificate chain', noun: 'certificates', maxBlocks: 2 });

describe('PEM', () => {
  it("derToPem writes 64-character lines (the simulator's old writer gave the same text)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (b) => {
        const der = Buffer.from(b);
        const old = `-----BEGIN CERTIFICATE-----\n${(der.toString('base64').match(/.{1,64}/g) ?? []).join('\n')}\n-----END CERTIFICATE-----\n`;
        expect(derToPem(der)).toBe(old);
        expect(pemBlocks(derToPem(der))[0]!.equals(der)).toBe(true);
      }),
    );
  });

  it('lax: every block of the label, other labels and text ignored', () => {
    const text = `junk\n${derToPem(Buffer.from('a'))}${derToPem(Buffer.from('crl'), 'X509 CRL')}more${derToPem(Buffer.from('b'))}`;
    expect(pemBlocks(text).map((b) => b.toString())).toEqual(['a', 'b']);
    expect(pemBlocks(text, 'X509 CRL').map((b) => b.toString())).toEqual(['crl']);
    expect(pemBlocks('no pem here')).toEqual([]);
  });

  it('strict: refuses text between or after blocks, bad base64, too many or none', () => {
    const one = derToPem(Buffer.from('abc'));
    expect(strict(`\0\n${one}\n${one}`)).toHaveLength(2);
    expect(() => strict(`${one}x${one}`)).toThrow(/certificate chain: unexpected text between PEM blocks/);
    expect(() => strict(`${one}trailer`)).toThrow(/unexpected text after the last PEM block/);
    expect(() => strict('-----BEGIN CERTIFICATE-----\nYWJj=\n-----END CERTIFICATE-----')).toThrow(/bad base64/);
    expect(() => strict(one + one + one)).toThrow(/more than 2 certificates/);
    expect(() => strict('')).toThrow(ParseError);
    expect(() => strict('')).toThrow(/no PEM certificates found/);
  });
});

describe('pemBlockTexts (config preflight: report damaged blocks, never skip them)', () => {
  it('returns every certificate block whole, headers and bad base64 included, and nothing else', () => {
    const good = '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----';
    const damaged = '-----BEGIN CERTIFICATE-----\nProc-Type: 4,ENCRYPTED\n!!!\n-----END CERTIFICATE-----';
    const key = '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----';
    expect(pemBlockTexts(`junk\n${good}\n${key}\n${damaged}\n`)).toEqual([good, damaged]);
    expect(pemBlockTexts('no blocks here')).toEqual([]);
  });
});
