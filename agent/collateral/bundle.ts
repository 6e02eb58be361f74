/**
 * The single-file export format: one JSON object with every entry's bytes (base64) and metadata, so
 * collateral fetched on a connected machine can be carried to an air-gapped one and imported there
 * (`cvm-agent collateral export --out FILE.json` / `collateral import FILE.json`). Keys in a bundle
 * are untrusted: import re-classifies the bytes and uses a bundle key only to name what the bytes
 * cannot (a RIM id, a CRL's chain), after validation.
 */
import { createHash } from 'node:crypto';
import { ParseError } from '../errors.js';
import { checkKey } from './keys.js';
import type { CollateralKey, StoredEntry } from './collateral-types.js';

export const BUNDLE_FORMAT = 'cvm-agent-collateral-bundle';
export const BUNDLE_VERSION = 1;
/** A bundle is read whole; cap it (thousands of VCEKs/RIMs fit comfortably). */
export const MAX_BUNDLE_BYTES = 64 * 1024 * 1024;

export interface BundleEntry {
  key: CollateralKey;
  fetchedAt: string;
  source: string;
  sha256: string;
  data: Buffer;
}

export function isBundleJson(value: unknown): boolean {
  return typeof value === 'object' && value !== null && (value as { format?: unknown }).format === BUNDLE_FORMAT;
}

export function buildBundle(entries: readonly StoredEntry[], exportedAt: Date): string {
  const out = {
    format: BUNDLE_FORMAT,
    version: BUNDLE_VERSION,
    exportedAt: exportedAt.toISOString(),
    entries: entries.map((e) => ({
      key: e.meta.key,
      path: e.meta.path,
      fetchedAt: e.meta.fetchedAt,
      source: e.meta.source,
      sha256: e.meta.sha256,
      data: e.data.toString('base64'),
    })),
  };
  return `${JSON.stringify(out, null, 1)}\n`;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Parse an already-JSON-decoded bundle; each entry's sha256 must match its bytes. */
export function parseBundle(value: unknown): BundleEntry[] {
  if (!isBundleJson(value)) throw new ParseError(`collateral bundle: "format" is not "${BUNDLE_FORMAT}"`);
  const o = value as Record<string, unknown>;
  if (o.version !== BUNDLE_VERSION)
    throw new ParseError(`collateral bundle: unsupported version ${JSON.stringify(o.version)} (this agent reads version ${BUNDLE_VERSION})`);
  if (!Array.isArray(o.entries)) throw new ParseError('collateral bundle: "entries" is not an array');
  return o.entries.map((raw: unknown, i: number): BundleEntry => {
    const where = `collateral bundle entry ${i}`;
    if (typeof raw !== 'object' || raw === null) throw new ParseError(`${where}: not an object`);
    const e = raw as Record<string, unknown>;
    if (typeof e.data !== 'string' || e.data.length % 4 !== 0 || !BASE64.test(e.data)) throw new ParseError(`${where}: "data" is not base64`);
    const data = Buffer.from(e.data, 'base64');
    const sha256 = createHash('sha256').update(data).digest('hex');
    if (e.sha256 !== sha256) throw new ParseError(`${where}: sha256 does not match its data (corrupted or edited bundle)`);
    let key: CollateralKey;
    try {
      key = checkKey(e.key);
    } catch (err) {
      throw new ParseError(`${where}: ${(err as Error).message}`, undefined, { cause: err });
    }
    const fetchedAt =
      typeof e.fetchedAt === 'string' && !Number.isNaN(Date.parse(e.fetchedAt)) ? new Date(e.fetchedAt).toISOString() : new Date(0).toISOString();
    const source = typeof e.source === 'string' ? e.source.slice(0, 512) : 'bundle';
    return { key, fetchedAt, source, sha256, data };
  });
}
