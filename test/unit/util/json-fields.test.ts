/** The one hostile-JSON field reader, and the messages of the parsers built on it (unchanged wording). */
import { describe, expect, it } from 'vitest';
import { ParseError } from '../../../agent/errors.js';
import { hasOnlyKeys, isBoundedString, jsonReader, ownField, stringField } from '../../../agent/util/json-fields.js';
import { parseBundle } from '../../../agent/formats/evidence-bundle.js';
import { parseConsequenceState } from '../../../agent/daemon/consequences.js';
import { validateEar } from '../../../agent/state/record.js';

const read = jsonReader(
  (where, problem) => {
    throw new ParseError(`${where}: ${problem}`);
  },
  {
    object: 'expected an object',
    string: 'expected a string',
    tooLong: (m) => `longer than ${m}`,
    array: (m) => `at most ${m}`,
    unexpectedKey: (k) => `unexpected ${k}`,
  },
);

describe('jsonReader', () => {
  it('checks types, bounds and allowed keys', () => {
    expect(read.obj({ a: 1 }, 'x', ['a'])).toEqual({ a: 1 });
    for (const bad of [null, [], 'a', 1]) expect(() => read.obj(bad, 'x')).toThrow('x: expected an object');
    expect(() => read.obj({ a: 1, b: 2 }, 'x', ['a'])).toThrow('x: unexpected b');
    expect(() => read.obj(JSON.parse('{"__proto__": 1}'), 'x', ['a'])).toThrow('x: unexpected __proto__');
    expect(read.str('abc', 's', 3)).toBe('abc');
    expect(() => read.str('abcd', 's', 3)).toThrow('s: longer than 3');
    expect(() => read.str(1, 's', 3)).toThrow('s: expected a string');
    expect(read.arr([1], 'a', 1)).toEqual([1]);
    expect(() => read.arr([1, 2], 'a', 1)).toThrow('a: at most 1');
    expect(() => read.arr({}, 'a', 1)).toThrow('a: at most 1');
  });
});

describe('non-throwing field helpers', () => {
  it('read own fields only, with string bounds and key allowlists', () => {
    const o = JSON.parse('{"a": "xy", "n": 1, "__proto__": "p"}') as Record<string, unknown>;
    expect(ownField(o, 'a')).toBe('xy');
    expect(ownField(o, '__proto__')).toBe('p');
    expect(ownField({}, 'constructor')).toBeUndefined();
    expect(ownField({}, 'toString')).toBeUndefined();
    expect(isBoundedString('xy', 2)).toBe(true);
    expect(isBoundedString('xyz', 2)).toBe(false);
    expect(isBoundedString(1, 2)).toBe(false);
    expect(stringField(o, 'a')).toBe('xy');
    expect(stringField(o, 'a', 1)).toBeUndefined();
    expect(stringField(o, 'n')).toBeUndefined();
    expect(stringField({}, 'constructor')).toBeUndefined();
    expect(hasOnlyKeys({ a: 1 }, ['a', 'b'])).toBe(true);
    expect(hasOnlyKeys({ a: 1, c: 2 }, ['a', 'b'])).toBe(false);
  });
});

describe('parsers on the reader keep their wording', () => {
  it('evidence bundle', () => {
    expect(() => parseBundle([])).toThrow('evidence bundle: (top) must be an object');
    expect(() => parseBundle({ version: 1, agentId: 5 })).toThrow('evidence bundle: agentId must be a string');
  });
  it('consequence state', () => {
    expect(() => parseConsequenceState('x')).toThrow('state: expected an object');
    expect(() => parseConsequenceState({ version: 1, extra: 1 })).toThrow('state: unexpected key "extra"');
    expect(() => parseConsequenceState({ version: 1, active: 'no', applied: [], stoppedUnits: [], startedUnits: [] })).toThrow(
      /state.active: expected an array of at most \d+/,
    );
  });
  it('EAR record', () => {
    expect(() => validateEar(null)).toThrow('ear: expected an object');
    expect(() => validateEar({ bogus: 1 })).toThrow('ear: unexpected key "bogus"');
  });
});
