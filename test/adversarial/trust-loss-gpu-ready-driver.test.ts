/**
 * The fake libnvidia-ml models the driver's rules for the CC ready state, so the agent's gate and
 * its clear-on-trust-loss consequence are tested against them: setting "accepting work" needs CC on
 * for the system and every GPU; clearing is allowed (unless the driver treats ready as terminal);
 * the state outlives the process that set it; a GPU with CC off refuses attestation reports, and the
 * NVML source reports that under that GPU instead of failing every GPU.
 */
import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fakesDir, repoRoot } from '../helpers/paths.js';
import { built } from '../helpers/built.js';

const run = promisify(execFile);
const OPS = built('test/adversarial/fixtures/nvml-ready-ops.mjs');

async function ops(list: string[], env: Record<string, string>): Promise<any[]> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('FAKE_NVML_') && !k.startsWith('CVM_NVML_')));
  const { stdout } = await run(process.execPath, [OPS, ...list], {
    cwd: repoRoot,
    env: { ...clean, CVM_NVML_LIBRARY: join(fakesDir, 'libnvidia-ml.so.1'), FAKE_NVML_GPUS: '2', ...env },
    timeout: 60_000,
  });
  // A set's value is its success; a get's value is the state read.
  return (JSON.parse(stdout.trim().split('\n').pop()!) as any[]).map((r) => (r.op.startsWith('set') && r.ok ? { ...r, value: true } : r));
}

describe('fake driver: ready-state rules', () => {
  it('the ready state persists across processes, and clearing it is allowed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cvm-ready-'));
    const state = join(dir, 'state');
    const a = await ops(['get', 'set1', 'get'], { FAKE_NVML_STATE_FILE: state });
    expect(a.map((r) => r.value)).toEqual([false, true, true]);
    expect(readFileSync(state, 'utf8').trim()).toBe('1');
    // Another process (a restarted agent, nvidia-smi) sees what the first one set, and may clear it.
    const b = await ops(['get', 'set0', 'get'], { FAKE_NVML_STATE_FILE: state });
    expect(b.map((r) => r.value)).toEqual([true, true, false]);
    expect((await ops(['get'], { FAKE_NVML_STATE_FILE: state }))[0].value).toBe(false);
  }, 60_000);

  it('refuses to mark GPUs ready while CC is off on any GPU (and leaves the state alone)', async () => {
    const state = join(mkdtempSync(join(tmpdir(), 'cvm-ready-')), 'state');
    const off1 = await ops(['set1', 'get'], { FAKE_NVML_STATE_FILE: state, FAKE_NVML_CC_1: 'off' });
    expect(off1[0]).toMatchObject({ ok: false, nvmlName: 'NVML_ERROR_NOT_SUPPORTED' });
    expect(off1[1].value).toBe(false);
    const offAll = await ops(['set1'], { FAKE_NVML_CC: 'off' });
    expect(offAll[0]).toMatchObject({ ok: false, nvmlName: 'NVML_ERROR_NOT_SUPPORTED' });
  }, 60_000);

  it('a driver that treats ready as terminal refuses the clear; the state stays set', async () => {
    const state = join(mkdtempSync(join(tmpdir(), 'cvm-ready-')), 'state');
    const r = await ops(['set1', 'set0', 'get'], { FAKE_NVML_STATE_FILE: state, FAKE_NVML_READY_ONE_WAY: '1' });
    expect(r[0].ok).toBe(true);
    expect(r[1]).toMatchObject({ ok: false, nvmlName: 'NVML_ERROR_INVALID_ARGUMENT' });
    expect(r[2].value).toBe(true);
  }, 60_000);

  it('CC off on gpu1 is reported under gpu1; gpu0 still gives evidence', async () => {
    const [r] = await ops(['collect'], { FAKE_NVML_CC_1: 'off' });
    expect(r.ok).toBe(true);
    expect(r.value[0]).toMatchObject({ index: 0, evidence: true, cc: true });
    expect(r.value[1]).toMatchObject({ index: 1, code: 'ERR_GPU_CC_OFF' });
    expect(r.value[1].message).toMatch(/^GPU 1: CC mode is off on this GPU/);
  }, 60_000);
});
