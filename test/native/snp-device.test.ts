/**
 * The SEV-SNP addon (native/src/snp.c) and SnpDeviceCollector, exercised in child processes against
 * the LD_PRELOAD /dev/sev-guest shim (test/fakes/sevguest_shim.c) fed with real report vectors.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { repoRoot, fakesDir, vectorsDir, vector } from '../helpers/paths.js';
import { built } from '../helpers/built.js';

const run = promisify(execFile);
const SHIM = join(fakesDir, 'sevguest-shim.so');
const ADDON = join(repoRoot, 'build', 'Release', 'cvm_native.node');
const FIXTURE = built('test/native/fixtures/snp-device.mjs');
const REPORT_VECTOR = join(vectorsDir, 'snp', 'gosevguest_attestation.bin');
const CERTS_VECTOR = join(vectorsDir, 'snp', 'synthetic_certtable_gcp_milan_rfc4122.bin');

interface Outcome {
  ok: boolean;
  report?: string;
  certTable?: string;
  name?: string;
  code?: string;
  message?: string;
  details?: Record<string, any>;
}

interface RunResult {
  results: Outcome[];
  vmpckDisabled: boolean;
  log: string[];
}

async function runAttester(program: object, shimEnv: Record<string, string>): Promise<RunResult> {
  const dir = mkdtempSync(join(tmpdir(), 'snp-shim-'));
  const log = join(dir, 'shim.log');
  try {
    const { stdout } = await run(process.execPath, [FIXTURE, JSON.stringify(program)], {
      cwd: repoRoot,
      env: { ...process.env, LD_PRELOAD: SHIM, SEVGUEST_SHIM_LOG: log, ...shimEnv },
    });
    const parsed = JSON.parse(stdout.trim().split('\n').pop()!) as Omit<RunResult, 'log'>;
    const lines = existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean) : [];
    return { ...parsed, log: lines };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const ioctls = (log: string[]) => log.filter((l) => l.startsWith('ioctl '));
const opens = (log: string[]) => log.filter((l) => l.startsWith('open '));

/** The vector with REPORT_DATA (0x50) and VMPL (0x30) as the shim patches them in. */
function expectedReport(reportData: Buffer, vmpl: number): Buffer {
  const r = Buffer.from(vector('snp/gosevguest_attestation.bin'));
  reportData.copy(r, 0x50);
  r.writeUInt32LE(vmpl, 0x30);
  return r;
}

/** Minimal GHCB cert-table walk (GHCB #56421 rev 2.03 §4.1.8.1): 24-byte entries until an all-zero one. */
function certEntries(table: Buffer): { guid: string; cert: Buffer }[] {
  const out: { guid: string; cert: Buffer }[] = [];
  for (let off = 0; off + 24 <= table.length; off += 24) {
    const entry = table.subarray(off, off + 24);
    if (entry.every((b) => b === 0)) return out;
    const offset = entry.readUInt32LE(16);
    const length = entry.readUInt32LE(20);
    out.push({ guid: entry.subarray(0, 16).toString('hex'), cert: table.subarray(offset, offset + length) });
  }
  throw new Error('cert table has no terminator');
}

const data = (fill: number) => Buffer.alloc(64, fill);

beforeAll(() => {
  expect(existsSync(ADDON), `native addon missing: run "npm run build:native" (${ADDON})`).toBe(true);
  expect(existsSync(SHIM), `shim missing: run "npm run build:fakes" (${SHIM})`).toBe(true);
});

describe('SNP_GET_REPORT through the shim', () => {
  it("returns the 1184-byte report carrying the request's REPORT_DATA and VMPL", async () => {
    const rd = Buffer.from(Array.from({ length: 64 }, (_, i) => i * 3));
    const out = await runAttester({ ops: [{ op: 'report', data: rd.toString('hex'), vmpl: 1 }] }, { SEVGUEST_SHIM_REPORT: REPORT_VECTOR });
    const [r] = out.results;
    expect(r?.ok, r?.message).toBe(true);
    const report = Buffer.from(r!.report!, 'hex');
    expect(report.length).toBe(1184);
    expect(report.equals(expectedReport(rd, 1))).toBe(true);
    expect(ioctls(out.log)).toEqual(['ioctl GET_REPORT vmpl=1 -> ok']);
  });

  it("serialises concurrent requests and keeps each request's data", async () => {
    const ops = [1, 2, 3, 4].map((n) => ({ op: 'report', data: data(n).toString('hex'), vmpl: n % 4 }));
    const out = await runAttester({ concurrent: true, ops }, { SEVGUEST_SHIM_REPORT: REPORT_VECTOR });
    out.results.forEach((r, i) => {
      expect(r.ok, r.message).toBe(true);
      expect(Buffer.from(r.report!, 'hex').equals(expectedReport(data(i + 1), (i + 1) % 4))).toBe(true);
    });
    expect(ioctls(out.log)).toHaveLength(4);
  });

  it('rejects report data that is not exactly 64 bytes before touching the device', async () => {
    const out = await runAttester(
      {
        ops: [
          { op: 'report', data: '00'.repeat(63) },
          { op: 'report', data: '00'.repeat(65) },
        ],
      },
      {},
    );
    for (const r of out.results) {
      expect(r.ok).toBe(false);
      expect(r.code).toBe('ERR_USAGE');
      expect(r.message).toMatch(/exactly 64 bytes/);
    }
    expect(out.log).toEqual([]);
  });

  it('maps a non-zero MSG_REPORT_RSP status to ERR_SNP_REPORT_STATUS with the decoded name', async () => {
    const out = await runAttester({ ops: [{ op: 'report', data: data(0).toString('hex') }] }, { SEVGUEST_SHIM_MODE: 'badstatus' });
    const [r] = out.results;
    expect(r?.code).toBe('ERR_SNP_REPORT_STATUS');
    expect(r?.details?.reportStatus).toMatchObject({ code: 0x16, name: 'INVALID_PARAM' });
  });
});

describe('SNP_GET_EXT_REPORT through the shim', () => {
  it('queries the size, then returns the report and the host cert table', async () => {
    const rd = data(0x5a);
    const out = await runAttester(
      { ops: [{ op: 'ext', data: rd.toString('hex') }] },
      {
        SEVGUEST_SHIM_REPORT: REPORT_VECTOR,
        SEVGUEST_SHIM_CERTS: CERTS_VECTOR,
      },
    );
    const [r] = out.results;
    expect(r?.ok, r?.message).toBe(true);
    expect(Buffer.from(r!.report!, 'hex').equals(expectedReport(rd, 0))).toBe(true);
    const table = Buffer.from(r!.certTable!, 'hex');
    // Page-multiple buffer, zero-filled past the table: exactly the page-padded vector.
    expect(table.equals(vector('snp/synthetic_certtable_gcp_milan_rfc4122_pagepadded.bin'))).toBe(true);
    const got = certEntries(table);
    const want = certEntries(vector('snp/synthetic_certtable_gcp_milan_rfc4122.bin'));
    expect(got.map((e) => e.guid)).toEqual([
      '63da758de6644564adc5f4b93be8accd', // VCEK
      '4ab7b379bbac4fe4a02f05aef327c782', // ASK
      'c0b406a4a803495297433fb6014cd0ae', // ARK
    ]);
    got.forEach((e, i) => expect(e.cert.equals(want[i]!.cert)).toBe(true));
    expect(got[0]!.cert[0]).toBe(0x30); // DER SEQUENCE
    expect(ioctls(out.log)).toEqual(['ioctl GET_EXT_REPORT certs_len=0 -> EIO INVALID_LEN need=8192', 'ioctl GET_EXT_REPORT certs_len=8192 vmpl=0 -> ok']);
  });

  it('retries when the host asks for more than its first answer (bounded growth)', async () => {
    const out = await runAttester(
      { ops: [{ op: 'ext', data: data(1).toString('hex') }] },
      {
        SEVGUEST_SHIM_REPORT: REPORT_VECTOR,
        SEVGUEST_SHIM_CERTS: CERTS_VECTOR,
        SEVGUEST_SHIM_GROW: '1',
      },
    );
    const [r] = out.results;
    expect(r?.ok, r?.message).toBe(true);
    const table = Buffer.from(r!.certTable!, 'hex');
    expect(table.length).toBe(12288);
    const src = vector('snp/synthetic_certtable_gcp_milan_rfc4122.bin');
    expect(table.subarray(0, src.length).equals(src)).toBe(true);
    expect(ioctls(out.log)).toEqual([
      'ioctl GET_EXT_REPORT certs_len=0 -> EIO INVALID_LEN need=8192',
      'ioctl GET_EXT_REPORT certs_len=8192 -> EIO INVALID_LEN need=12288',
      'ioctl GET_EXT_REPORT certs_len=12288 vmpl=0 -> ok',
    ]);
  });

  it('gives up after three attempts when the demand keeps growing', async () => {
    const out = await runAttester(
      { ops: [{ op: 'ext', data: data(1).toString('hex') }] },
      {
        SEVGUEST_SHIM_REPORT: REPORT_VECTOR,
        SEVGUEST_SHIM_CERTS: CERTS_VECTOR,
        SEVGUEST_SHIM_GROW: '10',
      },
    );
    const [r] = out.results;
    expect(r?.code).toBe('ERR_SNP_CERTS_UNSTABLE');
    expect(r?.details?.attempts).toBe(3);
    expect(ioctls(out.log)).toHaveLength(3);
  });

  it('refuses a size answer above the 64-page bound without another ioctl', async () => {
    const out = await runAttester(
      { ops: [{ op: 'ext', data: data(1).toString('hex') }] },
      {
        SEVGUEST_SHIM_REPORT: REPORT_VECTOR,
        SEVGUEST_SHIM_DEMAND_PAGES: '100',
      },
    );
    const [r] = out.results;
    expect(r?.code).toBe('ERR_SNP_CERTS_TOO_LARGE');
    expect(r?.details).toMatchObject({ certsLength: 100 * 4096, limit: 64 * 4096 });
    expect(ioctls(out.log)).toHaveLength(1);
  });

  it('returns an empty cert table when the host supplies none (single ioctl)', async () => {
    const out = await runAttester({ ops: [{ op: 'ext', data: data(2).toString('hex') }] }, { SEVGUEST_SHIM_REPORT: REPORT_VECTOR });
    const [r] = out.results;
    expect(r?.ok, r?.message).toBe(true);
    expect(r?.certTable).toBe('');
    expect(Buffer.from(r!.report!, 'hex').equals(expectedReport(data(2), 0))).toBe(true);
    expect(ioctls(out.log)).toEqual(['ioctl GET_EXT_REPORT certs_len=0 vmpl=0 -> ok']);
  });
});

describe('device errors', () => {
  it('EIO: decodes the firmware status from exitinfo2', async () => {
    const out = await runAttester(
      { ops: [{ op: 'report', data: data(0).toString('hex'), vmpl: 0 }] },
      {
        SEVGUEST_SHIM_MODE: 'eio',
        SEVGUEST_SHIM_EXITINFO2: '0x16',
      },
    );
    const [r] = out.results;
    expect(r?.name).toBe('DeviceError');
    expect(r?.code).toBe('ERR_SNP_FIRMWARE');
    expect(r?.details).toMatchObject({
      exitinfo2: '22',
      errno: 5,
      firmwareError: { code: 0x16, name: 'INVALID_PARAM' },
      vmmError: { code: 0, name: 'NONE' },
    });
    expect(r?.message).toMatch(/INVALID_PARAM/);
    expect(out.vmpckDisabled).toBe(false);
  });

  it('EIO: decodes the VMM error in the high half and keeps 64-bit values exact', async () => {
    const busy = await runAttester(
      { ops: [{ op: 'report', data: data(0).toString('hex') }] },
      {
        SEVGUEST_SHIM_MODE: 'eio',
        SEVGUEST_SHIM_EXITINFO2: '0x200000000',
      },
    );
    expect(busy.results[0]?.details).toMatchObject({ exitinfo2: String(2n << 32n), vmmError: { code: 2, name: 'BUSY' }, firmwareError: { code: 0 } });
    const noFw = await runAttester(
      { ops: [{ op: 'ext', data: data(0).toString('hex') }] },
      {
        SEVGUEST_SHIM_MODE: 'eio',
        SEVGUEST_SHIM_EXITINFO2: '0xffffffffffffffff',
      },
    );
    expect(noFw.results[0]?.details?.exitinfo2).toBe('18446744073709551615');
    expect(noFw.results[0]?.message).toMatch(/never reached the firmware/);
    // Not a "too small" answer: the extended path must not retry.
    expect(ioctls(noFw.log)).toHaveLength(1);
  });

  it('ENOTTY latches: later calls fail at once without opening the device again', async () => {
    const ops = [
      { op: 'report', data: data(0).toString('hex') },
      { op: 'report', data: data(1).toString('hex') },
      { op: 'ext', data: data(2).toString('hex') },
    ];
    const out = await runAttester({ ops }, { SEVGUEST_SHIM_MODE: 'enotty' });
    expect(out.results.map((r) => r.code)).toEqual(['ERR_SNP_VMPCK_DISABLED', 'ERR_SNP_VMPCK_DISABLED', 'ERR_SNP_VMPCK_DISABLED']);
    expect(out.results[0]?.message).toMatch(/VMPCK disabled, reboot required/);
    expect(out.results[1]?.details?.latched).toBe(true);
    expect(out.results[2]?.details?.latched).toBe(true);
    expect(out.vmpckDisabled).toBe(true);
    expect(ioctls(out.log)).toHaveLength(1);
    expect(opens(out.log)).toHaveLength(1);
  });

  it('device absent -> ERR_SNP_DEVICE_ABSENT; permission denied -> ERR_SNP_DEVICE_ACCESS', async () => {
    const absent = await runAttester({ ops: [{ op: 'report', data: data(0).toString('hex') }] }, { SEVGUEST_SHIM_MODE: 'absent' });
    expect(absent.results[0]).toMatchObject({ ok: false, name: 'DeviceError', code: 'ERR_SNP_DEVICE_ABSENT', details: { errno: 2, syscall: 'open' } });
    expect(ioctls(absent.log)).toHaveLength(0);
    const denied = await runAttester({ ops: [{ op: 'ext', data: data(0).toString('hex') }] }, { SEVGUEST_SHIM_MODE: 'eacces' });
    expect(denied.results[0]).toMatchObject({ code: 'ERR_SNP_DEVICE_ACCESS', details: { errno: 13 } });
    expect(denied.results[0]?.message).toMatch(/access/);
  });

  it('another errno -> ERR_SNP_IOCTL with the errno, and no latch', async () => {
    const out = await runAttester(
      {
        ops: [
          { op: 'report', data: data(0).toString('hex') },
          { op: 'report', data: data(0).toString('hex') },
        ],
      },
      { SEVGUEST_SHIM_MODE: 'einval' },
    );
    expect(out.results.map((r) => r.code)).toEqual(['ERR_SNP_IOCTL', 'ERR_SNP_IOCTL']);
    expect(out.results[0]?.details?.errno).toBe(22);
    expect(ioctls(out.log)).toHaveLength(2);
  });

  it('uses the configured device path', async () => {
    const out = await runAttester(
      { devicePath: '/tmp/not-the-device', ops: [{ op: 'report', data: data(0).toString('hex') }] },
      { SEVGUEST_SHIM_REPORT: REPORT_VECTOR },
    );
    expect(out.results[0]).toMatchObject({ code: 'ERR_SNP_DEVICE_ABSENT', details: { devicePath: '/tmp/not-the-device' } });
    const moved = await runAttester(
      { devicePath: '/tmp/sev-guest-elsewhere', ops: [{ op: 'report', data: data(7).toString('hex') }] },
      {
        SEVGUEST_SHIM_REPORT: REPORT_VECTOR,
        SEVGUEST_SHIM_PATH: '/tmp/sev-guest-elsewhere',
      },
    );
    expect(moved.results[0]?.ok, moved.results[0]?.message).toBe(true);
  });
});
