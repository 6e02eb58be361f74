/** The synchronous RFC 7638 thumbprint equals jose's calculateJwkThumbprint, and refuses what it refuses. */
import { createHash, generateKeyPairSync } from 'node:crypto';
import fc from 'fast-check';
import { calculateJwkThumbprint, type JWK } from 'jose';
import { describe, expect, it } from 'vitest';
import { ParseError } from '../../../agent/errors.js';
import { ecJwkThumbprint } from '../../../agent/util/jwk-thumbprint.js';

describe('ecJwkThumbprint', () => {
  it('equals jose for real P-384 keys', async () => {
    for (let i = 0; i < 8; i++) {
      const jwk = generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey.export({ format: 'jwk' });
      expect(ecJwkThumbprint(jwk)).toBe(await calculateJwkThumbprint(jwk as JWK, 'sha256'));
    }
  });

  it('equals jose for any member strings (escaping, non-ASCII, lone surrogates) and ignores other members', async () => {
    await fc.assert(
      fc.asyncProperty(fc.string({ minLength: 1 }), fc.string({ minLength: 1 }), fc.string({ minLength: 1 }), fc.string(), async (crv, x, y, extra) => {
        const jwk = { kty: 'EC', crv, x, y, kid: extra, d: extra };
        expect(ecJwkThumbprint(jwk)).toBe(await calculateJwkThumbprint(jwk as JWK, 'sha256'));
      }),
      { numRuns: 300 },
    );
  });

  it('RFC 7638 §3: the hash of {"crv","kty","x","y"} in that order, no whitespace, base64url', () => {
    const jwk = { y: 'Yy', x: 'Xx', kty: 'EC', crv: 'P-384' };
    expect(ecJwkThumbprint(jwk)).toBe(createHash('sha256').update('{"crv":"P-384","kty":"EC","x":"Xx","y":"Yy"}').digest('base64url'));
  });

  it('refuses a missing, empty or non-string member and a kty other than EC, as jose does', async () => {
    const good = { kty: 'EC', crv: 'P-384', x: 'a', y: 'b' };
    for (const bad of [
      { ...good, x: '' },
      { ...good, y: undefined },
      { ...good, crv: 7 },
      { ...good, x: ['a'] },
      { ...good, kty: 'RSA' },
      { ...good, kty: undefined },
    ]) {
      expect(() => ecJwkThumbprint(bad)).toThrow(ParseError);
      await expect(calculateJwkThumbprint(bad as unknown as JWK, 'sha256')).rejects.toThrow();
    }
  });
});
