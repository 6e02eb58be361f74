import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentRegistry, subtractRange } from '../../agent/controller/registry.js';

describe('controller registry: event gaps', () => {
  it('subtracts a declared drop from "missing" gaps, splitting one that straddles it', () => {
    expect(subtractRange([{ from: 11, to: 946, reason: 'missing' }], 11, 894)).toEqual([{ from: 895, to: 946, reason: 'missing' }]);
    expect(subtractRange([{ from: 10, to: 20, reason: 'missing' }], 12, 15)).toEqual([
      { from: 10, to: 11, reason: 'missing' },
      { from: 16, to: 20, reason: 'missing' },
    ]);
    expect(subtractRange([{ from: 1, to: 5, reason: 'dropped-by-agent' }], 1, 5)).toEqual([{ from: 1, to: 5, reason: 'dropped-by-agent' }]);
    expect(subtractRange([{ from: 1, to: 5, reason: 'missing' }], 6, 9)).toEqual([{ from: 1, to: 5, reason: 'missing' }]);
  });

  it('records a jump as missing until the agent declares the drop, then only the declared drops remain', () => {
    const r = new AgentRegistry(undefined);
    const now = new Date();
    r.recordEvent('a', { seq: 1, at: now.toISOString(), kind: 'status', data: {} }, now);
    r.recordEvent('a', { seq: 10, at: now.toISOString(), kind: 'status', data: {} }, now);
    expect(r.get('a').gaps).toEqual([{ from: 2, to: 9, reason: 'missing' }]);
    r.recordEvent('a', { seq: 11, at: now.toISOString(), kind: 'dropped', data: { from: 2, to: 9, count: 8 } }, now);
    expect(r.get('a').gaps).toEqual([{ from: 2, to: 9, reason: 'dropped-by-agent' }]);
    expect(r.recordEvent('a', { seq: 11, at: now.toISOString(), kind: 'status', data: {} }, now)).toBe('duplicate');
  });

  it('refuses writes after close, so a late handler cannot overwrite a newer instance\'s state (and acks nothing)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ctl-reg-'));
    const r = new AgentRegistry(dir);
    const now = new Date();
    r.recordEvent('a', { seq: 1, at: now.toISOString(), kind: 'status', data: {} }, now);
    await r.persist('a');
    await r.close();
    r.recordEvent('a', { seq: 2, at: now.toISOString(), kind: 'status', data: {} }, now);
    await expect(r.persist('a')).rejects.toThrow(/closed/);
    expect(JSON.parse(readFileSync(join(dir, 'a.json'), 'utf8')).lastSeq).toBe(1);
  });
});
