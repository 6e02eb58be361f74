/**
 * go-sev-guest's text output (`attest -outform textproto`, protobuf text format of its sevsnp.Report,
 * or sevsnp.Attestation {report, certificate_chain, product} with -extended; proto/sevsnp.proto).
 * The text format is small enough to read here: fields `name: value` and `name { … }` (or `< … >`),
 * quoted strings with C escapes (adjacent strings concatenate), integers, enum identifiers, `#`
 * comments. The report is rebuilt from the fields in ABI layout (SNP ABI #56861 Table 23); the
 * signature field is the report's 512-byte signature area as is. Pure; ParseError otherwise.
 * (The binary `-outform proto` is not text and is not accepted: convert it with the same tool.)
 */
import { CvmError, ParseError } from '../../errors.js';
import { serializeSnpReport, SNP_REPORT_SIZE } from '../snp-abi/index.js';

type Value = Buffer | string | Message; // Buffer: quoted string; string: number or identifier
interface Message {
  fields: Map<string, Value[]>;
}

const MAX_DEPTH = 8;
const SIGNATURE_OFFSET = 0x2a0;
const SIGNATURE_AREA = 512;

const fail = (problem: string): never => {
  throw new ParseError(`go-sev-guest textproto: ${problem}`);
};

/** Heuristic used by detection: printable text whose first field is `name:` or `name {`. */
export function looksLikeTextproto(text: string): boolean {
  return /^\s*(?:#[^\n]*\n\s*)*[A-Za-z_][A-Za-z0-9_]*\s*(?::|\{|<)/.test(text);
}

class Reader {
  i = 0;
  constructor(private readonly s: string) {}

  skip(): void {
    for (;;) {
      while (this.i < this.s.length && /[\s,;]/.test(this.s[this.i]!)) this.i++;
      if (this.s[this.i] !== '#') return;
      while (this.i < this.s.length && this.s[this.i] !== '\n') this.i++;
    }
  }

  peek(): string | undefined {
    this.skip();
    return this.s[this.i];
  }

  ident(): string {
    this.skip();
    const m = /^[A-Za-z_][A-Za-z0-9_.]*/.exec(this.s.slice(this.i, this.i + 128));
    if (!m) return fail(`expected a field name at offset ${this.i}`);
    this.i += m[0].length;
    return m[0];
  }

  /** One quoted string with C escapes (\n \t \\ \" \' \xHH \NNN …), decoded to bytes. */
  quoted(): Buffer {
    const q = this.s[this.i++]!;
    const out: number[] = [];
    for (;;) {
      if (this.i >= this.s.length) return fail('unterminated string');
      const c = this.s[this.i++]!;
      if (c === q) return Buffer.from(out);
      if (c === '\n') return fail('newline inside a string');
      if (c !== '\\') {
        out.push(...Buffer.from(c, 'utf8'));
        continue;
      }
      const e = this.s[this.i++];
      const simple: Record<string, number> = { n: 10, t: 9, r: 13, a: 7, b: 8, f: 12, v: 11, '\\': 92, "'": 39, '"': 34, '?': 63 };
      if (e !== undefined && e in simple) out.push(simple[e]!);
      else if (e === 'x' || e === 'X') {
        const m = /^[0-9a-fA-F]{1,2}/.exec(this.s.slice(this.i, this.i + 2));
        if (!m) return fail('\\x without hex digits');
        out.push(Number.parseInt(m[0], 16));
        this.i += m[0].length;
      } else if (e !== undefined && /[0-7]/.test(e)) {
        const m = /^[0-7]{1,3}/.exec(this.s.slice(this.i - 1, this.i + 2))!;
        const v = Number.parseInt(m[0], 8);
        if (v > 255) return fail('octal escape above \\377');
        out.push(v);
        this.i += m[0].length - 1;
      } else return fail(`unknown escape \\${e ?? ''}`);
    }
  }

  value(depth: number): Value {
    const c = this.peek();
    if (c === '{' || c === '<') return this.message(depth + 1, c === '{' ? '}' : '>');
    if (c === '"' || c === "'") {
      const parts: Buffer[] = [];
      while (this.peek() === '"' || this.peek() === "'") parts.push(this.quoted());
      return Buffer.concat(parts);
    }
    const m = /^-?[A-Za-z0-9_.+]+/.exec(this.s.slice(this.i, this.i + 64));
    if (!m) return fail(`expected a value at offset ${this.i}`);
    this.i += m[0].length;
    return m[0];
  }

  message(depth: number, close?: string): Message {
    if (depth > MAX_DEPTH) return fail('nested too deeply');
    if (close !== undefined) this.i++; // the opening brace
    const fields = new Map<string, Value[]>();
    for (;;) {
      const c = this.peek();
      if (c === undefined) {
        if (close !== undefined) return fail(`missing "${close}"`);
        return { fields };
      }
      if (c === close) {
        this.i++;
        return { fields };
      }
      const name = this.ident();
      const sep = this.peek();
      if (sep === ':') this.i++;
      else if (sep !== '{' && sep !== '<') return fail(`expected ":" or "{" after ${name}`);
      const list = fields.get(name) ?? [];
      list.push(this.value(depth));
      fields.set(name, list);
    }
  }
}

/** Parse protobuf text format into a tree (exported for tests). */
export function parseTextproto(text: string): Message {
  return new Reader(text).message(0);
}

function one(m: Message, name: string): Value | undefined {
  const list = m.fields.get(name);
  if (list !== undefined && list.length > 1) fail(`field ${name} is repeated`);
  return list?.[0];
}

function num(m: Message, name: string, max: bigint): bigint {
  const v = one(m, name);
  if (v === undefined) return 0n; // proto3: an absent scalar is zero
  if (typeof v !== 'string' || !/^(0[xX][0-9a-fA-F]+|[0-9]+)$/.test(v)) return fail(`${name}: expected an unsigned integer`);
  const n = BigInt(v);
  if (n > max) fail(`${name}: ${v} is out of range`);
  return n;
}

const u32 = (m: Message, name: string) => Number(num(m, name, 0xffffffffn));
const u8 = (m: Message, name: string) => Number(num(m, name, 0xffn));

function bytes(m: Message, name: string, length: number): Buffer | undefined {
  const v = one(m, name);
  if (v === undefined) return undefined;
  if (!Buffer.isBuffer(v)) return fail(`${name}: expected a quoted byte string`);
  if (v.length !== length) fail(`${name}: expected ${length} bytes, got ${v.length}`);
  return v;
}

function reportOf(m: Message): Buffer {
  const fms = u32(m, 'cpuid1eax_fms');
  // CPUID Fn0000_0001_EAX: family = base + extended, model = (extended << 4) | base (AMD APM vol. 3).
  const cpuid = { family: ((fms >> 8) & 0xf) + ((fms >> 20) & 0xff), model: ((fms >> 4) & 0xf) | ((fms >> 12) & 0xf0), stepping: fms & 0xf };
  const signature = bytes(m, 'signature', SIGNATURE_AREA);
  const opt = <K extends string>(k: K, v: Buffer | undefined) => (v === undefined ? {} : { [k]: v });
  let out: Buffer;
  try {
    out = serializeSnpReport({
      version: u32(m, 'version'),
      guestSvn: u32(m, 'guest_svn'),
      policy: num(m, 'policy', 0xffffffffffffffffn),
      ...opt('familyId', bytes(m, 'family_id', 16)),
      ...opt('imageId', bytes(m, 'image_id', 16)),
      vmpl: u32(m, 'vmpl'),
      signatureAlgo: u32(m, 'signature_algo'),
      currentTcb: num(m, 'current_tcb', 0xffffffffffffffffn),
      platformInfo: num(m, 'platform_info', 0xffffffffffffffffn),
      signerInfo: u32(m, 'signer_info'),
      ...opt('reportData', bytes(m, 'report_data', 64)),
      ...opt('measurement', bytes(m, 'measurement', 48)),
      ...opt('hostData', bytes(m, 'host_data', 32)),
      ...opt('idKeyDigest', bytes(m, 'id_key_digest', 48)),
      ...opt('authorKeyDigest', bytes(m, 'author_key_digest', 48)),
      ...opt('reportId', bytes(m, 'report_id', 32)),
      reportIdMa: bytes(m, 'report_id_ma', 32) ?? Buffer.alloc(32),
      reportedTcb: num(m, 'reported_tcb', 0xffffffffffffffffn),
      ...(fms !== 0 ? { cpuid } : {}),
      ...opt('chipId', bytes(m, 'chip_id', 64)),
      committedTcb: num(m, 'committed_tcb', 0xffffffffffffffffn),
      currentVersion: { build: u8(m, 'current_build'), minor: u8(m, 'current_minor'), major: u8(m, 'current_major') },
      committedVersion: { build: u8(m, 'committed_build'), minor: u8(m, 'committed_minor'), major: u8(m, 'committed_major') },
      launchTcb: num(m, 'launch_tcb', 0xffffffffffffffffn),
      launchMitVector: num(m, 'launch_mit_vector', 0xffffffffffffffffn),
      currentMitVector: num(m, 'current_mit_vector', 0xffffffffffffffffn),
    });
  } catch (err) {
    if (err instanceof CvmError && !(err instanceof ParseError)) return fail(err.message);
    throw err;
  }
  if (signature !== undefined) signature.copy(out, SIGNATURE_OFFSET);
  return out;
}

export interface SevGuestTextproto {
  /** `Report` (plain attest) or `Attestation` (attest -extended: report plus certificate_chain). */
  message: 'Report' | 'Attestation';
  report: Buffer;
  /** DER certificates from certificate_chain: VCEK or VLEK first, then ASK, ARK. */
  certificates: Buffer[];
}

/** Text of go-sev-guest's sevsnp.Report or sevsnp.Attestation -> report bytes and certificates. */
export function decodeSevGuestTextproto(text: string): SevGuestTextproto {
  const top = parseTextproto(text);
  const inner = one(top, 'report');
  if (inner === undefined) {
    if (!top.fields.has('version')) fail('neither a Report (version: …) nor an Attestation (report { … })');
    return { message: 'Report', report: reportOf(top), certificates: [] };
  }
  if (Buffer.isBuffer(inner) || typeof inner === 'string') return fail('report: expected a message { … }');
  const chain = one(top, 'certificate_chain');
  const certificates: Buffer[] = [];
  if (chain !== undefined) {
    if (Buffer.isBuffer(chain) || typeof chain === 'string') return fail('certificate_chain: expected a message { … }');
    for (const name of ['vcek_cert', 'vlek_cert', 'ask_cert', 'ark_cert']) {
      const v = one(chain, name);
      if (v === undefined) continue;
      if (!Buffer.isBuffer(v)) return fail(`certificate_chain.${name}: expected a quoted byte string`);
      if (v.length > 0) certificates.push(v);
    }
  }
  const report = reportOf(inner);
  if (report.length !== SNP_REPORT_SIZE) fail('internal size mismatch');
  return { message: 'Attestation', report, certificates };
}
