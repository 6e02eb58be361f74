import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentRegistry, HASH_WINDOW, subtractRange } from '../../../agent/controller/registry.js';
import { createAgentKey } from '../../../agent/link/agent-key.js';

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

  it('stores only the next seq; a later one is out of order, a declared gap moves past, a different event under a stored seq is a conflict', async () => {
    const r = new AgentRegistry(undefined);
    const now = new Date();
    const at = now.toISOString();
    expect(r.recordEvent('a', { seq: 1, at, kind: 'status', data: {} }, now)).toBe('stored');
    expect(r.recordEvent('a', { seq: 10, at, kind: 'status', data: {} }, now)).toBe('out-of-order');
    expect(r.get('a').lastSeq).toBe(1);
    expect(r.get('a').gaps).toEqual([]);
    r.declareGap('a', 9, 'dropped-by-agent', undefined);
    expect(r.get('a').gaps).toEqual([{ from: 2, to: 9, reason: 'dropped-by-agent' }]);
    expect(r.recordEvent('a', { seq: 10, at, kind: 'status', data: { x: 1 } }, now)).toBe('stored');
    expect(r.recordEvent('a', { seq: 10, at, kind: 'status', data: { x: 1 } }, now)).toBe('duplicate');
    expect(r.recordEvent('a', { seq: 10, at, kind: 'status', data: { x: 2 } }, now)).toBe('conflict');
    // Inside a declared gap no hash is known: a late arrival is a duplicate, not a conflict.
    expect(r.recordEvent('a', { seq: 5, at, kind: 'status', data: {} }, now)).toBe('duplicate');
    // Adjacent declarations of the same kind merge; an unverifiable seq keeps its hash.
    r.declareGap('a', 11, 'unverifiable', 'signing key never attested', 'h11');
    r.declareGap('a', 12, 'unverifiable', 'signing key never attested', 'h12');
    expect(r.get('a').gaps.at(-1)).toEqual({ from: 11, to: 12, reason: 'unverifiable', detail: 'signing key never attested' });
    expect(r.hashOf(r.get('a'), 12)).toBe('h12');
    expect(r.hashOf(r.get('a'), 7)).toBe('');
  });

  it('keeps a bounded window of hashes: beyond it an old seq is a duplicate (cannot be compared)', () => {
    const r = new AgentRegistry(undefined);
    const now = new Date();
    const at = now.toISOString();
    for (let seq = 1; seq <= HASH_WINDOW + 10; seq++) r.recordEvent('a', { seq, at, kind: 'status', data: { seq } }, now);
    expect(r.get('a').hashes!.list.length).toBe(HASH_WINDOW);
    expect(r.recordEvent('a', { seq: 5, at, kind: 'status', data: { other: true } }, now)).toBe('duplicate');
    expect(r.recordEvent('a', { seq: HASH_WINDOW, at, kind: 'status', data: { other: true } }, now)).toBe('conflict');
  });

  it("refuses writes after close, so a late handler cannot overwrite a newer instance's state (and acks nothing)", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ctl-reg-'));
    const r = new AgentRegistry(dir);
    const now = new Date();
    await r.rememberKey('a', (await createAgentKey()).publicJwk, now); // verified evidence: the record may be written
    r.recordEvent('a', { seq: 1, at: now.toISOString(), kind: 'status', data: {} }, now);
    await r.persist('a');
    await r.close();
    r.recordEvent('a', { seq: 2, at: now.toISOString(), kind: 'status', data: {} }, now);
    await expect(r.persist('a')).rejects.toThrow(/closed/);
    expect(JSON.parse(readFileSync(join(dir, 'a.json'), 'utf8')).lastSeq).toBe(1);
  });
});
