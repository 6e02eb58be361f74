/**
 * TPM 2.0 client marshalling and parsing: exact command bytes (TPM 2.0 Part 3 layouts), response
 * envelopes (sessions / no sessions / errors), structures on real quote vectors, response codes.
 */
import { describe, expect, it } from 'vitest';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { vector } from '../../../helpers/paths.js';
import { ParseError } from '../../../../agent/errors.js';
import * as cmd from '../../../../agent/evidence/tpm/commands.js';
import { TpmReader, TpmWriter } from '../../../../agent/formats/tpm/marshal.js';
import { decodeRc, TpmError } from '../../../../agent/formats/tpm/response-codes.js';
import { TPM_ALG, TPM_ECC, TPM_RH, TPM_ST, AZURE, TPMA_OBJECT } from '../../../../agent/formats/tpm/constants.js';
import {
  parseAttest,
  parsePublic,
  parseSignature,
  publicKeyObject,
  readPcrSelection,
  writePcrSelection,
  writePublic,
  writeSignature,
  type TpmPublic,
} from '../../../../agent/formats/tpm/structures.js';
import { parseTransportSpec } from '../../../../agent/evidence/tpm/transport.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('command marshalling', () => {
  it('NV_Read with owner password session', () => {
    const c = cmd.nvRead(TPM_RH.OWNER, AZURE.HCL_REPORT_INDEX, 1024, 2048);
    // tag SESSIONS, size 35, CC 0x14e, authHandle, nvIndex, authSize 9, {RS_PW, nonce 0, attrs 1, hmac 0}, size, offset
    expect(hex(c.bytes)).toBe('8002' + '00000023' + '0000014e' + '4000000101400001' + '00000009' + '40000009' + '0000' + '01' + '0000' + '0400' + '0800');
  });
  it('NV_ReadPublic without sessions', () => {
    expect(hex(cmd.nvReadPublic(0x01400002).bytes)).toBe('80010000000e000001690' + '1400002');
  });
  it('GetCapability(TPM_PROPERTIES, NV_BUFFER_MAX, 1)', () => {
    expect(hex(cmd.getCapability(6, 0x12c, 1).bytes)).toBe('8001000000160000017a' + '00000006' + '0000012c' + '00000001');
  });
  it('Quote with NULL scheme and SHA-256 PCRs 0-23', () => {
    const c = cmd.quote(AZURE.AK_HANDLE, Buffer.from('abc'), [{ hash: TPM_ALG.SHA256, pcrs: Array.from({ length: 24 }, (_, i) => i) }]);
    expect(hex(c.bytes)).toBe('8002' + '0000002c' + '00000158' + '81000003' + '00000009400000090000010000' + '0003616263' + '0010' + '00000001000b03ffffff');
  });
  it('NV_Write and password bytes', () => {
    const c = cmd.nvWrite(TPM_RH.OWNER, 0x01400002, Buffer.from([1, 2]), 0, Buffer.from('pw'));
    expect(hex(c.bytes)).toBe(
      '8002' + '00000027' + '00000137' + '4000000101400002' + '0000000b' + '40000009' + '0000' + '01' + '00027077' + '00020102' + '0000',
    );
  });
  it('PCR selection round-trips and maps bits to indices', () => {
    const w = new TpmWriter();
    writePcrSelection(w, [
      { hash: TPM_ALG.SHA256, pcrs: [0, 7, 8, 23] },
      { hash: TPM_ALG.SHA1, pcrs: [30] },
    ]);
    const bytes = w.finish();
    expect(hex(bytes)).toBe('00000002' + '000b' + '03' + '810180' + '0004' + '04' + '00000040');
    expect(readPcrSelection(new TpmReader(bytes))).toEqual([
      { hash: TPM_ALG.SHA256, pcrs: [0, 7, 8, 23] },
      { hash: TPM_ALG.SHA1, pcrs: [30] },
    ]);
  });
});

describe('response envelopes', () => {
  const hdr = (tag: number, size: number, rc: number) => new TpmWriter().u16(tag).u32(size).u32(rc).finish();
  it('an error response throws TpmError with the decoded name', () => {
    const c = cmd.nvReadPublic(0x01400002);
    const err = (() => {
      try {
        cmd.decodeResponse(c, hdr(TPM_ST.NO_SESSIONS, 10, 0x18b));
      } catch (e) {
        return e;
      }
    })() as TpmError;
    expect(err).toBeInstanceOf(TpmError);
    expect(err.rcName).toBe('TPM_RC_HANDLE');
    expect(err.message).toContain('TPM2_NV_ReadPublic failed: TPM_RC_HANDLE (handle 1)');
    expect(err.code).toBe('ERR_TPM');
  });
  it('a sessions response: parameterSize bounds the parameters and auth area is framing-checked', () => {
    const c = cmd.nvRead(TPM_RH.OWNER, 1, 3, 0);
    const params = new TpmWriter().tpm2b(Buffer.from([9, 8, 7])).finish();
    const auth = Buffer.from('0000' + '01' + '0000', 'hex');
    const body = Buffer.concat([new TpmWriter().u32(params.length).finish(), params, auth]);
    const ok = Buffer.concat([hdr(TPM_ST.SESSIONS, 10 + body.length, 0), body]);
    expect([...cmd.decodeResponse(c, ok)]).toEqual([9, 8, 7]);
    // more data than asked for is refused
    expect(() => cmd.decodeResponse(cmd.nvRead(TPM_RH.OWNER, 1, 2, 0), ok)).toThrow(ParseError);
    // header size mismatch
    expect(() => cmd.decodeResponse(c, Buffer.concat([ok, Buffer.from([0])]))).toThrow(/header size/);
    // broken auth area
    const badAuth = Buffer.concat([hdr(TPM_ST.SESSIONS, 10 + body.length - 1, 0), body.subarray(0, body.length - 1)]);
    expect(() => cmd.decodeResponse(c, badAuth)).toThrow(ParseError);
    // bad tag
    expect(() => cmd.decodeResponse(c, Buffer.concat([hdr(0x1234, 10 + body.length, 0), body]))).toThrow(/bad tag/);
  });
  it('trailing parameter bytes are rejected', () => {
    const c = cmd.nvReadPublic(1);
    expect(() => cmd.decodeResponse(c, Buffer.concat([hdr(TPM_ST.NO_SESSIONS, 11, 0), Buffer.from([0])]))).toThrow(ParseError);
  });
});

describe('response codes', () => {
  // Cross-checked with tpm2_rc_decode (tpm2-tools).
  const cases: [number, string, string][] = [
    [0x14a, 'TPM_RC_NV_UNINITIALIZED', 'TPM_RC_NV_UNINITIALIZED'],
    [0x18b, 'TPM_RC_HANDLE', 'TPM_RC_HANDLE (handle 1)'],
    [0x9a2, 'TPM_RC_BAD_AUTH', 'TPM_RC_BAD_AUTH (session 1)'],
    [0x98e, 'TPM_RC_AUTH_FAIL', 'TPM_RC_AUTH_FAIL (session 1)'],
    [0x2c4, 'TPM_RC_VALUE', 'TPM_RC_VALUE (parameter 2)'],
    [0x100, 'TPM_RC_INITIALIZE', 'TPM_RC_INITIALIZE'],
    [0x922, 'TPM_RC_RETRY', 'TPM_RC_RETRY'],
    [0x921, 'TPM_RC_LOCKOUT', 'TPM_RC_LOCKOUT'],
    [0x149, 'TPM_RC_NV_AUTHORIZATION', 'TPM_RC_NV_AUTHORIZATION'],
    [0x14c, 'TPM_RC_NV_DEFINED', 'TPM_RC_NV_DEFINED'],
    [0x0, 'TPM_RC_SUCCESS', 'TPM_RC_SUCCESS'],
  ];
  for (const [rc, name, text] of cases) {
    it(`0x${rc.toString(16)} = ${text}`, () => {
      const d = decodeRc(rc);
      expect(d.name).toBe(name);
      expect(d.text).toBe(text);
    });
  }
  it('warnings, TPM 1.2 and vendor codes are labelled', () => {
    expect(decodeRc(0x922).warning).toBe(true);
    expect(decodeRc(0x1e).name).toMatch(/TPM12/);
    expect(decodeRc(0x501).name).toMatch(/VENDOR/);
    expect(decodeRc(0x17f).name).toBe('TPM_RC_0x0000017f');
  });
});

describe('structures', () => {
  it('TPMS_ATTEST of the real Azure quote (extraData "challenge", PCRs 0-23 SHA-256)', () => {
    const b = vector('snp/azure_quote.bin');
    const sigLen = Number(b.readBigUInt64LE(0));
    const msgLen = Number(b.readBigUInt64LE(8 + sigLen));
    const a = parseAttest(b.subarray(16 + sigLen, 16 + sigLen + msgLen));
    expect(a.type).toBe(TPM_ST.ATTEST_QUOTE);
    expect(a.extraData.toString()).toBe('challenge');
    expect(a.quote?.pcrSelect).toEqual([{ hash: TPM_ALG.SHA256, pcrs: Array.from({ length: 24 }, (_, i) => i) }]);
    expect(a.quote?.pcrDigest).toHaveLength(32);
    expect(a.qualifiedSigner.readUInt16BE(0)).toBe(TPM_ALG.SHA256);
  });
  it('TPMS_ATTEST rejects a wrong magic and trailing bytes', () => {
    const m = Buffer.from(JSON.parse(vector('snp/trustee_az-snp-vtpm_evidence-v1.json').toString()).tpm_quote.message, 'hex');
    expect(() => parseAttest(Buffer.concat([m, Buffer.from([0])]))).toThrow(/trailing/);
    const bad = Buffer.from(m);
    bad[0] = 0;
    expect(() => parseAttest(bad)).toThrow(/TPM_GENERATED_VALUE/);
  });
  it('TPMT_SIGNATURE round-trips RSASSA, RSAPSS, ECDSA, NULL and rejects others', () => {
    const sigs = [
      { sigAlg: 'rsassa' as const, hashAlg: TPM_ALG.SHA256, signature: Buffer.alloc(256, 1) },
      { sigAlg: 'rsapss' as const, hashAlg: TPM_ALG.SHA384, signature: Buffer.alloc(384, 2) },
      { sigAlg: 'ecdsa' as const, hashAlg: TPM_ALG.SHA256, r: Buffer.alloc(32, 3), s: Buffer.alloc(31, 4) },
      { sigAlg: 'null' as const },
    ];
    for (const s of sigs) {
      const w = new TpmWriter();
      writeSignature(w, s);
      expect(parseSignature(w.finish())).toEqual(s);
    }
    expect(() => parseSignature(Buffer.from('0005000b', 'hex'))).toThrow(/not supported/);
  });
  it('TPMT_PUBLIC RSA -> KeyObject equals the same key from PEM', () => {
    const pem = vector('snp/azure_akpub.pem');
    const jwk = createPublicKey(pem).export({ format: 'jwk' });
    const pub: TpmPublic = {
      type: 'rsa',
      nameAlg: TPM_ALG.SHA256,
      objectAttributes: 0x50472,
      authPolicy: Buffer.alloc(0),
      symmetric: { algorithm: TPM_ALG.NULL },
      scheme: { scheme: TPM_ALG.RSASSA, hashAlg: TPM_ALG.SHA256 },
      keyBits: 2048,
      exponent: 0,
      modulus: Buffer.from(jwk.n!, 'base64url'),
    };
    const w = new TpmWriter();
    writePublic(w, pub);
    const parsed = parsePublic(w.finish());
    expect(parsed).toEqual(pub);
    expect(publicKeyObject(parsed).export({ format: 'jwk' })).toEqual(jwk);
  });
  it('TPMT_PUBLIC ECC P-256 with short coordinates -> KeyObject', () => {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const jwk = publicKey.export({ format: 'jwk' });
    const x = Buffer.from(jwk.x!, 'base64url');
    const pub: TpmPublic = {
      type: 'ecc',
      nameAlg: TPM_ALG.SHA256,
      objectAttributes: TPMA_OBJECT.sign,
      authPolicy: Buffer.alloc(0),
      symmetric: { algorithm: TPM_ALG.NULL },
      scheme: { scheme: TPM_ALG.ECDSA, hashAlg: TPM_ALG.SHA256 },
      curveId: TPM_ECC.NIST_P256,
      kdf: { scheme: TPM_ALG.NULL },
      x,
      y: Buffer.from(jwk.y!, 'base64url'),
    };
    const w = new TpmWriter();
    writePublic(w, pub);
    expect(publicKeyObject(parsePublic(w.finish())).export({ format: 'jwk' })).toEqual(jwk);
    expect(() => publicKeyObject({ ...pub, curveId: 0x20 })).toThrow(ParseError);
    expect(() => publicKeyObject({ ...pub, x: Buffer.alloc(40, 1) })).toThrow(ParseError);
    expect(() => publicKeyObject({ ...pub, x: Buffer.alloc(32, 0xff) })).toThrow(ParseError); // not on the curve
  });
  it('TPMT_PUBLIC of another type is a ParseError', () => {
    expect(() => parsePublic(Buffer.from('0008000b000000000000', 'hex'))).toThrow(/not supported/);
  });
});

describe('transport spec', () => {
  it('parses device paths, HOST:PORT and unix:PATH', () => {
    expect(parseTransportSpec('/dev/tpmrm0', 'device')).toEqual({ kind: 'device', path: '/dev/tpmrm0' });
    expect(parseTransportSpec('127.0.0.1:2321', 'swtpm')).toEqual({ kind: 'socket', address: { host: '127.0.0.1', port: 2321 } });
    expect(parseTransportSpec('[::1]:2321', 'swtpm')).toEqual({ kind: 'socket', address: { host: '::1', port: 2321 } });
    expect(parseTransportSpec('unix:/tmp/s', 'swtpm')).toEqual({ kind: 'socket', address: { path: '/tmp/s' } });
    for (const bad of ['host', 'host:0', 'host:70000', 'unix:']) expect(() => parseTransportSpec(bad, 'swtpm')).toThrow(/--swtpm/);
    expect(() => parseTransportSpec('tpmrm0', 'device')).toThrow(/--tpm/);
  });
});
