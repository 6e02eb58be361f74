import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { canonicalize } from '../../../agent/util/jcs.js';
import { cpuReportData, gpuNonce, type PublicJwk } from '../../../agent/formats/nonce-binding.js';
import { ParseError } from '../../../agent/errors.js';

describe('JCS (RFC 8785)', () => {
  it('sorts keys by UTF-16 code units and drops whitespace', () => {
    // RFC 8785 §3.2.3 sorting example: code-unit order puts "\u20ac" (€) before "\ud83d\ude00" (😀) and "\r" first.
    const input = {
      '\u20ac': 'Euro Sign',
      '\r': 'Carriage Return',
      '\ufb33': 'Hebrew Letter Dalet With Dagesh',
      '1': 'One',
      '\ud83d\ude00': 'Emoji: Grinning Face',
      '\u0080': 'Control',
      '\u00f6': 'Latin Small Letter O With Diaeresis',
    };
    const keys = Object.keys(JSON.parse(canonicalize(input)) as object);
    expect(canonicalize(input).startsWith('{"\\r":"Carriage Return","1":"One","\u0080":"Control","ö"')).toBe(true);
    expect(keys.indexOf('\u20ac')).toBeLessThan(keys.indexOf('\ud83d\ude00'));
    expect(keys.indexOf('\ud83d\ude00')).toBeLessThan(keys.indexOf('\ufb33'));
  });

  it('formats numbers in ECMAScript shortest form (RFC 8785 appendix B samples)', () => {
    // biome-ignore lint/correctness/noPrecisionLoss: the RFC 8785 sample is written with more digits than a double holds, on purpose
    expect(canonicalize([333333333.33333329, 1e30, 4.5, 2e-3, 0.000001, 1e-7, -0])).toBe('[333333333.3333333,1e+30,4.5,0.002,0.000001,1e-7,0]');
  });

  it('rejects values JSON cannot carry with a typed error', () => {
    expect(() => canonicalize({ a: Number.NaN })).toThrow(ParseError);
    expect(() => canonicalize({ a: () => 1 })).toThrow(ParseError);
  });

  it('is a fixed point of parse/canonicalize for any JSON value', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        const once = canonicalize(v);
        expect(canonicalize(JSON.parse(once))).toBe(once);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('nonce binding', () => {
  const jwk = generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey.export({ format: 'jwk' }) as PublicJwk;
  const nonce = Buffer.alloc(32, 7);

  it('derives a 32-byte GPU nonce from the canonical {agentId, nonce, teePubKey}', () => {
    const expected = createHash('sha256')
      .update(canonicalize({ agentId: 'vm-a', nonce: nonce.toString('hex'), teePubKey: { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y } }))
      .digest();
    expect(gpuNonce(nonce, jwk, 'vm-a')).toEqual(expected);
    expect(gpuNonce(nonce, jwk, 'vm-a')).toHaveLength(32);
  });

  it('ignores private members, so a private JWK cannot leak into the binding', () => {
    expect(gpuNonce(nonce, { ...jwk, d: 'secret' }, 'vm-a')).toEqual(gpuNonce(nonce, jwk, 'vm-a'));
  });

  it('binds GPU reports in index order into 64 bytes of REPORT_DATA', () => {
    const a = Buffer.from('report-a');
    const b = Buffer.from('report-b');
    const rd = cpuReportData(nonce, jwk, 'vm-a', [a, b]);
    expect(rd).toHaveLength(64);
    expect(rd).not.toEqual(cpuReportData(nonce, jwk, 'vm-a', [b, a]));
    expect(rd).not.toEqual(cpuReportData(Buffer.alloc(32, 8), jwk, 'vm-a', [a, b]));
  });

  it('binds the agent id: the same nonce, key and reports under another id give other values', () => {
    const reports = [Buffer.from('report-a')];
    expect(cpuReportData(nonce, jwk, 'vm-a', reports)).not.toEqual(cpuReportData(nonce, jwk, 'vm-b', reports));
    expect(gpuNonce(nonce, jwk, 'vm-a')).not.toEqual(gpuNonce(nonce, jwk, 'vm-b'));
    const expected = createHash('sha512')
      .update(
        canonicalize({
          agentId: 'vm-a',
          nonce: nonce.toString('hex'),
          teePubKey: { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y },
          gpus: [createHash('sha384').update(reports[0]!).digest('hex')],
        }),
      )
      .digest();
    expect(cpuReportData(nonce, jwk, 'vm-a', reports)).toEqual(expected);
  });
});
