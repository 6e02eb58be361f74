/**
 * SEV-SNP evidence collector over configfs-tsm (Linux >= 6.7): /sys/kernel/config/tsm/report/<name>/.
 * Produces raw evidence (report, optional cert table); never verifies.
 *
 * Procedure (Linux Documentation/ABI/testing/configfs-tsm-report; sev-guest.c sev_report_new):
 *   mkdir a private report item -> read `generation` -> write `inblob` (exactly 64 bytes for
 *   sev_guest) and optionally `privlevel` -> check `provider` -> read `outblob` (+ `auxblob`) ->
 *   re-read `generation`: every successful attribute write bumps it, so a value other than
 *   before + our writes means another writer shared the item and the blobs may not be ours.
 *   The item is always removed again, also on error.
 */
import { mkdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { DeviceError, ParseError, UsageError } from '../errors.js';

export const TSM_DEFAULT_ROOT = '/sys/kernel/config/tsm/report';
/** `provider` of the AMD SEV guest driver (KBUILD_MODNAME of drivers/virt/coco/sev-guest). */
export const TSM_SEV_PROVIDER = 'sev_guest';
const REPORT_DATA_SIZE = 64; // TSM_REPORT_INBLOB_MAX; sev_guest requires exactly 64
const SNP_REPORT_SIZE = 1184;
/** Kernel cap on outblob/auxblob (TSM_REPORT_OUTBLOB_MAX = 32 KiB; newer series up to 16 MiB). */
const MAX_BLOB = 16 * 1024 * 1024;

/** The file operations the collector needs; a seam so tests can emulate configfs semantics. */
export interface TsmFileSystem {
  mkdir(path: string): Promise<unknown>;
  rmdir(path: string): Promise<unknown>;
  readFile(path: string): Promise<Uint8Array>;
  writeFile(path: string, data: Uint8Array | string): Promise<unknown>;
}

const nodeFs: TsmFileSystem = {
  mkdir: (p) => mkdir(p, { mode: 0o700 }),
  rmdir: (p) => rmdir(p),
  readFile: (p) => readFile(p),
  writeFile: (p, d) => writeFile(p, d),
};

export interface ConfigfsTsmOptions {
  root?: string;
  fs?: TsmFileSystem;
}

export interface TsmReportRequest {
  /** Requested VMPL (`privlevel`, 0..3); not written when omitted (kernel default 0). */
  vmpl?: number;
  /** Also read `auxblob` (the GHCB cert table; empty when the host supplies none). */
  withCerts?: boolean;
}

export interface TsmReport {
  report: Buffer;
  /** Present when withCerts was asked; may be empty. */
  certTable?: Buffer;
  provider: string;
  /** `generation` after our writes. */
  generation: number;
}

export class ConfigfsTsmCollector {
  readonly root: string;
  readonly #fs: TsmFileSystem;

  constructor(options: ConfigfsTsmOptions = {}) {
    this.root = options.root ?? TSM_DEFAULT_ROOT;
    this.#fs = options.fs ?? nodeFs;
  }

  async getReport(reportData: Uint8Array, request: TsmReportRequest = {}): Promise<TsmReport> {
    if (!(reportData instanceof Uint8Array) || reportData.length !== REPORT_DATA_SIZE) {
      throw new UsageError(`report data must be exactly ${REPORT_DATA_SIZE} bytes`);
    }
    const vmpl = request.vmpl;
    if (vmpl !== undefined && (!Number.isInteger(vmpl) || vmpl < 0 || vmpl > 3)) {
      throw new UsageError(`vmpl must be an integer 0..3 (got ${String(vmpl)})`);
    }
    const item = join(this.root, `cvm-agent-${process.pid}-${randomBytes(6).toString('hex')}`);
    await this.#step('mkdir', item, () => this.#fs.mkdir(item));
    try {
      const before = await this.#generation(item);
      let writes = 0;
      await this.#step('write', join(item, 'inblob'), () => this.#fs.writeFile(join(item, 'inblob'), Uint8Array.from(reportData)));
      writes++;
      if (vmpl !== undefined) {
        await this.#step('write', join(item, 'privlevel'), () => this.#fs.writeFile(join(item, 'privlevel'), `${vmpl}\n`));
        writes++;
      }
      const provider = (await this.#read(item, 'provider')).toString('utf8').trim();
      if (provider !== TSM_SEV_PROVIDER) {
        throw new DeviceError(
          'ERR_TSM_PROVIDER',
          `configfs-tsm provider is "${provider}", not "${TSM_SEV_PROVIDER}": this is not an SEV-SNP guest (use the matching attester)`,
          { provider, root: this.root },
        );
      }
      const report = await this.#read(item, 'outblob');
      if (report.length !== SNP_REPORT_SIZE) {
        throw new DeviceError('ERR_TSM_OUTBLOB_SIZE', `configfs-tsm outblob is ${report.length} bytes, expected an SEV-SNP report of ${SNP_REPORT_SIZE}`, {
          length: report.length,
        });
      }
      const certTable = request.withCerts ? await this.#read(item, 'auxblob') : undefined;
      const after = await this.#generation(item);
      if (after !== before + writes) {
        throw new DeviceError(
          'ERR_TSM_RACE',
          `another writer changed the configfs-tsm report item (generation ${before} -> ${after}, expected ${before + writes}); the report may not carry our data, retry`,
          { before, after, expected: before + writes, item },
        );
      }
      return certTable === undefined ? { report, provider, generation: after } : { report, certTable, provider, generation: after };
    } finally {
      // Always remove the item; a failed rmdir must not mask the primary outcome (the item is
      // private to this request and holds no secrets).
      await this.#fs.rmdir(item).catch(() => undefined);
    }
  }

  async #generation(item: string): Promise<number> {
    const text = (await this.#read(item, 'generation')).toString('utf8');
    if (!/^\d{1,15}\s*$/.test(text)) throw new ParseError(`configfs-tsm generation is not a decimal counter: ${JSON.stringify(text.slice(0, 32))}`);
    return Number.parseInt(text, 10);
  }

  async #read(item: string, attribute: string): Promise<Buffer> {
    const path = join(item, attribute);
    const bytes = await this.#step('read', path, () => this.#fs.readFile(path));
    if (bytes.length > MAX_BLOB) throw new DeviceError('ERR_TSM_IO', `configfs-tsm ${attribute} is implausibly large (${bytes.length} bytes)`, { path });
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  }

  /** Runs one file operation and maps its errno to a typed, actionable error. */
  async #step<T>(op: 'mkdir' | 'read' | 'write', path: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw this.#mapError(err, op, path);
    }
  }

  #mapError(err: unknown, op: string, path: string): Error {
    if (err instanceof DeviceError || err instanceof ParseError) return err;
    const errno = typeof (err as { code?: unknown })?.code === 'string' ? (err as { code: string }).code : 'EUNKNOWN';
    const details = { errno, op, path, root: this.root };
    const opts = { cause: err };
    const why = (err as Error)?.message ?? String(err);
    if (op === 'mkdir') {
      if (errno === 'ENOENT' || errno === 'ENOTDIR') {
        return new DeviceError(
          'ERR_TSM_ABSENT',
          `configfs-tsm is not available at ${this.root} (Linux >= 6.7 with configfs mounted at /sys/kernel/config is required)`,
          details,
          opts,
        );
      }
      if (errno === 'ENXIO') {
        return new DeviceError('ERR_TSM_NO_PROVIDER', `configfs-tsm has no attestation provider registered (is the sev-guest module loaded?)`, details, opts);
      }
      if (errno === 'EACCES' || errno === 'EPERM' || errno === 'EROFS') {
        return new DeviceError('ERR_TSM_ACCESS', `cannot create a report item under ${this.root}: ${why} (run as root or grant access)`, details, opts);
      }
    }
    if (op === 'read' && /(?:outblob|auxblob)$/.test(path)) {
      return new DeviceError('ERR_TSM_REPORT', `the provider failed to generate the report (${errno} reading ${path}): ${why}`, details, opts);
    }
    if (op === 'write' && errno === 'EBUSY') {
      return new DeviceError('ERR_TSM_RACE', `configfs-tsm refused the write (EBUSY): the item's generation counter is contended, retry`, details, opts);
    }
    if (op === 'write' && errno === 'EINVAL' && path.endsWith('privlevel')) {
      return new DeviceError('ERR_TSM_PRIVLEVEL', `the kernel refused the requested VMPL (below privlevel_floor or above 3)`, details, opts);
    }
    return new DeviceError('ERR_TSM_IO', `configfs-tsm ${op} ${path} failed: ${why}`, details, opts);
  }
}
