import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { appendFile, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAgentKey, type AgentKey } from '../../../agent/link/agent-key.js';
import { MAX_EVENT_DATA_BYTES, OUTBOX_FILE, Outbox, missingRanges } from '../../../agent/link/outbox.js';
import { verifyEventSignature } from '../../../agent/link/events.js';
import { CvmError } from '../../../agent/errors.js';

let dir: string;
let key: AgentKey;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cvm-outbox-'));
  key = await createAgentKey();
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const MIN_BYTES = 4 * (MAX_EVENT_DATA_BYTES + 4096);

describe('outbox', () => {
  it('assigns gap-free seqs from 1, signs every event, and keeps them until acked', async () => {
    const box = await Outbox.open({ dir, key });
    expect(box.resumeFrom).toBe(1);
    expect(box.lastSeq).toBe(0);
    // Concurrent appends still get distinct, consecutive seqs in call order.
    const events = await Promise.all([...Array(20).keys()].map((i) => box.append('status', { i })));
    expect(events.map((e) => e.seq)).toEqual([...Array(20).keys()].map((i) => i + 1));
    expect(events.map((e) => e.data.i)).toEqual([...Array(20).keys()]);
    for (const e of events) expect(await verifyEventSignature(e, key.publicJwk)).toBe(true);
    expect(box.size).toBe(20);
    await box.ack(5);
    expect(box.resumeFrom).toBe(6);
    expect(box.from(1).map((e) => e.seq)).toEqual([...Array(15).keys()].map((i) => i + 6));
    expect(box.from(18).map((e) => e.seq)).toEqual([18, 19, 20]);
    expect(box.next(0)?.seq).toBe(6);
    expect(box.next(21)).toBeUndefined();
    // Old or duplicate acks are no-ops; acks beyond lastSeq are clamped.
    await box.ack(3);
    expect(box.lastAcked).toBe(5);
    await box.ack(1e9);
    expect(box.lastAcked).toBe(20);
    expect(box.size).toBe(0);
    expect(box.bytes).toBe(0);
    await box.close();
    await expect(box.append('status', {})).rejects.toThrow(CvmError);
  });

  it('survives a restart: unacked events come back and seq continues (also after full ack and compaction)', async () => {
    const a = await Outbox.open({ dir, key });
    for (let i = 0; i < 10; i++) await a.append('status', { i });
    await a.ack(4);
    await a.close();
    const key2 = await createAgentKey();
    const b = await Outbox.open({ dir, key: key2 });
    expect(b.lastAcked).toBe(4);
    expect(b.lastSeq).toBe(10);
    expect(b.from(0).map((e) => e.seq)).toEqual([5, 6, 7, 8, 9, 10]);
    // Persisted events keep the signature of the key that made them.
    expect(await verifyEventSignature(b.from(5)[0]!, key.publicJwk)).toBe(true);
    const e11 = await b.append('gpu-ready', { ready: true });
    expect(e11.seq).toBe(11);
    expect(await verifyEventSignature(e11, key2.publicJwk)).toBe(true);
    // Ack everything, force many dead lines so the file is compacted down to the marker.
    for (let i = 0; i < 300; i++) {
      const e = await b.append('status', { i });
      await b.ack(e.seq);
    }
    await b.close();
    const text = await readFile(join(dir, OUTBOX_FILE), 'utf8');
    expect(text.split('\n').filter(Boolean).length).toBeLessThan(300);
    const c = await Outbox.open({ dir, key: key2 });
    expect(c.size).toBe(0);
    expect(c.lastSeq).toBe(311);
    expect((await c.append('status', {})).seq).toBe(312);
    await c.close();
    expect((await stat(join(dir, OUTBOX_FILE))).mode & 0o777).toBe(0o600);
  });

  it('discards a torn last line (crash mid-write) and keeps appending cleanly', async () => {
    const a = await Outbox.open({ dir, key });
    for (let i = 0; i < 3; i++) await a.append('status', { i });
    await a.close();
    await appendFile(join(dir, OUTBOX_FILE), '{"type":"event","seq":4,"at":"2025-');
    const b = await Outbox.open({ dir, key });
    expect(b.from(0).map((e) => e.seq)).toEqual([1, 2, 3]);
    expect((await b.append('status', { after: 'crash' })).seq).toBe(4);
    await b.close();
    const c = await Outbox.open({ dir, key });
    expect(c.from(0).map((e) => e.seq)).toEqual([1, 2, 3, 4]);
    expect(c.from(4)[0]!.data).toEqual({ after: 'crash' });
    await c.close();
  });

  it('declares events lost to a corrupted line with a signed dropped event', async () => {
    const a = await Outbox.open({ dir, key });
    for (let i = 0; i < 5; i++) await a.append('status', { i });
    await a.close();
    const path = join(dir, OUTBOX_FILE);
    const lines = (await readFile(path, 'utf8')).split('\n');
    lines[2] = lines[2]!.replace('"seq":3', '"seq":"three"');
    await writeFile(path, lines.join('\n'));
    const logs: string[] = [];
    const b = await Outbox.open({ dir, key, log: (m) => logs.push(m) });
    const seqs = b.from(0).map((e) => [e.seq, e.kind]);
    expect(seqs).toEqual([
      [1, 'status'],
      [2, 'status'],
      [4, 'status'],
      [5, 'status'],
      [6, 'dropped'],
    ]);
    expect(b.from(6)[0]!.data).toEqual({ from: 3, to: 3, count: 1, reason: 'unreadable in the outbox file' });
    expect(logs.some((l) => /unreadable/.test(l))).toBe(true);
    await b.close();
  });

  it('refuses an event whose data is larger than one message can carry', async () => {
    const box = await Outbox.open({ dir, key });
    await expect(box.append('status', { blob: 'x'.repeat(MAX_EVENT_DATA_BYTES) })).rejects.toThrow(/event data is/);
    expect((await box.append('status', { ok: true })).seq).toBe(1);
    // Non-JSON data is a typed error; JSON-able values are normalized so signature and wire agree.
    await expect(box.append('status', { n: 10n } as never)).rejects.toThrow(/not JSON/);
    await expect(box.append('status', [1, 2] as never)).rejects.toThrow(/event rejected/);
    const when = new Date('2025-06-01T00:00:00Z');
    const e = await box.append('status', { when, gone: undefined } as never);
    expect(e.seq).toBe(2);
    expect(e.data).toEqual({ when: '2025-06-01T00:00:00.000Z' });
    expect(await verifyEventSignature(JSON.parse(JSON.stringify(e)), key.publicJwk)).toBe(true);
    await box.close();
    await expect(Outbox.open({ dir, key, maxEvents: 2 })).rejects.toThrow(CvmError);
  });

  it('bounds the count: drops the oldest down to 3/4 and appends one dropped event per batch', async () => {
    const box = await Outbox.open({ dir, key, maxEvents: 20 });
    for (let i = 1; i <= 20; i++) await box.append('status', { i });
    expect(box.size).toBe(20);
    await box.append('status', { i: 21 });
    // 21 > 20: drop 1..6 (leaving 15 = 3/4 of 20, including #21), then #22 declares the gap.
    const held = box.from(0);
    expect(held.map((e) => e.seq)).toEqual([...Array(16).keys()].map((i) => i + 7));
    const dropped = held[held.length - 1]!;
    expect(dropped.kind).toBe('dropped');
    expect(dropped.data).toEqual({ from: 1, to: 6, count: 6 });
    expect(await verifyEventSignature(dropped, key.publicJwk)).toBe(true);
    expect(box.size).toBeLessThanOrEqual(20);
    // Next overflow folds the earlier dropped range when the dropped event itself is dropped.
    for (let i = 23; i <= 40; i++) await box.append('status', { i });
    const all = box.from(0);
    expect(all.length).toBeLessThanOrEqual(20);
    const drops = all.filter((e) => e.kind === 'dropped');
    const last = drops[drops.length - 1]!;
    expect(last.data.from).toBe(1);
    expect(last.data.count).toBe((last.data.to as number) - 1 + 1);
    expect(all[0]!.seq).toBe((last.data.to as number) + 1);
    // Gap-free seqs even across drops: every seq is either held or inside the declared range.
    const seqs = all.map((e) => e.seq);
    expect(seqs).toEqual([...Array(seqs.length).keys()].map((i) => i + seqs[0]!));
    await box.close();
    // The drop is durable: after a restart dropped events do not come back and no extra drop is declared.
    const again = await Outbox.open({ dir, key, maxEvents: 20 });
    expect(again.from(0).map((e) => e.seq)).toEqual(seqs);
    await again.close();
  });

  it('bounds the bytes as well', async () => {
    const box = await Outbox.open({ dir, key, maxBytes: MIN_BYTES });
    const blob = 'b'.repeat(100 * 1024);
    for (let i = 0; i < 12; i++) await box.append('status', { blob });
    expect(box.bytes).toBeLessThanOrEqual(MIN_BYTES);
    const drops = box.from(0).filter((e) => e.kind === 'dropped');
    expect(drops.length).toBeGreaterThanOrEqual(1);
    expect(drops[0]!.data.from).toBe(1);
    await box.close();
  });
});

describe('missingRanges', () => {
  it('finds the holes in a sorted seq list', () => {
    expect(missingRanges(1, 10, [1, 2, 5, 6, 10])).toEqual([
      [3, 4],
      [7, 9],
    ]);
    expect(missingRanges(1, 3, [])).toEqual([[1, 3]]);
    expect(missingRanges(4, 3, [])).toEqual([]);
    expect(missingRanges(1, 3, [1, 2, 3])).toEqual([]);
  });
});
