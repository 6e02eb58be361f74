/**
 * Attack: hostile input files by size and type. A 200 MB (sparse) file given as an SNP report,
 * certificate, CRL, policy, GPU or Azure evidence, RIM or config; /dev/zero; a FIFO whose writer never
 * stops; a FIFO with no writer where the daemon expects a config; a directory. Before the fix these
 * took 1.7-4.3 GB of RSS or never finished (the report was read whole before its size check).
 * Required: each is refused before it is read (exit 2, one line on stderr), the process stays small,
 * and streams are read to at most the cap.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { vectorsDir } from '../helpers/paths.js';
import { cleanupProbe, cli, expectConfigCheckProblem, expectOneLineRefusal, expectSmallRss, runNode, RSS_MARGIN_KIB } from './hostile-files-cli.js';

const snp = (f: string) => join(vectorsDir, 'snp', f);
const REPORT = snp('trustee_snp_test-report.bin');
const VCEK = snp('trustee_snp_test-vcek.der');
const AT = ['--at', '2025-06-01T00:00:00Z'];
const HUGE = 200 * 1024 * 1024;

let dir: string;
let big: string;
let baselineKiB: number;
const writers: ChildProcess[] = [];

/** A FIFO with a writer that pours zeros into it until the reader goes away (or the test ends). */
function endlessFifo(name: string): string {
  const path = join(dir, name);
  execFileSync('mkfifo', [path]);
  const w = spawn('sh', ['-c', 'exec cat /dev/zero > "$0"', path], { stdio: 'ignore' });
  w.on('error', () => {});
  writers.push(w);
  return path;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hostile-files-size-'));
  big = join(dir, 'big.bin');
  closeSync(openSync(big, 'w'));
  truncateSync(big, HUGE); // sparse: 200 MB by size, no disk blocks
  // The same CLI on good inputs: module loading and verification, the RSS every run pays.
  const base = await cli(['verify', 'snp', '--report', REPORT, '--cert', VCEK, ...AT]);
  expect(base.code, base.stderr).toBe(3);
  baselineKiB = base.maxRssKiB!;
}, 120_000);

afterAll(() => {
  for (const w of writers) w.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
  cleanupProbe();
});

describe('the RSS probe itself', () => {
  it('sees a child that really holds 200 MB (so a small reading below means something)', async () => {
    const r = await runNode(['-e', `const b = Buffer.alloc(${HUGE}, 1); process.exitCode = b[12345] === 1 ? 0 : 1;`]);
    expect(r.code).toBe(0);
    expect(r.maxRssKiB!).toBeGreaterThan(baselineKiB + RSS_MARGIN_KIB);
  }, 120_000);
});

describe('a 200 MB sparse file is refused on its size, before it is read', () => {
  const cases: Array<[string, () => string[], RegExp]> = [
    ['verify snp --report', () => ['verify', 'snp', '--report', big], /report ".*big\.bin": 209715200 bytes, over the 64 KiB limit for SEV-SNP reports/],
    ['verify snp --cert', () => ['verify', 'snp', '--report', REPORT, '--cert', big], /certificate file ".*big\.bin": 209715200 bytes, over the 1 MiB limit/],
    ['verify snp --crl', () => ['verify', 'snp', '--report', REPORT, '--cert', VCEK, '--crl', big], /CRL file ".*big\.bin": .*over the 1 MiB limit/],
    [
      'verify snp --policy',
      () => ['verify', 'snp', '--report', REPORT, '--cert', VCEK, ...AT, '--policy', big],
      /policy file ".*big\.bin": .*over the 1 MiB limit for policy files/,
    ],
    [
      'verify snp --sim-roots',
      () => ['verify', 'snp', '--report', REPORT, '--cert', VCEK, '--sim-roots', big],
      /simulated roots file ".*": .*over the 1 MiB limit/,
    ],
    ['verify gpu --evidence', () => ['verify', 'gpu', '--evidence', big], /evidence ".*big\.bin": .*over the 8 MiB limit for GPU evidence files/],
    ['verify gpu --report/--chain', () => ['verify', 'gpu', '--report', big, '--chain', big], /over the 256 KiB limit for GPU attestation reports/],
    ['verify gpu --driver-rim', () => ['verify', 'gpu', '--evidence', big, '--driver-rim', big], /driver RIM ".*": .*over the 4 MiB limit for RIM files/],
    ['verify gpu --policy', () => ['verify', 'gpu', '--evidence', big, '--policy', big], /policy ".*": .*over the 1 MiB limit for policy files/],
    ['verify azure --evidence', () => ['verify', 'azure', '--evidence', big], /evidence file ".*": .*over the 8 MiB limit for Azure evidence files/],
    ['config check FILE', () => ['config', 'check', big], /big\.bin: 209715200 bytes, over the 1 MiB limit for configuration files/],
    ['controller --config FILE', () => ['controller', '--config', big, '--listen', '127.0.0.1:0'], /over the 1 MiB limit for configuration files/],
  ];
  for (const [name, args, pattern] of cases) {
    it(name, async () => {
      const r = await cli(args());
      expectOneLineRefusal(r, pattern);
      expectSmallRss(r, baselineKiB);
    }, 120_000);
  }

  it('config check: a 200 MB policy.file (the daemon start/reload path)', async () => {
    const cfg = join(dir, 'big-policy.yaml');
    writeFileSync(cfg, `api:\n  socket: ${dir}/api.sock\npolicy:\n  file: ${big}\n`);
    const r = await cli(['config', 'check', cfg]);
    expectConfigCheckProblem(r, /policy\.file .*big\.bin: 209715200 bytes, over the 1 MiB limit for policy files/);
    expectSmallRss(r, baselineKiB);
  }, 120_000);

  it('collateral import: a 200 MB file is not imported, and not read', async () => {
    const r = await cli(['collateral', 'import', '--dir', join(dir, 'cache'), big]);
    expect(r.code).toBe(2);
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/not imported: 209715200 bytes, over the 32 MiB limit for collateral files/);
    expectSmallRss(r, baselineKiB);
  }, 120_000);
});

describe('endless streams are read to at most the cap', () => {
  it('/dev/zero as --report and as --cert', async () => {
    const a = await cli(['verify', 'snp', '--report', '/dev/zero']);
    expectOneLineRefusal(a, /report "\/dev\/zero": over the 64 KiB limit for SEV-SNP reports/);
    expectSmallRss(a, baselineKiB);
    const b = await cli(['verify', 'snp', '--report', REPORT, '--cert', '/dev/zero']);
    expectOneLineRefusal(b, /certificate file "\/dev\/zero": over the 1 MiB limit/);
    expectSmallRss(b, baselineKiB);
  }, 120_000);

  it('a FIFO whose writer never stops, as --report, --cert and --policy', async () => {
    const r = await cli(['verify', 'snp', '--report', endlessFifo('report.fifo')]);
    expectOneLineRefusal(r, /report ".*report\.fifo": over the 64 KiB limit/);
    expectSmallRss(r, baselineKiB);
    const c = await cli(['verify', 'snp', '--report', REPORT, '--cert', endlessFifo('cert.fifo')]);
    expectOneLineRefusal(c, /certificate file ".*cert\.fifo": over the 1 MiB limit/);
    const p = await cli(['verify', 'snp', '--report', REPORT, '--cert', VCEK, ...AT, '--policy', endlessFifo('policy.fifo')]);
    expectOneLineRefusal(p, /policy file ".*policy\.fifo": over the 1 MiB limit/);
    expectSmallRss(p, baselineKiB);
  }, 120_000);

  it('the daemon-side readers refuse a FIFO without opening it for blocking reads (no writer: no hang)', async () => {
    const fifo = join(dir, 'silent.fifo');
    execFileSync('mkfifo', [fifo]);
    expectOneLineRefusal(await cli(['config', 'check', fifo]), /silent\.fifo: is a FIFO or pipe, expected a regular file/);
    const cfg = join(dir, 'fifo-policy.yaml');
    writeFileSync(cfg, `api:\n  socket: ${dir}/api.sock\npolicy:\n  file: ${fifo}\n`);
    expectConfigCheckProblem(await cli(['config', 'check', cfg]), /policy\.file .*silent\.fifo: is a FIFO or pipe/);
    expectOneLineRefusal(await cli(['config', 'check', '/dev/zero']), /\/dev\/zero: is a character device, expected a regular file/);
  }, 120_000);

  it('a directory is refused as a file', async () => {
    const d = join(dir, 'a-dir');
    mkdirSync(d);
    expectOneLineRefusal(await cli(['verify', 'snp', '--report', d]), /report ".*a-dir": is a directory, expected a regular file/);
  }, 120_000);
});
