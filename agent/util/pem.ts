/**
 * The one PEM toolkit (RFC 7468 textual encoding): DER -> PEM, and PEM -> DER blocks of one label
 * with one splitter, either lax (every block of the label, anything else ignored: bundles, IMDS answers, KDS cert_chain)
 * or strict (nothing but white space/NULs between blocks, canonical base64, a bounded count: device
 * evidence such as a GPU certificate chain).
 */
import { ParseError } from '../errors.js';

/** RFC 7468 §2: base64 in lines of 64 characters between BEGIN/END lines of the label. */
export function derToPem(der: Uint8Array, label = 'CERTIFICATE'): string {
  const b64 = Buffer.from(der)
    .toString('base64')
    .replace(/(.{64})/g, '$1\n')
    .replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

const blockRe = (label: string): RegExp => new RegExp(`-----BEGIN ${label}-----([A-Za-z0-9+/=\\s]*?)-----END ${label}-----`, 'g');

export interface StrictPemOptions {
  /** For messages, e.g. "certificate chain". */
  what: string;
  /** Plural noun of the blocks, for messages, e.g. "certificates". */
  noun: string;
  /** At most this many blocks. */
  maxBlocks: number;
}

const onlySpace = (s: string): boolean => /^[\s\0]*$/.test(s);

/**
 * The DER of every `label` block in `text`.
 * Lax (no `strict`): other blocks and text around them are ignored. Strict (for untrusted evidence):
 * only `label` blocks separated by white space/NULs, canonical base64, 1..strict.maxBlocks of them;
 * anything else is a ParseError.
 */
export function pemBlocks(text: string, label = 'CERTIFICATE', strict?: StrictPemOptions): Buffer[] {
  const re = blockRe(label);
  const out: Buffer[] = [];
  let last = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(text)) !== null) {
    const b64 = m[1]!.replace(/\s+/g, '');
    if (strict) {
      if (!onlySpace(text.slice(last, m.index))) throw new ParseError(`${strict.what}: unexpected text between PEM blocks`, m.index);
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || b64.length % 4 !== 0) throw new ParseError(`${strict.what}: bad base64 in PEM block`, m.index);
    }
    out.push(Buffer.from(b64, 'base64'));
    if (strict && out.length > strict.maxBlocks) throw new ParseError(`${strict.what}: more than ${strict.maxBlocks} ${strict.noun}`);
    last = m.index + m[0].length;
  }
  if (strict) {
    if (!onlySpace(text.slice(last))) throw new ParseError(`${strict.what}: unexpected text after the last PEM block`, last);
    if (out.length === 0) throw new ParseError(`${strict.what}: no PEM ${strict.noun} found`);
  }
  return out;
}

/**
 * The whole text of every `label` block, BEGIN and END lines included, whatever lies between them
 * (headers, bad base64): for checks that must report a damaged block by its position, not skip it.
 */
export function pemBlockTexts(text: string, label = 'CERTIFICATE'): string[] {
  return text.match(new RegExp(`-----BEGIN ${label}-----[\\s\\S]+?-----END ${label}-----`, 'g')) ?? [];
}
