/**
 * `verify snp|gpu|azure` on the report and evidence formats other tools write: each is detected,
 * named in the text and --json output ("input"), and verified, or fails with a named check for the
 * right reason. --help lists the formats.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../../agent/cli/main.js';
import type { CliIO } from '../../../agent/cli/command.js';
import { vector, vectorsDir } from '../../helpers/paths.js';

const snp = (f: string) => join(vectorsDir, 'snp', f);
const nv = (f: string) => join(vectorsDir, 'nvidia', f);
const AT = ['--at', '2025-06-01T00:00:00Z'];

async function run(args: string[]) {
  let stdout = '';
  let stderr = '';
  const io: CliIO = { stdout: { write: (s: string) => (stdout += s) }, stderr: { write: (s: string) => (stderr += s) }, env: {}, cwd: tmp };
  const code = await main(['verify', ...args], io);
  return { code, stdout, stderr };
}

interface Out {
  status: string;
  checks: { name: string; ok: boolean; detail: string }[];
  input: { format: string; name: string; notes: string[] };
}
const json = (s: string) => JSON.parse(s) as Out;

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'cli-input-formats-'));
  const raw = vector('snp/trustee_snp_test-report.bin');
  writeFileSync(join(tmp, 'report.b64'), raw.toString('base64').replace(/(.{76})/g, '$1\n'));
  writeFileSync(
    join(tmp, 'report.HEX'),
    raw
      .toString('hex')
      .toUpperCase()
      .replace(/(.{32})/g, '$1 \n'),
  );
  // snpguest `fetch vcek` / `fetch ca` output directory (PEM and DER mixed), plus a file it ignores.
  mkdirSync(join(tmp, 'certs'));
  writeFileSync(join(tmp, 'certs', 'vcek.der'), vector('snp/trustee_snp_test-vcek.der'));
  writeFileSync(join(tmp, 'certs', 'cert_chain.pem'), vector('snp/ask_ark_milan.pem'));
  writeFileSync(join(tmp, 'certs', 'README'), 'not a certificate');
  // CoCo SNP evidence with one REPORT_DATA byte changed: the rebuilt report no longer verifies.
  const coco = JSON.parse(vector('snp/trustee_e2e_coco-snp-evidence.json').toString('utf8')) as { attestation_report: { report_data: number[] } };
  coco.attestation_report.report_data[0] = (coco.attestation_report.report_data[0] ?? 0) ^ 1;
  writeFileSync(join(tmp, 'coco-tampered.json'), JSON.stringify(coco));
  writeFileSync(
    join(tmp, 'gpu.b64'),
    Buffer.from(vector('nvidia/nvtrust/hopper-545-complete/attestationReport.txt').toString('latin1').trim(), 'hex').toString('base64'),
  );
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('verify snp: every report format', () => {
  const cases: Array<[string, string[], string, RegExp]> = [
    [
      'CoCo SNP evidence JSON (trustee e2e, Genoa)',
      ['--report', snp('trustee_e2e_coco-snp-evidence.json')],
      'coco-snp-json',
      /^Confidential Containers SNP evidence JSON \(report as fields, 1 certificate/,
    ],
    [
      'go-sev-guest attest -extended -outform bin',
      ['--report', snp('synthetic_gosevguest_attest-extended.bin'), '--allow-debug'],
      'raw+cert-table',
      /GHCB certificate table \(VCEK, ASK, ARK\)/,
    ],
    [
      'go-sev-guest textproto',
      ['--report', snp('synthetic_gosevguest_attestation.textproto'), '--allow-debug'],
      'go-sev-guest-textproto',
      /sevsnp\.Attestation, 3 certificate/,
    ],
    [
      '1204-byte slice (Constellation)',
      ['--report', snp('synthetic_constellation_report-1204.bin'), '--cert', snp('trustee_snp_test-vcek.der')],
      'raw+trailing',
      /^raw report \+ 20 trailing zero bytes$/,
    ],
    [
      'whole Azure HCL report',
      ['--report', snp('trustee_az-snp-vtpm_hcl-report.bin'), '--cert', snp('trustee_az-snp-vtpm_vcek.pem')],
      'azure-hcl',
      /^Azure HCL report \(SNP report at 0x20\)$/,
    ],
    ['base64 text', ['--report', 'report.b64', '--cert', snp('trustee_snp_test-vcek.der')], 'raw', /^base64 text: raw report$/],
    ['upper-case hex with whitespace', ['--report', 'report.HEX', '--cert', snp('trustee_snp_test-vcek.der')], 'raw', /^hex text: raw report$/],
    ['raw report + snpguest certs directory', ['--report', snp('trustee_snp_test-report.bin'), '--certs-dir', 'certs'], 'raw', /^raw report$/],
  ];
  for (const [label, args, format, name] of cases) {
    it(`${label}: named, and verifies (only revocation unchecked)`, async () => {
      const r = await run(['snp', ...args, ...AT, '--json']);
      expect(r.stderr).toBe('');
      const j = json(r.stdout);
      expect(j.input.format).toBe(format);
      expect(j.input.name).toMatch(name);
      expect(j.checks.filter((c) => !c.ok)).toEqual([]);
      expect(j.checks.find((c) => c.name === 'snp.signature')?.ok).toBe(true);
      expect(r.code).toBe(3);
      const t = await run(['snp', ...args, ...AT]);
      expect(t.stdout).toMatch(/^input: .+$/m);
    });
  }

  it('trailing bytes are noted in text and JSON', async () => {
    const r = await run(['snp', '--report', snp('synthetic_constellation_report-1204.bin'), '--cert', snp('trustee_snp_test-vcek.der'), ...AT]);
    expect(r.stdout).toMatch(/^note: 20 bytes after the report were ignored: the report signature does not cover them$/m);
  });

  it('a tampered CoCo JSON fails snp.signature (exit 1), still named', async () => {
    const r = await run(['snp', '--report', 'coco-tampered.json', ...AT, '--json']);
    expect(r.code).toBe(1);
    const j = json(r.stdout);
    expect(j.input.format).toBe('coco-snp-json');
    expect(j.checks.filter((c) => !c.ok).map((c) => c.name)).toEqual(['snp.signature']);
  });

  it('--certs-dir without certificates, and a TDX HCL blob: exit 2', async () => {
    expect((await run(['snp', '--report', snp('trustee_snp_test-report.bin'), '--certs-dir', '.'])).stderr).toMatch(/no \.pem\/\.der/);
    const tdx = await run(['snp', '--report', snp('azuretools_snp_hcl_report_ACTUALLY_TDX.bin')]);
    expect(tdx.code).toBe(2);
    expect(tdx.stderr).toMatch(/TDX, not SEV-SNP/);
  });

  it('--help lists the accepted formats', async () => {
    const r = await run(['snp', '--help']);
    for (const s of [
      'Report formats',
      '--certs-dir',
      'raw report + trailing bytes',
      'Azure HCL report',
      'base64',
      'hex',
      'Confidential Containers SNP evidence JSON',
      'go-sev-guest textproto',
      'attest -extended',
    ])
      expect(r.stdout).toContain(s);
  });
});

describe('verify gpu: every evidence format', () => {
  const C = nv('nvtrust/hopper-545-complete');
  const nonce545 = ['--nonce', '4cff7f5380ead8fad8ec2c531c110aca4302a88f603792801a8ca29ee151af2e', '--at', '2024-06-01T00:00:00Z'];
  const rims545 = ['--driver-rim', `${C}/Driver_RIM_test_no_gpu.swidtag`, '--vbios-rim', `${C}/1010_0200_882_96005E0001_test_no_gpu.swidtag`];

  it('CoCo device_evidence_list (545 set): named, verifies with RIMs', async () => {
    const r = await run(['gpu', '--evidence', nv('coco/synthetic_hopper545_coco_device-evidence.json'), ...nonce545, ...rims545, '--json']);
    const j = JSON.parse(r.stdout) as { status: string; input: { format: string; name: string }; gpus: { checks: { ok: boolean }[] }[] };
    expect(j.input).toMatchObject({ format: 'coco-nvidia', name: 'Confidential Containers NVIDIA attester evidence ({device_evidence_list}), 1 device(s)' });
    expect(j.status).toBe('warning');
    expect(r.code).toBe(3);
  });

  it("trustee's CoCo CI evidence: named; its one byte after the signature fails gpu.report.parse", async () => {
    const r = await run(['gpu', '--evidence', nv('coco/trustee_hopper_coco_device-evidence.json'), '--skip', 'rim', '--at', '2025-06-01T00:00:00Z']);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^✘ gpu\.report\.parse +GPU 0: .*1 trailing bytes after the signature/m);
    expect(r.stdout).toMatch(/^input: Confidential Containers NVIDIA attester evidence/m);
  });

  it('NRAS-request wrapper {nonce, arch, evidence_list}: named, signature and nonce verify', async () => {
    const r = await run(['gpu', '--evidence', nv('attestation-sdk/evidence-json/synthetic_hopper_evidence_nras-wrapped.json'), '--skip', 'rim', '--json']);
    const j = JSON.parse(r.stdout) as { input: { format: string }; gpus: { checks: { name: string; ok: boolean }[] }[] };
    expect(j.input.format).toBe('nvidia-wrapped');
    for (const n of ['gpu.signature', 'gpu.chain', 'gpu.arch']) expect(j.gpus[0]!.checks.find((c) => c.name === n)?.ok).toBe(true);
  });

  it('--report as base64 text: named', async () => {
    const r = await run(['gpu', '--report', 'gpu.b64', '--chain', `${C}/gpuAkCertChain.txt`, ...nonce545, ...rims545]);
    expect(r.code).toBe(3);
    expect(r.stdout).toMatch(/^input: GPU report, base64 text \+ PEM chain$/m);
  });

  it('--help lists the accepted formats', async () => {
    const r = await run(['gpu', '--help']);
    for (const s of ['Input formats', 'base64', 'evidence_list', 'device_evidence_list', 'NRAS']) expect(r.stdout).toContain(s);
  });
});

describe('verify azure: format named', () => {
  it('CoCo az-snp-vtpm v2 evidence named; --help lists formats', async () => {
    const r = await run(['azure', '--evidence', snp('trustee_az-snp-vtpm_evidence-v2.json'), '--json']);
    expect(json(r.stdout).input).toEqual({ format: 'azure-coco-v2', name: 'Confidential Containers az-snp-vtpm evidence JSON v2', notes: [] });
    const h = await run(['azure', '--help']);
    for (const s of ['Evidence formats', 'cvm-agent bundle', 'versions 1 and 2', 'Genoa']) expect(h.stdout).toContain(s);
  });
});
