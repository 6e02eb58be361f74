import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CollateralError, ParseError } from '../../../agent/errors.js';
import {
  CollateralStore,
  CollateralFetchError,
  httpRequest,
  fetchVcek,
  fetchCertChain,
  fetchCrl,
  fetchImdsCertification,
  fetchRim,
  fetchOcsp,
  ocspKey,
  parseRetryAfter,
  classify,
  type CollateralKey,
} from '../../../agent/collateral/index.js';
import { parseAmdCertExtensions } from '../../../agent/formats/snp-abi/index.js';
import { parseOcspResponse, findSingleResponse } from '../../../agent/verify/nvidia/ocsp-check.js';
import { parseCertificateEager as parseNvCert } from '../../../agent/formats/x509/certificate.js';
import { buildCrl } from '../../../agent/simulation/x509-builder.js';
import { makeSimSnpChain, amdName } from '../../helpers/snp-sim-chain.js';
import { startFakeCollateralServer, type FakeCollateralServer } from '../../helpers/fake-collateral-server.js';
import { vector } from '../../helpers/paths.js';

const milanVcek = vector('snp/virtee_vcek_milan.der');
const milanExt = parseAmdCertExtensions(milanVcek);
const milanHw = milanExt.hwId!;
const milanTcb = { bootloader: 3, tee: 0, snp: 8, microcode: 115 };
const milanKey: CollateralKey = { kind: 'vcek', product: 'Milan', hwId: milanHw.toString('hex'), tcb: '7308000000000003' };
const turinVcek = vector('snp/virtee_vcek_turin.der');
const rimXml = vector('nvidia/attestation-sdk/rims/NV_GPU_DRIVER_GH100_550.144.03.xml').toString('utf8');
const gpuChain = [
  ...vector('nvidia/nvtrust/hopper-550/hopperCertChain.txt')
    .toString()
    .matchAll(/-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g),
].map((m) => Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64'));
const sim = makeSimSnpChain();
const milanCrl = buildCrl({
  issuer: amdName('ARK-Milan'),
  issuerKey: sim.arkKey,
  signature: 'rsa-pss-sha384',
  thisUpdate: new Date('2026-01-01Z'),
  nextUpdate: new Date('2026-02-01Z'),
  revoked: [{ serial: 0x10001, date: new Date('2025-12-01Z') }],
});
const azurePem = vector('snp/trustee_az-snp-vtpm_vcek.pem').toString();
const azureBlocks = azurePem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n?/g)!;

let server: FakeCollateralServer;
let dir: string;
const fast = { backoffBaseMs: 10, backoffMaxMs: 50 };

beforeAll(async () => {
  server = await startFakeCollateralServer({
    routes: {
      // The KDS URL forms (AMD #57230; go-sev-guest kds/kds.go), written out independently of vcekPath().
      [`/vcek/v1/Milan/${milanHw.toString('hex')}?blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115`]: {
        body: milanVcek,
        headers: { 'Content-Type': 'application/pkix-cert' },
      },
      '/vcek/v1/Turin/1e550a8ee5cf9f4d?fmcSPL=0&blSPL=0&teeSPL=0&snpSPL=0&ucodeSPL=9': { body: turinVcek },
      // A KDS that answers a VCEK query with somebody else's certificate.
      [`/vcek/v1/Milan/${'ee'.repeat(64)}?blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115`]: { body: vector('snp/gosevguest_vcek.der') },
      '/vcek/v1/Milan/cert_chain': { body: vector('snp/ask_ark_milan.pem') },
      '/vlek/v1/Milan/crl': { body: milanCrl },
      '/slow-429': { status: 429, body: 'later', headers: { 'Retry-After': '3600' } },
    },
    rateLimitOnce: { paths: [`/vcek/v1/Milan/${milanHw.toString('hex')}`], retryAfter: '1' },
    imds: { vcekCert: azureBlocks[0], certificateChain: azureBlocks.slice(1).join(''), tcbm: '7308000000000003' },
    rims: { NV_GPU_DRIVER_GH100_550_144_03_WRONG: rimXml, 'NV_GPU_DRIVER_GH100_550.144.03': rimXml },
    ocsp: { thisUpdate: new Date('2026-03-01T00:00:00Z'), nextUpdate: new Date('2026-03-08T00:00:00Z') },
    bigBytes: 3 * 1024 * 1024,
  });
});
afterAll(async () => {
  await server.close();
});
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'cvm-collateral-fetch-'));
  server.requests.length = 0;
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('AMD KDS', () => {
  it('fetches the VCEK for product + hwID + TCB, honouring a 429 Retry-After once, then serves it from the cache', async () => {
    const store = new CollateralStore(dir);
    const t0 = Date.now();
    const got = await store.getOrFetch(milanKey, () => fetchVcek('Milan', milanHw, milanTcb, { baseUrl: server.url, ...fast }), {
      online: true,
      at: new Date('2026-01-01Z'),
    });
    const elapsed = Date.now() - t0;
    expect(got.origin).toBe('network');
    expect(got.entry.data.equals(milanVcek)).toBe(true);
    expect(got.freshness.state).toBe('fresh');
    expect(got.entry.meta.source).toBe(`${server.url}/vcek/v1/Milan/${milanHw.toString('hex')}?blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115`);
    expect(server.requests.map((r) => r.method)).toEqual(['GET', 'GET']);
    expect(elapsed).toBeGreaterThanOrEqual(950); // waited the Retry-After second
    const again = await store.getOrFetch(milanKey, () => fetchVcek('Milan', milanHw, milanTcb, { baseUrl: server.url }), {
      online: true,
      at: new Date('2026-01-01Z'),
    });
    expect(again.origin).toBe('cache');
    expect(server.requests).toHaveLength(2);
  });

  it('Turin: 8-byte hwID from the 64-byte CHIP_ID and fmcSPL in the query', async () => {
    const chip = Buffer.concat([Buffer.from('1e550a8ee5cf9f4d', 'hex'), Buffer.alloc(56, 0x77)]);
    const got = await fetchVcek('Turin', chip, { fmc: 0, bootloader: 0, tee: 0, snp: 0, microcode: 9 }, { baseUrl: server.url });
    expect(Buffer.from(got.bytes).equals(turinVcek)).toBe(true);
  });

  it('404 for an unknown chip is a typed not-found error that says how to import instead', async () => {
    const err = await fetchVcek('Milan', Buffer.alloc(64, 1), milanTcb, { baseUrl: server.url, ...fast }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CollateralFetchError);
    expect((err as CollateralFetchError).reason).toBe('not-found');
    expect((err as Error).message).toMatch(/VCEK for Milan: not found at .* \(HTTP 404\).*cvm-agent collateral import/);
    expect(server.requests).toHaveLength(1); // 404 is not retried
  });

  it('a server answering with a different VCEK than asked for is refused', async () => {
    const store = new CollateralStore(dir);
    const key: CollateralKey = { kind: 'vcek', product: 'Milan', hwId: 'ee'.repeat(64), tcb: '7308000000000003' };
    await expect(store.getOrFetch(key, () => fetchVcek('Milan', Buffer.alloc(64, 0xee), milanTcb, { baseUrl: server.url }), { online: true })).rejects.toThrow(
      /did not return VCEK Milan hwID eeeeeeee/,
    );
  });

  it('cert_chain stores ASK and ARK; the vlek CRL is stored as crl-vlek', async () => {
    const store = new CollateralStore(dir);
    const ark = await store.getOrFetch({ kind: 'ark', product: 'Milan' }, () => fetchCertChain('Milan', 'vcek', { baseUrl: server.url }), { online: true });
    expect(ark.entry.meta.path).toBe('amd/Milan/ark.pem');
    expect((await store.getCa('ask', 'Milan'))?.meta.source).toBe(`${server.url}/vcek/v1/Milan/cert_chain`);
    const crl = await store.getOrFetch({ kind: 'crl', product: 'Milan', chain: 'vlek' }, () => fetchCrl('Milan', 'vlek', { baseUrl: server.url }), {
      online: true,
      at: new Date('2026-01-15Z'),
    });
    expect(crl.entry.meta).toMatchObject({ path: 'amd/Milan/crl-vlek.der', nextUpdate: '2026-02-01T00:00:00.000Z' });
    expect(crl.freshness.state).toBe('fresh');
  });
});

describe('Azure IMDS THIM', () => {
  it('sends Metadata: true and stores VCEK, ASK and ARK from the JSON', async () => {
    const store = new CollateralStore(dir);
    const vcekItemKey = classify(Buffer.from(azureBlocks[0]!))[0]!.key;
    const got = await store.getOrFetch(vcekItemKey, () => fetchImdsCertification({ baseUrl: server.url }), { online: true, at: new Date('2026-01-01Z') });
    expect(got.origin).toBe('network');
    expect(server.requests[0]!.headers.metadata).toBe('true');
    expect(server.requests[0]!.url).toBe('/metadata/THIM/amd/certification');
    expect((await store.list()).entries.map((e) => e.meta.kind).sort()).toEqual(['ark', 'ask', 'vcek']);
  });
});

describe('NVIDIA RIM service', () => {
  it('GET /v1/rim/<id> → base64 JSON → stored RIM XML', async () => {
    const store = new CollateralStore(dir);
    const key: CollateralKey = { kind: 'rim', id: 'NV_GPU_DRIVER_GH100_550.144.03' };
    const got = await store.getOrFetch(key, () => fetchRim('NV_GPU_DRIVER_GH100_550.144.03', { baseUrl: server.url, serviceKey: 'k1' }), {
      online: true,
      at: new Date('2026-01-01Z'),
    });
    expect(got.entry.data.toString('utf8')).toBe(rimXml);
    expect(got.entry.meta.path).toBe('nvidia/rim/NV_GPU_DRIVER_GH100_550.144.03.xml');
    expect(server.requests[0]!.headers.authorization).toBe('Bearer k1');
  });

  it('a RIM served under an id that does not match its content is refused', async () => {
    const store = new CollateralStore(dir);
    await expect(
      store.getOrFetch(
        { kind: 'rim', id: 'NV_GPU_DRIVER_GH100_550_144_03_WRONG' },
        () => fetchRim('NV_GPU_DRIVER_GH100_550_144_03_WRONG', { baseUrl: server.url }),
        { online: true },
      ),
    ).rejects.toThrow(ParseError);
  });

  it('an unpublished RIM is a not-found error that names the known lag and the import command', async () => {
    const err = await fetchRim('NV_GPU_VBIOS_G520_0280_895_96009D0002', { baseUrl: server.url }).catch((e: unknown) => e);
    expect((err as CollateralFetchError).reason).toBe('not-found');
    expect((err as Error).message).toMatch(/not published by the RIM service.*collateral import/);
  });

  it('rejects ids with path characters before any request', async () => {
    await expect(fetchRim('../../etc/passwd', { baseUrl: server.url })).rejects.toThrow(CollateralError);
    expect(server.requests).toHaveLength(0);
  });
});

describe('OCSP', () => {
  it('POSTs a DER OCSPRequest whose CertID names the certificate (SHA-384) and stores the response', async () => {
    const [cert, issuer] = [gpuChain[1]!, gpuChain[2]!];
    const store = new CollateralStore(dir);
    const got = await fetchOcsp(cert, issuer, { url: `${server.url}/ocsp` });
    const req = server.requests[0]!;
    expect(req.method).toBe('POST');
    expect(req.headers['content-type']).toBe('application/ocsp-request');
    // The verifier's own CertID matching (independent hashing code) finds the response for this cert.
    const parsed = parseOcspResponse(got.bytes);
    expect(findSingleResponse(parsed, parseNvCert(cert), parseNvCert(issuer))?.status).toBe('good');
    expect(parsed.responses[0]!.hashAlgorithm).toBe('2.16.840.1.101.3.4.2.2');
    const key = ocspKey(got.certId);
    const [entry] = await store.putBytes(got.bytes, { source: got.source });
    expect(entry!.meta.key).toEqual(key);
    expect(entry!.meta.path).toBe(`nvidia/ocsp/${got.certId.issuerKeyHash.toString('hex')}-${got.certId.serial.toString(16)}.der`);
    expect((await store.getOcsp(got.certId.issuerKeyHash, got.certId.serial))?.meta.nextUpdate).toBe('2026-03-08T00:00:00.000Z');
  });

  it('SHA-1 CertID with a nonce extension', async () => {
    const got = await fetchOcsp(gpuChain[2]!, gpuChain[3]!, { url: `${server.url}/ocsp`, hash: 'sha1', nonce: Buffer.alloc(32, 7) });
    expect(got.certId.issuerKeyHash).toHaveLength(20);
    expect(server.requests[0]!.body.includes(Buffer.alloc(32, 7))).toBe(true);
    expect(parseOcspResponse(got.bytes).responses[0]!.hashAlgorithm).toBe('1.3.14.3.2.26');
  });

  it('refuses a wrong issuer before sending anything', async () => {
    await expect(fetchOcsp(gpuChain[1]!, gpuChain[3]!, { url: `${server.url}/ocsp` })).rejects.toThrow(/is not the issuer/);
    expect(server.requests).toHaveLength(0);
  });
});

describe('HTTP policy', () => {
  it('a server that never answers gives a typed timeout within the configured time', async () => {
    const t0 = Date.now();
    const err = await httpRequest({ url: `${server.url}/never`, what: 'test' }, { timeoutMs: 300, retries: 3 }).catch((e: unknown) => e);
    const elapsed = Date.now() - t0;
    expect((err as CollateralFetchError).reason).toBe('timeout');
    expect((err as Error).message).toMatch(/no complete answer from .*\/never within 300 ms/);
    expect(elapsed).toBeLessThan(1500);
  });

  it('an oversized streamed response is rejected', async () => {
    const err = await httpRequest({ url: `${server.url}/big`, what: 'big' }, { maxBytes: 1024 * 1024 }).catch((e: unknown) => e);
    expect((err as CollateralFetchError).reason).toBe('too-large');
    expect((err as Error).message).toMatch(/exceeds the 1048576-byte limit/);
  });

  it('an oversized declared Content-Length is rejected before reading', async () => {
    const err = await httpRequest({ url: `${server.url}/vcek/v1/Milan/cert_chain`, what: 'chain' }, { maxBytes: 100 }).catch((e: unknown) => e);
    expect((err as CollateralFetchError).reason).toBe('too-large');
  });

  it('a Retry-After longer than allowed fails at once as rate-limited', async () => {
    const t0 = Date.now();
    const err = await httpRequest({ url: `${server.url}/slow-429`, what: 'kds' }, { maxRetryAfterMs: 5_000 }).catch((e: unknown) => e);
    expect((err as CollateralFetchError).reason).toBe('rate-limited');
    expect((err as Error).message).toMatch(/retry after 3600 s/);
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(server.requests).toHaveLength(1);
  });

  it('connection refused is retried with backoff, then a network error', async () => {
    const closed = await startFakeCollateralServer();
    const url = closed.url;
    await closed.close();
    const err = await httpRequest({ url: `${url}/x`, what: 'x' }, { retries: 2, ...fast }).catch((e: unknown) => e);
    expect((err as CollateralFetchError).reason).toBe('network');
    expect((err as Error).message).toMatch(/after 3 attempt/);
  });

  it('parses Retry-After seconds and HTTP-dates', () => {
    expect(parseRetryAfter('7')).toBe(7000);
    expect(parseRetryAfter('Wed, 21 Oct 2015 07:28:10 GMT', Date.parse('Wed, 21 Oct 2015 07:28:00 GMT'))).toBe(10_000);
    expect(parseRetryAfter('soon')).toBeUndefined();
    expect(parseRetryAfter(null)).toBeUndefined();
  });
});

describe('offline-first', () => {
  it('with online fetching off nothing is fetched and a missing entry says how to import it', async () => {
    const store = new CollateralStore(dir);
    let called = 0;
    const err = await store
      .getOrFetch(milanKey, () => {
        called++;
        return fetchVcek('Milan', milanHw, milanTcb, { baseUrl: server.url });
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CollateralError);
    expect((err as Error).message).toMatch(
      /not in the collateral cache .* online fetching is off.*kdsintf\.amd\.com\/vcek\/v1\/Milan.*cvm-agent collateral import FILE/,
    );
    expect(called).toBe(0);
    expect(server.requests).toHaveLength(0);
  });

  it('offline: an expired cached entry is returned with its expiry made explicit, without fetching', async () => {
    const store = new CollateralStore(dir);
    const [vlek] = await store.putBytes(vector('snp/trustee_snp_test-vlek.der'), { source: 'test' });
    const got = await store.getOrFetch(
      vlek!.meta.key,
      () => {
        throw new Error('must not fetch');
      },
      { at: new Date('2026-01-01Z') },
    );
    expect(got.origin).toBe('cache');
    expect(got.freshness.state).toBe('expired');
    expect(server.requests).toHaveLength(0);
  });

  it('online: when a refresh fails the cached copy comes back with the error', async () => {
    const store = new CollateralStore(dir);
    const [vlek] = await store.putBytes(vector('snp/trustee_snp_test-vlek.der'), { source: 'test' });
    const got = await store.getOrFetch(
      vlek!.meta.key,
      () => httpRequest({ url: `${server.url}/vlek/v1/Milan/none`, what: 'VLEK' }).then((r) => ({ bytes: r.body, source: 'x' })),
      { online: true, at: new Date('2026-01-01Z') },
    );
    expect(got.origin).toBe('cache');
    expect(got.freshness.state).toBe('expired');
    expect(got.fetchError).toMatch(/HTTP 404/);
  });
});
