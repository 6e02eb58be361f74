/**
 * The on-disk form of the cycle history, <stateDir>/history.jsonl: one record per line, each line
 * `<crc32 of the JSON, 8 hex> <record JSON>\n`. Appending a cycle writes one line; the file is
 * rewritten only by compaction. The checksum lets a reader tell a line cut short by a crash (or
 * garbage left by a power loss) from a whole one. Characters outside ASCII are written as JSON
 * `\uXXXX` escapes, so a line is ASCII: as many bytes on disk as characters, and a one-byte string
 * in memory (a single non-Latin-1 character, such as an ellipsis in a check's detail, would make V8
 * hold the whole line at two bytes per character). Pure: text in, records or a ParseError out.
 */
import { crc32 } from 'node:zlib';
import { ParseError } from '../errors.js';
import { validateRecord, type CycleRecord } from './record.js';

const NON_ASCII = /[\u0080-\uffff]/g;
/** A UTF-16 code unit as a JSON escape (a surrogate pair becomes two escapes, which JSON.parse joins again). */
const escapeChar = (c: string) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;

/** One record as its line, newline included. */
export function encodeHistoryLine(record: CycleRecord): string {
  const json = JSON.stringify(record).replace(NON_ASCII, escapeChar);
  return `${crc32(json).toString(16).padStart(8, '0')} ${json}\n`;
}

export interface ParsedHistoryLog {
  /** Validated records, oldest first, ids strictly growing. */
  records: CycleRecord[];
  /**
   * Each record's line as read (newline included), parallel to `records`: what encodeHistoryLine
   * writes for it when the line is ASCII; a line of an earlier version may hold raw UTF-8.
   */
  lines: string[];
  /** Bytes of the file that hold whole, valid lines; anything after is a torn tail. */
  goodBytes: number;
  /** Bytes after goodBytes: a last line cut short (no newline, or its checksum does not match). */
  tornBytes: number;
}

function decodeLine(line: string, where: string): CycleRecord {
  const m = /^([0-9a-f]{8}) /.exec(line);
  if (!m) throw new ParseError(`${where}: expected "<crc32> <json>"`);
  const json = line.slice(9);
  if (crc32(json) !== Number.parseInt(m[1]!, 16)) throw new ParseError(`${where}: checksum mismatch`);
  let value: unknown;
  try {
    value = JSON.parse(json) as unknown;
  } catch (err) {
    throw new ParseError(`${where}: invalid JSON: ${(err as Error).message}`);
  }
  return validateRecord(value, where);
}

/** Whether a line is ASCII only (as encodeHistoryLine writes it). */
export const isAsciiLine = (line: string): boolean => !NON_ASCII_TEST.test(line);
const NON_ASCII_TEST = /[\u0080-\uffff]/;

/** One line as encodeHistoryLine wrote it (a trailing newline is allowed), checked and validated again. */
export function decodeHistoryLine(line: string): CycleRecord {
  return decodeLine(line.endsWith('\n') ? line.slice(0, -1) : line, 'history line');
}

/**
 * Reads a whole history.jsonl. Only the LAST line may be torn (the append that a crash cut short):
 * it is reported in tornBytes and dropped. A bad line anywhere else means the file was edited or is
 * not ours: ParseError, and the caller moves the file aside as it does for any corrupt state file.
 */
export function parseHistoryLog(data: Uint8Array): ParsedHistoryLog {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const records: CycleRecord[] = [];
  const lines: string[] = [];
  let start = 0;
  while (start < buf.length) {
    const nl = buf.indexOf(0x0a, start);
    if (nl < 0) break; // no newline: the write of this line never finished
    const where = `history line ${records.length + 1}`;
    let record: CycleRecord;
    const line = buf.toString('utf8', start, nl + 1);
    try {
      record = decodeLine(line.slice(0, -1), where);
    } catch (err) {
      // Whole but unreadable as the last line: what a power loss can leave (zeros, stale blocks).
      if (nl === buf.length - 1 && err instanceof ParseError) break;
      throw err;
    }
    const prev = records.at(-1);
    if (prev && record.id <= prev.id) throw new ParseError(`${where}: id ${record.id} not greater than the previous id`);
    records.push(record);
    lines.push(line);
    start = nl + 1;
  }
  return { records, lines, goodBytes: start, tornBytes: buf.length - start };
}
