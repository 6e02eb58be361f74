/**
 * `cvm-agent verify azure` in-process: exit codes (0/1/2/3), JSON shape, nonce options, IMDS
 * certification JSON as --cert, on the real Azure evidence vectors.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../../agent/cli/main.js';
import { vector, vectorsDir } from '../../helpers/paths.js';
import { pointOffCurve, truncatedSpki, unknownKeyAlgorithm } from '../../helpers/damaged-cert.js';

const AT = '2025-06-01T00:00:00Z';
const v1 = join(vectorsDir, 'snp/trustee_az-snp-vtpm_evidence-v1.json');
const v2 = join(vectorsDir, 'snp/trustee_az-snp-vtpm_evidence-v2.json');
const genoa = join(vectorsDir, 'snp/trustee_az-snp-vtpm_evidence-genoa.json');
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'cvm-azure-cli-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

async function run(args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, { stdout: { write: (s: string) => out.push(s) }, stderr: { write: (s: string) => err.push(s) }, env: {}, cwd: dir });
  return { code, out: out.join(''), err: err.join('') };
}

describe('cvm-agent verify azure', () => {
  it('v1 with --nonce-text challenge: exit 3 (only revocation unchecked), JSON {ok,status,simulated,report,checks}', async () => {
    const r = await run(['verify', 'azure', '--evidence', v1, '--nonce-text', 'challenge', '--at', AT, '--json']);
    expect(r.code).toBe(3);
    const j = JSON.parse(r.out);
    expect(Object.keys(j)).toEqual(['ok', 'status', 'simulated', 'report', 'checks', 'input']);
    expect(j).toMatchObject({ ok: true, status: 'warning', simulated: false });
    expect(j.report.format).toBe('coco-v1');
    expect(j.report.snp.vmpl).toBe(0);
    expect(j.checks.filter((c: { ok: boolean; warning?: boolean }) => !c.ok || c.warning).map((c: { name: string }) => c.name)).toEqual(['snp.revocation']);
  });

  it('v2 and Genoa with --nonce HEX verify; a wrong nonce exits 1', async () => {
    expect(
      (
        await run([
          'verify',
          'azure',
          '--evidence',
          v2,
          '--nonce',
          '982f5c6e45df0ed3f10b6f60b02f0c8390e281300f3805e2279c16168cd6ae9aa398f647caa2338748cd0fd9f5f819ef',
          '--at',
          AT,
        ])
      ).code,
    ).toBe(3);
    expect(
      (
        await run([
          'verify',
          'azure',
          '--evidence',
          genoa,
          '--nonce',
          '0218488bae25d2509232bf676f1a66a30d7372add909109b36016ef136f2938ca05475f8b46094de6b64270ea35d950f',
          '--at',
          AT,
        ])
      ).code,
    ).toBe(3);
    const bad = await run(['verify', 'azure', '--evidence', v1, '--nonce-text', 'other', '--at', AT]);
    expect(bad.code).toBe(1);
    expect(bad.out).toMatch(/CONTRAINDICATED/);
    expect(bad.out).toMatch(/✘ azure\.quote\.nonce/);
  });

  it('accepts the VCEK as Azure IMDS certification JSON (--cert)', async () => {
    const doc = JSON.parse(vector('snp/trustee_az-snp-vtpm_evidence-v1.json').toString());
    const vcekPem = `-----BEGIN CERTIFICATE-----\n${Buffer.from(doc.vcek, 'base64url').toString('base64')}\n-----END CERTIFICATE-----\n`;
    delete doc.vcek;
    writeFileSync(join(dir, 'novcek.json'), JSON.stringify(doc));
    writeFileSync(join(dir, 'imds.json'), JSON.stringify({ vcekCert: vcekPem, certificateChain: vector('snp/ask_ark_milan.pem').toString() }));
    expect((await run(['verify', 'azure', '--evidence', 'novcek.json', '--nonce-text', 'challenge', '--at', AT])).code).toBe(1);
    expect((await run(['verify', 'azure', '--evidence', 'novcek.json', '--cert', 'imds.json', '--nonce-text', 'challenge', '--at', AT])).code).toBe(3);
  });

  it('usage errors and unreadable input exit 2', async () => {
    writeFileSync(join(dir, 'junk.json'), '{"hello":1}');
    for (const args of [
      ['verify', 'azure'],
      ['verify', 'azure', '--evidence', v1, '--nonce', 'ab', '--nonce-text', 'x'],
      ['verify', 'azure', '--evidence', v1, '--nonce', 'xyz'],
      ['verify', 'azure', '--evidence', v1, '--nonce', 'ab'.repeat(65)],
      ['verify', 'azure', '--evidence', v1, '--at', 'yesterday'],
      ['verify', 'azure', '--evidence', 'missing.json'],
      ['verify', 'azure', '--evidence', 'junk.json'],
      ['verify', 'azure', '--evidence', v1, '--bogus'],
    ]) {
      expect((await run(args)).code, args.join(' ')).toBe(2);
    }
  });

  it('a TDX HCL report in otherwise valid evidence fails (exit 1) with the reason', async () => {
    const doc = JSON.parse(vector('snp/trustee_az-snp-vtpm_evidence-v1.json').toString());
    doc.hcl_report = vector('snp/azuretools_snp_hcl_report_ACTUALLY_TDX.bin').toString('base64url');
    writeFileSync(join(dir, 'tdx.json'), JSON.stringify(doc));
    const r = await run(['verify', 'azure', '--evidence', 'tdx.json', '--at', AT]);
    expect(r.code).toBe(1);
    expect(r.out).toContain('HCL report is TDX, not SEV-SNP');
  });

  it('--help documents the options and exit codes', async () => {
    const r = await run(['verify', 'azure', '--help']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/--nonce-text TEXT/);
    expect(r.out).toMatch(/Exit codes/);
    const e = await run(['azure', 'evidence', '--help']);
    expect(e.out).toMatch(/--swtpm ADDR/);
  });

  it('azure evidence: conflicting or malformed transport options exit 2', async () => {
    expect((await run(['azure', 'evidence', '--tpm', '/dev/tpmrm0', '--swtpm', 'h:1'])).code).toBe(2);
    expect((await run(['azure', 'evidence', '--swtpm', 'nohost'])).code).toBe(2);
    expect((await run(['azure', 'evidence', '--swtpm', 'h:1', '--timeout', '-1'])).code).toBe(2);
  });

  const v1Evidence = JSON.parse(vector('snp/trustee_az-snp-vtpm_evidence-v1.json').toString('utf8')) as { vcek: string };
  const vcekDer = Buffer.from(v1Evidence.vcek, 'base64url');
  it.each([
    ['EC point off the curve', pointOffCurve(vcekDer)],
    ['truncated SPKI (lengths re-encoded)', truncatedSpki(vcekDer, 7)],
    ['unknown key algorithm OID', unknownKeyAlgorithm(vcekDer)],
  ] as const)('a damaged VCEK in the evidence (%s): exit 1, --json names snp.cert.endorsement-key', async (_label, der) => {
    const file = join(dir, 'damaged-vcek-evidence.json');
    writeFileSync(
      file,
      JSON.stringify({ ...JSON.parse(vector('snp/trustee_az-snp-vtpm_evidence-v1.json').toString('utf8')), vcek: der.toString('base64url') }),
    );
    const r = await run(['verify', 'azure', '--evidence', file, '--nonce-text', 'challenge', '--at', AT, '--json']);
    expect(r.code).toBe(1);
    expect(r.err).toBe('');
    const key = JSON.parse(r.out).checks.find((c: { name: string }) => c.name === 'snp.cert.endorsement-key');
    expect(key).toMatchObject({ ok: false });
    expect(key.detail).toMatch(/VCEK public key is unusable/);
  });
});
