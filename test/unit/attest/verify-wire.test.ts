/**
 * What crosses the verification worker's port (agent/attest/verify-wire.ts): after a structured clone
 * (which is what postMessage does) bytes are Buffers again, and every typed error of agent/errors.ts
 * is the same class with the same code, message and fields.
 */
import { describe, expect, it } from 'vitest';
import { CollateralFetchError, CvmError, DeviceError, InputFileError, ParseError, StepTimeoutError, UsageError } from '../../../agent/errors.js';
import { TpmError } from '../../../agent/formats/tpm/response-codes.js';
import { errorFromWire, errorToWire, withBuffers } from '../../../agent/attest/verify-wire.js';

const across = <T>(v: T): T => structuredClone(v);
const roundTrip = (e: unknown) => errorFromWire(across(errorToWire(e)));

describe('withBuffers', () => {
  it('turns every Uint8Array of a received clone back into a Buffer over the same bytes, in objects, arrays and Maps', () => {
    const sent = { a: Buffer.from('abc'), list: [Buffer.from([1, 2])], m: new Map([['k', Buffer.from([3])]]), at: new Date(0), s: 'x' };
    const got = withBuffers(across(sent));
    expect(Buffer.isBuffer(across(sent).a)).toBe(false); // what the clone alone gives
    expect(Buffer.isBuffer(got.a)).toBe(true);
    expect(got.a.toString()).toBe('abc');
    expect(Buffer.isBuffer(got.list[0])).toBe(true);
    expect(Buffer.isBuffer(got.m.get('k'))).toBe(true);
    expect(got.at).toEqual(new Date(0));
    expect(got).toEqual(sent);
  });

  it('stops at a depth bound instead of recursing without limit', () => {
    let deep: Record<string, unknown> = { b: new Uint8Array([1]) };
    for (let i = 0; i < 10_000; i++) deep = { d: deep };
    expect(() => withBuffers(deep)).not.toThrow();
  });
});

describe('errorToWire / errorFromWire', () => {
  it.each([
    ['CvmError', new CvmError('ERR_BUSY', 'busy now')],
    ['ParseError', new ParseError('truncated report', 42)],
    ['UsageError', new UsageError('bad flag')],
    ['DeviceError', new DeviceError('ERR_GPU_CC_OFF', 'CC is off', { index: 2 })],
    ['InputFileError', new InputFileError('/x', 'is a directory, expected a regular file')],
    ['CollateralFetchError', new CollateralFetchError('timeout', 'https://kds.example/vcek', 'timed out', 504)],
    ['StepTimeoutError', new StepTimeoutError('verification', 30_000)],
    ['TpmError', new TpmError('Quote', 0x9a2)],
  ])('%s arrives as the same class with the same code, message and fields', (_name, err) => {
    const got = roundTrip(err);
    expect(got).toBeInstanceOf(err.constructor);
    expect(got).toBeInstanceOf(CvmError);
    expect(got.name).toBe(err.name);
    expect(got.message).toBe(err.message);
    expect((got as CvmError).code).toBe(err.code);
    expect({ ...got }).toEqual({ ...err });
    expect(Object.keys(got)).toEqual(Object.keys(err));
  });

  it('built-in errors keep their class and message; a CvmError subclass it does not know stays a CvmError', () => {
    const t = roundTrip(new TypeError('x is undefined'));
    expect(t).toBeInstanceOf(TypeError);
    expect(t.message).toBe('x is undefined');
    class Odd extends CvmError {}
    const o = roundTrip(new Odd('ERR_STATE', 'odd'));
    expect(o).toBeInstanceOf(CvmError);
    expect(o).toMatchObject({ name: 'Odd', code: 'ERR_STATE', message: 'odd' });
    expect(roundTrip('a string')).toMatchObject({ name: 'Error', message: 'a string' });
  });

  it('a name on the wire that is not an error class is not looked up on the table prototype', () => {
    const e = errorFromWire({ name: 'constructor', message: 'm', fields: {} });
    expect(e).toBeInstanceOf(Error);
    expect(e.message).toBe('m');
    const p = errorFromWire({ name: '__proto__', message: 'm', fields: {} });
    expect(p).toBeInstanceOf(Error);
  });
});
