/**
 * The NVML addon (native/src/nvml.c), its TypeScript wrapper and NvmlGpuSource, each run in a child
 * process against the fake libnvidia-ml.so.1 (test/fakes/fake_nvml.c) serving the real hopper-550
 * report and chain vectors.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { probe, assertBuilt, FAKE_NVML, FAKE_NVML_NOCC, REPORT_550, CHAIN_550, REPORT_535 } from './nvml-helpers.js';
import { vector } from '../helpers/paths.js';

const reportHex = (rel: string) => vector(rel).toString('utf8').replace(/\s+/g, '').toLowerCase();
const REPORT_550_HEX = reportHex('nvidia/nvtrust/hopper-550/hopperAttestationReport.txt');
const REPORT_535_HEX = reportHex('nvidia/attestation-sdk/hopper-535/hopperAttestationReport.txt');
const CHAIN_550_TEXT = vector('nvidia/nvtrust/hopper-550/hopperCertChain.txt').toString('latin1');
const NONCE = 'a1'.repeat(16) + '5c'.repeat(16);
const VECTORS = { FAKE_NVML_REPORT_FILE: REPORT_550, FAKE_NVML_CHAIN_FILE: CHAIN_550 };

function tempDir(): { dir: string; done: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'nvml-test-'));
  return { dir, done: () => rmSync(dir, { recursive: true, force: true }) };
}

beforeAll(() => assertBuilt());

describe('NVML library presence', () => {
  it('library absent: nvmlInfo resolves available:false with the dlerror text, and no crash', async () => {
    const r = await probe('info', {}, {}, '/nonexistent/libnvidia-ml.so.1');
    expect(r.ok).toBe(true);
    expect(r.value.available).toBe(false);
    expect(r.value.reason).toMatch(/^NVML not available: .*\/nonexistent\/libnvidia-ml\.so\.1.*No such file/);
  });

  it('library absent: every other call rejects with DeviceError ERR_NVML_UNAVAILABLE', async () => {
    for (const scenario of ['devices', 'system', 'chain', 'sourceList']) {
      const r = await probe(scenario, {}, {}, '/nonexistent/libnvidia-ml.so.1');
      expect(r, scenario).toMatchObject({ ok: false, name: 'DeviceError', code: 'ERR_NVML_UNAVAILABLE' });
      expect(r.message).toMatch(/NVML not available/);
    }
  });

  it('nvmlInit failing (driver not loaded) makes NVML unavailable with the NVML code name', async () => {
    const r = await probe('info', {}, { FAKE_NVML_FAIL: 'nvmlInit_v2:9' });
    expect(r.value).toMatchObject({ available: false, nvmlReturn: 9, nvmlName: 'NVML_ERROR_DRIVER_NOT_LOADED' });
    expect(r.value.reason).toContain('nvmlInit_v2 failed');
  });

  it('reports driver, NVML version and device count from the library', async () => {
    const r = await probe('info', {}, { FAKE_NVML_GPUS: '3', FAKE_NVML_DRIVER: '570.86.10' });
    expect(r.value).toMatchObject({ available: true, driverVersion: '570.86.10', nvmlVersion: '12.570.86.10', deviceCount: 3 });
  });
});

describe('NVML library path from config', () => {
  it('devices.nvmlLibrary reaches the addon as an argument and wins over CVM_NVML_LIBRARY', async () => {
    const r = await probe('configuredInfo', { library: FAKE_NVML }, {}, '/nonexistent/libnvidia-ml.so.1');
    expect(r.value).toMatchObject({ available: true, library: FAKE_NVML });
  });

  it('the addon does not read CVM_NVML_LIBRARY itself: with no path given it loads the default name', async () => {
    const r = await probe('rawAddonInfo', {}, {}, FAKE_NVML);
    expect(r.ok).toBe(true);
    expect(r.value.library).toBe('libnvidia-ml.so.1');
  });

  it('a path given after the library is loaded is refused (false) and the loaded library stays', async () => {
    const r = await probe('configuredAfterLoad', { library: '/nonexistent/libnvidia-ml.so.1' }, {}, FAKE_NVML);
    expect(r.value.first).toMatchObject({ available: true, library: FAKE_NVML });
    expect(r.value.applied).toBe(false);
    expect(r.value.second).toMatchObject({ available: true, library: FAKE_NVML });
  });
});

describe('devices and CC state', () => {
  it('1 GPU: identity, architecture, VBIOS, PCI and protected memory', async () => {
    const r = await probe('devices', {}, {});
    expect(r.ok).toBe(true);
    expect(r.value).toHaveLength(1);
    expect(r.value[0]).toMatchObject({
      index: 0,
      uuid: 'GPU-fa4e0000-0000-4000-8000-000000000000',
      name: 'NVIDIA H100 80GB HBM3',
      architecture: 9,
      architectureName: 'hopper',
      vbiosVersion: '96.00.9F.00.01',
      pciBusId: '00000000:18:00.0',
      ccProtectedMemory: { protectedKib: 79 * 1024 * 1024, unprotectedKib: 1024 * 1024 },
    });
    expect(r.value[0].fieldErrors).toBeUndefined();
  });

  it('8 GPUs: distinct indices and UUIDs, in order', async () => {
    const r = await probe('sourceList', {}, { FAKE_NVML_GPUS: '8' });
    expect(r.value.map((g: { index: number }) => g.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(new Set(r.value.map((g: { uuid: string }) => g.uuid)).size).toBe(8);
  });

  it('an optional per-device field failing is reported per field, not fatal', async () => {
    const r = await probe('devices', {}, { FAKE_NVML_GPUS: '2', FAKE_NVML_FAIL: 'nvmlDeviceGetVbiosVersion@1:3' });
    expect(r.value[0].vbiosVersion).toBe('96.00.9F.00.01');
    expect(r.value[1].vbiosVersion).toBeUndefined();
    expect(r.value[1].fieldErrors).toEqual({ vbiosVersion: 'NVML_ERROR_NOT_SUPPORTED' });
  });

  it('CC on, production: state, versioned settings, capabilities and ready state', async () => {
    const r = await probe('system', {}, {});
    expect(r.value).toMatchObject({
      environment: 2,
      ccFeature: 1,
      devToolsMode: 0,
      multiGpuMode: 0,
      readyState: 0,
      capabilities: { cpuCaps: 3, gpusCaps: 1 },
    });
    // nvmlSystemConfComputeSettings_v1 = sizeof | 1 << 24 = 0x01000014 (nvml.h NVML_STRUCT_VERSION); the fake rejects any other.
    expect(r.value.settings.version).toBe(0x01000014);
  });

  it('CC off and DevTools on are decoded by the source', async () => {
    const r = await probe('sourceState', {}, { FAKE_NVML_CC: 'off', FAKE_NVML_DEVTOOLS: '1', FAKE_NVML_ENV: 'sim' });
    expect(r.value.cc).toMatchObject({ ccEnabled: false, devToolsMode: true, environment: 'sim', readyState: false });
  });

  it('key rotation threshold uses the versioned struct (value at offset 8)', async () => {
    const r = await probe('keyRotation', {}, {});
    expect(r.value).toEqual({ attackerAdvantage: 60 });
  });
});

describe('attestation report and certificate chain', () => {
  it('report bytes equal the vector and the nonce is passed through unchanged', async () => {
    const t = tempDir();
    try {
      const log = join(t.dir, 'nonce.log');
      const r = await probe('report', { index: 0, nonce: NONCE }, { ...VECTORS, FAKE_NVML_NONCE_LOG: log });
      expect(r.ok).toBe(true);
      expect(r.value.report.hex).toBe(REPORT_550_HEX);
      expect(r.value.report.hex.length / 2).toBe(4117);
      expect(r.value.isCecValid).toBe(false);
      expect(readFileSync(log, 'utf8')).toBe(`0 ${NONCE}\n`);
    } finally {
      t.done();
    }
  });

  it('synthetic report (no file) carries the nonce at offset 4 (SPDM GET_MEASUREMENTS request)', async () => {
    const r = await probe('report', { index: 0, nonce: NONCE }, {});
    expect(r.value.report.hex.slice(8, 8 + 64)).toBe(NONCE);
  });

  it('certificate chain is the PEM vector byte for byte', async () => {
    const r = await probe('chain', { index: 0 }, VECTORS);
    expect(Buffer.from(r.value.attestationChain.hex, 'hex').toString('latin1')).toBe(CHAIN_550_TEXT);
  });

  it('a nonce that is not 32 bytes is a UsageError before any NVML call', async () => {
    const r = await probe('report', { index: 0, nonce: 'aa'.repeat(31) }, {});
    expect(r).toMatchObject({ ok: false, name: 'UsageError', code: 'ERR_USAGE' });
  });

  it('sizes larger than the struct buffers are rejected, never copied', async () => {
    const rep = await probe('report', { index: 0, nonce: NONCE }, { ...VECTORS, FAKE_NVML_LIE_SIZE: '1' });
    expect(rep).toMatchObject({ ok: false, name: 'DeviceError', code: 'ERR_NVML_BAD_LENGTH' });
    expect(rep.message).toContain('8193');
    const chain = await probe('chain', { index: 0 }, { ...VECTORS, FAKE_NVML_LIE_SIZE: '1' });
    expect(chain).toMatchObject({ ok: false, code: 'ERR_NVML_BAD_LENGTH' });
    expect(chain.message).toContain('5121');
  });

  it('collect: 8 GPUs in parallel, per-GPU report override, serialized as NVIDIA evidence JSON', async () => {
    const t = tempDir();
    try {
      const log = join(t.dir, 'nonce.log');
      const r = await probe(
        'collect',
        { nonce: NONCE },
        {
          ...VECTORS,
          FAKE_NVML_GPUS: '8',
          FAKE_NVML_REPORT_FILE_5: REPORT_535,
          FAKE_NVML_NONCE_LOG: log,
        },
      );
      expect(r.ok).toBe(true);
      expect(r.value).toHaveLength(8);
      r.value.forEach((e: any, i: number) => {
        expect(e).toMatchObject({ index: i, architecture: 'hopper', driverVersion: '550.90.07', vbiosVersion: '96.00.9F.00.01' });
        expect(e.report.hex).toBe(i === 5 ? REPORT_535_HEX : REPORT_550_HEX);
        expect(e.nonce.hex).toBe(NONCE);
        expect(e.certChainPem).toBe(CHAIN_550_TEXT);
      });
      const lines = readFileSync(log, 'utf8').trim().split('\n').sort();
      expect(lines).toEqual([0, 1, 2, 3, 4, 5, 6, 7].map((i) => `${i} ${NONCE}`));
      expect(r.serialized[0]).toEqual({
        arch: 'HOPPER',
        certificate: Buffer.from(CHAIN_550_TEXT, 'latin1').toString('base64'),
        evidence: Buffer.from(REPORT_550_HEX, 'hex').toString('base64'),
        nonce: NONCE,
      });
    } finally {
      t.done();
    }
  });

  it('collect refuses when CC is off (as the reference clients do), but accepts protected-PCIe mode', async () => {
    const off = await probe('collect', { nonce: NONCE }, { ...VECTORS, FAKE_NVML_CC: 'off' });
    expect(off).toMatchObject({ ok: false, name: 'DeviceError', code: 'ERR_GPU_CC_OFF' });
    const ppcie = await probe('collect', { nonce: NONCE }, { ...VECTORS, FAKE_NVML_CC: 'off', FAKE_NVML_MULTIGPU: '1' });
    expect(ppcie.ok).toBe(true);
  });

  it('DevTools mode still attests, and the evidence records it', async () => {
    const r = await probe('collect', { nonce: NONCE }, { ...VECTORS, FAKE_NVML_DEVTOOLS: '1' });
    expect(r.ok).toBe(true);
    expect(r.value[0].cc.devToolsMode).toBe(true);
  });
});

describe('typed errors', () => {
  it('injected NOT_SUPPORTED surfaces as DeviceError with the NVML code name and function', async () => {
    const r = await probe('report', { index: 0, nonce: NONCE }, { FAKE_NVML_FAIL: 'nvmlDeviceGetConfComputeGpuAttestationReport:3' });
    expect(r).toMatchObject({
      ok: false,
      name: 'DeviceError',
      code: 'ERR_NVML',
      details: { nvmlReturn: 3, nvmlName: 'NVML_ERROR_NOT_SUPPORTED', function: 'nvmlDeviceGetConfComputeGpuAttestationReport' },
    });
    expect(r.message).toMatch(/Not Supported \(NVML_ERROR_NOT_SUPPORTED, 3\)/);
    expect(r.message).toMatch(/confidential computing enabled/); // the actionable hint
  });

  it('injected UNKNOWN (999) surfaces with its name', async () => {
    const r = await probe('chain', { index: 0 }, { FAKE_NVML_FAIL: 'nvmlDeviceGetConfComputeGpuCertificate:999' });
    expect(r.details).toMatchObject({ nvmlReturn: 999, nvmlName: 'NVML_ERROR_UNKNOWN' });
  });

  it('one GPU failing fails collect with that error (no partial evidence)', async () => {
    const r = await probe(
      'collect',
      { nonce: NONCE },
      { ...VECTORS, FAKE_NVML_GPUS: '4', FAKE_NVML_FAIL: 'nvmlDeviceGetConfComputeGpuAttestationReport@2:15' },
    );
    expect(r).toMatchObject({ ok: false, code: 'ERR_NVML', details: { nvmlName: 'NVML_ERROR_GPU_IS_LOST' } });
  });

  it('an out-of-range GPU index is an NVML INVALID_ARGUMENT from GetHandleByIndex', async () => {
    const r = await probe('chain', { index: 7 }, {});
    expect(r.details).toMatchObject({ nvmlName: 'NVML_ERROR_INVALID_ARGUMENT', function: 'nvmlDeviceGetHandleByIndex_v2' });
  });

  it('a driver without CC symbols: info works, CC calls name the missing symbol', async () => {
    const info = await probe('info', {}, {}, FAKE_NVML_NOCC);
    expect(info.value.available).toBe(true);
    const report = await probe('report', { index: 0, nonce: NONCE }, {}, FAKE_NVML_NOCC);
    expect(report).toMatchObject({
      ok: false,
      code: 'ERR_NVML',
      details: { nvmlName: 'NVML_ERROR_FUNCTION_NOT_FOUND', function: 'nvmlDeviceGetConfComputeGpuAttestationReport' },
    });
    expect(report.message).toContain('nvmlDeviceGetConfComputeGpuAttestationReport is not exported');
    const state = await probe('sourceState', {}, {}, FAKE_NVML_NOCC);
    expect(state.value.cc).toBeUndefined();
    expect(state.value.ccError).toContain('nvmlSystemGetConfComputeState');
    const devices = await probe('devices', {}, {}, FAKE_NVML_NOCC);
    expect(devices.value[0].fieldErrors).toEqual({ ccProtectedMemory: 'NVML_ERROR_FUNCTION_NOT_FOUND' });
  });
});

describe('threading', () => {
  it('a slow NVML call does not block the event loop (a 10 ms timer keeps firing)', async () => {
    const r = await probe('timer', {}, { FAKE_NVML_DELAY_MS: '200' });
    expect(r.ok).toBe(true);
    expect(r.elapsedMs).toBeGreaterThanOrEqual(400); // init + handle + report, 200 ms each
    // A blocked loop would tick at most once or twice; allow for a loaded CI machine.
    expect(r.ticks).toBeGreaterThanOrEqual(Math.floor(r.elapsedMs / 10 / 4));
  });

  it('per-GPU calls overlap on the thread pool', async () => {
    // 4 GPUs x (report + chain) at 400 ms each: >= 3.2 s one after another, ~0.8 s on 4 pool threads.
    const r = await probe(
      'parallel',
      {},
      {
        FAKE_NVML_GPUS: '4',
        FAKE_NVML_DELAY_MS: '400',
        FAKE_NVML_DELAY_FN: 'nvmlDeviceGetConfComputeGpuAttestationReport,nvmlDeviceGetConfComputeGpuCertificate',
      },
    );
    expect(r).toMatchObject({ ok: true, count: 4 });
    expect(r.elapsedMs).toBeGreaterThanOrEqual(800);
    expect(r.elapsedMs).toBeLessThan(2800);
  });
});

describe('ready state through the fake library', () => {
  it('sets ready only when every GPU has a passing verdict (read back from the log)', async () => {
    const t = tempDir();
    try {
      const log = join(t.dir, 'ready.log');
      const pass = await probe(
        'readyGate',
        {
          expectedCount: 2,
          verdicts: [
            { index: 0, ok: true },
            { index: 1, ok: true },
          ],
        },
        { FAKE_NVML_GPUS: '2', FAKE_NVML_READY_LOG: log },
      );
      expect(pass.outcome).toMatchObject({ set: true, wrote: true });
      expect(pass.readyAfter).toBe(true);
      expect(readFileSync(log, 'utf8')).toBe('1\n');
    } finally {
      t.done();
    }
  });

  it('no write at all when one GPU fails or a verdict is missing', async () => {
    const t = tempDir();
    try {
      const log = join(t.dir, 'ready.log');
      const env = { FAKE_NVML_GPUS: '2', FAKE_NVML_READY_LOG: log };
      const failed = await probe(
        'readyGate',
        {
          expectedCount: 2,
          verdicts: [
            { index: 0, ok: true },
            { index: 1, ok: false },
          ],
        },
        env,
      );
      expect(failed.outcome).toMatchObject({ set: false, wrote: false });
      expect(failed.outcome.reason).toContain('GPU 1');
      expect(failed.readyAfter).toBe(false);
      const missing = await probe('readyGate', { expectedCount: 2, verdicts: [{ index: 0, ok: true }] }, env);
      expect(missing.outcome.set).toBe(false);
      expect(existsSync(log)).toBe(false);
    } finally {
      t.done();
    }
  });

  it('already ready: no second write', async () => {
    const t = tempDir();
    try {
      const log = join(t.dir, 'ready.log');
      const r = await probe('readyGate', { expectedCount: 1, verdicts: [{ index: 0, ok: true }] }, { FAKE_NVML_READY: '1', FAKE_NVML_READY_LOG: log });
      expect(r.outcome).toMatchObject({ set: true, wrote: false });
      expect(existsSync(log)).toBe(false);
    } finally {
      t.done();
    }
  });

  it('the driver refusing the write (no permission) is reported, not thrown', async () => {
    const r = await probe(
      'readyGate',
      { expectedCount: 1, verdicts: [{ index: 0, ok: true }] },
      {
        FAKE_NVML_FAIL: 'nvmlSystemSetConfComputeGpusReadyState:4',
      },
    );
    expect(r.outcome).toMatchObject({ set: false, wrote: false, error: { code: 'ERR_NVML', details: { nvmlName: 'NVML_ERROR_NO_PERMISSION' } } });
    expect(r.outcome.reason).toContain('needs root');
  });
});
