import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { parseConfig, DEFAULTS } from '../../../agent/config/schema.js';
import { ConfigError } from '../../../agent/errors.js';

describe('config', () => {
  it('gives production defaults for an empty file', () => {
    const c = parseConfig('');
    expect(c.tee).toBe('auto');
    expect(c.api.socket).toBe('/run/cvm-agent/api.sock');
    expect(c.schedule.cron).toBe(DEFAULTS.schedule.cron);
    expect(c.policy.allowDebug).toBe(false);
  });

  it('merges nested keys over defaults', () => {
    const c = parseConfig('schedule:\n  jitterSec: 5\n  retry:\n    maxSec: 60\napi:\n  authorization:\n    status:\n      uids: [root, "1000"]\n');
    expect(c.schedule.jitterSec).toBe(5);
    expect(c.schedule.cron).toBe(DEFAULTS.schedule.cron);
    expect(c.schedule.retry).toEqual({ initialSec: 5, maxSec: 60 });
    expect(c.api.authorization.status).toEqual({ uids: ['root', '1000'] });
  });

  it('names the key and the problem for every error', () => {
    let err: unknown;
    try {
      parseConfig('tee: sgx\nschedule:\n  jitterSec: -1\n  cronn: "* * * * *"\napi:\n  socket: relative.sock\n  authorization:\n    everything: {}\n');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const msg = (err as Error).message;
    expect(msg).toContain('tee: must be one of "auto", "snp", "tsm", "azure", "simulated", got "sgx"');
    expect(msg).toContain('schedule.jitterSec: must be an integer between 0 and 3600, got -1');
    expect(msg).toContain('schedule.cronn: unknown key');
    expect(msg).toContain('api.socket: must be an absolute path');
    expect(msg).toContain('api.authorization.everything: "everything" is not an endpoint name');
  });

  it('rejects YAML that does not parse and retry bounds that contradict', () => {
    expect(() => parseConfig('tee: [unclosed')).toThrow(/not valid YAML/);
    expect(() => parseConfig('schedule:\n  retry:\n    initialSec: 100\n    maxSec: 10\n')).toThrow(/initialSec must not exceed maxSec/);
    expect(() => parseConfig('- a\n- b\n')).toThrow(ConfigError);
  });

  it('never throws anything but ConfigError on arbitrary text', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (text) => {
        try {
          parseConfig(text);
        } catch (e) {
          expect(e).toBeInstanceOf(ConfigError);
        }
      }),
      { numRuns: 2000 },
    );
  });
});
