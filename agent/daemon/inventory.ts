/**
 * Host inventory for the controller `hello` and `GET /v1/status`: who and what this agent runs on.
 *
 * Collected only from sources that spawn no process (unlike systeminformation, whose lib/*.js spawn lscpu, dmidecode, nvidia-smi): node:os, small
 * reads of /etc/os-release and /proc/meminfo, and existence checks on TEE device nodes. It is
 * synchronous underneath (`currentInventory()`; the link's hello builder wants a plain value), with
 * `collectInventory()` as the Promise form for async callers. These reads are a few KiB from procfs/etc, microseconds each, done at most every
 * `maxAgeMs` thanks to the cache.
 *
 * systeminformation (named by the design) is deliberately not used, and not a dependency: in 5.33.x
 * on Linux the only spawn-free call that adds anything is mem(), an async readFile of /proc/meminfo
 * (read directly below instead), and importing the library costs the daemon ~12 MB of RSS (measured); osInfo() (cat *-release, hostname -f, dmesg, ip), time() (date, ls), cpu()
 * (lscpu, dmidecode), system() (dmidecode, ls, dmesg), graphics() (lspci, nvidia-smi),
 * cpuCurrentSpeed() (shell fallback) and versions() (dozens of tools) all exec or execSync.
 * GPUs come from NVML through the addon, not from here.
 */
import { existsSync } from 'node:fs';
import { readBoundedTextSync } from '../util/bounded-read.js';
import os from 'node:os';
import { VERSION } from '../util/agent-version.js';

/** A type alias, not an interface, so it is assignable to Record<string, unknown> (the link's hello payload). */
export type Inventory = {
  collectedAt: string;
  agent: { version: string };
  runtime: { node: string; openssl: string; v8: string };
  host: { hostname: string; arch: string; platform: string; kernelRelease: string; kernelVersion: string; uptimeSec: number };
  os: { id: string | null; versionId: string | null; prettyName: string | null };
  cpu: { model: string; logicalCount: number };
  memory: { totalBytes: number; availableBytes: number | null };
  /** Which TEE interfaces exist as device/config nodes (existence only; nothing is opened). */
  teeInterfaces: Record<string, boolean>;
};

export interface InventoryOptions {
  /** Default: the package version (agent/util/agent-version.ts). */
  agentVersion?: string;
  /** Default /etc/os-release (os-release(5)); tests point it elsewhere. */
  osReleasePath?: string;
  /** Default /proc/meminfo; tests point it elsewhere. */
  meminfoPath?: string;
  /** name -> path whose existence is reported in teeInterfaces. */
  teePaths?: Record<string, string>;
}

export const DEFAULT_TEE_PATHS: Readonly<Record<string, string>> = {
  sevGuest: '/dev/sev-guest',
  configfsTsm: '/sys/kernel/config/tsm/report',
  tpm: '/dev/tpmrm0',
};

const MAX_TEXT_BYTES = 64 * 1024;

/**
 * os-release(5): KEY=value lines, values optionally in double or single quotes with backslash
 * escapes in double quotes. Pure; unknown or malformed lines are ignored, as the format asks.
 */
export function parseOsRelease(text: string): Record<string, string> {
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const raw of text.slice(0, MAX_TEXT_BYTES).split('\n')) {
    const m = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(raw.trim());
    if (!m) continue;
    let value = m[2]!;
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1).replace(/\\(["\\`$])/g, '$1');
    else if (value.length >= 2 && value.startsWith("'") && value.endsWith("'")) value = value.slice(1, -1);
    out[m[1]!] = value.slice(0, 256);
  }
  return out;
}

/** proc(5) /proc/meminfo: "MemTotal:  16310000 kB" lines -> bytes. Pure. */
export function parseMeminfo(text: string): { totalBytes: number | null; availableBytes: number | null } {
  const field = (name: string): number | null => {
    const m = new RegExp(`^${name}:\\s+(\\d{1,12}) kB$`, 'm').exec(text.slice(0, MAX_TEXT_BYTES));
    return m ? Number(m[1]) * 1024 : null;
  };
  return { totalBytes: field('MemTotal'), availableBytes: field('MemAvailable') };
}

function readSmall(path: string): string | undefined {
  try {
    return readBoundedTextSync(path, 'systemText').slice(0, MAX_TEXT_BYTES);
  } catch {
    return undefined;
  }
}

/** One uncached collection. Never throws for a missing source: that field becomes null. */
export function readInventory(opts: InventoryOptions = {}): Inventory {
  const osRelease = parseOsRelease(readSmall(opts.osReleasePath ?? '/etc/os-release') ?? '');
  const mem = parseMeminfo(readSmall(opts.meminfoPath ?? '/proc/meminfo') ?? '');
  const teePaths = opts.teePaths ?? DEFAULT_TEE_PATHS;
  const cpus = os.cpus();
  return {
    collectedAt: new Date().toISOString(),
    agent: { version: opts.agentVersion ?? VERSION },
    runtime: { node: process.versions.node, openssl: process.versions.openssl, v8: process.versions.v8 },
    host: {
      hostname: os.hostname(),
      arch: os.arch(),
      platform: os.platform(),
      kernelRelease: os.release(),
      kernelVersion: os.version(),
      uptimeSec: Math.floor(os.uptime()),
    },
    os: { id: osRelease.ID ?? null, versionId: osRelease.VERSION_ID ?? null, prettyName: osRelease.PRETTY_NAME ?? null },
    cpu: { model: cpus[0]?.model.trim() || 'unknown', logicalCount: os.availableParallelism() },
    memory: { totalBytes: mem.totalBytes ?? os.totalmem(), availableBytes: mem.availableBytes },
    teeInterfaces: Object.fromEntries(Object.entries(teePaths).map(([name, path]) => [name, existsSync(path)])),
  };
}

/** Caches one inventory and recollects it only once it is older than maxAgeMs (default 10 min). */
export class InventoryCache {
  private value: Inventory | undefined;
  private takenAt = 0;

  constructor(
    private readonly opts: InventoryOptions & { maxAgeMs?: number; now?: () => number } = {},
    private readonly collect: (opts: InventoryOptions) => Inventory = readInventory,
  ) {}

  get(): Inventory {
    const now = (this.opts.now ?? Date.now)();
    if (!this.value || now - this.takenAt >= (this.opts.maxAgeMs ?? 10 * 60_000)) {
      this.value = this.collect(this.opts);
      this.takenAt = now;
    }
    return this.value;
  }
}

let shared: InventoryCache | undefined;

/** The process-wide cached inventory, synchronously (e.g. for the link's hello builder). Options are taken from the first call. */
export function currentInventory(opts: InventoryOptions = {}): Inventory {
  shared ??= new InventoryCache(opts);
  return shared.get();
}

/** The same as a Promise, for async callers (the status view); a failure rejects instead of throwing. */
export async function collectInventory(opts: InventoryOptions = {}): Promise<Inventory> {
  return currentInventory(opts);
}
