import { appendFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildEar, type Ear } from '../../../agent/appraise/ear.js';
import { CvmError, ParseError } from '../../../agent/errors.js';
import { ResultHistory, type HistoryEvent, type NewCycleRecord } from '../../../agent/state/history.js';
import { validateRecord } from '../../../agent/state/record.js';
import { encodeHistoryLine, parseHistoryLog } from '../../../agent/state/history-log.js';
import { fail, pass, resultOf } from '../../../agent/formats/checks.js';
import { FC_RUNS } from '../../helpers/paths.js';

function ear(ok = true): Ear {
  return buildEar(
    [
      {
        id: 'cpu0',
        policyId: 'default',
        result: resultOf([pass('snp.signature', 'VCEK signature valid'), ok ? pass('snp.tcb', 'TCB ok') : fail('snp.tcb', 'TCB below minimum')], {}),
      },
      { id: 'gpu0', policyId: 'default', result: resultOf([pass('gpu.signature', 'ok')], {}, true) },
    ],
    { at: new Date('2025-01-01T00:00:00Z'), nonce: new Uint8Array(32).fill(7), build: 'test' },
  );
}

function rec(i: number, ok = true): NewCycleRecord {
  const e = ear(ok);
  return {
    startedAt: new Date(1_735_689_600_000 + i * 60_000).toISOString(),
    finishedAt: new Date(1_735_689_601_000 + i * 60_000).toISOString(),
    reason: 'schedule',
    status: e['ear.status'],
    ear: e,
  };
}

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'cvm-history-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('ResultHistory', () => {
  it('starts empty when the file is missing and creates the state directory', async () => {
    const stateDir = join(dir, 'nested', 'state');
    const h = new ResultHistory({ stateDir });
    await h.load();
    expect(h.latest()).toBeUndefined();
    expect(h.list()).toEqual([]);
    expect(statSync(stateDir).isDirectory()).toBe(true);
  });

  it('appends with increasing ids, persists with mode 0600 and reloads the same records', async () => {
    const h = new ResultHistory({ stateDir: dir });
    await h.load();
    const a = await h.append(rec(1));
    const b = await h.append({ ...rec(2, false), error: { code: 'ERR_X', message: 'x' } });
    expect([a.id, b.id]).toEqual([1, 2]);
    expect(b.status).toBe('contraindicated');
    expect(statSync(h.path).mode & 0o777).toBe(0o600);

    const again = new ResultHistory({ stateDir: dir });
    await again.load();
    expect(again.latest()).toEqual(b);
    expect(again.list().map((r) => r.id)).toEqual([2, 1]);
    expect(again.list(1)).toEqual([b]);
    expect(again.list(0)).toEqual([]);
    expect((await again.append(rec(3))).id).toBe(3);
  });

  it('keeps only the newest historySize records, and ids keep growing after trimming and reload', async () => {
    const h = new ResultHistory({ stateDir: dir, size: 3 });
    await h.load();
    for (let i = 1; i <= 7; i++) await h.append(rec(i));
    expect(h.list().map((r) => r.id)).toEqual([7, 6, 5]);
    await h.flushed();
    // The log holds the newest records plus at most `size` older lines awaiting compaction.
    const onDisk = parseHistoryLog(readFileSync(h.path));
    expect(onDisk.records.map((r) => r.id).slice(-3)).toEqual([5, 6, 7]);
    expect(onDisk.records.length).toBeLessThan(2 * 3);

    // A smaller size at the next start trims what was loaded, and says so.
    const events: HistoryEvent[] = [];
    const smaller = new ResultHistory({ stateDir: dir, size: 2, onEvent: (e) => events.push(e) });
    await smaller.load();
    expect(events).toEqual([{ kind: 'trimmed', dropped: onDisk.records.length - 2 }]);
    expect((await smaller.append(rec(8))).id).toBe(8);
    expect(smaller.list().map((r) => r.id)).toEqual([8, 7]);
  });

  it('coalesces a burst of appends into at most two writes, all of them durable', async () => {
    const h = new ResultHistory({ stateDir: dir, size: 100 });
    await h.load();
    const appends = Array.from({ length: 20 }, (_, i) => h.append(rec(i + 1)));
    const done = await Promise.all(appends);
    expect(done.map((r) => r.id)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    // The first append starts a write; the other 19 share the one queued behind it.
    expect(h.writes).toBe(2);
    const onDisk = parseHistoryLog(readFileSync(h.path));
    expect(onDisk.records).toHaveLength(20);
    // Awaited one by one, each append is its own write.
    for (let i = 21; i <= 23; i++) await h.append(rec(i));
    expect(h.writes).toBe(5);
    await h.flushed();
  });

  it('moves a corrupt file aside, reports it, starts empty and keeps working', async () => {
    writeFileSync(join(dir, 'history.json'), '{"version":1,"records":[{"id":1,');
    const events: HistoryEvent[] = [];
    const h = new ResultHistory({ stateDir: dir, onEvent: (e) => events.push(e), now: () => new Date('2025-02-03T04:05:06.789Z') });
    await h.load();
    expect(h.latest()).toBeUndefined();
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ kind: 'corrupt', movedTo: join(dir, 'history.json.corrupt-2025-02-03T04-05-06-789Z') });
    expect((events[0] as { reason: string }).reason).toMatch(/invalid JSON/);
    expect(readFileSync(join(dir, 'history.json.corrupt-2025-02-03T04-05-06-789Z'), 'utf8')).toContain('"records"');
    expect((await h.append(rec(1))).id).toBe(1);
  });

  it.each([
    ['a non-object', '[1,2,3]', /expected an object/],
    ['an unknown version', '{"version":2,"records":[]}', /version/],
    ['an extra top-level key', '{"version":1,"records":[],"x":1}', /unexpected key/],
    ['a record with a bad status', () => JSON.stringify({ version: 1, records: [{ id: 1, ...rec(1), status: 'great' }] }), /status/],
    [
      'ids going backwards',
      () =>
        JSON.stringify({
          version: 1,
          records: [
            { id: 2, ...rec(1) },
            { id: 1, ...rec(2) },
          ],
        }),
      /not greater/,
    ],
    ['a record without EAR or error', () => JSON.stringify({ version: 1, records: [{ id: 1, ...rec(1), ear: null }] }), /without an EAR/],
    [
      'a trust vector out of range',
      () =>
        JSON.stringify({
          version: 1,
          records: [{ id: 1, ...rec(1), ear: { ...ear(), submods: { cpu0: { ...ear().submods.cpu0, 'ear.trustworthiness-vector': { hardware: 1000 } } } } }],
        }),
      /-128\.\.127/,
    ],
    ['a bad timestamp', () => JSON.stringify({ version: 1, records: [{ id: 1, ...rec(1), startedAt: 'yesterday' }] }), /ISO 8601/],
  ])('treats %s as corrupt with a reason', async (_label, content, reason) => {
    writeFileSync(join(dir, 'history.json'), typeof content === 'function' ? content() : content);
    const events: HistoryEvent[] = [];
    const h = new ResultHistory({ stateDir: dir, onEvent: (e) => events.push(e) });
    await h.load();
    expect(h.list()).toEqual([]);
    expect(events).toHaveLength(1);
    expect(events[0]?.kind).toBe('corrupt');
    expect((events[0] as { reason: string }).reason).toMatch(reason);
    expect(readdirSync(dir).filter((n) => n.startsWith('history.json.corrupt-'))).toHaveLength(1);
  });

  it('removes temp files a killed writer left behind', async () => {
    writeFileSync(join(dir, '.history.json.1234.abcdef.tmp'), '{"version":1,"rec');
    writeFileSync(join(dir, 'unrelated.tmp'), 'keep');
    const events: HistoryEvent[] = [];
    await new ResultHistory({ stateDir: dir, onEvent: (e) => events.push(e) }).load();
    expect(readdirSync(dir).sort()).toEqual(['unrelated.tmp']);
    expect(events).toEqual([{ kind: 'stale-temp-removed', path: join(dir, '.history.json.1234.abcdef.tmp') }]);
  });

  it('reports a directory in place of history.json as ERR_STATE instead of moving it aside', async () => {
    mkdirSync(join(dir, 'history.json'));
    await expect(new ResultHistory({ stateDir: dir }).load()).rejects.toMatchObject({ code: 'ERR_STATE' });
  });

  it('refuses append before load, and records it could not read back', async () => {
    const h = new ResultHistory({ stateDir: dir });
    await expect(h.append(rec(1))).rejects.toBeInstanceOf(CvmError);
    await h.load();
    await expect(h.append({ ...rec(1), reason: 'x'.repeat(65) })).rejects.toMatchObject({ code: 'ERR_STATE' });
    await expect(h.append({ ...rec(1), ear: { ...ear(), iat: 10n as unknown as number } })).rejects.toMatchObject({ code: 'ERR_STATE' });
    // Refused records leave no trace; the next good one gets id 1.
    expect(h.latest()).toBeUndefined();
    expect((await h.append({ ...rec(1), error: { code: 'ERR_BIG', message: 'm'.repeat(20_000) } })).error?.message).toHaveLength(8192);
    expect(h.latest()?.id).toBe(1);
  });

  it('a failed write rejects that append with ERR_STATE; the next write carries the record too', async () => {
    const stateDir = join(dir, 'state');
    const h = new ResultHistory({ stateDir });
    await h.load();
    rmSync(stateDir, { recursive: true });
    await expect(h.append(rec(1))).rejects.toMatchObject({ code: 'ERR_STATE' });
    mkdirSync(stateDir);
    await h.append(rec(2));
    const onDisk = parseHistoryLog(readFileSync(h.path));
    expect(onDisk.records.map((r) => r.id)).toEqual([1, 2]);
  });

  it('migrates a history.json of an earlier version once: same records, then history.jsonl only', async () => {
    const old = { version: 1, records: [1, 2, 3].map((i) => ({ id: i + 10, ...rec(i) })) };
    writeFileSync(join(dir, 'history.json'), JSON.stringify(old));
    const events: HistoryEvent[] = [];
    const h = new ResultHistory({ stateDir: dir, onEvent: (e) => events.push(e) });
    await h.load();
    expect(h.list().map((r) => r.id)).toEqual([13, 12, 11]);
    expect(events).toEqual([{ kind: 'migrated', from: join(dir, 'history.json'), to: h.path, records: 3 }]);
    expect(readdirSync(dir)).toEqual(['history.jsonl']);
    expect(statSync(h.path).mode & 0o777).toBe(0o600);
    expect((await h.append(rec(4))).id).toBe(14);
    const again = new ResultHistory({ stateDir: dir });
    await again.load();
    expect(again.list()).toEqual(h.list());
  });

  it('a cycle appends one line; the file is compacted off the append path and stays bounded', async () => {
    const h = new ResultHistory({ stateDir: dir, size: 4 });
    await h.load();
    let largest = 0;
    for (let i = 1; i <= 30; i++) {
      const before = existsSync(h.path) ? statSync(h.path).size : 0;
      const r = await h.append(rec(i));
      const after = statSync(h.path).size;
      // The append itself only grew the file by its own line (a compaction may follow later).
      if (after >= before) expect(after - before).toBe(Buffer.byteLength(encodeHistoryLine(r)));
      largest = Math.max(largest, parseHistoryLog(readFileSync(h.path)).records.length);
      await h.flushed();
    }
    expect(largest).toBeLessThanOrEqual(2 * 4);
    expect(h.list().map((r) => r.id)).toEqual([30, 29, 28, 27]);
    const again = new ResultHistory({ stateDir: dir, size: 4 });
    await again.load();
    expect(again.list()).toEqual(h.list());
  });

  it('drops a torn last line (cut short, or whole with a bad checksum), truncates it away and appends on', async () => {
    for (const tail of ['3f2a', '00000000 {"id":99}\n', '\0\0\0\0']) {
      rmSync(dir, { recursive: true, force: true });
      const h = new ResultHistory({ stateDir: dir });
      await h.load();
      await h.append(rec(1));
      await h.append(rec(2));
      const good = statSync(h.path).size;
      appendFileSync(h.path, tail);
      const events: HistoryEvent[] = [];
      const again = new ResultHistory({ stateDir: dir, onEvent: (e) => events.push(e) });
      await again.load();
      expect(events).toEqual([{ kind: 'torn-tail-dropped', path: h.path, bytes: Buffer.byteLength(tail) }]);
      expect(statSync(h.path).size).toBe(good);
      expect((await again.append(rec(3))).id).toBe(3);
      expect(parseHistoryLog(readFileSync(h.path)).records.map((r) => r.id)).toEqual([1, 2, 3]);
    }
  });

  it.each([
    ['a bad line before the last', (lines: string[]) => [lines[0], 'garbage\n', lines[1]].join('')],
    ['a checksum mismatch before the last', (lines: string[]) => [lines[0]!.replace('"schedule"', '"scheduLe"'), lines[1]].join('')],
    ['ids going backwards', (lines: string[]) => [lines[1], lines[0]].join('')],
  ])('treats a history.jsonl with %s as corrupt: moved aside, empty history', async (_label, make) => {
    const h = new ResultHistory({ stateDir: dir });
    await h.load();
    const lines = [await h.append(rec(1)), await h.append(rec(2))].map(encodeHistoryLine);
    writeFileSync(h.path, make(lines));
    const events: HistoryEvent[] = [];
    const again = new ResultHistory({ stateDir: dir, onEvent: (e) => events.push(e) });
    await again.load();
    expect(again.list()).toEqual([]);
    expect(events.map((e) => e.kind)).toEqual(['corrupt']);
    expect(readdirSync(dir).filter((n) => n.startsWith('history.jsonl.corrupt-'))).toHaveLength(1);
  });

  it('writes non-ASCII text as JSON escapes: an ASCII line, one byte per character, that reads back the same', async () => {
    const h = new ResultHistory({ stateDir: dir });
    await h.load();
    const message = 'cut short\u2026 caf\u00e9 \u{1f600} lone \ud800';
    const r = await h.append({ ...rec(1, false), error: { code: 'ERR_X', message } });
    const line = encodeHistoryLine(r);
    expect(line).toMatch(/^[\x20-\x7e]+\n$/);
    expect(line).toContain('\\u2026');
    expect(readFileSync(h.path, 'utf8')).toBe(line);
    const again = new ResultHistory({ stateDir: dir });
    await again.load();
    // The lone surrogate cannot be stored as such: JSON.stringify escapes it and it reads back as U+FFFD.
    expect(again.latest()?.error?.message).toBe(JSON.parse(JSON.stringify(message)));
    expect(again.latest()).toEqual(r);
  });

  it('reads lines an earlier version wrote with raw UTF-8 (non-ASCII characters unescaped)', async () => {
    const r = { id: 1, ...rec(1, false), error: { code: 'ERR_X', message: 'caf\u00e9 \u2026' } };
    const json = JSON.stringify(r);
    writeFileSync(join(dir, 'history.jsonl'), `${crc32(json).toString(16).padStart(8, '0')} ${json}\n`);
    const h = new ResultHistory({ stateDir: dir });
    await h.load();
    expect(h.latest()).toEqual(r);
    expect(h.recent()).toEqual([{ id: 1, startedAt: r.startedAt, finishedAt: r.finishedAt, reason: 'schedule', status: 'contraindicated' }]);
    expect((await h.append(rec(2))).id).toBe(2);
    expect(parseHistoryLog(readFileSync(h.path)).records).toEqual([r, h.latest()]);
  });

  it('recent() gives the summaries status shows, newest first, bounded like the records', async () => {
    const h = new ResultHistory({ stateDir: dir, size: 3 });
    await h.load();
    for (let i = 1; i <= 5; i++) await h.append(rec(i, i !== 4));
    const summaries = h.recent();
    expect(summaries.map((s) => s.id)).toEqual([5, 4, 3]);
    expect(summaries[1]).toEqual({ id: 4, startedAt: rec(4).startedAt, finishedAt: rec(4).finishedAt, reason: 'schedule', status: 'contraindicated' });
    expect(summaries).toEqual(h.list().map(({ id, startedAt, finishedAt, reason, status }) => ({ id, startedAt, finishedAt, reason, status })));
    expect(h.recent(1).map((s) => s.id)).toEqual([5]);
    expect(h.recent(0)).toEqual([]);
    expect(() => h.recent(-1)).toThrow(CvmError);
    await h.flushed();
    const again = new ResultHistory({ stateDir: dir, size: 3 });
    await again.load();
    expect(again.recent()).toEqual(summaries);
  });

  it('rejects a bad size', () => {
    expect(() => new ResultHistory({ stateDir: dir, size: 0 })).toThrow(CvmError);
  });
});

describe('validateRecord on hostile input', () => {
  it('never throws anything but ParseError, and what it accepts re-validates to itself', () => {
    const good = { id: 1, ...rec(1) };
    const base = JSON.parse(JSON.stringify(good)) as Record<string, unknown>;
    fc.assert(
      fc.property(fc.jsonValue(), fc.constantFrom('id', 'startedAt', 'finishedAt', 'reason', 'status', 'ear', 'error', '__proto__', 'extra'), (value, key) => {
        const candidate = JSON.parse(JSON.stringify({ ...base, [key]: value })) as unknown;
        try {
          const r = validateRecord(candidate);
          expect(validateRecord(JSON.parse(JSON.stringify(r)))).toEqual(r);
        } catch (err) {
          if (!(err instanceof ParseError)) throw err;
        }
        try {
          validateRecord(value);
        } catch (err) {
          if (!(err instanceof ParseError)) throw err;
        }
      }),
      { numRuns: FC_RUNS },
    );
  });

  it('a "__proto__" submod name stays data and cannot reach Object.prototype', () => {
    const text = JSON.stringify({ id: 1, ...rec(1) }).replace('"gpu0"', '"__proto__"');
    const r = validateRecord(JSON.parse(text));
    expect(Object.keys(r.ear!.submods)).toEqual(['cpu0', '__proto__']);
    expect(({} as Record<string, unknown>)['ear.status']).toBeUndefined();
  });
});
