/**
 * ConfigfsTsmCollector against a temporary directory that behaves like configfs-tsm: a small emulator
 * (FakeConfigfs) keeps per-item state the way drivers/virt/coco/guest/report.c does (generation bumped
 * on every write, outblob generated from inblob/privlevel) and mirrors the files into the temp dir.
 */
import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { mkdtempSync, mkdirSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { ConfigfsTsmCollector, type TsmFileSystem } from '../../../agent/evidence/configfs-tsm.js';
import { DeviceError, ParseError, UsageError } from '../../../agent/errors.js';
import { vector } from '../../helpers/paths.js';

const REPORT = vector('snp/gosevguest_attestation.bin');
const CERTS = vector('snp/synthetic_certtable_gcp_milan_rfc4122.bin');

function errnoError(code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: simulated`), { code });
}

interface Item {
  generation: number;
  inblob?: Buffer;
  privlevel: number;
}

class FakeConfigfs implements TsmFileSystem {
  readonly items = new Map<string, Item>();
  readonly ops: string[] = [];
  provider = 'sev_guest\n';
  certs: Buffer = CERTS;
  privlevelFloor = 0;
  /** Called when outblob is read: lets a test play "another writer". */
  onOutblob?: (item: Item) => void;
  failures = new Map<string, string>(); // "op:attribute" -> errno code
  rmdirError?: string;

  constructor(readonly root: string) {}

  #item(path: string): [Item, string] {
    const item = this.items.get(dirname(path));
    if (!item) throw errnoError('ENOENT');
    return [item, basename(path)];
  }

  #maybeFail(key: string): void {
    const code = this.failures.get(key);
    if (code) throw errnoError(code);
  }

  async mkdir(path: string) {
    this.ops.push(`mkdir ${basename(path)}`);
    if (dirname(path) !== this.root || !existsSync(this.root)) throw errnoError('ENOENT');
    this.#maybeFail('mkdir:');
    mkdirSync(path);
    writeFileSync(join(path, 'provider'), this.provider);
    writeFileSync(join(path, 'generation'), '0\n');
    this.items.set(path, { generation: 0, privlevel: 0 });
  }

  async rmdir(path: string) {
    this.ops.push(`rmdir ${basename(path)}`);
    if (this.rmdirError) throw errnoError(this.rmdirError);
    if (!this.items.delete(path)) throw errnoError('ENOENT');
    rmSync(path, { recursive: true, force: true });
  }

  async writeFile(path: string, data: Uint8Array | string) {
    const [item, attr] = this.#item(path);
    this.ops.push(`write ${attr}`);
    this.#maybeFail(`write:${attr}`);
    const bytes = Buffer.from(data);
    if (attr === 'inblob') {
      if (bytes.length > 64) throw errnoError('EINVAL');
      item.inblob = bytes;
    } else if (attr === 'privlevel') {
      const level = Number.parseInt(bytes.toString('utf8'), 10);
      if (!(level >= this.privlevelFloor && level <= 3)) throw errnoError('EINVAL');
      item.privlevel = level;
    } else {
      throw errnoError('EACCES');
    }
    writeFileSync(path, bytes);
    item.generation++;
    writeFileSync(join(dirname(path), 'generation'), `${item.generation}\n`);
  }

  async readFile(path: string): Promise<Uint8Array> {
    const [item, attr] = this.#item(path);
    this.ops.push(`read ${attr}`);
    this.#maybeFail(`read:${attr}`);
    switch (attr) {
      case 'generation':
        return Buffer.from(`${item.generation}\n`);
      case 'provider':
        return Buffer.from(this.provider);
      case 'outblob': {
        // sev_guest needs exactly 64 bytes of inblob, else -EINVAL (Linux sev-guest.c sev_report_new).
        if (!item.inblob || item.inblob.length !== 64) throw errnoError('EINVAL');
        const report = Buffer.from(REPORT);
        item.inblob.copy(report, 0x50);
        report.writeUInt32LE(item.privlevel, 0x30);
        this.onOutblob?.(item);
        return report;
      }
      case 'auxblob':
        if (!item.inblob) throw errnoError('EINVAL');
        return Buffer.from(this.certs);
      default:
        throw errnoError('ENOENT');
    }
  }
}

let root: string;
let fake: FakeConfigfs;
const data = (fill: number) => Buffer.alloc(64, fill);

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'tsm-report-'));
  fake = new FakeConfigfs(root);
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

describe('ConfigfsTsmCollector', () => {
  it('returns the outblob report carrying our report data, then removes the item', async () => {
    const a = new ConfigfsTsmCollector({ root, fs: fake });
    const rd = Buffer.from(Array.from({ length: 64 }, (_, i) => 255 - i));
    const r = await a.getReport(rd);
    expect(r.report.length).toBe(1184);
    expect(r.report.subarray(0x50, 0x90).equals(rd)).toBe(true);
    expect(r.report.subarray(0, 0x50).equals(REPORT.subarray(0, 0x50))).toBe(true);
    expect(r.provider).toBe('sev_guest');
    expect(r.generation).toBe(1);
    expect(r.certTable).toBeUndefined();
    expect(fake.ops.map((o) => o.replace(/ cvm-agent-\S+$/, ''))).toEqual([
      'mkdir',
      'read generation',
      'write inblob',
      'read provider',
      'read outblob',
      'read generation',
      'rmdir',
    ]);
    expect(readdirSync(root)).toEqual([]);
  });

  it('writes privlevel and reads auxblob when asked', async () => {
    const a = new ConfigfsTsmCollector({ root, fs: fake });
    const r = await a.getReport(data(3), { vmpl: 2, withCerts: true });
    expect(r.report.readUInt32LE(0x30)).toBe(2);
    expect(r.certTable?.equals(CERTS)).toBe(true);
    expect(r.generation).toBe(2);
    expect(fake.ops).toContain('write privlevel');
    expect(readdirSync(root)).toEqual([]);
  });

  it('an empty auxblob (host supplied no certs) is returned as an empty table', async () => {
    fake.certs = Buffer.alloc(0);
    const r = await new ConfigfsTsmCollector({ root, fs: fake }).getReport(data(0), { withCerts: true });
    expect(r.certTable?.length).toBe(0);
  });

  it('uses a fresh, unique item per request', async () => {
    const a = new ConfigfsTsmCollector({ root, fs: fake });
    await Promise.all([a.getReport(data(1)), a.getReport(data(2))]);
    const made = fake.ops.filter((o) => o.startsWith('mkdir')).map((o) => o.slice(6));
    expect(new Set(made).size).toBe(2);
    expect(made.every((n) => n.startsWith(`cvm-agent-${process.pid}-`))).toBe(true);
  });

  it('detects another writer racing on the item (generation moved) and still cleans up', async () => {
    fake.onOutblob = (item) => {
      item.generation += 1; // someone else wrote inblob between our write and our read
    };
    const a = new ConfigfsTsmCollector({ root, fs: fake });
    const err = await a.getReport(data(1)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DeviceError);
    expect((err as DeviceError).code).toBe('ERR_TSM_RACE');
    expect((err as DeviceError).details).toMatchObject({ before: 0, after: 2, expected: 1 });
    expect(readdirSync(root)).toEqual([]);
  });

  it('rejects a provider other than sev_guest (e.g. TDX) and cleans up', async () => {
    fake.provider = 'tdx_guest\n';
    const err = await new ConfigfsTsmCollector({ root, fs: fake }).getReport(data(1)).catch((e: unknown) => e);
    expect((err as DeviceError).code).toBe('ERR_TSM_PROVIDER');
    expect((err as Error).message).toMatch(/tdx_guest/);
    expect(fake.ops).not.toContain('read outblob');
    expect(readdirSync(root)).toEqual([]);
  });

  it('maps outblob failures (firmware refused) to ERR_TSM_REPORT and cleans up', async () => {
    fake.failures.set('read:outblob', 'ENXIO');
    const err = await new ConfigfsTsmCollector({ root, fs: fake }).getReport(data(1)).catch((e: unknown) => e);
    expect((err as DeviceError).code).toBe('ERR_TSM_REPORT');
    expect((err as DeviceError).details).toMatchObject({ errno: 'ENXIO' });
    expect(readdirSync(root)).toEqual([]);
  });

  it('maps a refused privlevel (below the floor) to ERR_TSM_PRIVLEVEL', async () => {
    fake.privlevelFloor = 1;
    const err = await new ConfigfsTsmCollector({ root, fs: fake }).getReport(data(1), { vmpl: 0 }).catch((e: unknown) => e);
    expect((err as DeviceError).code).toBe('ERR_TSM_PRIVLEVEL');
    expect(readdirSync(root)).toEqual([]);
  });

  it('mkdir errors: missing root -> ERR_TSM_ABSENT, ENXIO -> ERR_TSM_NO_PROVIDER, EACCES -> ERR_TSM_ACCESS', async () => {
    const missing = new ConfigfsTsmCollector({ root: join(root, 'nope'), fs: fake });
    await expect(missing.getReport(data(0))).rejects.toMatchObject({ code: 'ERR_TSM_ABSENT' });
    fake.failures.set('mkdir:', 'ENXIO');
    await expect(new ConfigfsTsmCollector({ root, fs: fake }).getReport(data(0))).rejects.toMatchObject({ code: 'ERR_TSM_NO_PROVIDER' });
    fake.failures.set('mkdir:', 'EACCES');
    await expect(new ConfigfsTsmCollector({ root, fs: fake }).getReport(data(0))).rejects.toMatchObject({ code: 'ERR_TSM_ACCESS' });
  });

  it('a malformed generation is a ParseError', async () => {
    const fs: TsmFileSystem = {
      mkdir: (p) => fake.mkdir(p),
      rmdir: (p) => fake.rmdir(p),
      writeFile: (p, d) => fake.writeFile(p, d),
      readFile: async (p) => (p.endsWith('generation') ? Buffer.from('many\n') : fake.readFile(p)),
    };
    await expect(new ConfigfsTsmCollector({ root, fs }).getReport(data(0))).rejects.toBeInstanceOf(ParseError);
    expect(readdirSync(root)).toEqual([]);
  });

  it('an outblob that is not an SEV-SNP report size is refused', async () => {
    const fs: TsmFileSystem = {
      mkdir: (p) => fake.mkdir(p),
      rmdir: (p) => fake.rmdir(p),
      writeFile: (p, d) => fake.writeFile(p, d),
      readFile: async (p) => (p.endsWith('outblob') ? Buffer.alloc(1000) : fake.readFile(p)),
    };
    await expect(new ConfigfsTsmCollector({ root, fs }).getReport(data(0))).rejects.toMatchObject({ code: 'ERR_TSM_OUTBLOB_SIZE' });
  });

  it('a failing rmdir does not mask a good report', async () => {
    fake.rmdirError = 'EBUSY';
    const r = await new ConfigfsTsmCollector({ root, fs: fake }).getReport(data(9));
    expect(r.report[0x50]).toBe(9);
  });

  it('checks its inputs before touching the file system', async () => {
    const a = new ConfigfsTsmCollector({ root, fs: fake });
    await expect(a.getReport(Buffer.alloc(63))).rejects.toBeInstanceOf(UsageError);
    await expect(a.getReport(data(0), { vmpl: 4 })).rejects.toBeInstanceOf(UsageError);
    expect(fake.ops).toEqual([]);
  });
});

describe('ConfigfsTsmCollector on the real file system', () => {
  it('a missing root is ERR_TSM_ABSENT', async () => {
    await expect(new ConfigfsTsmCollector({ root: join(root, 'missing') }).getReport(data(0))).rejects.toMatchObject({ code: 'ERR_TSM_ABSENT' });
  });

  it('a plain directory (not configfs) fails with a typed error and the item is removed', async () => {
    const err = await new ConfigfsTsmCollector({ root }).getReport(data(0)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DeviceError);
    expect((err as DeviceError).code).toBe('ERR_TSM_IO');
    expect((err as DeviceError).details).toMatchObject({ errno: 'ENOENT' });
    expect(readdirSync(root)).toEqual([]);
  });

  it('defaults to /sys/kernel/config/tsm/report', () => {
    expect(new ConfigfsTsmCollector().root).toBe('/sys/kernel/config/tsm/report');
  });
});
