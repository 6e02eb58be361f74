/**
 * Canonical XML 1.1 (W3C REC 2008-05-02, http://www.w3.org/2006/12/xml-c14n11), without comments.
 *
 * Two entry points, the two shapes XML-DSig needs:
 * - canonicalizeDocument(doc, {omit}) — the whole document minus one subtree (the enveloped-signature
 *   transform of a same-document Reference URI="").
 * - canonicalizeSubset(el) — an element and its descendants as a document subset (ds:SignedInfo).
 *   Its apex renders EVERY namespace in scope, including those inherited from omitted ancestors; this is
 *   the NVIDIA RIM pitfall (inclusive C14N of a document subset, W3C C14N 1.1 §2.4): SignedInfo carries the root's default,
 *   ns0 and ns2 namespaces as well as ds.
 * Rules implemented (C14N 1.1 §2.3, §2.4, §2.5; C14N 1.0 §2.3 for the shared parts):
 * - XML declaration and DOCTYPE removed; whitespace outside the root removed; comments removed;
 *   PIs kept, with a #xA separating them from the root element;
 * - empty elements as start/end pairs; line ends already normalised to #xA by the parser;
 * - namespace declarations first (sorted by prefix, default first), then attributes sorted by
 *   (namespace URI, local name); a namespace node is rendered only if the nearest rendered ancestor
 *   does not already have it with the same value (superfluous declarations vanish); xmlns="" only
 *   when undeclaring a rendered non-empty default;
 * - text escapes & < > #xD; attribute escapes & < " #x9 #xA #xD;
 * - C14N 1.1 §2.4: at a subset apex, xml:lang and xml:space are inherited from omitted ancestors,
 *   xml:id is not; xml:base fix-up is not implemented and a subset under an xml:base ancestor is refused.
 */
import { ParseError } from '../errors.js';
import { XML_NS, type XmlAttribute, type XmlDocument, type XmlElement, type XmlNode } from './xml.js';

export const C14N11 = 'http://www.w3.org/2006/12/xml-c14n11';

/** Compare strings by Unicode code point (C14N sorts by code point, not UTF-16 unit). */
export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // Surrogates (0xD800-0xDFFF) encode code points above every BMP character.
    const xs = x >= 0xd800 && x <= 0xdfff;
    const ys = y >= 0xd800 && y <= 0xdfff;
    if (xs !== ys) return xs ? 1 : -1;
    return x - y;
  }
  return a.length - b.length;
}

const TEXT_SPECIAL_RE = /[&<>\r]/;
const ATTR_SPECIAL_RE = /[&<"\t\n\r]/;

export function escapeText(s: string): string {
  if (!TEXT_SPECIAL_RE.test(s)) return s;
  return s.replace(/[&<>\r]/g, (c) => (c === '&' ? '&amp;' : c === '<' ? '&lt;' : c === '>' ? '&gt;' : '&#xD;'));
}

export function escapeAttr(s: string): string {
  if (!ATTR_SPECIAL_RE.test(s)) return s;
  return s.replace(/[&<"\t\n\r]/g, (c) => {
    switch (c) {
      case '&':
        return '&amp;';
      case '<':
        return '&lt;';
      case '"':
        return '&quot;';
      case '\t':
        return '&#x9;';
      case '\n':
        return '&#xA;';
      default:
        return '&#xD;';
    }
  });
}

type Rendered = ReadonlyMap<string, string>;
const NONE: Rendered = new Map();

/** Canonicalise the whole document, leaving out `omit` (and its descendants) if given. */
export function canonicalizeDocument(doc: XmlDocument, opts: { omit?: XmlElement } = {}): string {
  const out: string[] = [];
  let seenRoot = false;
  for (const n of doc.children) {
    if (n.kind === 'element') {
      seenRoot = true;
      if (n !== opts.omit) renderElement(n, NONE, null, out, opts.omit, null);
    } else if (n.kind === 'pi') {
      // C14N 1.0 §2.3: PIs before the root are followed by #xA, those after it are preceded by one.
      out.push(seenRoot ? `\n${renderPi(n.target, n.data)}` : `${renderPi(n.target, n.data)}\n`);
    }
  }
  return out.join('');
}

/** Canonicalise `apex` and its descendants as a document subset (ancestors omitted). */
export function canonicalizeSubset(apex: XmlElement): string {
  const out: string[] = [];
  renderElement(apex, NONE, null, out, undefined, inheritedXmlAttributes(apex));
  return out.join('');
}

/** C14N 1.1 §2.4: xml:lang / xml:space from the nearest omitted ancestor that has them. */
function inheritedXmlAttributes(apex: XmlElement): XmlAttribute[] {
  const found = new Map<string, XmlAttribute>();
  for (const a of apex.attributes) if (a.ns === XML_NS) found.set(a.local, a);
  const extra: XmlAttribute[] = [];
  for (let p = apex.parent; p; p = p.parent) {
    for (const a of p.attributes) {
      if (a.ns !== XML_NS) continue;
      if (a.local === 'base') throw new ParseError('C14N 1.1: xml:base on an ancestor of a canonicalised subset is not supported');
      if ((a.local === 'lang' || a.local === 'space') && !found.has(a.local)) {
        found.set(a.local, a);
        extra.push(a);
      }
    }
  }
  return extra;
}

function renderPi(target: string, data: string): string {
  return data === '' ? `<?${target}?>` : `<?${target} ${data}?>`;
}

const byNsThenLocal = (a: XmlAttribute, b: XmlAttribute): number => compareCodePoints(a.ns, b.ns) || compareCodePoints(a.local, b.local);

/**
 * `parentScope` is the in-scope map of the rendered parent (null at the apex). The same map object means
 * the same namespaces, all of which the parent has rendered, so this element declares none.
 */
function renderElement(
  el: XmlElement,
  rendered: Rendered,
  parentScope: ReadonlyMap<string, string> | null,
  out: string[],
  omit: XmlElement | undefined,
  extraAttrs: XmlAttribute[] | null,
): void {
  let tag = `<${el.qname}`;
  let next = rendered;
  if (el.inScope !== parentScope) {
    // Namespace axis: every in-scope namespace not already rendered with the same value by the
    // nearest output ancestor (inclusive canonicalisation).
    const decls: [string, string][] = [];
    for (const [prefix, uri] of el.inScope) {
      if (prefix === 'xml' || prefix === '') continue;
      if (rendered.get(prefix) !== uri) decls.push([prefix, uri]);
    }
    const def = el.inScope.get('') ?? '';
    const renderedDef = rendered.get('') ?? '';
    decls.sort((a, b) => compareCodePoints(a[0], b[0]));
    if (decls.length > 0 || def !== renderedDef) {
      const m = new Map(rendered);
      for (const [p, u] of decls) m.set(p, u);
      m.set('', def);
      next = m;
    }
    if (def !== renderedDef) tag += ` xmlns="${escapeAttr(def)}"`;
    for (const [p, u] of decls) tag += ` xmlns:${p}="${escapeAttr(u)}"`;
  }
  const attrs = extraAttrs && extraAttrs.length > 0 ? [...el.attributes, ...extraAttrs] : el.attributes;
  if (attrs.length === 1) tag += ` ${attrs[0]!.qname}="${escapeAttr(attrs[0]!.value)}"`;
  else if (attrs.length > 1) for (const a of [...attrs].sort(byNsThenLocal)) tag += ` ${a.qname}="${escapeAttr(a.value)}"`;
  out.push(`${tag}>`);
  renderChildren(el.children, next, el.inScope, out, omit);
  out.push(`</${el.qname}>`);
}

function renderChildren(children: XmlNode[], rendered: Rendered, scope: ReadonlyMap<string, string>, out: string[], omit: XmlElement | undefined): void {
  for (const c of children) {
    switch (c.kind) {
      case 'text':
        out.push(escapeText(c.value));
        break;
      case 'element':
        if (c !== omit) renderElement(c, rendered, scope, out, omit, null);
        break;
      case 'pi':
        out.push(renderPi(c.target, c.data));
        break;
      case 'comment':
        break; // canonical XML without comments
    }
  }
}
