/**
 * `cvm-agent verify gpu`: exit codes (0 pass, 3 warnings only, 1 failed, 2 usage/unreadable) and the
 * --json shape, on the real NVIDIA vectors and on simulated GPUs.
 */
import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync, copyFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../../agent/cli/main.js';
import { vector, vectorsDir } from '../../helpers/paths.js';
import { pointOffCurve, truncatedSpki, unknownKeyAlgorithm } from '../../helpers/damaged-cert.js';
import { pemBlocks } from '../../../agent/util/pem.js';
import { rimIdFromFileName } from '../../../agent/cli/commands/verify-gpu.js';
import { buildSimulatedReport, loadOrCreateSimGpuIdentity, simulatedRims } from '../../../agent/simulation/gpu-sim.js';

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io = {
    stdout: {
      write: (s: string) => {
        out += s;
      },
    },
    stderr: {
      write: (s: string) => {
        err += s;
      },
    },
    env: {},
    cwd: join(vectorsDir, 'nvidia'),
  };
  const code = await main(['verify', 'gpu', ...args], io);
  return { code, out, err };
}

const C = 'nvtrust/hopper-545-complete';
const base545 = [
  '--report',
  `${C}/attestationReport.txt`,
  '--chain',
  `${C}/gpuAkCertChain.txt`,
  '--nonce',
  '4cff7f5380ead8fad8ec2c531c110aca4302a88f603792801a8ca29ee151af2e',
  '--at',
  '2024-06-01T00:00:00Z',
];
const rims545 = ['--driver-rim', `${C}/Driver_RIM_test_no_gpu.swidtag`, '--vbios-rim', `${C}/1010_0200_882_96005E0001_test_no_gpu.swidtag`];

describe('cvm-agent verify gpu', () => {
  it('545 complete set: exit 3 (only revocation unchecked), JSON shape', async () => {
    const { code, out } = await run([...base545, ...rims545, '--json']);
    expect(code).toBe(3);
    const j = JSON.parse(out) as {
      ok: boolean;
      status: string;
      simulated: boolean;
      gpus: { index: number; ok: boolean; status: string; claims: Record<string, unknown>; checks: { name: string; ok: boolean; detail: string }[] }[];
    };
    expect(Object.keys(j).sort()).toEqual(['checks', 'gpus', 'input', 'ok', 'simulated', 'status']);
    expect(j).toMatchObject({ ok: true, status: 'warning', simulated: false });
    expect(j.gpus.length).toBe(1);
    const g = j.gpus[0]!;
    expect(Object.keys(g).sort()).toEqual(['checks', 'claims', 'index', 'ok', 'status']);
    expect(g).toMatchObject({ index: 0, ok: true, status: 'warning' });
    expect(g.claims).toMatchObject({ driverVersion: '545.00', measres: 'success' });
    for (const c of g.checks) expect(Object.keys(c).sort()).toEqual(['detail', 'name', 'ok']);
    expect(g.checks.find((c) => c.name === 'gpu.measurements')?.ok).toBe(true);
  });

  it('text output names every check', async () => {
    const { code, out } = await run([...base545, ...rims545]);
    expect(code).toBe(3);
    // The same headline and symbols as `verify snp` and `verify azure` (verify-output.ts formatChecks).
    expect(out).toMatch(/^GPU 0 \(hopper driver 545\.00 VBIOS 96\.00\.5E\.00\.01 ueid \d+\): WARNING — \d+ checks, 0 failed, [1-9]\d* warning\(s\)$/m);
    expect(out).toMatch(/^⚠ gpu\.revocation +revocation not checked/m);
    expect(out).toMatch(/^✔ gpu\.measurements +/m);
    expect(out).not.toMatch(/^ *(ok|WARN|FAIL) /m);
    expect(out).toMatch(/overall: WARNING/);
  });

  it('RIMs from --rim-dir (ids and nvtrust sample names)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rims-'));
    copyFileSync(join(vectorsDir, 'nvidia', C, 'Driver_RIM_test_no_gpu.swidtag'), join(dir, 'NV_GPU_DRIVER_GH100_545.00.xml'));
    copyFileSync(join(vectorsDir, 'nvidia', C, '1010_0200_882_96005E0001_test_no_gpu.swidtag'), join(dir, '1010_0200_882_96005E0001_PROD.swidtag'));
    const { code, out } = await run([...base545, '--rim-dir', dir, '--json']);
    expect(code).toBe(3);
    expect(JSON.parse(out).ok).toBe(true);
    expect(rimIdFromFileName('1010_0200_882_96005E0001_PROD.swidtag')).toBe('NV_GPU_VBIOS_1010_0200_882_96005E0001');
    expect(rimIdFromFileName('g520_0200_885_9600740001_PROD.swidtag')).toBe('NV_GPU_VBIOS_G520_0200_885_9600740001');
    expect(rimIdFromFileName('NV_GPU_DRIVER_GH100_550.144.03.xml')).toBe('NV_GPU_DRIVER_GH100_550.144.03');
    expect(rimIdFromFileName('../etc/passwd')).toBeUndefined();
  });

  it('a missing RIM fails (exit 1) naming the RIM id; --skip rim makes it a warning (exit 3)', async () => {
    const missing = await run(base545);
    expect(missing.code).toBe(1);
    expect(missing.out).toContain('driver RIM NV_GPU_DRIVER_GH100_545.00 not found');
    expect(missing.out).toContain('VBIOS RIM NV_GPU_VBIOS_1010_0200_882_96005E0001 not found');
    const skipped = await run([...base545, '--skip', 'rim']);
    expect(skipped.code).toBe(3);
  });

  const chainPem = vector(`nvidia/${C}/gpuAkCertChain.txt`).toString('utf8');
  const chainDer = pemBlocks(chainPem, 'CERTIFICATE');
  const toPem = (ders: Buffer[]) => ders.map((d) => `-----BEGIN CERTIFICATE-----\n${d.toString('base64')}\n-----END CERTIFICATE-----\n`).join('');
  it.each([
    ['EC point off the curve', pointOffCurve],
    ['truncated SPKI (lengths re-encoded)', (d: Buffer) => truncatedSpki(d, 7)],
    ['unknown key algorithm OID', unknownKeyAlgorithm],
  ] as const)('a damaged device leaf certificate (%s): exit 1, --json names gpu.chain', async (_label, damage) => {
    const dir = mkdtempSync(join(tmpdir(), 'damaged-chain-'));
    const file = join(dir, 'chain.txt');
    writeFileSync(file, toPem([damage(Buffer.from(chainDer[0]!)), ...chainDer.slice(1).map((d) => Buffer.from(d))]));
    const { code, out, err } = await run([...base545.map((a) => (a === `${C}/gpuAkCertChain.txt` ? file : a)), '--skip', 'rim', '--json']);
    expect(err).toBe('');
    expect(code).toBe(1);
    const chain = JSON.parse(out).gpus[0].checks.find((c: { name: string }) => c.name === 'gpu.chain');
    expect(chain.ok).toBe(false);
    expect(chain.detail).toMatch(/certificate 0 in the chain/);
  });

  it('GPU reports labelled arch "LS10" go to the switch verifier and are refused there (switch.report.parse), never as GPU VBIOS bytes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ls10-'));
    const entries = JSON.parse(vector('nvidia/attestation-sdk/evidence-json/multi_gpu_hopper.json').toString('utf8')) as Array<{ arch: string }>;
    writeFileSync(join(dir, 'switch.json'), JSON.stringify(entries.map((e) => ({ ...e, arch: 'LS10' }))));
    const { code, out, err } = await run([
      '--evidence',
      join(dir, 'switch.json'),
      '--nonce',
      'e97b23a1718095a0e9e35edca810768c70a6a5a389b705e753b197912bc11576',
      '--json',
    ]);
    expect(err).toBe('');
    expect(code).toBe(1);
    const json = JSON.parse(out);
    expect(json.gpus).toEqual([]);
    expect(json.switches).toHaveLength(entries.length);
    for (const s of json.switches) expect(s.checks.map((c: { name: string }) => c.name)).toEqual(['switch.report.parse']);
  });

  it('the real LS10 switch evidence (NVIDIA serialized JSON, arch LS10) verifies as a switch row, with its RIM from --rim-dir', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ls10-rims-'));
    copyFileSync(
      join(vectorsDir, 'nvidia/attestation-sdk/switch-ls10/switchVBIOSRim_NV_SWITCH_BIOS_5612_0002_890_9610550001.xml'),
      join(dir, 'NV_SWITCH_BIOS_5612_0002_890_9610550001.xml'),
    );
    const args = [
      '--evidence',
      'attestation-sdk/switch-ls10/switch_evidence_ls10.json',
      '--nonce',
      '931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb',
    ];
    const { code, out } = await run([...args, '--rim-dir', dir, '--at', '2026-06-30T00:00:00Z', '--json']);
    const json = JSON.parse(out);
    expect(json.switches).toHaveLength(1);
    expect(json.switches[0].checks.filter((c: { ok: boolean }) => !c.ok)).toEqual([]);
    expect(json.switches[0].claims).toMatchObject({ switchPdi: '203eb31ad9ed0008', vbiosRimId: 'NV_SWITCH_BIOS_5612_0002_890_9610550001' });
    expect(json.checks.find((c: { name: string }) => c.name === 'ppcie.topology').detail).toMatch(/not evaluated/);
    expect(code).toBe(3); // revocation not checked, topology not evaluated: warnings
    const text = await run([...args, '--rim-dir', dir, '--at', '2026-06-30T00:00:00Z']);
    expect(text.out).toMatch(/NVSwitch 0 \(LS10 VBIOS 96\.10\.55\.00\.01 PDI 203eb31ad9ed0008/);
    expect(rimIdFromFileName('NV_SWITCH_BIOS_5612_0002_890_9610550001.xml')).toBe('NV_SWITCH_BIOS_5612_0002_890_9610550001');
  });

  it('a bad signature fails with exit 1', async () => {
    const { code, out } = await run([
      '--report',
      'attestation-sdk/negative/hopperAttestationReportInvalidSignature.txt',
      '--chain',
      'attestation-sdk/hopper-535/hopperCertChain.txt',
      '--skip',
      'rim',
      '--json',
    ]);
    expect(code).toBe(1);
    const j = JSON.parse(out);
    expect(j.ok).toBe(false);
    expect(j.status).toBe('contraindicated');
    expect(j.gpus[0].checks.find((c: { name: string }) => c.name === 'gpu.signature').ok).toBe(false);
  });

  it('--evidence verifies every entry of NVIDIA serialized evidence', async () => {
    const { code, out } = await run([
      '--evidence',
      'attestation-sdk/evidence-json/multi_gpu_hopper.json',
      '--nonce',
      'e97b23a1718095a0e9e35edca810768c70a6a5a389b705e753b197912bc11576',
      '--skip',
      'rim',
      '--json',
    ]);
    expect(code).toBe(3);
    const j = JSON.parse(out);
    expect(j.gpus.map((g: { index: number; ok: boolean }) => [g.index, g.ok])).toEqual([
      [0, true],
      [1, true],
      [2, true],
      [3, true],
    ]);
    const wrong = await run(['--evidence', 'attestation-sdk/evidence-json/multi_gpu_hopper.json', '--nonce', '00'.repeat(32), '--skip', 'rim']);
    expect(wrong.code).toBe(1);
  });

  it.each([
    [[], /missing evidence/],
    [['--report', 'x'], /go together/],
    [['--report', 'a', '--chain', 'b', '--evidence', 'c'], /not both/],
    [[...base545, '--skip', 'nonce'], /not rim or revocation/],
    [[...base545, '--nonce', 'abcd'], /64 hex digits/],
    [[...base545, '--at', 'yesterday'], /not an ISO 8601 time/],
    [['--report', 'nope.txt', '--chain', 'nope.pem'], /cannot read report "nope.txt": ENOENT/],
    [[...base545, '--bogus'], /Unknown option/],
  ])('usage error %j → exit 2', async (args, message) => {
    const { code, err } = await run(args as string[]);
    expect(code).toBe(2);
    expect(err).toMatch(message);
  });

  it('malformed evidence JSON → exit 2', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ev-'));
    writeFileSync(join(dir, 'bad.json'), '[{"arch":"HOPPER","certificate":"!!","evidence":""}]');
    const { code, err } = await run(['--evidence', join(dir, 'bad.json')]);
    expect(code).toBe(2);
    expect(err).toMatch(/entry 0 "evidence"|not valid base64/);
  });

  it('simulated GPUs: rejected (exit 1) unless --sim-dir trusts them; then exit 3 and simulated', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sim-'));
    const id = await loadOrCreateSimGpuIdentity(dir, 1);
    const nonce = Buffer.alloc(32, 7);
    writeFileSync(join(dir, 'report.bin'), buildSimulatedReport(id, 0, { nonce }));
    writeFileSync(join(dir, 'chain.pem'), id.gpus[0]!.chainPem);
    const rimDir = join(dir, 'rims');
    mkdirSync(rimDir);
    for (const [rid, xml] of simulatedRims(id).byId) writeFileSync(join(rimDir, `${rid}.xml`), xml);
    const args = ['--report', join(dir, 'report.bin'), '--chain', join(dir, 'chain.pem'), '--nonce', nonce.toString('hex'), '--rim-dir', rimDir, '--json'];
    const untrusted = await run(args);
    expect(untrusted.code).toBe(1);
    const trusted = await run([...args, '--sim-dir', dir]);
    expect(trusted.code).toBe(3);
    const j = JSON.parse(trusted.out);
    expect(j.simulated).toBe(true);
    expect(j.gpus[0].checks.find((c: { name: string }) => c.name === 'gpu.simulated')).toBeDefined();
    expect(j.gpus[0].claims.measres).toBe('success');
  });

  it('--help prints the usage', async () => {
    const { code, out } = await run(['--help']);
    expect(code).toBe(0);
    expect(out).toContain('Usage: cvm-agent verify gpu');
  });
});
