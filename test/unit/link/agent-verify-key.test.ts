/**
 * The agent key as a verification key (agent/link/agent-verify-key.ts): the key a JWK import gives,
 * imported once per key, and nothing but an EC P-384 point on the curve in canonical base64url.
 */
import { generateKeyPairSync, webcrypto } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { agentVerifyKey } from '../../../agent/link/agent-verify-key.js';

const pair = () => generateKeyPairSync('ec', { namedCurve: 'P-384' });
const publicJwk = (p: ReturnType<typeof pair>) => {
  const j = p.publicKey.export({ format: 'jwk' });
  return { kty: 'EC', crv: 'P-384', x: j.x!, y: j.y! };
};
const ES384 = { name: 'ECDSA', hash: 'SHA-384' } as const;

describe('agentVerifyKey', () => {
  it('verifies what the key signed and nothing else, as the key a JWK import gives', async () => {
    const p = pair();
    const jwk = publicJwk(p);
    const key = await agentVerifyKey(jwk);
    expect(key.algorithm).toMatchObject({ name: 'ECDSA', namedCurve: 'P-384' });
    expect(key.usages).toEqual(['verify']);
    expect(key.extractable).toBe(false);
    const viaJwk = await webcrypto.subtle.importKey('jwk', jwk, { name: 'ECDSA', namedCurve: 'P-384' }, true, ['verify']);
    const data = Buffer.from('signed bytes');
    const signing = await webcrypto.subtle.importKey(
      'pkcs8',
      p.privateKey.export({ type: 'pkcs8', format: 'der' }),
      { name: 'ECDSA', namedCurve: 'P-384' },
      false,
      ['sign'],
    );
    const sig = await webcrypto.subtle.sign(ES384, signing, data);
    expect(await webcrypto.subtle.verify(ES384, key, sig, data)).toBe(true);
    expect(await webcrypto.subtle.verify(ES384, viaJwk, sig, data)).toBe(true);
    expect(await webcrypto.subtle.verify(ES384, key, sig, Buffer.from('other bytes'))).toBe(false);
    expect(await webcrypto.subtle.verify(ES384, await agentVerifyKey(publicJwk(pair())), sig, data)).toBe(false);
  });

  it('imports a key once (the same key object for the same coordinates) and another key apart', async () => {
    const jwk = publicJwk(pair());
    const a = await agentVerifyKey(jwk);
    expect(await agentVerifyKey({ ...jwk, kid: 'ignored' })).toBe(a);
    expect(await agentVerifyKey(publicJwk(pair()))).not.toBe(a);
  });

  it('refuses another curve or type, a coordinate of the wrong size or not canonical base64url, and a point off the curve', async () => {
    const jwk = publicJwk(pair());
    const y = Buffer.from(jwk.y, 'base64url');
    y[47]! ^= 1;
    const bad = [
      { ...jwk, crv: 'P-256' },
      { ...jwk, kty: 'RSA' },
      { ...jwk, x: jwk.x.slice(0, 63) },
      { ...jwk, x: `${jwk.x}AA` },
      { ...jwk, x: `${jwk.x.slice(0, 63)}=` },
      { ...jwk, x: `${jwk.x.slice(0, 62)}*${jwk.x.slice(63)}` },
      { ...jwk, x: undefined },
      { ...jwk, y: 42 },
      { ...jwk, y: y.toString('base64url') },
    ];
    for (const k of bad) await expect(agentVerifyKey(k as never)).rejects.toThrow();
  });
});
