import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { X509Certificate } from 'node:crypto';
import { certificateExtensions } from '../../../agent/formats/x509/extensions.js';
import { children, decodeInteger, decodeOid, decodeTime, parseDer, readNode, TAG } from '../../../agent/util/der.js';
import { ParseError } from '../../../agent/errors.js';
import { FC_RUNS, vector } from '../../helpers/paths.js';

const vcek = vector('snp/gosevguest_vcek.der');

describe('DER reader', () => {
  it('walks a real VCEK and finds the AMD extensions', () => {
    const exts = certificateExtensions(vcek);
    expect(exts.has('1.3.6.1.4.1.3704.1.2')).toBe(true); // productName
    expect(exts.has('1.3.6.1.4.1.3704.1.4')).toBe(true); // hwID
    const cert = parseDer(vcek);
    expect(cert.tag).toBe(TAG.SEQUENCE);
    expect(children(cert)).toHaveLength(3);
  });

  it('decodes OIDs, integers and times', () => {
    expect(decodeOid(readNode(Buffer.from('06092a864886f70d01010a', 'hex')))).toBe('1.2.840.113549.1.1.10');
    expect(decodeInteger(readNode(Buffer.from('020200db', 'hex')))).toBe(219n);
    expect(decodeInteger(readNode(Buffer.from('0201ff', 'hex')))).toBe(-1n);
    expect(decodeTime(readNode(Buffer.from('170d3234313231303030303030305a', 'hex'))).toISOString()).toBe('2024-12-10T00:00:00.000Z');
    expect(decodeTime(readNode(Buffer.concat([Buffer.from([0x18, 15]), Buffer.from('20530308000000Z')]))).getUTCFullYear()).toBe(2053);
  });

  it('rejects truncation, indefinite lengths and trailing bytes with ParseError', () => {
    expect(() => parseDer(vcek.subarray(0, vcek.length - 1))).toThrow(ParseError);
    expect(() => parseDer(Buffer.from('3080', 'hex'))).toThrow(/indefinite/);
    expect(() => parseDer(Buffer.concat([vcek, Buffer.from([0])]))).toThrow(/trailing/);
    expect(() => readNode(Buffer.from('30850100000000', 'hex'))).toThrow(/too large/);
  });

  it('extension listing agrees with node:crypto on every real certificate', () => {
    for (const name of ['snp/virtee_vcek_milan.der', 'snp/virtee_vcek_turin.der', 'snp/trustee_snp_test-vlek.der']) {
      const der = vector(name);
      expect(() => new X509Certificate(der)).not.toThrow();
      expect(certificateExtensions(der).size).toBeGreaterThan(5);
    }
  });

  it('never throws anything but ParseError on arbitrary or mutated input', () => {
    const walk = (buf: Uint8Array) => {
      try {
        const root = parseDer(buf);
        const stack = [root];
        while (stack.length) {
          const n = stack.pop()!;
          if (n.constructed) stack.push(...children(n));
          else if (n.tag === TAG.OID) decodeOid(n);
          else if (n.tag === TAG.INTEGER) decodeInteger(n);
          else if (n.tag === TAG.UTC_TIME || n.tag === TAG.GENERALIZED_TIME) decodeTime(n);
        }
        certificateExtensions(buf);
      } catch (e) {
        if (!(e instanceof ParseError)) throw e;
      }
    };
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (b) => walk(b)),
      { numRuns: FC_RUNS },
    );
    fc.assert(
      fc.property(fc.nat(vcek.length - 1), fc.integer({ min: 0, max: 255 }), (i, v) => {
        const m = Buffer.from(vcek);
        m[i] = v;
        walk(m);
      }),
      { numRuns: FC_RUNS },
    );
  });
});
