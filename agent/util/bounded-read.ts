/**
 * Bounded file reads: every file the CLI, the daemon and the controller read goes through here, with
 * a byte cap chosen by what the file holds (INPUT_LIMITS, documented in docs/config.md "File size
 * limits"). The cap is enforced before the bytes are read: a regular file is refused on its size from
 * fstat, and a stream (pipe, FIFO, character device such as /dev/zero) is read to at most cap + 1
 * bytes, so a hostile or mistaken input costs at most its cap in memory and never reads forever.
 *
 * Daemon-side files (config, policy, credentials, TLS material) must be regular files: they are opened
 * with O_NONBLOCK, so a FIFO with no writer cannot block the open, and anything that is not a regular
 * file is refused. The CLI verifiers accept streams too (`--cert <(curl ...)`), still capped.
 */
import { closeSync, constants, fstatSync, openSync, readSync, type Stats } from 'node:fs';
import { open } from 'node:fs/promises';
import { InputFileError } from '../errors.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** The cap per kind of input: bytes, and the words used in the error message. */
export const INPUT_LIMITS = {
  /** ATTESTATION_REPORT is 1184 bytes (AMD SEV-SNP Firmware ABI #56860, ATTESTATION_REPORT); its hex text with whitespace fits easily. */
  snpReport: { bytes: 64 * KiB, label: 'SEV-SNP reports' },
  /** X.509 certificates and chains (PEM/DER), GHCB certificate tables, Azure IMDS certification JSON. */
  certificate: { bytes: 1 * MiB, label: 'certificate files' },
  /** CRLs (AMD KDS serves about 1 KiB per product). */
  crl: { bytes: 1 * MiB, label: 'CRL files' },
  /** OCSP responses (RFC 6960), a few KiB with their signer certificate. */
  ocsp: { bytes: 256 * KiB, label: 'OCSP responses' },
  /** Appraisal policies (SNP, GPU, the combined policy.file). */
  policy: { bytes: 1 * MiB, label: 'policy files' },
  /** The agent and controller YAML configuration. */
  config: { bytes: 1 * MiB, label: 'configuration files' },
  /** An NVML attestation report (SPDM GET_MEASUREMENTS response, a few KiB), raw or hex. */
  gpuReport: { bytes: 256 * KiB, label: 'GPU attestation reports' },
  /** NVIDIA serialized evidence JSON: report + chain per GPU, for up to a few dozen GPUs. */
  gpuEvidence: { bytes: 8 * MiB, label: 'GPU evidence files' },
  /** Azure CVM evidence JSON (HCL report, vTPM quote, certificates). */
  azureEvidence: { bytes: 8 * MiB, label: 'Azure evidence files' },
  /** NVIDIA RIMs (SWID XML with an XML signature; about 100-300 KiB in practice). */
  rim: { bytes: 4 * MiB, label: 'RIM files' },
  /** `collateral import`: any collateral kind above, or a bundle ("collateral export") holding many RIMs. */
  collateral: { bytes: 32 * MiB, label: 'collateral files and bundles' },
  /** A collateral cache entry's JSON metadata sidecar. */
  collateralMeta: { bytes: 64 * KiB, label: 'collateral metadata files' },
  /** Bearer token files: one token (a random string or a JWT). */
  token: { bytes: 64 * KiB, label: 'token files' },
  /** PEM private keys (TLS keys, the controller's signing key). */
  privateKey: { bytes: 64 * KiB, label: 'private key files' },
  /** The controller's public token key the agent pins (controller.tokenKey): a PEM key, a JWK, or a JWKS of at most 8 keys. */
  publicKey: { bytes: 64 * KiB, label: 'public key files' },
  /** Controller secret files; each is released inside one link message (1 MiB) after encryption. */
  secret: { bytes: 256 * KiB, label: 'secret files' },
  /** /etc/passwd and /etc/group (group allow-lists name users and groups). */
  idDatabase: { bytes: 16 * MiB, label: 'user and group databases' },
  /** Small kernel and OS text files (/proc/meminfo, /etc/os-release). */
  systemText: { bytes: 1 * MiB, label: 'system text files' },
  /** The simulated TEE's own state files (test roots and keys). */
  simulationState: { bytes: 4 * MiB, label: 'simulation state files' },
  /**
   * The agent's event outbox (outbox.jsonl). Its bound follows from the outbox's own maxEvents and
   * maxBytes (outboxFileLimit in link/outbox.ts, passed as `maxBytes`); this is that bound at the
   * defaults (10,000 events, 16 MiB), rounded up.
   */
  outbox: { bytes: 68 * MiB, label: 'event outbox files' },
  /** The agent's trust history (trust-log.json: at most 256 entries). */
  trustLog: { bytes: 2 * MiB, label: 'trust history files' },
  /** The agent's consequences state (consequences.json: active triggers, actions, units). */
  consequences: { bytes: 256 * KiB, label: 'consequences state files' },
  /** One agent's record in the controller's state directory (every list in it is bounded; see registry.ts). */
  agentRecord: { bytes: 4 * MiB, label: 'controller agent records' },
} as const satisfies Record<string, { bytes: number; label: string }>;

export type InputKind = keyof typeof INPUT_LIMITS;

/** "64 KiB", "1 MiB": how caps are written in messages and docs. */
export function formatBytes(n: number): string {
  if (n >= MiB && n % MiB === 0) return `${n / MiB} MiB`;
  if (n >= KiB && n % KiB === 0) return `${n / KiB} KiB`;
  return `${n} bytes`;
}

export { InputFileError };

export interface BoundedReadOptions {
  /** A cap other than the kind's default, for a file whose bound follows from its writer's own settings. */
  maxBytes?: number;
  /**
   * Accept pipes, FIFOs and character devices (read to at most cap + 1 bytes). Default false: only
   * regular files, opened with O_NONBLOCK so a FIFO with no writer cannot hang the open.
   */
  streams?: boolean;
}

function limitOf(kind: InputKind, options: BoundedReadOptions = {}): { bytes: number; label: string } {
  const l = INPUT_LIMITS[kind];
  return options.maxBytes === undefined ? l : { bytes: options.maxBytes, label: l.label };
}

function tooLarge(path: string, kind: InputKind, options: BoundedReadOptions, size?: number): InputFileError {
  const { bytes, label } = limitOf(kind, options);
  // A stream has no size: it was read up to the cap and one byte more, then refused.
  const what = size === undefined ? 'over' : `${size} bytes, over`;
  return new InputFileError(path, `${what} the ${formatBytes(bytes)} limit for ${label}`);
}

function typeName(st: { isDirectory(): boolean; isFIFO(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean; isSocket(): boolean }): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO or pipe';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

/** Check the type and, for a regular file, the size; returns how many bytes to read at most (cap + 1). */
function admit(path: string, kind: InputKind, st: Stats, options: BoundedReadOptions): number {
  const streams = options.streams ?? false;
  const cap = limitOf(kind, options).bytes;
  if (st.isFile()) {
    if (st.size > cap) throw tooLarge(path, kind, options, st.size);
  } else if (st.isDirectory() || st.isBlockDevice() || !streams) {
    throw new InputFileError(path, `is ${typeName(st)}, expected a regular file`);
  }
  return cap + 1;
}

const openFlags = (streams: boolean) => constants.O_RDONLY | constants.O_NOCTTY | (streams ? 0 : constants.O_NONBLOCK);

/** First buffer size: the file's own size when it has one (procfs reports 0), else one chunk. */
const CHUNK = 64 * KiB;
const firstSize = (st: Stats, max: number) => Math.min(max, st.isFile() && st.size > 0 ? st.size + 1 : CHUNK);

/** Read a whole file of `kind`, refusing it (InputFileError) when it is over the kind's cap. */
export function readBoundedSync(path: string, kind: InputKind, options: BoundedReadOptions = {}): Buffer {
  const streams = options.streams ?? false;
  const fd = openSync(path, openFlags(streams));
  try {
    const st = fstatSync(fd);
    const max = admit(path, kind, st, options);
    let buf = Buffer.allocUnsafe(firstSize(st, max));
    let len = 0;
    for (;;) {
      buf = withRoom(buf, len, max, path, kind, options);
      const n = readSync(fd, buf, len, buf.length - len, null);
      if (n === 0) break;
      len += n;
    }
    if (len > limitOf(kind, options).bytes) throw tooLarge(path, kind, options);
    return buf.subarray(0, len);
  } finally {
    closeSync(fd);
  }
}

/** `buf` when it has room after `len` bytes, else a copy twice as large (never over `max`, the cap + 1). */
function withRoom(buf: Buffer<ArrayBuffer>, len: number, max: number, path: string, kind: InputKind, options: BoundedReadOptions): Buffer<ArrayBuffer> {
  if (len < buf.length) return buf;
  if (len >= max) throw tooLarge(path, kind, options);
  const next = Buffer.allocUnsafe(Math.min(max, buf.length * 2));
  buf.copy(next, 0, 0, len);
  return next;
}

/** The async twin of readBoundedSync (the daemon and the controller, off the event loop). */
export async function readBounded(path: string, kind: InputKind, options: BoundedReadOptions = {}): Promise<Buffer> {
  const streams = options.streams ?? false;
  const handle = await open(path, openFlags(streams));
  try {
    const st = await handle.stat();
    const max = admit(path, kind, st, options);
    let buf = Buffer.allocUnsafe(firstSize(st, max));
    let len = 0;
    for (;;) {
      buf = withRoom(buf, len, max, path, kind, options);
      const { bytesRead } = await handle.read(buf, len, buf.length - len, null);
      if (bytesRead === 0) break;
      len += bytesRead;
    }
    if (len > limitOf(kind, options).bytes) throw tooLarge(path, kind, options);
    return buf.subarray(0, len);
  } finally {
    await handle.close();
  }
}

/** UTF-8 text of a bounded file. */
export async function readBoundedText(path: string, kind: InputKind, options: BoundedReadOptions = {}): Promise<string> {
  return (await readBounded(path, kind, options)).toString('utf8');
}

export function readBoundedTextSync(path: string, kind: InputKind, options: BoundedReadOptions = {}): string {
  return readBoundedSync(path, kind, options).toString('utf8');
}
