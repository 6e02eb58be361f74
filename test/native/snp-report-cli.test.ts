/**
 * `cvm-agent snp report`: argument handling in-process, and the device path end to end in a child
 * process with the /dev/sev-guest shim preloaded (test/fakes/sevguest_shim.c).
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../agent/cli/main.js';
import { parseReportData, parseVmpl, defaultSimDir } from '../../agent/cli/commands/snp-report.js';
import fc from 'fast-check';
import { UsageError } from '../../agent/errors.js';
import { repoRoot, fakesDir, vectorsDir, vector, FC_RUNS } from '../helpers/paths.js';
import { CLI } from '../helpers/built.js';

const SHIM = join(fakesDir, 'sevguest-shim.so');
const REPORT_VECTOR = join(vectorsDir, 'snp', 'gosevguest_attestation.bin');
const CERTS_VECTOR = join(vectorsDir, 'snp', 'synthetic_certtable_gcp_milan_rfc4122.bin');

function cli(args: string[], shimEnv: Record<string, string>, cwd = repoRoot): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { cwd, env: { ...process.env, LD_PRELOAD: SHIM, ...shimEnv } }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

async function inProcess(args: string[]) {
  let stdout = '';
  let stderr = '';
  const io = { stdout: { write: (s: string) => (stdout += s) }, stderr: { write: (s: string) => (stderr += s) }, env: {}, cwd: repoRoot };
  const code = await main(args, io);
  return { code, stdout, stderr };
}

function expectedReport(reportData: Buffer, vmpl: number): Buffer {
  const r = Buffer.from(vector('snp/gosevguest_attestation.bin'));
  reportData.copy(r, 0x50);
  r.writeUInt32LE(vmpl, 0x30);
  return r;
}

beforeAll(() => {
  expect(existsSync(join(repoRoot, 'build', 'Release', 'cvm_native.node')), 'run "npm run build:native"').toBe(true);
  expect(existsSync(SHIM), 'run "npm run build:fakes"').toBe(true);
});

describe('option parsing', () => {
  it('report data: up to 64 bytes of hex, zero-padded', () => {
    expect(parseReportData(undefined).equals(Buffer.alloc(64))).toBe(true);
    const p = parseReportData('0xA1b2');
    expect(p.length).toBe(64);
    expect(p.subarray(0, 2).toString('hex')).toBe('a1b2');
    expect(p.subarray(2).every((b) => b === 0)).toBe(true);
    expect(parseReportData('ff'.repeat(64)).every((b) => b === 0xff)).toBe(true);
    expect(() => parseReportData('ff'.repeat(65))).toThrow(/at most 64/);
    expect(() => parseReportData('abc')).toThrow(/even number/);
    expect(() => parseReportData('zz')).toThrow(/hex/);
  });

  it('report data: any input yields 64 bytes or a UsageError, never anything else', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.uint8Array({ maxLength: 80 }).map((b) => Buffer.from(b).toString('hex')),
        ),
        (text) => {
          try {
            const out = parseReportData(text);
            expect(out.length).toBe(64);
            const hex = text.replace(/^0x/i, '');
            expect(out.subarray(0, hex.length / 2).toString('hex')).toBe(hex.toLowerCase());
          } catch (err) {
            expect(err).toBeInstanceOf(UsageError);
          }
        },
      ),
      { numRuns: FC_RUNS },
    );
  });

  it('vmpl: 0..3 only', () => {
    expect(parseVmpl(undefined)).toBe(0);
    expect(parseVmpl('3')).toBe(3);
    for (const bad of ['4', '-1', '1.0', 'x', '']) expect(() => parseVmpl(bad)).toThrow(/--vmpl/);
  });

  it('default sim dir follows XDG_CACHE_HOME, else ~/.cache', () => {
    expect(defaultSimDir({ XDG_CACHE_HOME: '/c' })).toBe('/c/cvm-agent/sim');
    expect(defaultSimDir({ HOME: '/home/u' })).toBe('/home/u/.cache/cvm-agent/sim');
  });

  it('usage errors exit 2 without touching a device', async () => {
    for (const args of [
      ['snp', 'report', '--report-data', 'ff'.repeat(65)],
      ['snp', 'report', '--vmpl', '7'],
      ['snp', 'report', '--source', 'tdx'],
      ['snp', 'report', '--bogus'],
    ]) {
      const r = await inProcess(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/cvm-agent snp report: /);
    }
  });

  it('--help documents the sources and exit codes', async () => {
    const r = await inProcess(['snp', 'report', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/--source S/);
    expect(r.stdout).toMatch(/Exit codes/);
  });

  it('auto with no interface at all: exit 4 and a pointer to --source simulated', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'snp-cli-'));
    try {
      const r = await inProcess(['snp', 'report', '--device', join(dir, 'no-dev'), '--tsm-root', join(dir, 'no-tsm')]);
      expect(r.code).toBe(4);
      expect(r.stderr).toMatch(/no SEV-SNP guest interface found/);
      expect(r.stderr).toMatch(/--source simulated/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('--source simulated', () => {
  it('prints SIMULATED on stderr and writes a report carrying the report data, plus a cert table', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'snp-cli-sim-'));
    try {
      const out = join(dir, 'sim.bin');
      const r = await inProcess([
        'snp',
        'report',
        '--source',
        'simulated',
        '--sim-dir',
        join(dir, 'sim'),
        '--report-data',
        'c0ffee',
        '--vmpl',
        '1',
        '--ext',
        '--out',
        out,
      ]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toMatch(/^SIMULATED/);
      const report = readFileSync(out);
      expect(report.length).toBe(1184);
      expect(report.subarray(0x50, 0x53).toString('hex')).toBe('c0ffee');
      expect(report.subarray(0x53, 0x90).every((b) => b === 0)).toBe(true);
      expect(report.readUInt32LE(0x30)).toBe(1);
      const certs = readFileSync(`${out}.certs`);
      // First entry is the VCEK GUID (RFC 4122 order, go-sev-guest abi/abi.go).
      expect(certs.subarray(0, 16).toString('hex')).toBe('63da758de6644564adc5f4b93be8accd');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('through the /dev/sev-guest shim (child process)', () => {
  it('auto picks the device and prints the report as hex', async () => {
    const r = await cli(['snp', 'report', '--report-data', 'deadbeef', '--vmpl', '2'], { SEVGUEST_SHIM_REPORT: REPORT_VECTOR });
    expect(r.code, r.stderr).toBe(0);
    const rd = Buffer.alloc(64);
    Buffer.from('deadbeef', 'hex').copy(rd);
    expect(r.stdout).toBe(`${expectedReport(rd, 2).toString('hex')}\n`);
  });

  it('--ext --out writes the raw report and FILE.certs', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'snp-cli-'));
    try {
      const r = await cli(
        ['snp', 'report', '--ext', '--out', 'r.bin', '--source', 'device', '--report-data', '01'],
        {
          SEVGUEST_SHIM_REPORT: REPORT_VECTOR,
          SEVGUEST_SHIM_CERTS: CERTS_VECTOR,
        },
        dir,
      );
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toBe('');
      const rd = Buffer.alloc(64);
      rd[0] = 1;
      expect(readFileSync(join(dir, 'r.bin')).equals(expectedReport(rd, 0))).toBe(true);
      expect(readFileSync(join(dir, 'r.bin.certs')).equals(vector('snp/synthetic_certtable_gcp_milan_rfc4122_pagepadded.bin'))).toBe(true);
      expect(r.stderr).toMatch(/wrote 1184-byte report/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('--ext without --out prints the report and the cert table on two lines', async () => {
    const r = await cli(['snp', 'report', '--ext'], { SEVGUEST_SHIM_REPORT: REPORT_VECTOR, SEVGUEST_SHIM_CERTS: CERTS_VECTOR });
    expect(r.code, r.stderr).toBe(0);
    const [report, certs, rest] = r.stdout.split('\n');
    expect(Buffer.from(report!, 'hex').equals(expectedReport(Buffer.alloc(64), 0))).toBe(true);
    expect(Buffer.from(certs!, 'hex').equals(vector('snp/synthetic_certtable_gcp_milan_rfc4122_pagepadded.bin'))).toBe(true);
    expect(rest).toBe('');
  });

  it('a wiped VMPCK exits 4 and says reboot required', async () => {
    const r = await cli(['snp', 'report'], { SEVGUEST_SHIM_MODE: 'enotty' });
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/VMPCK disabled, reboot required.*\[ERR_SNP_VMPCK_DISABLED\]/);
  });

  it('a firmware error exits 4 with the decoded status', async () => {
    const r = await cli(['snp', 'report', '--vmpl', '0'], { SEVGUEST_SHIM_MODE: 'eio', SEVGUEST_SHIM_EXITINFO2: '0x16' });
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/INVALID_PARAM/);
  });

  it('auto falls back to configfs-tsm when the device is absent', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'snp-cli-'));
    try {
      const tsm = join(dir, 'tsm');
      mkdirSync(tsm);
      // A plain directory is not configfs: the attester must be the one failing, with a typed error.
      const r = await cli(['snp', 'report', '--tsm-root', tsm], { SEVGUEST_SHIM_MODE: 'absent' });
      expect(r.code).toBe(4);
      expect(r.stderr).toMatch(/configfs-tsm .*generation.*\[ERR_TSM_IO\]/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
