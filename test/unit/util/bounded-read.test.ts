/** util/bounded-read.ts: the cap is exact, files and streams alike, sync and async, and errors are typed. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatBytes, INPUT_LIMITS, InputFileError, readBounded, readBoundedSync } from '../../../agent/util/bounded-read.js';
import { ParseError } from '../../../agent/errors.js';

let dir: string;
const CAP = INPUT_LIMITS.snpReport.bytes;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'bounded-read-'));
  writeFileSync(join(dir, 'at-cap'), Buffer.alloc(CAP, 7));
  writeFileSync(join(dir, 'over-cap'), Buffer.alloc(CAP + 1, 7));
  writeFileSync(join(dir, 'small'), 'hello');
  writeFileSync(join(dir, 'empty'), '');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('readBoundedSync / readBounded', () => {
  for (const [name, read] of [
    ['sync', async (p: string, o = {}) => readBoundedSync(p, 'snpReport', o)],
    ['async', (p: string, o = {}) => readBounded(p, 'snpReport', o)],
  ] as const) {
    it(`${name}: a file of exactly the cap is read whole; one byte more is refused with its size`, async () => {
      expect((await read(join(dir, 'at-cap'))).length).toBe(CAP);
      expect((await read(join(dir, 'small'))).toString()).toBe('hello');
      expect((await read(join(dir, 'empty'))).length).toBe(0);
      await expect(read(join(dir, 'over-cap'))).rejects.toThrow(new RegExp(`over-cap: ${CAP + 1} bytes, over the 64 KiB limit for SEV-SNP reports`));
    });

    it(`${name}: a character device is refused by default and capped with streams: true`, async () => {
      await expect(read('/dev/zero')).rejects.toThrow(/is a character device, expected a regular file/);
      await expect(read('/dev/zero', { streams: true })).rejects.toThrow(/\/dev\/zero: over the 64 KiB limit/);
      expect((await read('/dev/null', { streams: true })).length).toBe(0);
    });

    it(`${name}: a directory is refused even with streams: true; a missing file keeps its errno`, async () => {
      await expect(read(dir, { streams: true })).rejects.toThrow(/is a directory/);
      await expect(read(join(dir, 'missing'))).rejects.toMatchObject({ code: 'ENOENT' });
    });

    it(`${name}: a procfs file (size 0 in stat) is read to its end`, async () => {
      const text = (await read('/proc/self/status')).toString();
      expect(text).toMatch(/^Name:/);
      expect(text).toMatch(/VmRSS:/);
    });
  }

  it('a FIFO with no writer is refused at once in the default (daemon) mode', async () => {
    const fifo = join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    expect(() => readBoundedSync(fifo, 'config')).toThrow(/is a FIFO or pipe, expected a regular file/);
    await expect(readBounded(fifo, 'config')).rejects.toThrow(/is a FIFO or pipe/);
  });

  it('refusals are InputFileError (a ParseError: one line, exit 2 in the CLI) with the reason apart from the path', () => {
    let err: unknown;
    try {
      readBoundedSync(join(dir, 'over-cap'), 'snpReport');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InputFileError);
    expect(err).toBeInstanceOf(ParseError);
    expect((err as InputFileError).reason).toBe(`${CAP + 1} bytes, over the 64 KiB limit for SEV-SNP reports`);
    expect((err as InputFileError).message).not.toContain('\n');
  });

  it('caps are whole KiB/MiB and printed that way', () => {
    expect(formatBytes(64 * 1024)).toBe('64 KiB');
    expect(formatBytes(8 * 1024 * 1024)).toBe('8 MiB');
    expect(formatBytes(1000)).toBe('1000 bytes');
    for (const { bytes } of Object.values(INPUT_LIMITS)) expect(formatBytes(bytes)).toMatch(/ (KiB|MiB)$/);
  });
});
