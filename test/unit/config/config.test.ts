import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { parseConfig, DEFAULTS } from '../../../agent/config/schema.js';
import { ConfigError } from '../../../agent/errors.js';
import { isLoopback, parseListenAddress } from '../../../agent/config/listen-address.js';
import { loadValidatedConfig } from '../../../agent/daemon/preflight.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

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

describe('simulation.ppcie', () => {
  it('is off by default (no switches, 2 simulated GPUs); on, it means 8 GPUs unless told otherwise', () => {
    expect(parseConfig('').simulation).toMatchObject({ ppcie: false, gpus: 2 });
    expect(parseConfig('simulation: {ppcie: true}').simulation).toMatchObject({ ppcie: true, gpus: 8 });
    expect(parseConfig('simulation: {ppcie: true, gpus: 8}').simulation).toMatchObject({ ppcie: true, gpus: 8 });
    expect(parseConfig('simulation: {ppcie: false, gpus: 3}').simulation).toMatchObject({ ppcie: false, gpus: 3 });
  });

  it('refuses another GPU count, GPUs turned off, and a non-boolean, naming the key', () => {
    const problems = (text: string) => {
      try {
        parseConfig(text);
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        return (err as Error).message;
      }
      throw new Error(`accepted: ${text}`);
    };
    expect(problems('simulation: {ppcie: true, gpus: 2}')).toMatch(/simulation\.ppcie: a simulated HGX PPCIe system has 8 GPUs; simulation\.gpus is 2/);
    expect(problems('simulation: {ppcie: true}\ngpus: {enabled: "off"}')).toMatch(/simulation\.ppcie: .*gpus\.enabled is "off"/);
    expect(problems('simulation: {ppcie: "yes"}')).toMatch(/simulation\.ppcie/);
  });
});

describe('metrics.listen', () => {
  it('is off by default, and takes HOST:PORT with an explicit host', () => {
    expect(DEFAULTS.metrics.listen).toBeUndefined();
    expect(parseConfig('').metrics.listen).toBeUndefined();
    for (const listen of ['127.0.0.1:9464', '[::1]:9464', 'localhost:9464', '0.0.0.0:9464', 'metrics.example:0']) {
      expect(parseConfig(`metrics: {listen: "${listen}"}`).metrics.listen).toBe(listen);
    }
  });

  it('refuses an address without a host, a bad port or a bad IPv6 literal, naming the key', () => {
    for (const [listen, why] of [
      [':9464', /metrics\.listen: must be HOST:PORT with an explicit host/],
      ['9464', /metrics\.listen: must be HOST:PORT/],
      ['127.0.0.1', /metrics\.listen: must be HOST:PORT/],
      ['127.0.0.1:65536', /metrics\.listen: port 65536 is out of range/],
      ['[1::2::3]:9464', /metrics\.listen: "1::2::3" is not an IPv6 address/],
      ['http://127.0.0.1:9464', /metrics\.listen: must be HOST:PORT/],
    ] as const) {
      expect(() => parseConfig(`metrics: {listen: "${listen}"}`), listen).toThrow(why);
    }
    expect(() => parseConfig('metrics: {listen: 9464}')).toThrow(/metrics\.listen: must be HOST:PORT/);
    expect(() => parseConfig('metrics: {port: 9464}')).toThrow(/metrics\.port: unknown key/);
  });

  it('config check (preflight) reports it like every other key', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cvm-config-metrics-'));
    try {
      const file = join(dir, 'config.yaml');
      writeFileSync(file, `metrics: {listen: ":9464"}\napi: {socket: ${join(dir, 'api.sock')}}\n`);
      await expect(loadValidatedConfig(file, {})).rejects.toThrow(/1 problem:\n {2}- metrics\.listen: must be HOST:PORT/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('listen addresses', () => {
  it('parses host and port; IPv6 in brackets', () => {
    expect(parseListenAddress('127.0.0.1:9464')).toEqual({ host: '127.0.0.1', port: 9464 });
    expect(parseListenAddress('[::1]:0')).toEqual({ host: '::1', port: 0 });
    expect(parseListenAddress('localhost:80')).toEqual({ host: 'localhost', port: 80 });
    expect(parseListenAddress(':80')).toHaveProperty('error');
  });

  it('loopback is localhost, 127.0.0.0/8 and ::1 (also IPv4-mapped); any other name or address is not', () => {
    for (const h of ['localhost', 'LOCALHOST', '127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1']) expect(isLoopback(h), h).toBe(true);
    for (const h of ['0.0.0.0', '::', '10.0.0.1', '128.0.0.1', 'metrics.example', '127.example', '::ffff:10.0.0.1']) expect(isLoopback(h), h).toBe(false);
  });
});

describe('config: controller.urls (replicas)', () => {
  const problems = (yaml: string) => {
    try {
      parseConfig(yaml);
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as Error).message;
    }
    throw new ConfigError('accepted');
  };
  it('takes a list of replicas (controller.url is then the first), under the same rules as controller.url', () => {
    const c = parseConfig('controller:\n  urls: [wss://c1.example/v1/link, wss://c2.example/v1/link]\n  caFile: /etc/cvm-agent/ca.pem\n');
    expect(c.controller.urls).toEqual(['wss://c1.example/v1/link', 'wss://c2.example/v1/link']);
    expect(c.controller.url).toBe('wss://c1.example/v1/link');
    expect(problems('controller:\n  url: wss://a/v1/link\n  urls: [wss://b/v1/link]\n  caFile: /ca.pem\n')).toMatch(
      /controller\.urls: set either controller\.url or controller\.urls/,
    );
    expect(problems('controller:\n  urls: []\n')).toMatch(/controller\.urls: must list at least one URL/);
    expect(problems('controller:\n  urls: [wss://a/v1/link, ws://b/v1/link]\n  tokenKey: /k.pem\n')).toMatch(/controller\.urls: ws:\/\/ is unencrypted/);
    expect(problems('controller:\n  urls: [wss://a/v1/link]\n')).toMatch(/controller\.tokenKey: required/);
    expect(problems('controller:\n  urls: [https://a/v1/link]\n  tokenKey: /k.pem\n')).toMatch(/controller\.urls\[0\]: must be a ws:\/\/ or wss:\/\/ URL/);
  });
});
