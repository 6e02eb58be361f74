/**
 * Attack: hostile YAML in policy and config files. A "billion laughs" alias bomb in a policy gave a
 * stack trace (exit 70); `config check` with a `__proto__` or `constructor` key crashed (exit 70).
 * Also: nesting that costs one byte a level ("[[[[...", "- - - ..."), which made the YAML parser
 * take hundreds of MB, and a %YAML 1.1 directive that would switch the rules (yes/no booleans, "<<"
 * merges). Required: one-line errors with exit 2, small memory, and keys such as __proto__,
 * constructor or prototype reported as unknown keys, never reaching Object.prototype.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { vectorsDir } from '../helpers/paths.js';
import { parseConfig } from '../../agent/config/schema.js';
import { parseControllerConfig } from '../../agent/controller/config.js';
import { parseSnpPolicy } from '../../agent/appraise/snp-policy.js';
import { parseGpuPolicy } from '../../agent/appraise/gpu-policy.js';
import { parsePolicyFile } from '../../agent/appraise/policy.js';
import { cleanupProbe, cli, expectConfigCheckProblem, expectConfigProblems, expectOneLineRefusal, expectSmallRss } from './hostile-files-cli.js';

const snp = (f: string) => join(vectorsDir, 'snp', f);
const REPORT = snp('trustee_snp_test-report.bin');
const VCEK = snp('trustee_snp_test-vcek.der');
const AT = ['--at', '2025-06-01T00:00:00Z'];

/** Nine levels of nine-fold aliases: 9^9 (387 million) strings once expanded, in under 1 KiB. */
function aliasBomb(top = 'measurements'): string {
  const lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
  const names = 'abcdefghi';
  for (let i = 1; i < names.length; i++)
    lines.push(
      `${names[i]}: &${names[i]} [${Array(9)
        .fill(`*${names[i - 1]}`)
        .join(',')}]`,
    );
  lines.push(`${top}: *i`);
  return `${lines.join('\n')}\n`;
}

let dir: string;
let baselineKiB: number;
const file = (name: string, text: string) => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hostile-files-yaml-'));
  const base = await cli(['verify', 'snp', '--report', REPORT, '--cert', VCEK, ...AT]);
  expect(base.code, base.stderr).toBe(3);
  baselineKiB = base.maxRssKiB!;
}, 120_000);

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  cleanupProbe();
});

describe('alias bomb ("billion laughs")', () => {
  it('as verify snp --policy: exit 2, one line, small memory', async () => {
    const r = await cli(['verify', 'snp', '--report', REPORT, '--cert', VCEK, ...AT, '--policy', file('bomb.yaml', aliasBomb())]);
    expectOneLineRefusal(r, /SNP policy ".*bomb\.yaml": not valid YAML: too many YAML aliases/);
    expectSmallRss(r, baselineKiB);
  }, 120_000);

  it('as verify gpu --policy', async () => {
    const r = await cli(['verify', 'gpu', '--evidence', REPORT, '--policy', file('gpu-bomb.yaml', aliasBomb('driverVersions'))]);
    expectOneLineRefusal(r, /GPU policy ".*gpu-bomb\.yaml": not valid YAML: too many YAML aliases/);
  }, 120_000);

  it('as the daemon config, and as its policy.file (config check)', async () => {
    const c = await cli(['config', 'check', file('config-bomb.yaml', aliasBomb('tee'))]);
    expectOneLineRefusal(c, /config-bomb\.yaml: not valid YAML: too many YAML aliases/);
    expectSmallRss(c, baselineKiB);
    const policy = file('policy-bomb.yaml', aliasBomb('id'));
    const p = await cli(['config', 'check', file('uses-bomb.yaml', `api:\n  socket: ${dir}/api.sock\npolicy:\n  file: ${policy}\n`)]);
    expectConfigCheckProblem(p, /policy\.file .*policy-bomb\.yaml: not valid YAML: too many YAML aliases/);
  }, 120_000);

  it('as the controller config and its policy.snp', async () => {
    const c = await cli(['controller', '--config', file('ctl-bomb.yaml', aliasBomb('stateDir')), '--listen', '127.0.0.1:0']);
    expectOneLineRefusal(c, /ctl-bomb\.yaml: not valid YAML: too many YAML aliases/);
    file('ctl-snp-bomb.yaml', aliasBomb());
    const p = await cli(['controller', '--config', file('ctl-uses-bomb.yaml', 'policy: { snp: ctl-snp-bomb.yaml }\n'), '--listen', '127.0.0.1:0']);
    expectOneLineRefusal(p, /policy\.snp .*too many YAML aliases/);
  }, 120_000);

  it("in-process: every YAML reader throws a ConfigError, never the parser's ReferenceError", () => {
    for (const parse of [
      () => parseSnpPolicy(aliasBomb()),
      () => parseGpuPolicy(aliasBomb()),
      () => parsePolicyFile(aliasBomb()),
      () => parseConfig(aliasBomb()),
      () => parseControllerConfig(aliasBomb()),
    ]) {
      expect(parse).toThrow(expect.objectContaining({ code: 'ERR_CONFIG', message: expect.stringMatching(/too many YAML aliases/) }));
    }
  });
});

describe('nesting that costs a byte a level', () => {
  it('half a MiB of "[" as a policy: refused before the parser builds it', async () => {
    const r = await cli(['verify', 'snp', '--report', REPORT, '--cert', VCEK, ...AT, '--policy', file('deep.yaml', `${'['.repeat(500_000)}\n`)]);
    expectOneLineRefusal(r, /deep\.yaml": nested more than 64 levels deep at line 1/);
    expectSmallRss(r, baselineKiB);
  }, 120_000);

  it('"- - - ..." compact sequences and "{a: {a: ..." flow maps as the config', async () => {
    const a = await cli(['config', 'check', file('dashes.yaml', `${'- '.repeat(300_000)}x\n`)]);
    expectOneLineRefusal(a, /dashes\.yaml: nested more than 64 levels deep/);
    expectSmallRss(a, baselineKiB);
    const b = await cli(['config', 'check', file('flow.yaml', `tee: ${'{a: '.repeat(100)}1${'}'.repeat(100)}\n`)]);
    expectOneLineRefusal(b, /flow\.yaml: nested more than 64 levels deep/);
  }, 120_000);

  it('deep indentation (about a thousand levels fit in the size cap) is an error (exit 2), not a crash', async () => {
    const lines = Array.from({ length: 1100 }, (_, i) => `${' '.repeat(i)}k${i}:`);
    const r = await cli(['config', 'check', file('indent.yaml', `${lines.join('\n')}\n${' '.repeat(1100)}v\n`)]);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).not.toMatch(/internal error|\n\s+at /);
  }, 120_000);
});

describe('YAML rules cannot be switched or bent', () => {
  it('a %YAML 1.1 directive is refused (it would read "yes" as true and honour "<<" merges)', async () => {
    const r = await cli(['verify', 'snp', '--report', REPORT, '--cert', VCEK, ...AT, '--policy', file('yaml11.yaml', '%YAML 1.1\n---\nallowDebug: yes\n')]);
    expectOneLineRefusal(r, /YAML 1\.1 directive not accepted/);
  }, 120_000);

  it('duplicate keys are refused, also when they differ only by YAML type (1 and "1")', () => {
    expect(() => parseSnpPolicy('allowDebug: false\nallowDebug: true\n')).toThrow(/duplicate key "allowDebug"/);
    expect(() => parseConfig('tee: auto\n"tee": simulated\n')).toThrow(/duplicate key "tee"/);
    expect(() => parsePolicyFile('snp: {}\ngpu: {1: a, "1": b}\n')).toThrow(/duplicate key "1"/);
  });

  it('a collection as a mapping key is refused', () => {
    expect(() => parseConfig('? [tee]\n: simulated\n')).toThrow(/mapping key must be a plain value/);
  });
});

describe('__proto__, constructor, prototype: unknown keys, never a path into Object.prototype', () => {
  it('config check: top-level and nested keys are reported as unknown (exit 2), not a crash (exit 70)', async () => {
    const r = await cli([
      'config',
      'check',
      file(
        'proto.yaml',
        [
          '__proto__: { tee: simulated }',
          'constructor: 1',
          'prototype: {}',
          'toString: x',
          'hasOwnProperty: y',
          'api:',
          '  __proto__: { socket: /tmp/evil.sock }',
          '  constructor: {}',
          '  authorization:',
          '    __proto__: { uids: ["0"] }',
          'schedule: { retry: { constructor: 1 } }',
          '',
        ].join('\n'),
      ),
    ]);
    expectConfigProblems(r, [
      /__proto__: unknown key/,
      /constructor: unknown key/,
      /prototype: unknown key/,
      /toString: unknown key/,
      /hasOwnProperty: unknown key/,
      /api\.__proto__: unknown key/,
      /api\.constructor: unknown key/,
      /api\.authorization\.__proto__: "__proto__" is not an endpoint name/,
      /schedule\.retry\.constructor: unknown key/,
    ]);
  }, 120_000);

  it('the controller config: the same keys are unknown keys (exit 2)', async () => {
    const r = await cli([
      'controller',
      '--config',
      file('ctl-proto.yaml', '__proto__: { stateDir: /tmp }\nlimits: { constructor: 1 }\n'),
      '--listen',
      '127.0.0.1:0',
    ]);
    expectConfigProblems(r, [/__proto__: unknown key/, /limits\.constructor: unknown key/]);
  }, 120_000);

  it('policies: __proto__ cannot smuggle an allow-list or switch debug on', async () => {
    const r = await cli([
      'verify',
      'snp',
      '--report',
      REPORT,
      '--cert',
      VCEK,
      ...AT,
      '--policy',
      file('proto-policy.yaml', '__proto__: { allowDebug: true, measurements: [] }\n'),
    ]);
    expectOneLineRefusal(r, /"__proto__": unknown key/);
    expect(() => parseGpuPolicy('constructor: {}\n')).toThrow(/"constructor": unknown key/);
    expect(() => parsePolicyFile('snp: { prototype: 1 }\n')).toThrow(/"snp\.prototype": unknown key/);
  }, 120_000);

  it('in-process: parsing such files leaves Object.prototype untouched', () => {
    const attempts = [
      () => parseConfig('__proto__: { polluted: 1 }\napi: { authorization: { __proto__: { polluted: 2 } } }\n'),
      () => parseControllerConfig('__proto__: { polluted: 3 }\n'),
      () => parseSnpPolicy('__proto__: { polluted: 4 }\n'),
      () => parsePolicyFile('snp: { __proto__: { polluted: 5 } }\n'),
    ];
    for (const attempt of attempts) expect(attempt).toThrow(expect.objectContaining({ code: 'ERR_CONFIG' }));
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.prototype).not.toHaveProperty('polluted');
  });
});
