/**
 * `cvm-agent gpu list|evidence|ready` run through main() in child processes against the fake
 * libnvidia-ml (the addon must not be loaded into the Vitest worker).
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { probe, assertBuilt, FAKE_NVML_NOCC, REPORT_550, CHAIN_550, REPORT_535 } from './nvml-helpers.js';
import { vector } from '../helpers/paths.js';

const REPORT_550_HEX = vector('nvidia/nvtrust/hopper-550/hopperAttestationReport.txt').toString('utf8').replace(/\s+/g, '').toLowerCase();
const VECTORS = { FAKE_NVML_REPORT_FILE: REPORT_550, FAKE_NVML_CHAIN_FILE: CHAIN_550 };
const NONCE = '931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb'; // the hopper-550 report's own nonce
const cli = (argv: string[], env: Record<string, string> = {}, library?: string | null) => probe('cli', { argv }, env, library);

beforeAll(() => assertBuilt());

describe('cvm-agent gpu list', () => {
  it('prints a table with index, name, uuid, arch, driver, vbios, CC, devtools, ready', async () => {
    const r = await cli(['gpu', 'list'], { FAKE_NVML_GPUS: '2', FAKE_NVML_DEVTOOLS: '1' });
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^INDEX\s+NAME\s+UUID\s+ARCH\s+DRIVER\s+VBIOS\s+CC\s+DEVTOOLS\s+READY$/);
    expect(lines).toHaveLength(3);
    expect(lines[2]).toMatch(
      /^1\s+NVIDIA H100 80GB HBM3\s+GPU-fa4e0000-0000-4000-8000-000000000001\s+hopper\s+550\.90\.07\s+96\.00\.9F\.00\.01\s+on \(prod\)\s+yes\s+no$/,
    );
  });

  it('--json gives the system state and every GPU', async () => {
    const r = await cli(['gpu', 'list', '--json'], { FAKE_NVML_GPUS: '8', FAKE_NVML_CC: 'off' });
    const out = JSON.parse(r.stdout);
    expect(out.gpus).toHaveLength(8);
    expect(out.cc.ccEnabled).toBe(false);
    expect(out.driverVersion).toBe('550.90.07');
  });

  it('a driver without CC support still lists, CC shown as n/a', async () => {
    const r = await cli(['gpu', 'list'], {}, FAKE_NVML_NOCC);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/n\/a\s+n\/a\s+n\/a\n$/);
    expect(r.stderr).toContain('nvmlSystemGetConfComputeState');
  });

  it('no NVML: exit 4 with "NVML not available"', async () => {
    const r = await cli(['gpu', 'list'], {}, '/nonexistent/libnvidia-ml.so.1');
    expect(r.code).toBe(4);
    expect(r.stderr).toContain('NVML not available');
  });
});

describe('cvm-agent gpu evidence', () => {
  it('writes NVIDIA serialized evidence JSON with the given nonce to --out', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gpu-evidence-'));
    try {
      const out = join(dir, 'evidence.json');
      const r = await cli(['gpu', 'evidence', '--nonce', NONCE, '--out', out], { ...VECTORS, FAKE_NVML_GPUS: '2' });
      expect(r.code).toBe(0);
      const json = JSON.parse(readFileSync(out, 'utf8'));
      expect(json).toHaveLength(2);
      expect(Object.keys(json[0]).sort()).toEqual(['arch', 'certificate', 'evidence', 'nonce']); // as in evidence-json/*.json
      expect(json[0].arch).toBe('HOPPER');
      expect(json[0].nonce).toBe(NONCE);
      expect(Buffer.from(json[0].evidence, 'base64').toString('hex')).toBe(REPORT_550_HEX);
      expect(Buffer.from(json[1].certificate, 'base64').toString('latin1')).toBe(vector('nvidia/nvtrust/hopper-550/hopperCertChain.txt').toString('latin1'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('without --nonce a random 32-byte nonce is used and reaches NVML', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gpu-evidence-'));
    try {
      const log = join(dir, 'nonce.log');
      const r = await cli(['gpu', 'evidence'], { FAKE_NVML_NONCE_LOG: log });
      expect(r.code).toBe(0);
      const [entry] = JSON.parse(r.stdout);
      expect(entry.nonce).toMatch(/^[0-9a-f]{64}$/);
      expect(readFileSync(log, 'utf8')).toBe(`0 ${entry.nonce}\n`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a bad nonce is a usage error (exit 2)', async () => {
    for (const nonce of ['abcd', 'zz'.repeat(32), 'aa'.repeat(33)]) {
      const r = await cli(['gpu', 'evidence', '--nonce', nonce]);
      expect(r.code, nonce).toBe(2);
      expect(r.stderr).toContain('--nonce must be 32 bytes');
    }
  });

  it('CC off: exit 4 and no evidence', async () => {
    const r = await cli(['gpu', 'evidence', '--nonce', NONCE], { FAKE_NVML_CC: 'off' });
    expect(r.code).toBe(4);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('ERR_GPU_CC_OFF');
  });

  it('injected NOT_SUPPORTED: exit 4 naming the NVML code', async () => {
    const r = await cli(['gpu', 'evidence', '--nonce', NONCE], { FAKE_NVML_FAIL: 'nvmlDeviceGetConfComputeGpuAttestationReport:3' });
    expect(r.code).toBe(4);
    expect(r.stderr).toContain('NVML_ERROR_NOT_SUPPORTED');
  });
});

describe('cvm-agent gpu ready', () => {
  it('shows the state without writing it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gpu-ready-'));
    try {
      const log = join(dir, 'ready.log');
      const r = await cli(['gpu', 'ready', '--json'], { FAKE_NVML_READY_LOG: log, FAKE_NVML_GPUS: '2' });
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ ready: false, deviceCount: 2 });
      expect(existsSync(log)).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('--set runs the real NVIDIA verifier: a replayed report (wrong nonce) and no RIMs -> exit 1, nothing written', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gpu-ready-'));
    try {
      const log = join(dir, 'ready.log');
      const r = await cli(['gpu', 'ready', '--set', '--json'], { ...VECTORS, FAKE_NVML_GPUS: '2', FAKE_NVML_READY_LOG: log });
      expect(r.code).toBe(1);
      const out = JSON.parse(r.stdout);
      expect(out).toMatchObject({ set: false, wrote: false });
      expect(out.verdicts).toHaveLength(2);
      for (const v of out.verdicts) {
        expect(v.ok).toBe(false);
        expect(v.detail).toContain('gpu.nonce'); // the vector was made for another nonce
        expect(v.detail).toContain('gpu.rim.driver');
        expect(v.detail).not.toContain('gpu.signature'); // the genuine report's signature itself verifies
      }
      expect(existsSync(log)).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('--set with an unreadable RIM file is a usage error before touching the GPUs', async () => {
    const r = await cli(['gpu', 'ready', '--set', '--driver-rim', '/nonexistent/rim.xml'], VECTORS);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('cannot read the driver RIM');
  });

  it('--set with every GPU passing writes the ready state once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gpu-ready-'));
    try {
      const log = join(dir, 'ready.log');
      const r = await probe('cliReadySet', { goodReportHex: REPORT_550_HEX }, { ...VECTORS, FAKE_NVML_GPUS: '4', FAKE_NVML_READY_LOG: log });
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ set: true, wrote: true });
      expect(readFileSync(log, 'utf8')).toBe('1\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('--set with one GPU failing writes nothing and names the GPU (exit 1)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gpu-ready-'));
    try {
      const log = join(dir, 'ready.log');
      const r = await probe(
        'cliReadySet',
        { goodReportHex: REPORT_550_HEX },
        {
          ...VECTORS,
          FAKE_NVML_GPUS: '4',
          FAKE_NVML_REPORT_FILE_3: REPORT_535,
          FAKE_NVML_READY_LOG: log,
        },
      );
      expect(r.code).toBe(1);
      const out = JSON.parse(r.stdout);
      expect(out).toMatchObject({ set: false, wrote: false });
      expect(out.verdicts.filter((v: { ok: boolean }) => !v.ok).map((v: { index: number }) => v.index)).toEqual([3]);
      expect(existsSync(log)).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('no NVML: exit 4', async () => {
    const r = await cli(['gpu', 'ready'], {}, '/nonexistent/libnvidia-ml.so.1');
    expect(r.code).toBe(4);
    expect(r.stderr).toContain('NVML not available');
  });
});
