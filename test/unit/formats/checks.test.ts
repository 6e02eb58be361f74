/** The one failed-checks summary used by the daemon log, health, status, link, gpu ready and the controller. */
import { describe, expect, it } from 'vitest';
import { fail, failedChecks, failureLines, pass, warn } from '../../../agent/formats/checks.js';

describe('failed checks', () => {
  const checks = [pass('a', 'fine'), fail('b', 'bad sig'), warn('c', 'not checked'), fail('d', 'stale')];

  it('keeps only failed checks, in order (a warning is not a failure)', () => {
    expect(failedChecks(checks).map((c) => c.name)).toEqual(['b', 'd']);
  });

  it('summarises as "name: detail", with an optional device prefix', () => {
    expect(failureLines(checks)).toEqual(['b: bad sig', 'd: stale']);
    expect(failureLines(checks, 'gpu0: ')).toEqual(['gpu0: b: bad sig', 'gpu0: d: stale']);
    expect(failureLines([pass('x', 'ok')])).toEqual([]);
  });
});
