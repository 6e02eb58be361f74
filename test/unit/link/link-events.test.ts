import { describe, expect, it } from 'vitest';
import { inspect } from 'node:util';
import { CompactEncrypt, CompactSign, importJWK, generateKeyPair, exportJWK, decodeProtectedHeader } from 'jose';
import { createAgentKey } from '../../../agent/link/agent-key.js';
import { checkEventSignature, eventKeyId, eventSigningInput, signEvent, verifyEventSignature } from '../../../agent/link/events.js';
import { SecretStore, decryptSecret, storeSecrets } from '../../../agent/link/secret-unwrap.js';
import { validateMessage } from '../../../agent/link/protocol.js';
import { CvmError } from '../../../agent/errors.js';
import { canonicalize } from '../../../agent/util/jcs.js';

describe('agent key', () => {
  it('is an EC P-384 key whose private halves cannot be exported', async () => {
    const key = await createAgentKey();
    expect(key.publicJwk).toEqual({ kty: 'EC', crv: 'P-384', x: expect.any(String), y: expect.any(String) });
    expect(key.publicJwk.x).toHaveLength(64);
    expect(key.signingKey.extractable).toBe(false);
    expect(key.agreementKey.extractable).toBe(false);
    expect(key.signingKey.algorithm.name).toBe('ECDSA');
    expect(key.agreementKey.algorithm.name).toBe('ECDH');
    await expect(crypto.subtle.exportKey('jwk', key.signingKey)).rejects.toThrow();
    await expect(crypto.subtle.exportKey('pkcs8', key.agreementKey)).rejects.toThrow();
    expect(key.kid).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const other = await createAgentKey();
    expect(other.kid).not.toBe(key.kid);
  });
});

describe('signed events', () => {
  const body = { seq: 7, at: '2025-06-01T12:00:00.000Z', kind: 'attestation' as const, data: { status: 'affirming', gpus: [0, 1], z: 1, a: 'é' } };

  it('signs JCS({seq, at, kind, data}) with ES384 and verifies with the public JWK', async () => {
    const key = await createAgentKey();
    const e = await signEvent(body, key);
    expect(validateMessage('agent->controller', e).ok).toBe(true);
    expect(decodeProtectedHeader(e.sig)).toEqual({ alg: 'ES384', typ: 'cvm-event+jws', kid: key.kid });
    expect(eventKeyId(e)).toBe(key.kid);
    const payload = Buffer.from(e.sig.split('.')[1]!, 'base64url').toString();
    expect(payload).toBe(canonicalize({ seq: 7, at: body.at, kind: 'attestation', data: body.data }));
    expect(Buffer.from(eventSigningInput(e)).toString()).toBe(payload);
    expect(await verifyEventSignature(e, key.publicJwk)).toBe(true);
    // A re-serialised event (member order changed by a JSON round trip through another language) still verifies.
    const reordered = JSON.parse(
      JSON.stringify({ sig: e.sig, data: { a: 'é', z: 1, gpus: [0, 1], status: 'affirming' }, kind: e.kind, at: e.at, seq: e.seq, type: 'event' }),
    );
    expect(await verifyEventSignature(reordered, key.publicJwk)).toBe(true);
  });

  it('fails for tampered fields, another key, a foreign signature, and garbage', async () => {
    const key = await createAgentKey();
    const other = await createAgentKey();
    const e = await signEvent(body, key);
    expect(await checkEventSignature({ ...e, seq: 8 }, key.publicJwk)).toEqual({ ok: false, reason: 'signed payload differs from the event fields' });
    expect(await verifyEventSignature({ ...e, data: { ...e.data, status: 'contraindicated' } }, key.publicJwk)).toBe(false);
    expect(await verifyEventSignature({ ...e, kind: 'status' }, key.publicJwk)).toBe(false);
    expect(await verifyEventSignature({ ...e, at: '2025-06-01T12:00:01.000Z' }, key.publicJwk)).toBe(false);
    expect((await checkEventSignature(e, other.publicJwk)).ok).toBe(false);
    expect(await checkEventSignature(e, other.publicJwk)).toMatchObject({ reason: expect.stringMatching(/kid does not match/) });
    // Same payload, signed by another key but claiming our kid: the signature check catches it.
    const forged = await new CompactSign(eventSigningInput(e)).setProtectedHeader({ alg: 'ES384', typ: 'cvm-event+jws', kid: key.kid }).sign(other.signingKey);
    expect(await checkEventSignature({ ...e, sig: forged }, key.publicJwk)).toMatchObject({ ok: false, reason: expect.stringMatching(/signature invalid/) });
    // alg none / HS256 headers are refused before any key use.
    const none = `${Buffer.from('{"alg":"none","typ":"cvm-event+jws"}').toString('base64url')}.${e.sig.split('.')[1]}.`;
    expect(await checkEventSignature({ ...e, sig: none }, key.publicJwk)).toMatchObject({ ok: false, reason: expect.stringMatching(/not ES384/) });
    expect(await verifyEventSignature({ ...e, sig: 'not.a.jws' }, key.publicJwk)).toBe(false);
    expect(await checkEventSignature(e, { kty: 'EC', crv: 'P-256', x: 'a', y: 'b' })).toMatchObject({ ok: false });
    expect(await checkEventSignature(e, { ...key.publicJwk, d: 'secret' })).toMatchObject({ ok: false });
    expect(eventKeyId({ sig: '###' })).toBeUndefined();
  });
});

async function encryptTo(key: { publicJwk: object }, plaintext: string, alg = 'ECDH-ES+A256KW', enc = 'A256GCM') {
  const pub = await importJWK(key.publicJwk as never, 'ECDH-ES+A256KW');
  return new CompactEncrypt(new TextEncoder().encode(plaintext)).setProtectedHeader({ alg, enc }).encrypt(pub);
}

describe('secrets', () => {
  it('decrypts ECDH-ES+A256KW / A256GCM JWEs to the agent key into memory', async () => {
    const key = await createAgentKey();
    const store = new SecretStore();
    const jwe = await encryptTo(key, 'model-decryption-key-123');
    expect(validateMessage('controller->agent', { type: 'verdict', challengeId: 'c', token: 'a.b.c', secrets: [{ name: 'model', jwe }] }).ok).toBe(true);
    const names = await storeSecrets(
      [
        { name: 'model', jwe },
        { name: 'db', jwe: await encryptTo(key, 'pw') },
      ],
      key,
      store,
      { challengeId: 'c' },
    );
    expect(names).toEqual(['model', 'db']);
    expect(Buffer.from(store.get('model')!).toString()).toBe('model-decryption-key-123');
    expect(store.names()).toEqual(['db', 'model']);
    // get() returns a copy: zeroing it does not destroy the stored value.
    store.get('db')!.fill(0);
    expect(Buffer.from(store.get('db')!).toString()).toBe('pw');
    store.delete('db');
    expect(store.has('db')).toBe(false);
  });

  it('never shows values through JSON, inspect or String', async () => {
    const key = await createAgentKey();
    const store = new SecretStore();
    await storeSecrets([{ name: 'model', jwe: await encryptTo(key, 'TOP-SECRET-VALUE') }], key, store);
    const views = [
      JSON.stringify(store),
      inspect(store),
      String(store),
      JSON.stringify({ nested: { store } }),
      inspect({ store }, { depth: 5, showHidden: true }),
    ];
    for (const v of views) {
      expect(v).not.toContain('TOP-SECRET-VALUE');
      expect(v).not.toContain(Buffer.from('TOP-SECRET-VALUE').toString('base64'));
      expect(v).toContain('model');
    }
    store.clear();
    expect(store.size).toBe(0);
  });

  it('refuses other algorithms, other recipients and tampered ciphertext, storing nothing', async () => {
    const key = await createAgentKey();
    const other = await createAgentKey();
    const store = new SecretStore();
    const direct = await encryptTo(key, 'x', 'ECDH-ES', 'A256GCM');
    await expect(decryptSecret({ name: 'a', jwe: direct }, key)).rejects.toThrow(/could not be decrypted/);
    const cbc = await encryptTo(key, 'x', 'ECDH-ES+A256KW', 'A128CBC-HS256');
    await expect(decryptSecret({ name: 'b', jwe: cbc }, key)).rejects.toThrow(CvmError);
    const toOther = await encryptTo(other, 'x');
    await expect(decryptSecret({ name: 'c', jwe: toOther }, key)).rejects.toThrow(/"c" could not be decrypted/);
    const good = await encryptTo(key, 'hello');
    const parts = good.split('.');
    parts[3] = Buffer.from('jello').toString('base64url');
    await expect(decryptSecret({ name: 'd', jwe: parts.join('.') }, key)).rejects.toThrow(CvmError);
    // All or nothing: one bad envelope, nothing stored.
    await expect(
      storeSecrets(
        [
          { name: 'ok', jwe: good },
          { name: 'bad', jwe: toOther },
        ],
        key,
        store,
      ),
    ).rejects.toThrow(CvmError);
    expect(store.size).toBe(0);
    // An RSA recipient key format from a confused controller: still a typed error.
    const rsa = await generateKeyPair('RSA-OAEP-256', { extractable: true });
    const rsaJwe = await new CompactEncrypt(new TextEncoder().encode('x')).setProtectedHeader({ alg: 'RSA-OAEP-256', enc: 'A256GCM' }).encrypt(rsa.publicKey);
    await expect(decryptSecret({ name: 'e', jwe: rsaJwe }, key)).rejects.toThrow(CvmError);
    expect((await exportJWK(rsa.publicKey)).kty).toBe('RSA');
  });
});
