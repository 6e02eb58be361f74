/**
 * fast-check helper for binary parsers: a property that holds when `fn` returns or throws one of the
 * project's typed errors, and fails on anything else (a raw TypeError/RangeError is a parser bug).
 */
import { CvmError } from '../../agent/errors.js';

/** true if fn returns or throws an instance of `allowed` (default: any CvmError); rethrows anything else. */
export function onlyTypedErrors(fn: () => unknown, allowed: abstract new (...args: never[]) => Error = CvmError): boolean {
  try {
    fn();
    return true;
  } catch (err) {
    if (err instanceof allowed) return true;
    throw err;
  }
}
