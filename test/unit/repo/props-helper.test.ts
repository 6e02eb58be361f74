/** The shared fast-check predicate must let typed errors through and surface everything else. */
import { describe, expect, it } from 'vitest';
import { CvmError, ParseError, UsageError } from '../../../agent/errors.js';
import { onlyTypedErrors } from '../../helpers/props.js';

describe('onlyTypedErrors', () => {
  it('holds when fn returns or throws a CvmError (any subclass by default)', () => {
    expect(onlyTypedErrors(() => 1)).toBe(true);
    expect(
      onlyTypedErrors(() => {
        throw new ParseError('bad');
      }),
    ).toBe(true);
    expect(
      onlyTypedErrors(() => {
        throw new CvmError('ERR_STATE', 'x');
      }),
    ).toBe(true);
  });

  it('rethrows raw errors, and typed errors outside the allowed class', () => {
    expect(() =>
      onlyTypedErrors(() => {
        throw new RangeError('offset out of range');
      }),
    ).toThrow(RangeError);
    expect(() =>
      onlyTypedErrors(() => {
        throw new UsageError('nope');
      }, ParseError),
    ).toThrow(UsageError);
    expect(
      onlyTypedErrors(() => {
        throw new ParseError('ok');
      }, ParseError),
    ).toBe(true);
  });
});
