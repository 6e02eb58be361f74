/** One closed union of error codes: the C addon throws only names the TypeScript side knows. */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, isErrorCode } from '../../agent/errors.js';

/** The repository root, found upwards from this file so the test survives being moved. */
function repoRoot(): string {
  let dir = __dirname;
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  return dir;
}
const NATIVE_SRC = join(repoRoot(), 'native', 'src');

function nativeCodes(): Map<string, string[]> {
  const found = new Map<string, string[]>();
  for (const f of readdirSync(NATIVE_SRC).filter((n) => /\.[ch]$/.test(n))) {
    const text = readFileSync(join(NATIVE_SRC, f), 'utf8');
    for (const m of text.matchAll(/"(ERR_[A-Z0-9_]+)"/g)) found.set(m[1]!, [...(found.get(m[1]!) ?? []), f]);
  }
  return found;
}

describe('error codes', () => {
  it('every ERR_ code in the native/ C sources is a member of the TypeScript union', () => {
    const codes = nativeCodes();
    expect(codes.size).toBeGreaterThan(10); // the scan found the addon's codes at all
    const unknown = [...codes].filter(([c]) => !isErrorCode(c)).map(([c, files]) => `${c} (${files.join(', ')})`);
    expect(unknown).toEqual([]);
  });

  it('the C side uses the TypeScript name for a bad argument (ERR_INVALID_ARGUMENT)', () => {
    const codes = nativeCodes();
    expect(codes.has('ERR_INVALID_ARGUMENT')).toBe(true);
    expect([...codes.keys()].filter((c) => c.startsWith('ERR_INVALID_ARG') && c !== 'ERR_INVALID_ARGUMENT')).toEqual([]);
  });

  it('the union has no duplicates and only ERR_ names', () => {
    expect(new Set(ERROR_CODES).size).toBe(ERROR_CODES.length);
    for (const c of ERROR_CODES) expect(c).toMatch(/^ERR_[A-Z0-9_]+$/);
    expect(isErrorCode('ERR_NOT_A_CODE')).toBe(false);
    expect(isErrorCode(42)).toBe(false);
  });

  it('agent code throws no bare Error', () => {
    // The fleet page's script runs in the browser (a string in page.ts), where agent errors do not exist.
    const browserScripts = new Set([join('agent', 'controller', 'web', 'page.ts')]);
    const offenders: string[] = [];
    const walk = (dir: string): void => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        const p = join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else if (p.endsWith('.ts') && !browserScripts.has(relative(repoRoot(), p))) {
          readFileSync(p, 'utf8')
            .split('\n')
            .forEach((line, i) => {
              if (/\bthrow new Error\(/.test(line)) offenders.push(`${p}:${i + 1}`);
            });
        }
      }
    };
    walk(join(repoRoot(), 'agent'));
    expect(offenders).toEqual([]);
  });
});
