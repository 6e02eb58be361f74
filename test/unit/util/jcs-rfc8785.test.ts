/**
 * agent/util/jcs.ts against the RFC 8785 examples, transcribed into test/vectors/jcs (see its README for
 * the source and the section of each): the §3.2.2/§3.2.3 sample object and its canonical UTF-8 bytes
 * (§3.2.4), the §3.2.3 sorting test data, every Appendix B number sample, the §3.2.2.2 escaping rules,
 * and the examples of Appendices C and E.
 */
import { describe, expect, it } from 'vitest';
import { ParseError } from '../../../agent/errors.js';
import { canonicalize } from '../../../agent/util/jcs.js';
import { vector } from '../../helpers/paths.js';

interface Vectors {
  appendixB_numbers: { ieee754: string; json: string | null; comment: string }[];
  section3_2_3_sorting_expected_value_order: string[];
  section3_2_3_plain_order: string[];
  appendixC_property_order: { input: string; order: string[] };
  appendixE_string_subtypes: { input: string; output: string };
  section3_2_2_2_lone_surrogate: { inputs: string[] };
}
const v = JSON.parse(vector('jcs/rfc8785-vectors.json').toString('utf8')) as Vectors;
const text = (name: string) => vector(`jcs/${name}`).toString('utf8');
const jcs = (json: string) => canonicalize(JSON.parse(json));

describe('RFC 8785 §3.2.2-§3.2.4: the sample object', () => {
  it('canonicalises to the §3.2.3 text', () => {
    expect(jcs(text('rfc8785-3.2.2-input.json'))).toBe(text('rfc8785-3.2.3-output.json'));
  });

  it('whose UTF-8 bytes are the §3.2.4 hex dump', () => {
    const hex = text('rfc8785-3.2.4-output.hex').replace(/\s+/g, '');
    expect(Buffer.from(jcs(text('rfc8785-3.2.2-input.json')), 'utf8').toString('hex')).toBe(hex);
  });
});

describe('RFC 8785 §3.2.3: sorting of object properties', () => {
  it('orders the sorting test data by UTF-16 code units', () => {
    const out = jcs(text('rfc8785-3.2.3-sorting-input.json'));
    // Read the values in text order (a JS object would put the index-like key "1" first).
    const values = [...out.matchAll(/:"([^"]*)"/g)].map((m) => m[1]);
    expect(values).toEqual(v.section3_2_3_sorting_expected_value_order);
    expect(out.startsWith('{"\\r":"Carriage Return","1":"One","\u0080":"Control"')).toBe(true);
  });

  it('puts "" before "a" before "aa" before "ab"', () => {
    const shuffled = Object.fromEntries([...v.section3_2_3_plain_order].reverse().map((k) => [k, 0]));
    expect(jcs(JSON.stringify(shuffled))).toBe(`{${v.section3_2_3_plain_order.map((k) => `"${k}":0`).join(',')}}`);
  });

  it('sorts recursively, inside arrays too, and keeps array order (Appendix C, E)', () => {
    const c = JSON.parse(jcs(v.appendixC_property_order.input)) as object;
    expect(Object.keys(c)).toEqual(v.appendixC_property_order.order);
    expect(jcs(v.appendixE_string_subtypes.input)).toBe(v.appendixE_string_subtypes.output);
    expect(jcs(`[{"b":[{"d":1,"c":2}],"a":0}, 2, 1]`)).toBe('[{"a":0,"b":[{"c":2,"d":1}]},2,1]');
  });
});

describe('RFC 8785 Appendix B: number serialization samples', () => {
  it('holds all 26 rows of Table 1', () => expect(v.appendixB_numbers).toHaveLength(26));

  it.each(v.appendixB_numbers)('$ieee754 → $json $comment', ({ ieee754, json }) => {
    const n = Buffer.from(ieee754, 'hex').readDoubleBE(0);
    if (json === null) {
      // NaN and Infinity (note 3, §3.2.2.3): terminate with an error.
      expect(() => canonicalize(n)).toThrow(ParseError);
      expect(() => canonicalize([n])).toThrow(ParseError);
    } else {
      expect(canonicalize(n)).toBe(json);
      expect(canonicalize({ n })).toBe(`{"n":${json}}`);
    }
  });
});

describe('RFC 8785 §3.2.2.2: serialization of strings', () => {
  it('writes U+0000..U+001F as lowercase \\uhhhh except \\b \\t \\n \\f \\r', () => {
    const short: Record<number, string> = { 8: '\\b', 9: '\\t', 10: '\\n', 12: '\\f', 13: '\\r' };
    for (let c = 0; c < 0x20; c++) {
      const want = short[c] ?? `\\u${c.toString(16).padStart(4, '0')}`;
      expect(canonicalize(String.fromCharCode(c)), `U+${c.toString(16)}`).toBe(`"${want}"`);
    }
  });

  it('escapes only \\ and " above the control range; everything else as is (U+007F, U+2028, astral)', () => {
    expect(canonicalize('\\"/\u007f\u0080\u2028\u2029€😀')).toBe('"\\\\\\"/\u007f\u0080\u2028\u2029€😀"');
  });

  it('refuses lone surrogates in values and property names (the section note: MUST terminate with an error)', () => {
    for (const input of v.section3_2_2_2_lone_surrogate.inputs) expect(() => jcs(input), input).toThrow(ParseError);
    // A proper pair is fine and written as is.
    expect(jcs('"\\ud83d\\ude00"')).toBe('"😀"');
  });
});
