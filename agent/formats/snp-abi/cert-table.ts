/**
 * GHCB extended-report certificate table ("GUID table") parser and serializer, GHCB #56421
 * rev 2.03 §4.1.8.1 cert_table
 * (go-sev-guest abi.go CertTableHeaderEntry/ParseSnpCertTableHeader/CertTable.Marshal; kernel
 * struct snp_msg_cert_entry {guid_t guid; u32 offset; u32 length;}):
 *
 *   entry[i] (24 bytes) = GUID[16] | offset u32 LE | length u32 LE, terminated by an all-zero entry;
 *   blobs at table+offset (offsets from the START of the table); page padding may follow.
 *
 * GUIDs are accepted in both byte orders (RFC 4122 and Microsoft/EFI mixed-endian)
 * (go-sev-guest#157, microsoft/CCF PR #8116).
 */
import { CvmError, ParseError } from '../../errors.js';
import { isAllZero } from '../../util/bytes.js';
import type { CertTableEntry, CertTableKind } from './abi-types.js';

export const CERT_TABLE_ENTRY_SIZE = 24;

/** Standard GUIDs (go-sev-guest abi/abi.go). The ASK GUID also carries the ASVK. */
export const CERT_TABLE_GUIDS = {
  vcek: '63da758d-e664-4564-adc5-f4b93be8accd',
  vlek: 'a8074bc2-a25a-483e-aae6-39c045a0b8a1',
  ask: '4ab7b379-bbac-4fe4-a02f-05aef327c782',
  ark: 'c0b406a4-a803-4952-9743-3fb6014cd0ae',
  /** go-sev-guest private ExtraPlatformInfo (not AMD): u32 size=8, u32 cpuid1_eax. */
  extra: 'ecae0c0f-9502-43b1-afa2-0ae2e0d565b6',
} as const;

const KIND_BY_GUID = new Map<string, CertTableKind>(Object.entries(CERT_TABLE_GUIDS).map(([kind, guid]) => [guid, kind as CertTableKind]));

const GUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The first three GUID fields (u32, u16, u16) are little-endian in the mixed-endian order. */
function swapMixed(b: Uint8Array): Buffer {
  const out = Buffer.from(b);
  out.subarray(0, 4).reverse();
  out.subarray(4, 6).reverse();
  out.subarray(6, 8).reverse();
  return out;
}

export function guidToText(bytes: Uint8Array, order: 'rfc4122' | 'mixed-endian' = 'rfc4122'): string {
  if (bytes.length !== 16) throw new ParseError(`GUID must be 16 bytes, got ${bytes.length}`);
  const h = (order === 'rfc4122' ? Buffer.from(bytes) : swapMixed(bytes)).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export function guidToBytes(text: string, order: 'rfc4122' | 'mixed-endian' = 'rfc4122'): Buffer {
  const t = text.toLowerCase();
  if (!GUID_RE.test(t)) throw new ParseError(`not a GUID: "${text}"`);
  const b = Buffer.from(t.replace(/-/g, ''), 'hex');
  return order === 'rfc4122' ? b : swapMixed(b);
}

/**
 * Parse a certificate table. An empty or all-zero buffer (the kernel zero-fills when the host
 * supplied nothing, Linux sev-guest.c get_ext_report) yields []. Rejects: missing terminator, offsets inside the header
 * or past the end, zero-length entries, overlapping blobs, duplicate GUIDs.
 */
export function parseCertTable(bytes: Uint8Array): CertTableEntry[] {
  if (!(bytes instanceof Uint8Array)) throw new ParseError('cert table: expected bytes');
  if (bytes.length === 0 || isAllZero(bytes)) return [];
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const raw: Array<{ guid: Buffer; offset: number; length: number; at: number }> = [];
  let p = 0;
  for (;;) {
    if (p + CERT_TABLE_ENTRY_SIZE > buf.length) throw new ParseError('cert table: no all-zero terminator entry', p);
    const entry = buf.subarray(p, p + CERT_TABLE_ENTRY_SIZE);
    if (isAllZero(entry)) break;
    // The kernel stops at the first null GUID (sev-guest.c); one with a size is ambiguous: reject it.
    if (isAllZero(entry.subarray(0, 16))) throw new ParseError('cert table: null GUID with a non-zero offset/length', p);
    raw.push({ guid: Buffer.from(entry.subarray(0, 16)), offset: entry.readUInt32LE(16), length: entry.readUInt32LE(20), at: p });
    p += CERT_TABLE_ENTRY_SIZE;
  }
  const headerSize = p + CERT_TABLE_ENTRY_SIZE;

  const entries: CertTableEntry[] = [];
  const seen = new Set<string>();
  for (const e of raw) {
    if (e.length === 0) throw new ParseError('cert table: entry has zero length', e.at);
    if (e.offset < headerSize) throw new ParseError(`cert table: entry offset ${e.offset} points inside the ${headerSize}-byte header`, e.at);
    if (e.offset + e.length > buf.length) {
      throw new ParseError(`cert table: entry [${e.offset}, ${e.offset + e.length}) runs past the ${buf.length}-byte buffer`, e.at);
    }
    // Known GUIDs tell us the byte order; unknown ones are read as RFC 4122 (go-sev-guest's order).
    let guid = guidToText(e.guid, 'rfc4122');
    let guidOrder: CertTableEntry['guidOrder'] = 'rfc4122';
    let kind = KIND_BY_GUID.get(guid);
    if (kind === undefined) {
      const mixed = guidToText(e.guid, 'mixed-endian');
      const mixedKind = KIND_BY_GUID.get(mixed);
      if (mixedKind !== undefined) [guid, guidOrder, kind] = [mixed, 'mixed-endian', mixedKind];
    }
    if (seen.has(guid)) throw new ParseError(`cert table: duplicate entry for GUID ${guid}`, e.at);
    seen.add(guid);
    entries.push({ guid, kind: kind ?? 'unknown', data: Buffer.from(buf.subarray(e.offset, e.offset + e.length)), guidOrder });
  }

  const byOffset = [...raw].sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < byOffset.length; i++) {
    const prev = byOffset[i - 1]!;
    const cur = byOffset[i]!;
    if (cur.offset < prev.offset + prev.length) throw new ParseError('cert table: entries overlap', cur.at);
  }
  // The ASK GUID also carries the ASVK: in a VLEK-only table it is the ASVK (go-sev-guest abi/abi.go).
  if (entries.some((e) => e.kind === 'vlek') && !entries.some((e) => e.kind === 'vcek')) {
    for (const e of entries) if (e.kind === 'ask') e.kind = 'asvk';
  }
  return entries;
}

export interface CertTableInput {
  /** GUID text; defaults to the standard GUID of `kind`. */
  guid?: string;
  kind?: Exclude<CertTableKind, 'unknown' | 'crl'>;
  data: Uint8Array;
}

/**
 * Build a certificate table (header, terminator, blobs in order, as go-sev-guest CertTable.Marshal).
 * `padTo` zero-pads to a multiple of that many bytes (4096: an ioctl certs buffer must be a page multiple, Linux sev-guest.c).
 */
export function serializeCertTable(entries: readonly CertTableInput[], opts: { guidOrder?: 'rfc4122' | 'mixed-endian'; padTo?: number } = {}): Buffer {
  const order = opts.guidOrder ?? 'rfc4122';
  const headerSize = (entries.length + 1) * CERT_TABLE_ENTRY_SIZE;
  const header = Buffer.alloc(headerSize);
  const blobs: Buffer[] = [];
  let offset = headerSize;
  entries.forEach((e, i) => {
    const kind = e.kind === 'asvk' ? 'ask' : e.kind;
    const guid = e.guid ?? (kind === undefined ? undefined : CERT_TABLE_GUIDS[kind]);
    if (guid === undefined) throw new CvmError('ERR_INVALID_ARGUMENT', `cert table entry ${i}: needs a guid or a kind`);
    if (e.data.length === 0) throw new CvmError('ERR_INVALID_ARGUMENT', `cert table entry ${i}: empty data`);
    const at = i * CERT_TABLE_ENTRY_SIZE;
    guidToBytes(guid, order).copy(header, at);
    header.writeUInt32LE(offset, at + 16);
    header.writeUInt32LE(e.data.length, at + 20);
    blobs.push(Buffer.from(e.data));
    offset += e.data.length;
  });
  let out = Buffer.concat([header, ...blobs]);
  const pad = opts.padTo;
  if (pad !== undefined && pad > 0 && out.length % pad !== 0) {
    out = Buffer.concat([out, Buffer.alloc(pad - (out.length % pad))]);
  }
  return out;
}
