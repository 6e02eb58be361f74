/**
 * Attack: the files the agent and the controller keep for themselves or re-read at run time, made
 * huge, endless or blocking: the bearer token file the link re-reads at every connect, the pinned
 * controller token key, the event outbox, a controller agent record. Each must be read within its
 * cap (agent/util/bounded-read.ts), a FIFO must be refused without blocking, and nothing may be read
 * whole into memory. And the outbox itself must stay within the cap it is read with: acked events of
 * the largest size are rewritten away by bytes, not only by line count.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAgentKey } from '../../agent/link/agent-key.js';
import { MAX_EVENT_DATA_BYTES, OUTBOX_FILE, Outbox } from '../../agent/link/outbox.js';
import { loadTokenKeys } from '../../agent/link/verdict.js';
import { AgentRegistry } from '../../agent/controller/registry.js';
import { linkFixture } from '../helpers/link-fixture.js';

let dir: string;
const { setup } = linkFixture();

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'hostile-files-state-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A sparse file of `bytes` (nothing is written, so making it costs nothing). */
function sparse(name: string, bytes: number): string {
  const p = join(dir, name);
  writeFileSync(p, '');
  truncateSync(p, bytes);
  return p;
}

function fifo(name: string): string {
  const p = join(dir, name);
  execFileSync('mkfifo', [p]);
  return p;
}

describe('the bearer token file, re-read at every connect', () => {
  for (const [name, make, why] of [
    ['a FIFO with no writer', () => fifo('token.fifo'), /is a FIFO or pipe, expected a regular file/],
    ['a 100 MB file', () => sparse('token.big', 100 * 1024 * 1024), /104857600 bytes, over the 64 KiB limit for token files/],
  ] as const) {
    it(`${name} is refused at each attempt (never blocks, never read whole) and retried`, async () => {
      const { controller, h } = await setup({ token: 't' }, { tokenFile: make() });
      h.link.start();
      await controller.waitFor(() => h.link.status().attempt >= 2, 20_000, 'two refused attempts');
      expect(h.link.status().lastError).toMatch(/cannot read the bearer token file/);
      expect(h.link.status().lastError).toMatch(why);
      expect(controller.upgrades).toBe(0);
    }, 60_000);
  }
});

describe('controller.tokenKey', () => {
  it('a FIFO, a 100 MB file and a directory are config errors, without blocking', async () => {
    await expect(loadTokenKeys(fifo('token-key.fifo'))).rejects.toThrow(/controller\.tokenKey: .*token-key\.fifo: is a FIFO or pipe/);
    await expect(loadTokenKeys(sparse('token-key.big', 100 * 1024 * 1024))).rejects.toThrow(/over the 64 KiB limit for public key files/);
    await expect(loadTokenKeys(dir)).rejects.toThrow(/is a directory/);
  });
});

describe('the event outbox', () => {
  it('an outbox.jsonl that is a FIFO, or far over what this outbox can write, stops the open (its last seq cannot be known)', async () => {
    const key = await createAgentKey();
    const a = join(dir, 'outbox-fifo');
    mkdirSync(a);
    execFileSync('mkfifo', [join(a, OUTBOX_FILE)]);
    await expect(Outbox.open({ dir: a, key })).rejects.toMatchObject({ code: 'ERR_OUTBOX_IO', message: expect.stringMatching(/is a FIFO or pipe/) });
    const b = join(dir, 'outbox-big');
    mkdirSync(b);
    writeFileSync(join(b, OUTBOX_FILE), '');
    truncateSync(join(b, OUTBOX_FILE), 1024 * 1024 * 1024);
    await expect(Outbox.open({ dir: b, key })).rejects.toMatchObject({
      code: 'ERR_OUTBOX_IO',
      message: expect.stringMatching(/1073741824 bytes, over the .* limit for event outbox files/),
    });
  });

  it('acked events of the largest size never grow the file past the cap it is read with', async () => {
    const d = join(dir, 'outbox-dead-bytes');
    const key = await createAgentKey();
    // The smallest byte bound allowed, a large count bound: the line-count rule alone would keep up
    // to 256 dead lines of ~256 KiB each (64 MiB) before rewriting.
    const box = await Outbox.open({ dir: d, key, maxEvents: 10_000, maxBytes: 4 * (MAX_EVENT_DATA_BYTES + 4096) });
    const data = { blob: 'x'.repeat(MAX_EVENT_DATA_BYTES - 64) };
    let largest = 0;
    for (let i = 0; i < 60; i++) {
      const e = await box.append('status', data);
      await box.ack(e.seq);
      largest = Math.max(largest, statSync(join(d, OUTBOX_FILE)).size);
    }
    expect(largest).toBeLessThanOrEqual(box.fileLimit);
    await box.close();
    const again = await Outbox.open({ dir: d, key });
    expect(again.lastSeq).toBe(60);
    expect(again.size).toBe(0);
    await again.close();
  }, 120_000);
});

describe('controller agent records', () => {
  it('a 100 MB record and a FIFO in the state directory are skipped with the reason; the other records load', async () => {
    const stateDir = join(dir, 'controller-state');
    mkdirSync(stateDir);
    writeFileSync(join(stateDir, 'vm-good.json'), JSON.stringify({ agentId: 'vm-good', lastSeq: 3, gaps: [], attestedKeys: [], recentEvents: [] }));
    writeFileSync(join(stateDir, 'vm-big.json'), '');
    truncateSync(join(stateDir, 'vm-big.json'), 100 * 1024 * 1024);
    execFileSync('mkfifo', [join(stateDir, 'vm-fifo.json')]);
    const problems: Array<[string, string]> = [];
    const registry = new AgentRegistry(stateDir);
    await registry.load((file, why) => problems.push([file, why]));
    expect(registry.has('vm-good')).toBe(true);
    expect(registry.get('vm-good').lastSeq).toBe(3);
    expect(registry.has('vm-big')).toBe(false);
    expect(registry.has('vm-fifo')).toBe(false);
    expect(problems.sort()).toEqual([
      ['vm-big.json', expect.stringMatching(/104857600 bytes, over the 4 MiB limit for controller agent records/)],
      ['vm-fifo.json', expect.stringMatching(/is a FIFO or pipe/)],
    ]);
  });
});
