/**
 * The boot test's fault injection (SIGUSR2 blocks the event loop) exists only when the environment
 * asks for it with CVM_AGENT_TEST_HOOKS=1; the shipped unit never sets it.
 */
import { describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { installTestHooks } from '../../../agent/daemon/test-hooks.js';
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
});
