/**
 * A small, strict, non-validating XML 1.0 + Namespaces 1.0 parser for signed documents (NVIDIA RIMs).
 *
 * Why our own: XML-DSig needs an exact data model (namespace declarations as written, attribute values
 * after normalisation, text after reference expansion) to canonicalise, and hostile input must fail
 * with a ParseError, never a crash or an entity expansion. So this parser:
 * - rejects any DOCTYPE outright (no DTD, no entities beyond the five predefined ones, no XXE);
 * - bounds input size, nesting depth and attribute count;
 * - rejects characters that XML 1.0 forbids, unbound prefixes and duplicate attributes;
 * - keeps comments and processing instructions (canonicalisation decides what to drop).
 * Spec references: XML 1.0 (5th ed.) §2.2 Char, §2.3 Name, §2.11 line ends, §3.3.3 attribute-value
 * normalisation, §4.1/§4.6 references; Namespaces in XML 1.0 (3rd ed.) §3, §5, §6.
 */
import { ParseError } from '../errors.js';

export const XML_NS = 'http://www.w3.org/XML/1998/namespace';
export const XMLNS_NS = 'http://www.w3.org/2000/xmlns/';

export interface XmlAttribute {
  /** As written, e.g. "ns2:Hash0". */
  qname: string;
  prefix: string;
  local: string;
  /** Namespace URI; '' for an unprefixed attribute (no namespace). */
  ns: string;
  /** Value after reference expansion and whitespace normalisation (XML §3.3.3, CDATA type). */
  value: string;
}

/** A namespace declaration as written on an element; prefix '' is the default namespace. */
export interface XmlNsDecl {
  prefix: string;
  uri: string;
}

export interface XmlElement {
  kind: 'element';
  qname: string;
  prefix: string;
  local: string;
  /** Namespace URI; '' when the element is in no namespace. */
  ns: string;
  attributes: XmlAttribute[];
  nsDecls: XmlNsDecl[];
  /** Namespaces in scope here (prefix → URI, '' = default; 'xml' always present). */
  inScope: ReadonlyMap<string, string>;
  children: XmlNode[];
  parent: XmlElement | null;
}

export interface XmlText {
  kind: 'text';
  value: string;
}
export interface XmlComment {
  kind: 'comment';
  value: string;
}
export interface XmlPi {
  kind: 'pi';
  target: string;
  data: string;
}
export type XmlNode = XmlElement | XmlText | XmlComment | XmlPi;

export interface XmlDocument {
  /** Top-level nodes in order: comments and PIs around exactly one element (the root). */
  children: (XmlElement | XmlComment | XmlPi)[];
  root: XmlElement;
}

export interface XmlLimits {
  /** Maximum input length in UTF-16 code units (default 4 MiB; RIMs are ~21 KB). */
  maxLength?: number;
  /** Maximum element nesting depth (default 64). */
  maxDepth?: number;
  /** Maximum attributes (including namespace declarations) on one element (default 512). */
  maxAttributes?: number;
}

const DEFAULTS = { maxLength: 4 * 1024 * 1024, maxDepth: 64, maxAttributes: 512 };

// XML 1.0 5th ed. §2.3 productions [4] NameStartChar and [4a] NameChar.
const NAME_START =
  ':A-Z_a-z\\xC0-\\xD6\\xD8-\\xF6\\xF8-\\u02FF\\u0370-\\u037D\\u037F-\\u1FFF\\u200C\\u200D\\u2070-\\u218F\\u2C00-\\u2FEF\\u3001-\\uD7FF\\uF900-\\uFDCF\\uFDF0-\\uFFFD\\u{10000}-\\u{EFFFF}';
const NAME_CHAR = `${NAME_START}\\-.0-9\\xB7\\u0300-\\u036F\\u203F\\u2040`;
const NAME_RE = new RegExp(`[${NAME_START}][${NAME_CHAR}]*`, 'uy');
// §2.2 [2] Char: anything outside is a fatal error (this also catches lone surrogates under /u).
const BAD_CHAR_RE = /[^\t\n\r\x20-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/u;
/** The same test without surrogates, in UTF-16 units: no match means no forbidden character (the common case, checked quickly). */
const BAD_OR_SURROGATE_RE = /[^\t\n\r\x20-\uD7FF\uE000-\uFFFD]/;
/** ASCII fast paths of NameStartChar / NameChar (§2.3 [4], [4a]); other characters go through NAME_RE. */
const ASCII_NAME_START = new Uint8Array(128);
const ASCII_NAME_CHAR = new Uint8Array(128);
for (let c = 0; c < 128; c++) {
  const ch = String.fromCharCode(c);
  ASCII_NAME_START[c] = /[:A-Z_a-z]/.test(ch) ? 1 : 0;
  ASCII_NAME_CHAR[c] = /[:A-Z_a-z\-.0-9]/.test(ch) ? 1 : 0;
}
/** Where character data stops: markup or a reference. */
const TEXT_STOP_RE = /[<&]/g;
/** What makes an attribute value need more than slicing: markup, a reference, whitespace to normalise. */
const ATTR_SPECIAL_RE = /[<&\t\n]/;
const XML_DECL_RE =
  /^<\?xml[ \t\n]+version[ \t\n]*=[ \t\n]*(["'])1\.[0-9]+\1(?:[ \t\n]+encoding[ \t\n]*=[ \t\n]*(["'])[A-Za-z][A-Za-z0-9._-]*\2)?(?:[ \t\n]+standalone[ \t\n]*=[ \t\n]*(["'])(?:yes|no)\3)?[ \t\n]*\?>/;
const PREDEFINED: Record<string, string> = { lt: '<', gt: '>', amp: '&', apos: "'", quot: '"' };

function isXmlChar(cp: number): boolean {
  return cp === 0x9 || cp === 0xa || cp === 0xd || (cp >= 0x20 && cp <= 0xd7ff) || (cp >= 0xe000 && cp <= 0xfffd) || (cp >= 0x10000 && cp <= 0x10ffff);
}

const isSpace = (c: string | undefined): boolean => c === ' ' || c === '\t' || c === '\n';

/** Parse a complete XML document. Throws ParseError on anything that is not well-formed or is refused. */
export function parseXml(input: string, limits: XmlLimits = {}): XmlDocument {
  const lim = { ...DEFAULTS, ...limits };
  if (typeof input !== 'string') throw new ParseError('XML: input is not a string');
  if (input.length > lim.maxLength) throw new ParseError(`XML: document of ${input.length} characters exceeds the ${lim.maxLength} limit`);
  // §2.11: normalise line ends before parsing.
  let s = input.includes('\r') ? input.replace(/\r\n?/g, '\n') : input;
  if (s.charCodeAt(0) === 0xfeff) s = s.slice(1);
  const bad = BAD_OR_SURROGATE_RE.test(s) ? BAD_CHAR_RE.exec(s) : null;
  if (bad) throw new ParseError(`XML: character U+${(bad[0].codePointAt(0) ?? 0).toString(16).toUpperCase()} is not allowed`, bad.index);
  return new Parser(s, lim).parseDocument();
}

class Parser {
  private pos = 0;
  constructor(
    private readonly s: string,
    private readonly lim: typeof DEFAULTS,
  ) {}

  private fail(msg: string, at = this.pos): never {
    throw new ParseError(`XML: ${msg}`, at);
  }

  private startsWith(t: string): boolean {
    return this.s.startsWith(t, this.pos);
  }

  private skipSpace(): number {
    const start = this.pos;
    while (isSpace(this.s[this.pos])) this.pos++;
    return this.pos - start;
  }

  private name(what: string): string {
    // ASCII names (all of a RIM's) are scanned by table; anything else is left to NAME_RE.
    const s = this.s;
    const start = this.pos;
    const c0 = s.charCodeAt(start);
    if (c0 < 128 && ASCII_NAME_START[c0] === 1) {
      let i = start + 1;
      let c = s.charCodeAt(i);
      while (c < 128 && ASCII_NAME_CHAR[c] === 1) c = s.charCodeAt(++i);
      // Stopped at the end (NaN) or at an ASCII character that is no NameChar: the name is complete.
      if (!(c >= 128)) {
        this.pos = i;
        return s.slice(start, i);
      }
    }
    NAME_RE.lastIndex = this.pos;
    const m = NAME_RE.exec(this.s);
    if (!m) this.fail(`expected ${what}`);
    this.pos += m[0].length;
    return m[0];
  }

  private expect(t: string, what: string): void {
    if (!this.startsWith(t)) this.fail(`expected ${what}`);
    this.pos += t.length;
  }

  parseDocument(): XmlDocument {
    const children: (XmlElement | XmlComment | XmlPi)[] = [];
    let root: XmlElement | undefined;
    if (this.startsWith('<?xml') && isSpace(this.s[5])) {
      const m = XML_DECL_RE.exec(this.s);
      if (!m) this.fail('malformed XML declaration');
      this.pos = m[0].length;
    }
    for (;;) {
      this.skipSpace();
      if (this.pos >= this.s.length) break;
      if (this.startsWith('<!--')) children.push(this.comment());
      else if (this.startsWith('<?')) children.push(this.pi());
      else if (this.startsWith('<!DOCTYPE') || this.startsWith('<!doctype')) this.fail('DOCTYPE is not allowed (no DTDs or entity declarations)');
      else if (this.startsWith('<!')) this.fail('unexpected markup declaration');
      else if (this.s[this.pos] === '<') {
        if (root) this.fail('more than one root element');
        root = this.element();
        children.push(root);
      } else this.fail(root ? 'text after the root element' : 'text before the root element');
    }
    if (!root) this.fail('no root element');
    return { children, root };
  }

  private comment(): XmlComment {
    const start = this.pos;
    this.pos += 4;
    const end = this.s.indexOf('-->', this.pos);
    if (end < 0) this.fail('unterminated comment', start);
    const value = this.s.slice(this.pos, end);
    // §2.5: "--" must not occur inside a comment, and it must not end with "-".
    if (value.includes('--') || value.endsWith('-')) this.fail('"--" inside a comment', start);
    this.pos = end + 3;
    return { kind: 'comment', value };
  }

  private pi(): XmlPi {
    const start = this.pos;
    this.pos += 2;
    const target = this.name('processing-instruction target');
    if (target.toLowerCase() === 'xml') this.fail('XML declaration not at the start of the document', start);
    if (target.includes(':')) this.fail('colon in processing-instruction target', start);
    let data = '';
    if (this.startsWith('?>')) this.pos += 2;
    else {
      if (this.skipSpace() === 0) this.fail('expected space after processing-instruction target');
      const end = this.s.indexOf('?>', this.pos);
      if (end < 0) this.fail('unterminated processing instruction', start);
      data = this.s.slice(this.pos, end);
      this.pos = end + 2;
    }
    return { kind: 'pi', target, data };
  }

  /** Expand one reference at this.pos ('&'); returns the replacement text. */
  private reference(): string {
    const start = this.pos;
    const end = this.s.indexOf(';', this.pos);
    if (end < 0 || end - start > 12) this.fail('malformed reference', start);
    const body = this.s.slice(start + 1, end);
    this.pos = end + 1;
    if (body.startsWith('#')) {
      const m = /^#(?:x([0-9a-fA-F]{1,6})|([0-9]{1,7}))$/.exec(body);
      if (!m) this.fail('malformed character reference', start);
      const cp = m[1] !== undefined ? parseInt(m[1], 16) : parseInt(m[2]!, 10);
      if (!isXmlChar(cp)) this.fail(`character reference to a non-XML character U+${cp.toString(16).toUpperCase()}`, start);
      return String.fromCodePoint(cp);
    }
    const rep = PREDEFINED[body];
    if (rep === undefined) this.fail(`undeclared entity "&${body.slice(0, 20)};" (only the five predefined entities are allowed)`, start);
    return rep;
  }

  private attributeValue(): string {
    const q = this.s[this.pos];
    if (q !== '"' && q !== "'") this.fail('expected a quoted attribute value');
    this.pos++;
    // Fast path: up to the closing quote there is nothing to expand, normalise or refuse.
    const close = this.s.indexOf(q, this.pos);
    if (close >= 0) {
      const raw = this.s.slice(this.pos, close);
      if (!ATTR_SPECIAL_RE.test(raw)) {
        this.pos = close + 1;
        return raw;
      }
    }
    let out = '';
    for (;;) {
      const c = this.s[this.pos];
      if (c === undefined) this.fail('unterminated attribute value');
      if (c === q) {
        this.pos++;
        return out;
      }
      if (c === '<') this.fail('"<" in attribute value');
      if (c === '&') out += this.reference();
      else {
        // §3.3.3: literal whitespace becomes a space; character references are kept as they are.
        out += c === '\t' || c === '\n' ? ' ' : c;
        this.pos++;
      }
    }
  }

  private element(): XmlElement {
    interface Frame {
      el: XmlElement;
    }
    const stack: Frame[] = [];
    let root: XmlElement | undefined;
    for (;;) {
      const top = stack[stack.length - 1];
      if (top === undefined) {
        if (root) return root;
        const el = this.startTag(null);
        root = el;
        if (el.children === EMPTY) {
          el.children = [];
          return el;
        }
        stack.push({ el });
        continue;
      }
      const parent = top.el;
      if (this.pos >= this.s.length) this.fail(`unclosed element <${parent.qname}>`);
      if (this.s.charCodeAt(this.pos) !== 0x3c /* < */) {
        this.text(parent);
        continue;
      }
      const next = this.s.charCodeAt(this.pos + 1);
      if (next === 0x2f /* / */) {
        const at = this.pos;
        this.pos += 2;
        const name = this.name('end-tag name');
        this.skipSpace();
        this.expect('>', '">" to close the end tag');
        if (name !== parent.qname) this.fail(`end tag </${name}> does not match <${parent.qname}>`, at);
        stack.pop();
      } else if (next !== 0x21 /* ! */ && next !== 0x3f /* ? */) {
        if (stack.length >= this.lim.maxDepth) this.fail(`nesting deeper than ${this.lim.maxDepth} elements`);
        const el = this.startTag(parent);
        parent.children.push(el);
        if (el.children === EMPTY) el.children = [];
        else stack.push({ el });
      } else if (this.startsWith('<!--')) parent.children.push(this.comment());
      else if (this.startsWith('<![CDATA[')) {
        const start = this.pos;
        const end = this.s.indexOf(']]>', this.pos + 9);
        if (end < 0) this.fail('unterminated CDATA section', start);
        this.appendText(parent, this.s.slice(this.pos + 9, end));
        this.pos = end + 3;
      } else if (next === 0x3f /* ? */) parent.children.push(this.pi());
      else this.fail('markup declaration inside an element');
    }
  }

  private appendText(parent: XmlElement, value: string): void {
    if (value === '') return;
    const last = parent.children[parent.children.length - 1];
    // XPath data model: adjacent character data (text and CDATA) is one text node.
    if (last?.kind === 'text') last.value += value;
    else parent.children.push({ kind: 'text', value });
  }

  private text(parent: XmlElement): void {
    let out = '';
    const start = this.pos;
    for (;;) {
      const c = this.s[this.pos];
      if (c === undefined || c === '<') break;
      if (c === '&') {
        out += this.reference();
        continue;
      }
      TEXT_STOP_RE.lastIndex = this.pos;
      const stop = TEXT_STOP_RE.exec(this.s);
      const j = stop ? stop.index : this.s.length;
      out += this.s.slice(this.pos, j);
      this.pos = j;
    }
    const raw = this.s.slice(start, this.pos);
    if (raw.includes(']]>')) this.fail('"]]>" in character data', start);
    this.appendText(parent, out);
  }

  /** Parse a start tag; an empty-element tag returns an element whose children === EMPTY. */
  private startTag(parent: XmlElement | null): XmlElement {
    const start = this.pos;
    this.pos++; // '<'
    const qname = this.name('element name');
    const raw: { qname: string; value: string; at: number }[] = [];
    let empty = false;
    for (;;) {
      const hadSpace = this.skipSpace() > 0;
      if (this.startsWith('/>')) {
        this.pos += 2;
        empty = true;
        break;
      }
      if (this.startsWith('>')) {
        this.pos++;
        break;
      }
      if (this.pos >= this.s.length) this.fail(`unterminated start tag <${qname}>`, start);
      if (!hadSpace) this.fail('expected whitespace between attributes');
      const at = this.pos;
      const an = this.name('attribute name');
      this.skipSpace();
      this.expect('=', `"=" after attribute ${an}`);
      this.skipSpace();
      const value = this.attributeValue();
      if (raw.some((a) => a.qname === an)) this.fail(`duplicate attribute ${an}`, at);
      raw.push({ qname: an, value, at });
      if (raw.length > this.lim.maxAttributes) this.fail(`more than ${this.lim.maxAttributes} attributes`, at);
    }
    return this.resolve(qname, raw, parent, start, empty);
  }

  /** Namespaces in XML 1.0: collect declarations, bind prefixes, check expanded-name uniqueness. */
  private resolve(qname: string, raw: { qname: string; value: string; at: number }[], parent: XmlElement | null, start: number, empty: boolean): XmlElement {
    const nsDecls: XmlNsDecl[] = [];
    const plain: typeof raw = [];
    for (const a of raw) {
      if (a.qname === 'xmlns') {
        if (a.value === XML_NS || a.value === XMLNS_NS) this.fail('the xml/xmlns namespace cannot be the default namespace', a.at);
        nsDecls.push({ prefix: '', uri: a.value });
      } else if (a.qname.startsWith('xmlns:')) {
        const p = a.qname.slice(6);
        checkNcName(p, a.at);
        if (p === 'xmlns') this.fail('the xmlns prefix cannot be declared', a.at);
        if (a.value === '') this.fail(`prefix ${p} cannot be undeclared in XML 1.0`, a.at);
        if ((p === 'xml') !== (a.value === XML_NS)) this.fail('the xml prefix is bound only to the XML namespace', a.at);
        if (a.value === XMLNS_NS) this.fail('the xmlns namespace cannot be bound', a.at);
        nsDecls.push({ prefix: p, uri: a.value });
      } else plain.push(a);
    }
    const base = parent ? parent.inScope : ROOT_SCOPE;
    let inScope: ReadonlyMap<string, string> = base;
    if (nsDecls.length > 0) {
      const m = new Map(base);
      for (const d of nsDecls) {
        if (d.prefix === '' && d.uri === '') m.delete('');
        else m.set(d.prefix, d.uri);
      }
      inScope = m;
    }
    const [prefix, local] = splitQName(qname, start);
    if (prefix === 'xmlns') this.fail('element name with the xmlns prefix', start);
    let ns = inScope.get(prefix) ?? '';
    if (prefix !== '' && !inScope.has(prefix)) this.fail(`unbound namespace prefix "${prefix}" on <${qname}>`, start);
    if (prefix === '') ns = inScope.get('') ?? '';
    const attributes: XmlAttribute[] = [];
    for (const a of plain) {
      const [ap, al] = splitQName(a.qname, a.at);
      let ans = '';
      if (ap !== '') {
        const u = inScope.get(ap);
        if (u === undefined) this.fail(`unbound namespace prefix "${ap}" on attribute ${a.qname}`, a.at);
        ans = u;
      }
      for (const b of attributes) if (b.local === al && b.ns === ans) this.fail(`attribute {${ans}}${al} appears twice`, a.at);
      attributes.push({ qname: a.qname, prefix: ap, local: al, ns: ans, value: a.value });
    }
    return { kind: 'element', qname, prefix, local, ns, attributes, nsDecls, inScope, children: empty ? EMPTY : [], parent };
  }
}

/** Marker for "empty-element tag" while parsing; replaced by a fresh [] before the caller sees it. */
const EMPTY: XmlNode[] = [];
const ROOT_SCOPE: ReadonlyMap<string, string> = new Map([['xml', XML_NS]]);

/** Namespaces §3 [4] NCName: a Name without a colon. */
function checkNcName(n: string, at: number): void {
  let ascii = n.length > 0;
  for (let i = 0; ascii && i < n.length; i++) {
    const c = n.charCodeAt(i);
    if (c >= 128) ascii = false;
    else if ((i === 0 ? ASCII_NAME_START[c] : ASCII_NAME_CHAR[c]) !== 1 || c === 0x3a)
      throw new ParseError(`XML: "${n.slice(0, 40)}" is not a valid NCName`, at);
  }
  if (ascii) return;
  NAME_RE.lastIndex = 0;
  const m = NAME_RE.exec(n);
  if (!m || m[0].length !== n.length || n.includes(':')) throw new ParseError(`XML: "${n.slice(0, 40)}" is not a valid NCName`, at);
}

function splitQName(q: string, at: number): [string, string] {
  const i = q.indexOf(':');
  if (i < 0) return ['', q];
  const p = q.slice(0, i);
  const l = q.slice(i + 1);
  if (p === '' || l === '' || l.includes(':')) throw new ParseError(`XML: "${q.slice(0, 40)}" is not a valid QName`, at);
  checkNcName(p, at);
  checkNcName(l, at);
  return [p, l];
}

// ---- small read helpers for consumers (RIM parsing, XML-DSig) ----

/** Child elements, optionally filtered by namespace and local name. */
export function childElements(el: XmlElement, ns?: string, local?: string): XmlElement[] {
  const out: XmlElement[] = [];
  for (const c of el.children) {
    if (c.kind !== 'element') continue;
    if (ns !== undefined && c.ns !== ns) continue;
    if (local !== undefined && c.local !== local) continue;
    out.push(c);
  }
  return out;
}

/** Attribute value by namespace ('' = none) and local name. */
export function attr(el: XmlElement, local: string, ns = ''): string | undefined {
  for (const a of el.attributes) if (a.local === local && a.ns === ns) return a.value;
  return undefined;
}

/** Concatenated text of the element's direct text children (comments and PIs ignored). */
export function textOf(el: XmlElement): string {
  let out = '';
  for (const c of el.children) {
    if (c.kind === 'text') out += c.value;
    else if (c.kind === 'element') throw new ParseError(`XML: <${el.qname}> must contain only text, found <${c.qname}>`);
  }
  return out;
}
