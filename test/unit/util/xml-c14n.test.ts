import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ParseError } from '../../../agent/errors.js';
import { childElements, parseXml } from '../../../agent/util/xml.js';
import { canonicalizeDocument, canonicalizeSubset, compareCodePoints } from '../../../agent/util/xml-c14n.js';
import { vector } from '../../helpers/paths.js';

const c14n = (xml: string): string => canonicalizeDocument(parseXml(xml));
const DS = 'http://www.w3.org/2000/09/xmldsig#';

describe('Canonical XML 1.1: W3C C14N examples (DOCTYPE parts removed, since DTDs are refused)', () => {
  it('§3.1 PIs, comments and content outside the document element', () => {
    const input =
      '<?xml version="1.0"?>\n\n<?xml-stylesheet   href="doc.xsl"\n   type="text/xsl"   ?>\n\n<doc>Hello, world!<!-- Comment 1 --></doc>\n\n<?pi-without-data     ?>\n\n<!-- Comment 2 -->\n\n<!-- Comment 3 -->\n';
    expect(c14n(input)).toBe('<?xml-stylesheet href="doc.xsl"\n   type="text/xsl"   ?>\n<doc>Hello, world!</doc>\n<?pi-without-data?>');
  });

  it('§3.2 whitespace in document content is preserved', () => {
    const input =
      '<doc>\n   <clean>   </clean>\n   <dirty>   A   B   </dirty>\n   <mixed>\n      A\n      <clean>   </clean>\n      B\n      <dirty>   A   B   </dirty>\n      C\n   </mixed>\n</doc>';
    expect(c14n(input)).toBe(input);
  });

  it('§3.3 start and end tags: empty elements, attribute order, namespace declarations', () => {
    const input = [
      '<doc>',
      '   <e1   />',
      '   <e2   ></e2>',
      '   <e3   name = "elem3"   id="elem3"   />',
      '   <e4   name="elem4"   id="elem4"   ></e4>',
      '   <e5 a:attr="out" b:attr="sorted" attr2="all" attr="I\'m"',
      '      xmlns:b="http://www.ietf.org"',
      '      xmlns:a="http://www.w3.org"',
      '      xmlns="http://example.org"/>',
      '   <e6 xmlns="" xmlns:a="http://www.w3.org">',
      '      <e7 xmlns="http://www.ietf.org">',
      '         <e8 xmlns="" xmlns:a="http://www.w3.org">',
      '            <e9 xmlns="" xmlns:a="http://www.ietf.org"/>',
      '         </e8>',
      '      </e7>',
      '   </e6>',
      '</doc>',
    ].join('\n');
    const expected = [
      '<doc>',
      '   <e1></e1>',
      '   <e2></e2>',
      '   <e3 id="elem3" name="elem3"></e3>',
      '   <e4 id="elem4" name="elem4"></e4>',
      '   <e5 xmlns="http://example.org" xmlns:a="http://www.w3.org" xmlns:b="http://www.ietf.org" attr="I\'m" attr2="all" b:attr="sorted" a:attr="out"></e5>',
      '   <e6 xmlns:a="http://www.w3.org">',
      '      <e7 xmlns="http://www.ietf.org">',
      '         <e8 xmlns="">',
      '            <e9 xmlns:a="http://www.ietf.org"></e9>',
      '         </e8>',
      '      </e7>',
      '   </e6>',
      '</doc>',
    ].join('\n');
    expect(c14n(input)).toBe(expected);
  });

  it('§3.4 character modifications and character references', () => {
    const input = [
      '<doc>',
      '   <text>First line&#x0d;&#10;Second line</text>',
      '   <value>&#x32;</value>',
      '   <compute><![CDATA[value>"0" && value<"10" ?"valid":"error"]]></compute>',
      '   <compute expr=\'value>"0" &amp;&amp; value&lt;"10" ?"valid":"error"\'>valid</compute>',
      "   <norm attr=' &apos;   &#x20;&#13;&#xa;&#9;   &apos; '/>",
      '</doc>',
    ].join('\n');
    const expected = [
      '<doc>',
      '   <text>First line&#xD;\nSecond line</text>',
      '   <value>2</value>',
      '   <compute>value&gt;"0" &amp;&amp; value&lt;"10" ?"valid":"error"</compute>',
      '   <compute expr="value>&quot;0&quot; &amp;&amp; value&lt;&quot;10&quot; ?&quot;valid&quot;:&quot;error&quot;">valid</compute>',
      '   <norm attr=" \'    &#xD;&#xA;&#x9;   \' "></norm>',
      '</doc>',
    ].join('\n');
    expect(c14n(input)).toBe(expected);
  });

  it('§3.6 UTF-8 output of non-ASCII text', () => {
    expect(Buffer.from(c14n('<doc>&#169;</doc>'), 'utf8')).toEqual(Buffer.from([0x3c, 0x64, 0x6f, 0x63, 0x3e, 0xc2, 0xa9, 0x3c, 0x2f, 0x64, 0x6f, 0x63, 0x3e]));
  });
});

describe('Canonical XML 1.1: namespace handling', () => {
  it('drops superfluous re-declarations but keeps changed ones and unused ones (inclusive C14N)', () => {
    expect(c14n('<r xmlns:p="urn:p"><p:a xmlns:p="urn:p"/></r>')).toBe('<r xmlns:p="urn:p"><p:a></p:a></r>');
    expect(c14n('<r xmlns:p="urn:p"><a xmlns:p="urn:q"/></r>')).toBe('<r xmlns:p="urn:p"><a xmlns:p="urn:q"></a></r>');
    expect(c14n('<r xmlns:u="urn:unused"/>')).toBe('<r xmlns:u="urn:unused"></r>');
    expect(c14n('<r xmlns="urn:d"><x xmlns=""><y/></x></r>')).toBe('<r xmlns="urn:d"><x xmlns=""><y></y></x></r>');
    expect(c14n('<r xmlns=""><x/></r>')).toBe('<r><x></x></r>');
  });

  it('sorts namespace declarations by prefix (default first) and attributes by namespace URI, then local name', () => {
    expect(c14n('<r z="1" xmlns:b="urn:a" xmlns:a="urn:z" a:x="2" b:y="3" xmlns="urn:d" a="4"/>')).toBe(
      '<r xmlns="urn:d" xmlns:a="urn:z" xmlns:b="urn:a" a="4" z="1" b:y="3" a:x="2"></r>',
    );
  });

  it('a document subset renders every namespace inherited from omitted ancestors (the RIM SignedInfo pitfall)', () => {
    const doc = parseXml('<a:root xmlns:a="urn:a" xmlns="urn:d"><b:x xmlns:b="urn:b"><c attr="1"><d/></c></b:x></a:root>');
    const c = childElements(childElements(doc.root)[0]!)[0]!;
    expect(canonicalizeSubset(c)).toBe('<c xmlns="urn:d" xmlns:a="urn:a" xmlns:b="urn:b" attr="1"><d></d></c>');
  });

  it('a subset apex does not render an empty default namespace', () => {
    const doc = parseXml('<root xmlns="urn:d"><x xmlns=""><y/></x></root>');
    const x = childElements(doc.root)[0]!;
    expect(canonicalizeSubset(x)).toBe('<x><y></y></x>');
  });

  it('C14N 1.1 §2.4: a subset inherits xml:lang and xml:space but not xml:id; xml:base is refused', () => {
    const doc = parseXml('<r xml:lang="en" xml:space="preserve" xml:id="i1"><s xml:lang="de"><t/></s></r>');
    const s = childElements(doc.root)[0]!;
    expect(canonicalizeSubset(s)).toBe('<s xml:lang="de" xml:space="preserve"><t></t></s>');
    const based = parseXml('<r xml:base="http://example.org/"><s/></r>');
    expect(() => canonicalizeSubset(childElements(based.root)[0]!)).toThrow(ParseError);
  });

  it('omits one subtree for the enveloped-signature transform and keeps the text around it', () => {
    const doc = parseXml('<r>a<!--c--><s>gone</s>\n<t/></r>');
    const s = childElements(doc.root)[0]!;
    expect(canonicalizeDocument(doc, { omit: s })).toBe('<r>a\n<t></t></r>');
  });

  it('compares by code point, not UTF-16 unit', () => {
    expect(compareCodePoints('\u{1F600}', '\uFFFD')).toBeGreaterThan(0);
    expect('\u{1F600}' < '\uFFFD').toBe(true); // what naive comparison would get wrong
    expect(compareCodePoints('a', 'ab')).toBeLessThan(0);
    expect(compareCodePoints('b', 'a')).toBeGreaterThan(0);
  });
});

describe('Canonical XML 1.1 on a genuine NVIDIA RIM', () => {
  const xml = vector('nvidia/nvtrust/hopper-545-complete/Driver_RIM_test_no_gpu.swidtag').toString('utf8');
  const doc = parseXml(xml);
  const sig = childElements(doc.root, DS, 'Signature')[0]!;
  const signedInfo = childElements(sig, DS, 'SignedInfo')[0]!;

  it('the enveloped document digest equals the signed DigestValue', () => {
    const digest = createHash('sha384')
      .update(canonicalizeDocument(doc, { omit: sig }), 'utf8')
      .digest('base64');
    expect(digest).toBe('Dc2Cm4YrVzFF0G6jfhozl7+UTm2NnpghiSlxpk6icNrrB18cq5vu+Go9lytgOIfB');
  });

  it('SignedInfo is rendered with the root default namespace, ns0, ns2 and ds (and not Meta/Payload declarations)', () => {
    const out = canonicalizeSubset(signedInfo);
    expect(
      out.startsWith(
        '<ds:SignedInfo xmlns="http://standards.iso.org/iso/19770/-2/2015/schema.xsd" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" xmlns:ns0="http://standards.iso.org/iso/19770/-2/2015/schema.xsd" xmlns:ns2="http://www.w3.org/2001/04/xmlenc#sha384"><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2006/12/xml-c14n11"></ds:CanonicalizationMethod>',
      ),
    ).toBe(true);
    expect(out).not.toContain('ns1');
    expect(out).not.toContain('SHA384=');
    expect(out.endsWith('</ds:Reference></ds:SignedInfo>')).toBe(true);
  });
});
