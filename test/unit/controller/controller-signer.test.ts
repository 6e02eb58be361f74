/**
 * Token signing keys (agent/controller/signer.ts): the JWKS names every key by its RFC 7638 `kid`,
 * each token's header names the key that signed it, and a rotation (docs/controller.md "Token key
 * rotation") never leaves a valid token unverifiable: the next key is published before it signs,
 * the previous one stays published after the switch, and only dropping it ends its tokens.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { calculateJwkThumbprint, createLocalJWKSet, decodeJwt, decodeProtectedHeader, importPKCS8, jwtVerify, SignJWT, type JWK } from 'jose';
import { describe, expect, it } from 'vitest';
import { loadControllerConfig, parseControllerConfig } from '../../../agent/controller/config.js';
import { TokenSigner, TOKEN_ISSUER } from '../../../agent/controller/signer.js';
import { ConfigError } from '../../../agent/errors.js';
import type { Ear } from '../../../agent/appraise/ear.js';

const keyPair = () => generateKeyPairSync('ec', { namedCurve: 'P-384' });
const pkcs8 = (k: ReturnType<typeof keyPair>) => k.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const spki = (k: ReturnType<typeof keyPair>) => k.publicKey.export({ type: 'spki', format: 'pem' }).toString();
const ear = (): Ear =>
  ({
    eat_profile: 'tag:github.com,2023:veraison/ear',
    iat: Math.floor(Date.now() / 1000),
    'ear.verifier-id': { developer: 't', build: 't' },
    submods: {},
  }) as unknown as Ear;

async function verifies(token: string, signer: TokenSigner): Promise<boolean> {
  try {
    await jwtVerify(token, createLocalJWKSet(signer.jwks() as never), { issuer: TOKEN_ISSUER });
    return true;
  } catch {
    return false;
  }
}

describe('token signing keys and their rotation', () => {
  it('publishes every key with its kid; tokens name their key; a rotation keeps every unexpired token verifiable', async () => {
    const a = keyPair();
    const b = keyPair();
    // Step 0: A signs.
    const only = await TokenSigner.create(pkcs8(a));
    const t0 = (await only.sign(ear(), { subject: 'vm-1', ttlSec: 300 })).token;
    expect(decodeProtectedHeader(t0).kid).toBe(only.kid);
    expect(only.jwks().keys.map((k) => k.kid)).toEqual([only.kid]);
    // Step 1: B is published (its public key suffices), A still signs.
    const step1 = await TokenSigner.create(pkcs8(a), [spki(b)]);
    expect(step1.kid).toBe(only.kid);
    const [ka, kb] = step1.jwks().keys;
    expect(ka!.kid).toBe(only.kid);
    expect(kb).toMatchObject({ kty: 'EC', crv: 'P-384', alg: 'ES384', use: 'sig' });
    expect(kb).not.toHaveProperty('d');
    // Step 2: B signs, A stays published (a replica still on step 1 and one on step 2 verify each other's tokens).
    const step2 = await TokenSigner.create(pkcs8(b), [pkcs8(a)]);
    expect(step2.kid).toBe(kb!.kid);
    expect(step2.jwks().keys.map((k) => k.kid)).toEqual([kb!.kid, ka!.kid]);
    expect(step2.jwks().keys[1]).not.toHaveProperty('d');
    const t2 = (await step2.sign(ear(), { subject: 'vm-1', ttlSec: 300 })).token;
    expect(decodeProtectedHeader(t2).kid).toBe(kb!.kid);
    expect(await verifies(t0, step2)).toBe(true);
    expect(await verifies(t2, step1)).toBe(true);
    // Step 3 (after tokenTtlSec): A dropped; its tokens no longer verify, B's do.
    const step3 = await TokenSigner.create(pkcs8(b));
    expect(await verifies(t0, step3)).toBe(false);
    expect(await verifies(t2, step3)).toBe(true);
    // Publishing the signing key again changes nothing.
    expect((await TokenSigner.create(pkcs8(b), [spki(b)])).jwks().keys).toHaveLength(1);
  });

  it('publishedKeys: read from files beside the config, only with a signingKey, only EC P-384', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ctl-keys-'));
    const a = keyPair();
    const b = keyPair();
    writeFileSync(join(dir, 'a.pem'), pkcs8(a));
    writeFileSync(join(dir, 'b.pub.pem'), spki(b));
    writeFileSync(join(dir, 'ctl.yaml'), 'signingKey: a.pem\npublishedKeys: [b.pub.pem]\n');
    const r = await loadControllerConfig(join(dir, 'ctl.yaml'));
    expect(r.publishedKeyPems).toEqual([spki(b)]);
    expect((await TokenSigner.create(r.signingKeyPem, r.publishedKeyPems)).jwks().keys).toHaveLength(2);
    expect(() => parseControllerConfig('publishedKeys: [b.pub.pem]\n')).toThrow(/publishedKeys: needs signingKey/);
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    await expect(TokenSigner.create(pkcs8(a), [rsa])).rejects.toThrow(ConfigError);
    await expect(TokenSigner.create(pkcs8(a), ['not a key'])).rejects.toThrow(/publishedKeys\[0\]: not an EC P-384 key/);
  });

  it('signs the token jose SignJWT makes: the same header and claims, byte for byte (but the random jti), verifiable as a JWT', async () => {
    const a = keyPair();
    const signer = await TokenSigner.create(pkcs8(a));
    const e = {
      ...ear(),
      submods: { cpu0: { 'ear.status': 'affirming', 'cvm.checks': [{ name: 'x', ok: true, detail: 'ünïcode \u2028 "quoted"' }] } },
    } as unknown as Ear;
    const confirmationKey = { kty: 'EC', crv: 'P-384', x: 'eHh4', y: 'eXl5' } as const;
    const opts = { subject: 'vm-1', ttlSec: 300, confirmationKey, claims: { 'cvm.secrets': [{ name: 's', sha256: 'ab' }], iss: 'overridden' } };
    const { token, expiresAt } = await signer.sign(e, opts);
    const claims = decodeJwt(token);
    expect(claims).toMatchObject({
      iss: TOKEN_ISSUER,
      sub: 'vm-1',
      iat: e.iat,
      exp: e.iat + 300,
      cnf: { jkt: await calculateJwkThumbprint(confirmationKey as JWK, 'sha256') },
    });
    expect(expiresAt.getTime()).toBe((e.iat + 300) * 1000);
    const jose = await new SignJWT({ ...opts.claims, ...e, cnf: claims.cnf })
      .setProtectedHeader({ alg: 'ES384', kid: signer.kid, typ: 'JWT' })
      .setIssuer(TOKEN_ISSUER)
      .setSubject('vm-1')
      .setIssuedAt(e.iat)
      .setExpirationTime(e.iat + 300)
      .setJti(claims.jti!)
      .sign(await importPKCS8(pkcs8(a), 'ES384'));
    expect(token.split('.').slice(0, 2)).toEqual(jose.split('.').slice(0, 2));
    expect(Buffer.from(token.split('.')[2]!, 'base64url')).toHaveLength(96);
    expect(await verifies(token, signer)).toBe(true);
    // A changed claim or signature does not verify.
    const [h, p, sig] = token.split('.');
    const forged = Buffer.from(JSON.stringify({ ...claims, sub: 'vm-2' })).toString('base64url');
    expect(await verifies(`${h}.${forged}.${sig}`, signer)).toBe(false);
    expect(await verifies(`${h}.${p}.${Buffer.from(Buffer.from(sig!, 'base64url').map((b, i) => (i === 5 ? b ^ 1 : b))).toString('base64url')}`, signer)).toBe(
      false,
    );
  });
});
