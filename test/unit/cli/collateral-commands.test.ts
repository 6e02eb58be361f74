import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { main } from '../../../agent/cli/main.js';
import { vectorsDir } from '../../helpers/paths.js';

let work: string;
beforeEach(() => {
  work = mkdtempSync(join(tmpdir(), 'cvm-collateral-cli-'));
});
afterEach(() => {
  rmSync(work, { recursive: true, force: true });
});

async function run(args: string[], env: NodeJS.ProcessEnv = {}) {
  let stdout = '';
  let stderr = '';
  const code = await main(args, { stdout: { write: (s: string) => (stdout += s) }, stderr: { write: (s: string) => (stderr += s) }, env, cwd: work });
  return { code, stdout, stderr };
}

const v = (p: string) => join(vectorsDir, p);
const fileSha = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');
const ALL = [
  v('snp/virtee_vcek_milan.der'),
  v('snp/virtee_vcek_turin.der'),
  v('snp/gosevguest_vcek.der'),
  v('snp/trustee_snp_test-vcek.der'),
  v('snp/trustee_snp_test-vlek.der'),
  v('snp/trustee_az-snp-vtpm_vcek-genoa.pem'),
  v('snp/ask_ark_milan.pem'),
  v('snp/ask_ark_milan_vlek.pem'),
  v('snp/ask_ark_genoa.pem'),
  v('snp/ask_ark_turin_vcek.pem'),
  v('nvidia/attestation-sdk/rims/NV_GPU_DRIVER_GH100_550.144.03.xml'),
  v('nvidia/nvtrust/hopper-545-complete/1010_0200_882_96005E0001_test_no_gpu.swidtag'),
];

describe('cvm-agent collateral import', () => {
  it('imports every relevant real vector without flags and says where each went', async () => {
    const r = await run(['collateral', 'import', ...ALL, '--dir', 'cache']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(
      `virtee_vcek_turin.der: stored VCEK Turin hwID 1e550a8ee5cf9f4d TCB 0900000000000000 -> ${join(work, 'cache/amd/Turin/vcek/1e550a8ee5cf9f4d/0900000000000000.der')}`,
    );
    expect(r.stdout).toMatch(/ask_ark_milan_vlek.pem: stored ASVK Milan -> .*amd\/Milan\/asvk.pem/);
    expect(r.stdout).toMatch(/stored RIM NV_GPU_VBIOS_1010_0200_882_96005E0001 -> .*nvidia\/rim\/NV_GPU_VBIOS_1010_0200_882_96005E0001.xml/);
    expect(existsSync(join(work, 'cache/amd/Milan/vlek/d918000000000004.der'))).toBe(true);
    // ARK-Milan appears in two input files; it is one cache entry.
    const list = await run(['collateral', 'list', '--dir', 'cache', '--json', '--at', '2025-06-01T00:00:00Z']);
    const rows = JSON.parse(list.stdout) as Array<{ kind: string; freshness: string; path: string; size: number }>;
    expect(rows.filter((x) => x.kind === 'vcek')).toHaveLength(5);
    expect(
      rows
        .filter((x) => x.kind === 'ark')
        .map((x) => x.path)
        .sort(),
    ).toEqual(['amd/Genoa/ark.pem', 'amd/Milan/ark.pem', 'amd/Turin/ark.pem']);
    expect(rows.every((x) => x.size > 0)).toBe(true);
  });

  it('list shows the VLEK fresh before 2025-12-10 and expired after', async () => {
    expect((await run(['collateral', 'import', v('snp/trustee_snp_test-vlek.der'), '--dir', 'c'])).code).toBe(0);
    const before = await run(['collateral', 'list', '--dir', 'c', '--at', '2025-12-09T00:00:00Z']);
    expect(before.code).toBe(0);
    expect(before.stdout).toMatch(/^KIND\s+KEY\s+FRESHNESS\s+SIZE\s+REASON\n/);
    expect(before.stdout).toMatch(/vlek\s+VLEK Milan TCB d918000000000004\s+fresh\s+\d+\s+valid until 2025-12-10/);
    const after = await run(['collateral', 'list', '--dir', 'c', '--at', '2025-12-11T00:00:00Z']);
    expect(after.stdout).toMatch(/vlek\s+VLEK Milan TCB d918000000000004\s+expired\s+\d+\s+certificate expired at 2025-12-10/);
  });

  it('--max-age-days turns old entries stale', async () => {
    await run(['collateral', 'import', v('snp/virtee_vcek_milan.der'), '--dir', 'c']);
    const later = new Date(Date.now() + 10 * 86_400_000).toISOString();
    const r = await run(['collateral', 'list', '--dir', 'c', '--json', '--at', later, '--max-age-days', '7']);
    expect(JSON.parse(r.stdout)[0]).toMatchObject({ kind: 'vcek', freshness: 'stale' });
  });

  it('a garbage file exits 2 and names the file', async () => {
    writeFileSync(join(work, 'garbage.bin'), 'this is not collateral');
    const r = await run(['collateral', 'import', 'garbage.bin', '--dir', 'c']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^cvm-agent collateral import: garbage.bin: not imported: not recognized as collateral/);
    expect(existsSync(join(work, 'c'))).toBe(false);
  });

  it('a mix of good and bad files stores the good ones and exits 1', async () => {
    writeFileSync(join(work, 'bad.pem'), '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
    const r = await run(['collateral', 'import', v('snp/virtee_vcek_milan.der'), 'bad.pem', 'missing.der', '--dir', 'c']);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/virtee_vcek_milan.der: stored VCEK Milan/);
    expect(r.stderr).toMatch(/bad.pem: not imported/);
    expect(r.stderr).toMatch(/missing.der: cannot read: ENOENT/);
  });

  it('--rim-id names a RIM and a mismatching one is refused', async () => {
    const rim = v('nvidia/nvtrust/rims-vbios-samples/1010_0200_882_96005E0001_PROD.swidtag');
    writeFileSync(join(work, 'vbios.xml'), readFileSync(rim));
    const bad = await run(['collateral', 'import', 'vbios.xml', '--dir', 'c', '--rim-id', 'NV_GPU_VBIOS_1010_0200_882_9600740011']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/does not match the RIM's version 96.00.5E.00.01/);
    const traversal = await run(['collateral', 'import', 'vbios.xml', '--dir', 'c', '--rim-id', '../../../tmp/x_96005E0001']);
    expect(traversal.code).toBe(2);
    expect(traversal.stderr).toMatch(/invalid collateral RIM id/);
    const ok = await run(['collateral', 'import', 'vbios.xml', '--dir', 'c', '--rim-id', 'NV_GPU_VBIOS_1010_0200_882_96005E0001']);
    expect(ok.code).toBe(0);
    expect(existsSync(join(work, 'c/nvidia/rim/NV_GPU_VBIOS_1010_0200_882_96005E0001.xml'))).toBe(true);
  });

  it('uses $CACHE_DIRECTORY when --dir is absent', async () => {
    const r = await run(['collateral', 'import', v('snp/ask_ark_genoa.pem')], { CACHE_DIRECTORY: join(work, 'sd-cache') });
    expect(r.code).toBe(0);
    expect(existsSync(join(work, 'sd-cache/amd/Genoa/ask.pem'))).toBe(true);
  });

  it('usage errors exit 2', async () => {
    expect((await run(['collateral', 'import', '--dir', 'c'])).code).toBe(2);
    expect((await run(['collateral', 'list', '--at', 'yesterday', '--dir', 'c'])).code).toBe(2);
    expect((await run(['collateral', 'export', '--dir', 'c'])).code).toBe(2);
    expect((await run(['collateral', 'import', 'x', '--bogus'])).code).toBe(2);
  });
});

describe('cvm-agent collateral export → import round trip', () => {
  async function seed(): Promise<Array<{ path: string; sha256: string; fetchedAt: string; source: string }>> {
    await run(['collateral', 'import', ...ALL, '--dir', 'src']);
    const rows = JSON.parse((await run(['collateral', 'list', '--dir', 'src', '--json'])).stdout) as Array<{ path: string; fetchedAt: string; source: string }>;
    return rows.map((r) => ({ path: r.path, fetchedAt: r.fetchedAt, source: r.source, sha256: fileSha(join(work, 'src', r.path)) }));
  }

  it('JSON bundle: every entry comes back byte-identical with its metadata', async () => {
    const before = await seed();
    const ex = await run(['collateral', 'export', '--dir', 'src', '--out', 'bundle.json']);
    expect(ex.code).toBe(0);
    expect(ex.stdout).toMatch(new RegExp(`exported ${before.length} entries to bundle`));
    const im = await run(['collateral', 'import', 'bundle.json', '--dir', 'dst']);
    expect(im.stderr).toBe('');
    expect(im.code).toBe(0);
    const after = JSON.parse((await run(['collateral', 'list', '--dir', 'dst', '--json'])).stdout) as Array<{
      path: string;
      fetchedAt: string;
      source: string;
    }>;
    expect(after.map((r) => ({ path: r.path, fetchedAt: r.fetchedAt, source: r.source, sha256: fileSha(join(work, 'dst', r.path)) }))).toEqual(before);
  });

  it('directory export imports back the same way', async () => {
    const before = await seed();
    expect((await run(['collateral', 'export', '--dir', 'src', '--out', 'exported'])).code).toBe(0);
    expect(existsSync(join(work, 'exported/amd/Milan/ark.pem.meta.json'))).toBe(true);
    const im = await run(['collateral', 'import', 'exported', '--dir', 'dst']);
    expect(im.code).toBe(0);
    const after = JSON.parse((await run(['collateral', 'list', '--dir', 'dst', '--json'])).stdout) as Array<{
      path: string;
      fetchedAt: string;
      source: string;
    }>;
    expect(after.map((r) => ({ path: r.path, fetchedAt: r.fetchedAt, source: r.source, sha256: fileSha(join(work, 'dst', r.path)) }))).toEqual(before);
  });

  it('a tampered bundle is refused', async () => {
    await run(['collateral', 'import', v('snp/virtee_vcek_milan.der'), '--dir', 'src']);
    await run(['collateral', 'export', '--dir', 'src', '--out', 'b.json']);
    const b = JSON.parse(readFileSync(join(work, 'b.json'), 'utf8'));
    b.entries[0].data = Buffer.from(readFileSync(v('snp/gosevguest_vcek.der'))).toString('base64');
    writeFileSync(join(work, 'b.json'), JSON.stringify(b));
    const r = await run(['collateral', 'import', 'b.json', '--dir', 'dst']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/b.json: not imported: collateral bundle entry 0: sha256 does not match/);
  });

  it('export refuses to write inside the cache', async () => {
    await run(['collateral', 'import', v('snp/virtee_vcek_milan.der'), '--dir', 'src']);
    const r = await run(['collateral', 'export', '--dir', 'src', '--out', 'src/inner']);
    expect(r.code).toBe(2);
  });
});
