/**
 * The embedded store (agent/controller/store/file-store.ts): records written in the format the
 * controller has always written (`<agentId>.json`, read back by an AgentRegistry as before), the
 * secret-release audit as JSON lines beside them, bad files skipped, nothing written without a
 * stateDir; and the memory challenges bound to agent and session key.
 */
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AgentRegistry } from '../../../../agent/controller/registry.js';
import { FileStore, RELEASE_LOG } from '../../../../agent/controller/store/file-store.js';
import { emptyDelta, type SecretRelease } from '../../../../agent/controller/store/controller-store.js';

const KEY = { kty: 'EC', crv: 'P-384', x: 'AAAA', y: 'BBBB' };

describe('embedded file store', () => {
  it('writes the record as before and the release audit beside it; a new registry on the same directory reads both back', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ctl-files-'));
    const reg = new AgentRegistry(dir);
    expect(reg.store.kind).toBe('files');
    reg.get('vm-1');
    await reg.rememberKey('vm-1', KEY, new Date());
    reg.recordEvent('vm-1', { seq: 1, at: 't', kind: 'status', data: { n: 1 } }, new Date());
    const at = new Date().toISOString();
    reg.recordVerdict(
      'vm-1',
      { challengeId: 'c-1', at, status: 'affirming', simulated: true, devices: {}, secretsReleased: ['model-key'], secretsDecision: '', ear: {} as never },
      [{ agentId: 'vm-1', secret: 'model-key', at, challengeId: 'c-1', status: 'affirming', jkt: 'j', replica: 'controller' }],
    );
    expect(reg.ackableSeq('vm-1')).toBe(0); // recorded, not yet written: not acknowledged
    await reg.persist('vm-1');
    expect(reg.ackableSeq('vm-1')).toBe(1);
    const file = JSON.parse(readFileSync(join(dir, 'vm-1.json'), 'utf8'));
    expect(file).toMatchObject({ agentId: 'vm-1', lastSeq: 1, gaps: [], lastVerdict: { challengeId: 'c-1' } });
    expect(Object.keys(file).sort()).toEqual(['agentId', 'attestedKeys', 'gaps', 'hashes', 'lastSeq', 'lastVerdict', 'recentEvents']);
    const lines = readFileSync(join(dir, RELEASE_LOG), 'utf8').trim().split('\n');
    expect(lines.map((l) => JSON.parse(l))).toEqual([
      { agentId: 'vm-1', secret: 'model-key', at, challengeId: 'c-1', status: 'affirming', jkt: 'j', replica: 'controller' },
    ]);
    await reg.close();
    // A state directory written before the store existed, and bad files beside it.
    writeFileSync(join(dir, 'vm-old.json'), JSON.stringify({ agentId: 'vm-old', lastSeq: 7, gaps: [], attestedKeys: [], recentEvents: [] }));
    writeFileSync(join(dir, 'vm-bad.json'), '{"agentId": "someone-else"}');
    const problems: string[] = [];
    const again = new AgentRegistry(dir);
    await again.load((f) => problems.push(f));
    expect(problems).toEqual(['vm-bad.json']);
    expect(again.get('vm-old').lastSeq).toBe(7);
    expect(again.ackableSeq('vm-old')).toBe(7);
    expect(again.get('vm-1').lastVerdict?.challengeId).toBe('c-1');
    expect(await new FileStore(dir).loadAgent('vm-none')).toBeUndefined();
    expect(await new FileStore(dir).loadAgent('../etc')).toBeUndefined();
  });

  it('a failed write keeps its changes for the next one and acknowledges nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ctl-files-'));
    const store = new FileStore(dir);
    let fail = true;
    const save = store.saveAgent.bind(store);
    store.saveAgent = async (r, d) => {
      if (fail) throw Object.assign(new Error('disk full'), { code: 'ENOSPC' });
      return save(r, d);
    };
    const reg = new AgentRegistry(store);
    reg.get('vm-2');
    await reg.rememberKey('vm-2', KEY, new Date());
    reg.recordEvent('vm-2', { seq: 1, at: 't', kind: 'status', data: {} }, new Date());
    await expect(reg.persist('vm-2')).rejects.toThrow('disk full');
    expect(reg.lastWriteFailure).toMatchObject({ agentId: 'vm-2', error: 'ENOSPC' });
    expect(reg.ackableSeq('vm-2')).toBe(0);
    expect(reg.hasPending('vm-2')).toBe(true);
    fail = false;
    await reg.persist('vm-2');
    expect(reg.ackableSeq('vm-2')).toBe(1);
    expect(reg.lastWriteFailure).toBeUndefined();
    expect(reg.hasPending('vm-2')).toBe(false);
  });

  it('without a stateDir nothing is written, and what is recorded may be acknowledged (memory only)', async () => {
    const reg = new AgentRegistry(undefined);
    expect(reg.store.durable).toBe(false);
    reg.get('vm-3');
    await reg.rememberKey('vm-3', KEY, new Date());
    reg.recordEvent('vm-3', { seq: 1, at: 't', kind: 'status', data: {} }, new Date());
    expect(reg.ackableSeq('vm-3')).toBe(1);
    await reg.persist('vm-3');
    expect(reg.hasPending('vm-3')).toBe(false);
  });

  it('secret-releases.jsonl rotates at its byte cap: at most twice the cap on disk after many writes, one previous file, and no line lost across the last rotation', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ctl-files-rot-'));
    const cap = 64 * 1024;
    const store = new FileStore(dir, 'controller', cap);
    const record = { agentId: 'vm-1', lastSeq: 0, gaps: [], attestedKeys: [], recentEvents: [] } as never;
    const release = (n: number): SecretRelease => ({
      agentId: 'vm-1',
      secret: 'model-key',
      at: new Date(1_700_000_000_000 + n).toISOString(),
      challengeId: `c-${n}`,
      status: 'affirming',
      jkt: 'j'.repeat(43),
      replica: 'controller',
    });
    let n = 0;
    for (let w = 0; w < 1500; w++) {
      const d = emptyDelta();
      for (let i = 0; i < 1 + (w % 3); i++) d.releases.push(release(n++));
      await store.saveAgent(record, d);
      const cur = statSync(join(dir, RELEASE_LOG)).size;
      const prev = existsSync(join(dir, `${RELEASE_LOG}.1`)) ? statSync(join(dir, `${RELEASE_LOG}.1`)).size : 0;
      expect(cur).toBeLessThanOrEqual(cap);
      expect(cur + prev).toBeLessThanOrEqual(2 * cap);
    }
    const ids = (f: string) =>
      readFileSync(join(dir, f), 'utf8')
        .trim()
        .split('\n')
        .map((l) => Number((JSON.parse(l) as SecretRelease).challengeId.slice(2)));
    const prev = ids(`${RELEASE_LOG}.1`);
    const cur = ids(RELEASE_LOG);
    // It did rotate (many times: ~300 KB written), the newest release is in the current file, and the
    // two files together hold one unbroken run of the newest releases.
    expect(n * 200).toBeGreaterThan(4 * cap);
    expect(cur.at(-1)).toBe(n - 1);
    const all = [...prev, ...cur];
    expect(all).toEqual(Array.from({ length: all.length }, (_, i) => n - all.length + i));
    expect(all.length).toBeGreaterThan(cap / 250);
    // A new store on the same directory counts the existing file and keeps the cap.
    const again = new FileStore(dir, 'controller', cap);
    for (let w = 0; w < 300; w++) {
      const d = emptyDelta();
      d.releases.push(release(n++));
      await again.saveAgent(record, d);
    }
    expect(statSync(join(dir, RELEASE_LOG)).size).toBeLessThanOrEqual(cap);
  });
});
