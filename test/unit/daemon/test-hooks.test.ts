/**
 * The end-to-end tests' fault injection (SIGUSR2 blocks the event loop; a damaged simulated NVSwitch)
 * exists only when the environment asks for it with CVM_AGENT_TEST_HOOKS=1; the shipped unit never sets it.
 */
import { describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { installTestHooks, switchTamperHook } from '../../../agent/daemon/test-hooks.js';
import { createLogger } from '../../../agent/util/log.js';

function logger() {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      lines.push(String(chunk));
      cb();
    },
  });
  return { log: createLogger('info', { destination: sink }), lines };
}

describe('test hooks', () => {
  it('are not installed without CVM_AGENT_TEST_HOOKS=1 (SIGUSR2 keeps its default action)', () => {
    for (const env of [{}, { CVM_AGENT_TEST_HOOKS: '0' }, { CVM_AGENT_TEST_HOOKS: 'yes' }]) {
      const before = process.listenerCount('SIGUSR2');
      const { log, lines } = logger();
      expect(installTestHooks(env, log)).toBe(false);
      expect(process.listenerCount('SIGUSR2')).toBe(before);
      expect(lines).toEqual([]);
    }
  });

  it('with CVM_AGENT_TEST_HOOKS=1: a SIGUSR2 handler, announced by a warning', () => {
    const before = process.listeners('SIGUSR2');
    const { log, lines } = logger();
    try {
      expect(installTestHooks({ CVM_AGENT_TEST_HOOKS: '1' }, log)).toBe(true);
      expect(process.listenerCount('SIGUSR2')).toBe(before.length + 1);
      expect(JSON.parse(lines[0]!)).toMatchObject({ level: 'warn', msg: expect.stringContaining('never set this in production') });
    } finally {
      for (const l of process.listeners('SIGUSR2')) if (!before.includes(l)) process.removeListener('SIGUSR2', l);
    }
  });

  it('the switch tamper hook: only with CVM_AGENT_TEST_HOOKS=1 and a well-formed value, announced by a warning', () => {
    const { log, lines } = logger();
    expect(switchTamperHook({ CVM_AGENT_TEST_SWITCH_TAMPER: '2:signature' }, log)).toBeUndefined();
    expect(switchTamperHook({ CVM_AGENT_TEST_HOOKS: '0', CVM_AGENT_TEST_SWITCH_TAMPER: '2:signature' }, log)).toBeUndefined();
    expect(switchTamperHook({ CVM_AGENT_TEST_HOOKS: '1' }, log)).toBeUndefined();
    expect(lines).toEqual([]);
    for (const bad of ['2', 'x:signature', '2:everything', '123:signature', ' 2:signature'])
      expect(switchTamperHook({ CVM_AGENT_TEST_HOOKS: '1', CVM_AGENT_TEST_SWITCH_TAMPER: bad }, log)).toBeUndefined();
    expect(lines.map((l) => JSON.parse(l).msg)).toEqual(Array(5).fill(expect.stringContaining('test hook ignored')));
    expect(switchTamperHook({ CVM_AGENT_TEST_HOOKS: '1', CVM_AGENT_TEST_SWITCH_TAMPER: '3:foreign-gpu' }, log)).toEqual({ index: 3, how: 'foreign-gpu' });
    expect(JSON.parse(lines.at(-1)!)).toMatchObject({ level: 'warn', msg: expect.stringContaining('never set this in production') });
  });
});
