/** The SNP appraisal policy file: defaults, YAML and JSON, strict validation naming the key. */
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../agent/errors.js';
import { DEFAULT_SNP_POLICY, parseSnpPolicy, snpPolicyFrom } from '../../../agent/appraise/snp-policy.js';

describe('parseSnpPolicy', () => {
  it('an empty mapping ({}) gives the safe defaults; an empty file is an error, not "no allow-lists"', () => {
    expect(() => parseSnpPolicy('')).toThrow(/empty .*must be a mapping/);
    const p = parseSnpPolicy('{}');
    expect(p).toEqual({
      allowDebug: false,
      allowMigrationAgent: false,
      allowSmt: true,
      vmpl: [0],
      minTcb: {},
      measurements: [],
      idKeyDigests: [],
      authorKeyDigests: [],
      minGuestSvn: 0,
    });
    expect(DEFAULT_SNP_POLICY.allowDebug).toBe(false);
    expect(Object.isFrozen(DEFAULT_SNP_POLICY)).toBe(true);
  });

  it('reads YAML with every key', () => {
    const p = parseSnpPolicy(`
allowDebug: true
allowMigrationAgent: false
allowSmt: false
vmpl: [1, 0]
minTcb: { bootloader: 3, tee: 0, snp: 8, microcode: 115 }
measurements:
  - ${'AB'.repeat(48)}
  - 0x${'cd'.repeat(48)}
hostData: ${'00'.repeat(32)}
idKeyDigests: ${'11'.repeat(48)}
authorKeyDigests: []
minFirmware: "1.55.29"
minGuestSvn: 4
`);
    expect(p.allowDebug).toBe(true);
    expect(p.allowSmt).toBe(false);
    expect(p.vmpl).toEqual([0, 1]);
    expect(p.minTcb).toEqual({ bootloader: 3, tee: 0, snp: 8, microcode: 115 });
    expect(p.measurements).toEqual(['ab'.repeat(48), 'cd'.repeat(48)]);
    expect(p.hostData).toBe('00'.repeat(32));
    expect(p.idKeyDigests).toEqual(['11'.repeat(48)]);
    expect(p.minFirmware).toEqual({ major: 1, minor: 55, build: 29 });
    expect(p.minGuestSvn).toBe(4);
  });

  it('reads JSON and the object form of minFirmware', () => {
    const p = parseSnpPolicy(JSON.stringify({ vmpl: 2, minFirmware: { major: 1, minor: 52 } }));
    expect(p.vmpl).toEqual([2]);
    expect(p.minFirmware).toEqual({ major: 1, minor: 52 });
  });

  const bad: Array<[string, RegExp]> = [
    ['allowDebgu: true', /"allowDebgu": unknown key/],
    ['allowDebug: "yes"', /"allowDebug": must be true or false, got "yes"/],
    ['allowDebug:', /"allowDebug": must be true or false, got null/],
    ['vmpl: 4', /"vmpl": must be an integer between 0 and 3, got 4/],
    ['vmpl: []', /"vmpl": empty list/],
    ['vmpl: [0, "1"]', /"vmpl\[1\]"/],
    ['minTcb: { ucode: 3 }', /"minTcb.ucode": unknown key/],
    ['minTcb: { snp: 300 }', /"minTcb.snp": must be an integer between 0 and 255, got 300/],
    ['minTcb: { snp: null }', /"minTcb.snp": must be an integer between 0 and 255, got null/],
    ['minTcb: 5', /"minTcb": must be a mapping of keys to values, got a number/],
    ['measurements: ["abcd"]', /"measurements\[0\]": must be 96 hex digits \(48 bytes\), got "abcd"/],
    ['measurements: 5', /"measurements\[0\]": must be 96 hex digits \(48 bytes\), got "5"/],
    ['measurements: { a: 1 }', /"measurements": must be a list of hex strings, got a mapping/],
    [`hostData: ${'zz'.repeat(32)}`, /"hostData": must be 64 hex digits \(32 bytes\), got "z+"/],
    ['minFirmware: "1.x"', /"minFirmware": must be "major.minor" or "major.minor.build", got "1.x"/],
    ['minFirmware: "1.300"', /"minFirmware": must be an integer between 0 and 255, got 300/],
    ['minFirmware: { major: 1 }', /"minFirmware": needs major and minor/],
    ['minFirmware: { major: 1, minor: 2, patch: 3 }', /"minFirmware.patch": unknown key/],
    ['minGuestSvn: -1', /"minGuestSvn"/],
    ['- 1\n- 2', /must be a mapping of keys, got a list/],
    ['# only a comment\n', /empty \(only comments or whitespace\)/],
    ['~', /must be a mapping of keys, got null/],
    ['0x1234', /must be a mapping of keys, got a number/],
    ['just text', /must be a mapping of keys, got a string/],
    ['allowDebug: true\nallowDebug: false', /not valid YAML/],
    ['{ unclosed', /not valid YAML/],
  ];
  for (const [text, msg] of bad) {
    it(`rejects ${JSON.stringify(text)}`, () => {
      expect(() => parseSnpPolicy(text)).toThrow(ConfigError);
      expect(() => parseSnpPolicy(text)).toThrow(msg);
    });
  }

  it('snpPolicyFrom prefixes key names for embedded sections', () => {
    expect(() => snpPolicyFrom({ bogus: 1 }, 'policy.snp.')).toThrow(/"policy\.snp\.bogus"/);
    expect(snpPolicyFrom(undefined)).toEqual({ ...DEFAULT_SNP_POLICY });
  });
});
