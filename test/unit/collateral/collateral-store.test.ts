import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { mkdtempSync, mkdirSync, rmSync, readFileSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CvmError, CollateralError, ParseError } from '../../../agent/errors.js';
import { classify, CollateralStore, freshness, keyPath, checkKey, keyFromPath, buildBundle, parseBundle } from '../../../agent/collateral/index.js';
import { parseAmdCertExtensions, parseSnpReport } from '../../../agent/formats/snp-abi/index.js';
import { buildCrl } from '../../../agent/simulation/x509-builder.js';
import { makeSimSnpChain, amdName } from '../../helpers/snp-sim-chain.js';
import { buildGoodOcspResponse, certIdOfRequest } from '../../helpers/fake-collateral-server.js';
import { buildOcspRequest } from '../../../agent/collateral/fetch/ocsp-fetch.js';
import { vector, vectorsDir, FC_RUNS } from '../../helpers/paths.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'cvm-collateral-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const SNP = ['gosevguest_vcek.der', 'virtee_vcek_milan.der', 'virtee_vcek_turin.der', 'trustee_snp_test-vcek.der', 'trustee_az-snp-vtpm_vcek-genoa.pem'];

describe('classify: real vectors', () => {
  it.each(SNP)('%s is a VCEK keyed by its product, hwID and TCB', (f) => {
    const items = classify(vector(`snp/${f}`), { fileName: f });
    expect(items).toHaveLength(1);
    const key = items[0]!.key;
    expect(key.kind).toBe('vcek');
    if (key.kind !== 'vcek') return;
    const der = f.endsWith('.pem') ? items[0]!.data : vector(`snp/${f}`);
    const ext = parseAmdCertExtensions(der);
    expect(key.hwId).toBe(ext.hwId!.toString('hex'));
    expect(key.product).toBe(ext.productName.split('-')[0]);
    expect(keyPath(key)).toBe(`amd/${key.product}/vcek/${key.hwId}/${key.tcb}.der`);
  });

  it('keys the Milan VCEK by the TCB the report carries as REPORTED_TCB', () => {
    // virtee report (TCB 3/0/8/115) is signed by virtee_vcek_milan.der; its REPORTED_TCB raw u64 is the key.
    const report = parseSnpReport(Buffer.from(vector('snp/virtee_report_milan.hex').toString('latin1').trim(), 'hex'));
    const [item] = classify(vector('snp/virtee_vcek_milan.der'));
    expect(item!.key).toEqual({
      kind: 'vcek',
      product: 'Milan',
      hwId: Buffer.from(report.chipId).toString('hex'),
      tcb: report.reportedTcb.raw.toString(16).padStart(16, '0'),
    });
  });

  it('Turin VCEK: 8-byte hwID and fmcSPL in the Turin TCB layout', () => {
    const [item] = classify(vector('snp/virtee_vcek_turin.der'));
    expect(item!.key).toEqual({ kind: 'vcek', product: 'Turin', hwId: '1e550a8ee5cf9f4d', tcb: '0900000000000000' });
  });

  it('VLEK keyed by product and TCB (4/0/24/217), valid 2024-12-10..2025-12-10', () => {
    const [item] = classify(vector('snp/trustee_snp_test-vlek.der'));
    expect(item!.key).toEqual({ kind: 'vlek', product: 'Milan', tcb: 'd918000000000004' });
    expect(item!.validity.notAfter?.startsWith('2025-12-10')).toBe(true);
  });

  it.each([
    ['ask_ark_milan.pem', ['ask', 'ark'], 'Milan'],
    ['ask_ark_genoa.pem', ['ask', 'ark'], 'Genoa'],
    ['ask_ark_turin_vcek.pem', ['ask', 'ark'], 'Turin'],
    ['ask_ark_milan_vlek.pem', ['asvk', 'ark'], 'Milan'],
    ['ask_ark_genoa_vlek.pem', ['asvk', 'ark'], 'Genoa'],
    ['ask_ark_turin_vlek.pem', ['asvk', 'ark'], 'Turin'],
    ['trustee_milan_ask_ark_asvk.pem', ['ask', 'ark', 'asvk'], 'Milan'],
    ['azure_certs.pem', ['vcek', 'ask', 'ark'], 'Milan'],
  ])('%s holds %j for %s', (f, kinds, product) => {
    const items = classify(vector(`snp/${f}`));
    expect(items.map((i) => i.key.kind)).toEqual(kinds);
    for (const i of items) expect((i.key as { product: string }).product).toBe(product);
    for (const i of items.filter((x) => x.key.kind !== 'vcek')) expect(i.data.toString().startsWith('-----BEGIN CERTIFICATE-----')).toBe(true);
  });

  it.each([
    ['nvidia/attestation-sdk/rims/NV_GPU_DRIVER_GH100_550.144.03.xml', 'NV_GPU_DRIVER_GH100_550.144.03'],
    ['nvidia/nvtrust/hopper-545-complete/Driver_RIM_test_no_gpu.swidtag', 'NV_GPU_DRIVER_GH100_545.00'],
    ['nvidia/nvtrust/hopper-545-complete/1010_0200_882_96005E0001_test_no_gpu.swidtag', 'NV_GPU_VBIOS_1010_0200_882_96005E0001'],
    ['nvidia/nvtrust/rims-vbios-samples/g520_0200_885_9600740001_PROD.swidtag', 'NV_GPU_VBIOS_G520_0200_885_9600740001'],
    ['nvidia/attestation-sdk/negative/NV_GPU_VBIOS_1010_0200_882_96005E0001_measurement_mismatch.xml', 'NV_GPU_VBIOS_1010_0200_882_96005E0001'],
  ])('RIM %s gets id %s', (f, id) => {
    const items = classify(vector(f), { fileName: f.split('/').pop()! });
    expect(items.map((i) => i.key)).toEqual([{ kind: 'rim', id }]);
    expect(items[0]!.validity.notAfter).toMatch(/^20\d\d-/);
  });

  it('every nvtrust VBIOS sample RIM classifies to the id of its file name', () => {
    const d = join(vectorsDir, 'nvidia/nvtrust/rims-vbios-samples');
    const files = readdirSync(d).filter((f) => f.endsWith('_PROD.swidtag'));
    expect(files.length).toBeGreaterThan(10);
    for (const f of files) {
      const [item] = classify(readFileSync(join(d, f)), { fileName: f });
      expect(item!.key).toEqual({ kind: 'rim', id: `NV_GPU_VBIOS_${f.replace('_PROD.swidtag', '').toUpperCase()}` });
    }
  });

  it('a RIM id that disagrees with the RIM version is refused', () => {
    expect(() => classify(vector('nvidia/attestation-sdk/rims/NV_GPU_DRIVER_GH100_550.144.03.xml'), { rimId: 'NV_GPU_DRIVER_GH100_535.86.09' })).toThrow(
      /does not match the RIM's version 550.144.03/,
    );
  });

  it('a VBIOS RIM without a usable name asks for --rim-id', () => {
    expect(() => classify(vector('nvidia/attestation-sdk/negative/incorrect_cert_chain_driver_rim.xml'), { fileName: 'x.xml' })).toThrow(/--rim-id/);
  });

  it('Azure IMDS certification JSON yields VCEK, ASK and ARK', () => {
    const pem = vector('snp/trustee_az-snp-vtpm_vcek.pem').toString();
    const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n?/g)!;
    const json = JSON.stringify({ vcekCert: blocks[0], certificateChain: blocks.slice(1).join(''), tcbm: '0000000000000000' });
    expect(classify(Buffer.from(json)).map((i) => i.key.kind)).toEqual(['vcek', 'ask', 'ark']);
  });

  it('a KDS CRL (issuer ARK-<P>) is recognized; the chain comes from the file name', () => {
    const sim = makeSimSnpChain();
    const crl = buildCrl({
      issuer: amdName('ARK-Genoa'),
      issuerKey: sim.arkKey,
      signature: 'rsa-pss-sha384',
      thisUpdate: new Date('2026-01-01Z'),
      nextUpdate: new Date('2026-02-01Z'),
      revoked: [],
    });
    expect(classify(crl)[0]!.key).toEqual({ kind: 'crl', product: 'Genoa', chain: 'vcek' });
    expect(classify(crl, { fileName: 'genoa-vlek.crl' })[0]!.key).toEqual({ kind: 'crl', product: 'Genoa', chain: 'vlek' });
    const pem = `-----BEGIN X509 CRL-----\n${crl.toString('base64')}\n-----END X509 CRL-----\n`;
    expect(classify(Buffer.from(pem))[0]!.validity).toEqual({ thisUpdate: '2026-01-01T00:00:00.000Z', nextUpdate: '2026-02-01T00:00:00.000Z' });
    const foreign = buildCrl({
      issuer: amdName('Some CA'),
      issuerKey: sim.arkKey,
      signature: 'rsa-pss-sha384',
      thisUpdate: new Date('2026-01-01Z'),
      nextUpdate: new Date('2026-02-01Z'),
      revoked: [],
    });
    expect(() => classify(foreign)).toThrow(/not an AMD KDS CRL/);
  });

  it('an OCSP response is keyed by its CertID issuerKeyHash and serial', () => {
    const chain = vector('nvidia/nvtrust/hopper-550/hopperCertChain.txt').toString();
    const ders = [...chain.matchAll(/-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g)].map((m) =>
      Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64'),
    );
    const req = buildOcspRequest({ cert: ders[1]!, issuer: ders[2]! });
    const resp = buildGoodOcspResponse(certIdOfRequest(req.der), new Date('2026-01-01Z'), new Date('2026-01-08Z'));
    const [item] = classify(resp);
    expect(item!.key).toEqual({ kind: 'ocsp', issuerKeyHash: req.certId.issuerKeyHash.toString('hex'), serial: req.certId.serial.toString(16) });
    expect(item!.validity.nextUpdate).toBe('2026-01-08T00:00:00.000Z');
  });

  it('rejects non-collateral with ParseError', () => {
    expect(() => classify(Buffer.from('hello world'))).toThrow(ParseError);
    expect(() => classify(Buffer.alloc(0))).toThrow(/empty/);
    expect(() => classify(vector('snp/azure_akpub.pem'))).toThrow(/PEM without any CERTIFICATE/);
    expect(() => classify(vector('nvidia/nvtrust/hopper-550/hopperCertChain.txt'))).toThrow(/not AMD SEV collateral/);
    expect(() => classify(Buffer.from('{"foo":1}'))).toThrow(/neither/);
    expect(() => classify(vector('snp/gosevguest_attestation.bin'))).toThrow(CvmError);
  });

  it('property: arbitrary bytes never raise anything but typed errors', () => {
    const seeds = [vector('snp/virtee_vcek_milan.der'), vector('snp/trustee_snp_test-vlek.der')];
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 2048 }),
          fc.tuple(fc.constantFrom(...seeds), fc.nat(), fc.integer({ min: 0, max: 255 })).map(([s, i, b]) => {
            const c = Uint8Array.from(s);
            c[i % c.length] = b;
            return c;
          }),
          fc.tuple(fc.constantFrom(...seeds), fc.nat()).map(([s, n]) => s.subarray(0, n % s.length)),
          fc.string().map((s) => Buffer.from(`{"vcekCert":${JSON.stringify(s)},"certificateChain":""}`)),
        ),
        (bytes) => {
          try {
            classify(bytes, { fileName: 'x' });
          } catch (err) {
            if (!(err instanceof CvmError)) throw err;
          }
        },
      ),
      { numRuns: FC_RUNS },
    );
  });
});

describe('keys and paths', () => {
  it.each([
    { kind: 'rim', id: '../../etc/passwd' },
    { kind: 'rim', id: 'NV_GPU_DRIVER_GH100_../../x' },
    { kind: 'rim', id: 'NV_GPU/../../x' },
    { kind: 'vcek', product: '../Milan', hwId: 'ab'.repeat(64), tcb: '0'.repeat(16) },
    { kind: 'vcek', product: 'Milan', hwId: '../'.repeat(8), tcb: '0'.repeat(16) },
    { kind: 'vcek', product: 'Milan', hwId: 'ab'.repeat(64), tcb: '/etc/passwd00000' },
    { kind: 'ocsp', issuerKeyHash: 'a'.repeat(40), serial: '../x' },
    { kind: 'crl', product: 'Milan', chain: '../vcek' },
    { kind: 'ask', product: 'Bergamo' },
    { kind: 'nope' },
  ])('rejects hostile key %j', (key) => {
    expect(() => keyPath(key as never)).toThrow(CollateralError);
  });

  it('keyFromPath inverts keyPath and refuses other paths', () => {
    const keys = [
      { kind: 'vcek', product: 'Genoa', hwId: 'ab'.repeat(64), tcb: '0123456789abcdef' },
      { kind: 'vlek', product: 'Milan', tcb: 'd918000000000004' },
      { kind: 'asvk', product: 'Turin' },
      { kind: 'crl', product: 'Milan', chain: 'vlek' },
      { kind: 'rim', id: 'NV_GPU_DRIVER_GH100_550.144.03' },
      { kind: 'ocsp', issuerKeyHash: 'c'.repeat(96), serial: '1f' },
    ];
    for (const k of keys) expect(keyFromPath(keyPath(checkKey(k)))).toEqual(k);
    expect(() => keyFromPath('amd/Milan/../../x.pem')).toThrow(CollateralError);
    expect(() => keyFromPath('etc/passwd')).toThrow(CollateralError);
  });

  it('a bundle entry whose key tries to escape is refused before anything is written', () => {
    const data = vector('snp/virtee_vcek_milan.der');
    const bundle = JSON.parse(buildBundle([], new Date()));
    bundle.entries = [
      { key: { kind: 'rim', id: '../../../tmp/evil' }, fetchedAt: '2026-01-01Z', source: 'x', sha256: sha256(data), data: data.toString('base64') },
    ];
    expect(() => parseBundle(bundle)).toThrow(/invalid collateral RIM id/);
  });
});

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('CollateralStore', () => {
  it('stores each item at its layout path with a metadata sidecar and reads it back', async () => {
    const store = new CollateralStore(dir);
    const stored = await store.putBytes(vector('snp/ask_ark_milan.pem'), { source: 'import:ask_ark_milan.pem', fetchedAt: '2026-01-02T03:04:05Z' });
    expect(stored.map((e) => e.meta.path)).toEqual(['amd/Milan/ask.pem', 'amd/Milan/ark.pem']);
    expect(existsSync(join(dir, 'amd/Milan/ask.pem.meta.json'))).toBe(true);
    const meta = JSON.parse(readFileSync(join(dir, 'amd/Milan/ark.pem.meta.json'), 'utf8'));
    expect(meta).toMatchObject({
      kind: 'ark',
      source: 'import:ask_ark_milan.pem',
      fetchedAt: '2026-01-02T03:04:05.000Z',
      notAfter: '2045-10-22T17:23:05.000Z',
    });
    expect(meta.sha256).toBe(sha256(readFileSync(join(dir, 'amd/Milan/ark.pem'))));
    const ark = await store.getCa('ark', 'Milan');
    expect(ark?.data.toString()).toContain('BEGIN CERTIFICATE');
    expect(await store.getCa('ark', 'Genoa')).toBeUndefined();
  });

  it('typed getters find a VCEK by the report CHIP_ID and REPORTED_TCB', async () => {
    const store = new CollateralStore(dir);
    await store.putBytes(vector('snp/virtee_vcek_milan.der'), { source: 'test' });
    await store.putBytes(vector('snp/virtee_vcek_turin.der'), { source: 'test' });
    const report = parseSnpReport(Buffer.from(vector('snp/virtee_report_milan.hex').toString('latin1').trim(), 'hex'));
    const hit = await store.getVcek('Milan', report.chipId, report.reportedTcb.raw);
    expect(hit?.data.equals(vector('snp/virtee_vcek_milan.der'))).toBe(true);
    expect(await store.getVcek('Milan', report.chipId, report.reportedTcb.raw + 1n)).toBeUndefined();
    // Turin: a 64-byte CHIP_ID is reduced to its first 8 bytes.
    const turinChip = Buffer.concat([Buffer.from('1e550a8ee5cf9f4d', 'hex'), Buffer.alloc(56)]);
    expect((await store.getVcek('Turin', turinChip, 0x0900000000000000n))?.data.equals(vector('snp/virtee_vcek_turin.der'))).toBe(true);
  });

  it('detects a corrupted entry', async () => {
    const store = new CollateralStore(dir);
    const [e] = await store.putBytes(vector('snp/virtee_vcek_milan.der'), { source: 'test' });
    const bytes = readFileSync(e!.file);
    bytes[100] = bytes[100]! ^ 1;
    writeFileSync(e!.file, bytes);
    await expect(store.get(e!.meta.key)).rejects.toThrow(/corrupt/);
    const { entries, problems } = await store.list();
    expect(entries).toHaveLength(0);
    expect(problems[0]).toMatch(/corrupt/);
  });

  it('a file dropped in by hand (no sidecar) is listed from its own bytes', async () => {
    const store = new CollateralStore(dir);
    const key = classify(vector('snp/trustee_snp_test-vlek.der'))[0]!.key;
    const file = store.fileFor(key);
    mkdirSync(join(file, '..'), { recursive: true });
    writeFileSync(file, vector('snp/trustee_snp_test-vlek.der'));
    const { entries } = await store.list();
    expect(entries.map((e) => [e.meta.kind, e.meta.source])).toEqual([['vlek', 'unknown (no metadata)']]);
  });

  it('list ignores files outside the layout (reports them) and never follows ../', async () => {
    const store = new CollateralStore(dir);
    await store.putBytes(vector('snp/virtee_vcek_milan.der'), { source: 'test' });
    writeFileSync(join(dir, 'stray.txt'), 'x');
    const { entries, problems } = await store.list();
    expect(entries).toHaveLength(1);
    expect(problems).toEqual([expect.stringMatching(/^stray.txt: not a collateral path/)]);
  });
});

describe('freshness', () => {
  it('VLEK: fresh before 2025-12-10, expired after, not valid before 2024-12-10', async () => {
    const store = new CollateralStore(dir);
    const [e] = await store.putBytes(vector('snp/trustee_snp_test-vlek.der'), { source: 'test', fetchedAt: '2025-01-01Z' });
    expect(freshness(e!.meta, new Date('2025-06-01Z'))).toEqual({ state: 'fresh', reason: expect.stringMatching(/^valid until 2025-12-10/) });
    const after = freshness(e!.meta, new Date('2025-12-11Z'));
    expect(after.state).toBe('expired');
    expect(after.reason).toMatch(/certificate expired at 2025-12-10.*collateral import/);
    expect(freshness(e!.meta, new Date('2024-01-01Z')).state).toBe('expired');
  });

  it('max age makes an otherwise valid entry stale, per kind or globally', () => {
    const meta = { kind: 'vcek' as const, fetchedAt: '2026-01-01T00:00:00Z', notBefore: '2025-01-01T00:00:00Z', notAfter: '2030-01-01T00:00:00Z' };
    const at = new Date('2026-01-11T00:00:00Z');
    expect(freshness(meta, at).state).toBe('fresh');
    expect(freshness(meta, at, { maxAgeMs: 7 * 86_400_000 })).toEqual({
      state: 'stale',
      reason: expect.stringMatching(/fetched 10 days ago .* older than the 7 days limit/),
    });
    expect(freshness(meta, at, { maxAgeMs: { crl: 86_400_000 } }).state).toBe('fresh');
    expect(freshness(meta, at, { maxAgeMs: { vcek: 86_400_000 } }).state).toBe('stale');
  });

  it('CRL and OCSP expire at nextUpdate; OCSP without nextUpdate after thisUpdate + 1 h', () => {
    const crl = { kind: 'crl' as const, fetchedAt: '2026-01-01Z', thisUpdate: '2026-01-01T00:00:00Z', nextUpdate: '2026-01-08T00:00:00Z' };
    expect(freshness(crl, new Date('2026-01-07Z')).state).toBe('fresh');
    expect(freshness(crl, new Date('2026-01-09Z'))).toEqual({ state: 'expired', reason: expect.stringMatching(/CRL passed its nextUpdate 2026-01-08/) });
    const ocsp = { kind: 'ocsp' as const, fetchedAt: '2026-01-01Z', thisUpdate: '2026-01-01T00:00:00Z' };
    expect(freshness(ocsp, new Date('2026-01-01T00:59:00Z')).state).toBe('fresh');
    expect(freshness(ocsp, new Date('2026-01-01T01:01:00Z')).state).toBe('expired');
  });

  it('RIM freshness follows its signer chain (the 545 driver RIM signer expired 2025-06-26)', () => {
    const [item] = classify(vector('nvidia/nvtrust/hopper-545-complete/Driver_RIM_test_no_gpu.swidtag'));
    const meta = { kind: 'rim' as const, fetchedAt: '2024-01-01Z', ...item!.validity };
    expect(freshness(meta, new Date('2025-01-01Z')).state).toBe('fresh');
    expect(freshness(meta, new Date('2025-07-01Z'))).toEqual({ state: 'expired', reason: expect.stringMatching(/RIM signer chain expired at 2025-06-26/) });
  });
});
