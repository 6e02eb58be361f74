import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ParseError } from '../../../agent/errors.js';
import { attr, childElements, parseXml, textOf, XML_NS } from '../../../agent/util/xml.js';
import { FC_RUNS, vector } from '../../helpers/paths.js';

const RIM = vector('nvidia/nvtrust/hopper-545-complete/Driver_RIM_test_no_gpu.swidtag').toString('utf8');

function parseError(xml: string, re: RegExp): void {
  let err: unknown;
  try {
    parseXml(xml);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(ParseError);
  expect((err as Error).message).toMatch(re);
}

describe('XML parser: data model', () => {
  it('resolves namespaces of elements and attributes, and keeps declarations as written', () => {
    const doc = parseXml('<r xmlns="urn:d" xmlns:p="urn:p" a="1" p:b="2"><p:c/><d xmlns=""/></r>');
    expect(doc.root.ns).toBe('urn:d');
    expect(doc.root.nsDecls).toEqual([
      { prefix: '', uri: 'urn:d' },
      { prefix: 'p', uri: 'urn:p' },
    ]);
    expect(attr(doc.root, 'a')).toBe('1');
    expect(attr(doc.root, 'b', 'urn:p')).toBe('2');
    expect(attr(doc.root, 'b')).toBeUndefined();
    const [c, d] = childElements(doc.root);
    expect(c!.ns).toBe('urn:p');
    expect(c!.local).toBe('c');
    expect(d!.ns).toBe('');
    expect(d!.inScope.has('')).toBe(false);
    expect(d!.inScope.get('p')).toBe('urn:p');
  });

  it('expands the predefined entities and character references, merges CDATA into text', () => {
    const doc = parseXml('<a>&lt;&gt;&amp;&apos;&quot;&#65;&#x42;<![CDATA[<&>]]>z</a>');
    expect(doc.root.children).toHaveLength(1);
    expect(textOf(doc.root)).toBe('<>&\'"AB<&>z');
  });

  it('normalises line ends (#xD#xA and #xD to #xA) and literal whitespace in attribute values', () => {
    const doc = parseXml('<a x="1\t2\r\n3" y="&#9;&#10;&#13;">l1\r\nl2\rl3</a>');
    expect(attr(doc.root, 'x')).toBe('1 2 3');
    expect(attr(doc.root, 'y')).toBe('\t\n\r');
    expect(textOf(doc.root)).toBe('l1\nl2\nl3');
  });

  it('keeps comments and processing instructions and skips the XML declaration and a BOM', () => {
    const doc = parseXml('\uFEFF<?xml version="1.0" encoding="UTF-8"?>\n<!--c0--><?pi data?><a><!--c1--></a><!--c2-->');
    expect(doc.children.map((n) => n.kind)).toEqual(['comment', 'pi', 'element', 'comment']);
    expect(doc.root.children).toEqual([{ kind: 'comment', value: 'c1' }]);
  });

  it('binds the xml prefix implicitly', () => {
    const doc = parseXml('<a xml:lang="en"/>');
    expect(attr(doc.root, 'lang', XML_NS)).toBe('en');
  });

  it('parses a genuine NVIDIA RIM: 64 resources with namespaced hash attributes', () => {
    const doc = parseXml(RIM);
    expect(doc.root.local).toBe('SoftwareIdentity');
    const payload = childElements(doc.root, doc.root.ns, 'Payload')[0]!;
    const resources = childElements(payload, doc.root.ns, 'Resource');
    expect(resources).toHaveLength(64);
    expect(attr(resources[7]!, 'Hash0', 'http://www.w3.org/2001/04/xmlenc#sha384')).toBe(
      '0e0ee161b59bf124ce6b6dca6efa7616d28077862c0e57dca7d5efd63d00eeed4851922941e846a38c464cbedbc168d9',
    );
  });
});

describe('XML parser: hostile and malformed input is a ParseError', () => {
  it('rejects any DOCTYPE (no DTD, no entity declarations, no XXE)', () => {
    parseError('<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>', /DOCTYPE/);
    parseError('<!DOCTYPE a SYSTEM "file:///etc/passwd"><a/>', /DOCTYPE/);
    // Billion laughs never gets to expansion.
    parseError('<!DOCTYPE l [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><l>&b;</l>', /DOCTYPE/);
  });

  it('rejects undeclared entities and bad character references', () => {
    parseError('<a>&nbsp;</a>', /undeclared entity/);
    parseError('<a>&#0;</a>', /non-XML character/);
    parseError('<a>&#xD800;</a>', /non-XML character/);
    parseError('<a>&#xZZ;</a>', /malformed character reference/);
    parseError('<a>& b</a>', /reference/);
  });

  it('enforces the size, depth and attribute limits', () => {
    expect(() => parseXml('<a>' + 'x'.repeat(5 * 1024 * 1024) + '</a>')).toThrow(/exceeds the 4194304 limit/);
    expect(() => parseXml('<a>' + 'x'.repeat(200) + '</a>', { maxLength: 100 })).toThrow(ParseError);
    const deep = '<a>'.repeat(100) + '</a>'.repeat(100);
    expect(() => parseXml(deep)).toThrow(/nesting deeper than 64/);
    expect(() => parseXml('<a>'.repeat(10) + '</a>'.repeat(10), { maxDepth: 5 })).toThrow(ParseError);
    const many = '<a ' + Array.from({ length: 20 }, (_, i) => `x${i}="1"`).join(' ') + '/>';
    expect(() => parseXml(many, { maxAttributes: 10 })).toThrow(/more than 10 attributes/);
  });

  it('rejects well-formedness errors', () => {
    parseError('', /no root element/);
    parseError('<a>', /unclosed element/);
    parseError('<a></b>', /does not match/);
    parseError('<a/><b/>', /more than one root/);
    parseError('text<a/>', /text before/);
    parseError('<a/>text', /text after/);
    parseError('<a x="1" x="2"/>', /duplicate attribute/);
    parseError('<a x="1"y="2"/>', /whitespace between attributes/);
    parseError('<a x=1/>', /quoted/);
    parseError('<a x="<"/>', /"<" in attribute/);
    parseError('<a><!-- a -- b --></a>', /--/);
    parseError('<a>]]></a>', /]]>/);
    parseError('<a><![CDATA[x</a>', /CDATA/);
    parseError('<a>\u0001</a>', /not allowed/);
    parseError('<a>\uD800</a>', /not allowed/);
    parseError('<a><?xml version="1.0"?></a>', /XML declaration/);
    parseError('<?xml version="2"?><a/>', /XML declaration/);
    parseError('<1a/>', /element name/);
  });

  it('rejects namespace errors', () => {
    parseError('<p:a/>', /unbound namespace prefix "p"/);
    parseError('<a p:x="1"/>', /unbound namespace prefix "p"/);
    parseError('<a xmlns:p="urn:x" xmlns:q="urn:x" p:x="1" q:x="2"/>', /appears twice/);
    parseError('<a xmlns:p=""/>', /cannot be undeclared/);
    parseError('<a xmlns:xml="urn:other"/>', /xml prefix/);
    parseError('<a xmlns:xmlns="urn:x"/>', /xmlns prefix/);
    parseError('<a:b:c xmlns:a="urn:a"/>', /QName/);
  });

  it('names beyond ASCII follow the full NameStartChar/NameChar rules (XML §2.3, Namespaces §3)', () => {
    const doc = parseXml('<é xmlns:ñ="urn:n" ñ:ü·̀="1" a·b="2"><ñ:x̀/></é>');
    expect(doc.root.local).toBe('é');
    expect(doc.root.attributes.map((a) => [a.prefix, a.local, a.ns, a.value])).toEqual([
      ['ñ', 'ü·̀', 'urn:n', '1'],
      ['', 'a·b', '', '2'],
    ]);
    expect(childElements(doc.root, 'urn:n', 'x̀')).toHaveLength(1);
    parseError('<·a/>', /element name/); // a NameChar that cannot start a name
    parseError('<a xmlns:p="urn:p" p:̀b="1"/>', /NCName/); // nor start the local part
    parseError('<a xmlns:̀p="urn:p"/>', /NCName/);
    parseError('<a xmlns:p="urn:p" p:-b="1"/>', /NCName/);
  });

  it('attribute values with tabs, line ends and references in any order are normalised as before', () => {
    const doc = parseXml('<a x="\t1&#9;2\n3&amp;4\r\n5&#10;" y=\'a"b\' z=""/>');
    expect(attr(doc.root, 'x')).toBe(' 1\t2 3&4 5\n');
    expect(attr(doc.root, 'y')).toBe('a"b');
    expect(attr(doc.root, 'z')).toBe('');
    parseError('<a x="abc/>', /unterminated attribute value/);
    parseError('<a x="a&b;"/>', /undeclared entity/);
  });

  it('never throws anything but ParseError on arbitrary text', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200, unit: 'binary' }), (s) => {
        try {
          parseXml(s);
        } catch (e) {
          if (!(e instanceof ParseError)) throw e;
        }
      }),
      { numRuns: FC_RUNS },
    );
  });

  it('never throws anything but ParseError on mutated RIM-like documents', () => {
    const seed = '<?xml version="1.0"?><r xmlns="urn:d" xmlns:p="urn:p"><p:e a="1&amp;2" p:b=\'x\'><![CDATA[c]]><!--k--><?t d?>t&#65;</p:e><e/></r>';
    const tokens = [
      '<',
      '>',
      '/',
      '&',
      ';',
      '"',
      "'",
      '=',
      ':',
      'xmlns',
      'p:',
      '<!--',
      '-->',
      '<![CDATA[',
      ']]>',
      '<?',
      '?>',
      '&#x',
      '<!DOCTYPE',
      ' ',
      '\u0000',
      '\uD800',
    ];
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(seed.length), fc.nat(seed.length - 1), fc.constantFrom(...tokens), fc.boolean()), { minLength: 1, maxLength: 6 }),
        (edits) => {
          let s = seed;
          for (const [at, len, tok, insert] of edits) {
            const i = at % (s.length + 1);
            s = insert ? s.slice(0, i) + tok + s.slice(i) : s.slice(0, i) + s.slice(i + (len % 4));
          }
          try {
            parseXml(s);
          } catch (e) {
            if (!(e instanceof ParseError)) throw e;
          }
        },
      ),
      { numRuns: FC_RUNS },
    );
  });
});
