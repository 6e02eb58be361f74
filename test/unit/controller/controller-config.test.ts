/** Controller config: defaults, named-key errors, cross-key rules, token files hashed, bearer check, release rule. */
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { repoRoot } from '../../helpers/paths.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPairSync } from 'node:crypto';
import { ConfigError } from '../../../agent/errors.js';
import { CONTROLLER_DEFAULTS, loadControllerConfig, parseControllerConfig, tokenDigest } from '../../../agent/controller/config.js';
import { HASH_WINDOW } from '../../../agent/controller/registry.js';
import { bearerToken, checkBearer } from '../../../agent/controller/auth.js';
import { releaseDecision } from '../../../agent/controller/secret-release.js';
import { ChallengeBook } from '../../../agent/controller/challenges.js';
import { MemoryChallenges } from '../../../agent/controller/store/memory-challenges.js';
import { TokenSigner } from '../../../agent/controller/signer.js';

describe('controller config', () => {
  it('an empty file gives safe defaults: loopback, 300 s tokens, 60 s challenges, simulation NOT trusted, secrets on affirming only', () => {
    const c = parseControllerConfig('');
    expect(c.listen).toEqual({ host: '127.0.0.1', port: 8443 });
    expect(c.tokenTtlSec).toBe(300);
    expect(c.challengeTtlSec).toBe(60);
    expect(c.simulation.trust).toBe(false);
    expect(c.releaseSecretsOn).toBe('affirming');
    expect(c.tokens).toEqual([]);
  });

  it('every problem is reported with its key', () => {
    const text = [
      'listen: {port: 70000}',
      'tokenTtlSec: "soon"',
      'agents: {tokens: [{sha256: nothex}, {agentId: "a/b", file: x}, {}]}',
      'secrets: [{name: s1, value: v, file: f}, {name: s1, value: w}]',
      'simulation: {trust: true}',
      'tls: {cert: c.pem, requireClientCert: true}',
      'releaseSecretsOn: always',
      'colour: blue',
    ].join('\n');
    let err: unknown;
    try {
      parseControllerConfig(text, 'ctl.yaml');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const msg = (err as Error).message;
    for (const key of [
      'listen.port',
      'tokenTtlSec',
      'agents.tokens[0].sha256',
      'agents.tokens[1].agentId',
      'agents.tokens[2]: needs exactly one of sha256 or file',
      'secrets[0]: needs exactly one of file or value',
      'secrets[1].name: "s1" is listed twice',
      'simulation.dir: required',
      'tls: needs both cert and key',
      'tls.requireClientCert: needs tls.clientCa',
      'releaseSecretsOn',
      'colour: unknown key',
    ])
      expect(msg).toContain(key);
  });

  it('rejects invalid YAML and duplicate keys', () => {
    expect(() => parseControllerConfig('listen: [')).toThrow(ConfigError);
    expect(() => parseControllerConfig('tokenTtlSec: 10\ntokenTtlSec: 20')).toThrow(/not valid YAML/);
  });

  it('loads referenced files relative to the config file; token files are hashed, never kept', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ctl-cfg-'));
    writeFileSync(join(dir, 'agent.token'), 's3cret-token\n');
    writeFileSync(join(dir, 'secret.bin'), Buffer.from([1, 2, 3]));
    writeFileSync(join(dir, 'snp.yaml'), 'allowDebug: false\nvmpl: [0]\n');
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    writeFileSync(join(dir, 'signing.pem'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
    writeFileSync(
      join(dir, 'ctl.yaml'),
      'agents: {tokens: [{agentId: vm-1, file: agent.token}]}\npolicy: {snp: snp.yaml}\nsigningKey: signing.pem\nsecrets: [{name: k, file: secret.bin, agents: [vm-1]}]\n',
    );
    const r = await loadControllerConfig(join(dir, 'ctl.yaml'));
    expect(r.tokens).toEqual([{ agentId: 'vm-1', sha256: tokenDigest('s3cret-token') }]);
    expect(JSON.stringify(r.tokens)).not.toContain('s3cret-token');
    expect(r.secrets).toEqual([{ name: 'k', value: Buffer.from([1, 2, 3]), agents: ['vm-1'] }]);
    expect(r.snpPolicy?.vmpl).toEqual([0]);
    const signer = await TokenSigner.create(r.signingKeyPem);
    expect(signer.ephemeral).toBe(false);
    expect(signer.jwks().keys[0]).toMatchObject({ kty: 'EC', crv: 'P-384', alg: 'ES384' });
    expect(signer.jwks().keys[0]).not.toHaveProperty('d');

    writeFileSync(join(dir, 'bad.yaml'), 'policy: {gpu: missing.yaml}\n');
    await expect(loadControllerConfig(join(dir, 'bad.yaml'))).rejects.toThrow(/policy.gpu: cannot read .*missing.yaml/);
    const { privateKey: p256 } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    await expect(TokenSigner.create(p256.export({ type: 'pkcs8', format: 'pem' }).toString())).rejects.toThrow(ConfigError);
  });
});

describe('bearer tokens', () => {
  const accepted = [{ sha256: tokenDigest('alpha') }, { agentId: 'vm-2', sha256: tokenDigest('beta') }];
  it('accepts only configured tokens, reports the bound agent id', () => {
    expect(checkBearer('Bearer alpha', accepted)).toEqual({ ok: true });
    expect(checkBearer('Bearer beta', accepted)).toEqual({ ok: true, agentId: 'vm-2' });
    expect(checkBearer('Bearer gamma', accepted).ok).toBe(false);
    expect(checkBearer('Basic alpha', accepted).ok).toBe(false);
    expect(checkBearer(undefined, accepted).ok).toBe(false);
    expect(checkBearer(['Bearer alpha'], accepted).ok).toBe(false);
    expect(bearerToken('Bearer a b')).toBeUndefined();
  });
});

describe('secret release rule', () => {
  it('affirming: every device affirming; warning: no device worse than warning; nothing for none/contraindicated/empty', () => {
    const aff = [
      { id: 'cpu0', status: 'affirming' as const },
      { id: 'gpu0', status: 'affirming' as const },
    ];
    const warnGpu = [
      { id: 'cpu0', status: 'affirming' as const },
      { id: 'gpu0', status: 'warning' as const },
    ];
    const bad = [
      { id: 'cpu0', status: 'affirming' as const },
      { id: 'gpu0', status: 'contraindicated' as const },
    ];
    expect(releaseDecision(aff, 'affirming').release).toBe(true);
    expect(releaseDecision(warnGpu, 'affirming')).toMatchObject({ release: false, reason: expect.stringContaining('gpu0 is warning') });
    expect(releaseDecision(warnGpu, 'warning').release).toBe(true);
    expect(releaseDecision(bad, 'warning').release).toBe(false);
    expect(releaseDecision([{ id: 'cpu0', status: 'none' }], 'warning').release).toBe(false);
    expect(releaseDecision([], 'warning').release).toBe(false);
  });
});

describe('controller config: store', () => {
  it('store.url selects PostgreSQL; a bad URL is named without repeating it (it may hold a password); stateDir and store.url exclude each other', () => {
    const c = parseControllerConfig('store: {url: "postgres://cvm:s3cret@db.example:5432/cvm", replica: ctl-1, poolSize: 20}\n');
    expect(c.store).toEqual({ url: 'postgres://cvm:s3cret@db.example:5432/cvm', replica: 'ctl-1', poolSize: 20 });
    expect(c.stateDir).toBeUndefined();
    const problems = (yaml: string) => {
      try {
        parseControllerConfig(yaml);
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        return (err as Error).message;
      }
      throw new ConfigError('accepted');
    };
    const notUrl = problems('store: {url: "s3cret-not-a-url"}\n');
    expect(notUrl).toMatch(/store\.url: not a URL/);
    expect(notUrl).not.toContain('s3cret');
    const mysql = problems('store: {url: "mysql://u:s3cret@h/db"}\n');
    expect(mysql).toMatch(/store\.url: must be a postgres:\/\/ or postgresql:\/\/ URL, got a mysql:\/\/ URL/);
    expect(mysql).not.toContain('s3cret');
    expect(problems('store: {url: "postgres://u@h"}\n')).toMatch(/store\.url: names no database/);
    expect(problems('store: {replica: r1}\n')).toMatch(/store\.url: required/);
    expect(problems('stateDir: /var/lib/x\nstore: {url: "postgres://u@h/db"}\n')).toMatch(/stateDir: not used with store\.url/);
    expect(problems('store: {url: "postgres://u@h/db", replica: "a b", poolSize: 0}\n')).toMatch(
      /store\.replica: must be a replica name[\s\S]*store\.poolSize: must be an integer between 1 and 1000/,
    );
  });

  it('store.retention: defaults, overrides, the embedded store with only retention, each key validated; store.leaseTtlSec', () => {
    const problems = (yaml: string) => {
      try {
        parseControllerConfig(yaml);
      } catch (err) {
        return (err as Error).message;
      }
      throw new ConfigError('accepted');
    };
    expect(parseControllerConfig('{}').retention).toEqual(CONTROLLER_DEFAULTS.retention);
    const c = parseControllerConfig('store: {url: "postgres://u@h/db", leaseTtlSec: 30, retention: {eventsPerAgent: 1000, releaseDays: 90}}\n');
    expect(c.retention).toEqual({ ...CONTROLLER_DEFAULTS.retention, eventsPerAgent: 1000, releaseDays: 90 });
    expect(c.store).toEqual({ url: 'postgres://u@h/db', leaseTtlSec: 30 });
    // Only retention: the embedded store (stateDir), its release log capped.
    const e = parseControllerConfig('stateDir: /var/lib/x\nstore: {retention: {releaseLogBytes: 1048576}}\n');
    expect(e.store).toBeUndefined();
    expect(e.retention.releaseLogBytes).toBe(1048576);
    expect(problems('store: {leaseTtlSec: 30}\n')).toMatch(/store\.url: required/);
    // Fewer events than the seqs whose hashes the record keeps (registry.ts HASH_WINDOW) is refused.
    expect(HASH_WINDOW).toBe(256);
    const bad = problems(
      'store: {retention: {eventsPerAgent: 255, verdictsPerAgent: 0, releaseDays: 0, releases: 10, releaseLogBytes: 1000, pruneIntervalSec: 1, extra: 1}}\n',
    );
    for (const k of ['eventsPerAgent', 'verdictsPerAgent', 'releaseDays', 'releases', 'releaseLogBytes', 'pruneIntervalSec', 'extra'])
      expect(bad).toContain(`store.retention.${k}`);
    expect(problems('store: {url: "postgres://u@h/db", leaseTtlSec: 1}\n')).toMatch(/store\.leaseTtlSec: must be an integer between 3 and 600/);
  });
});

describe('docs/controller.md', () => {
  it('the replica example config ("Example: three replicas") is valid', () => {
    const doc = readFileSync(join(repoRoot, 'docs', 'controller.md'), 'utf8');
    const section = doc.slice(doc.indexOf('### Example: three replicas'));
    const yaml = /```yaml\n([\s\S]*?)```/.exec(section)?.[1];
    expect(yaml).toBeDefined();
    const c = parseControllerConfig(yaml!, 'docs example', '/etc/cvm-agent-controller');
    expect(c.store).toMatchObject({ replica: 'c1', poolSize: 10, url: expect.stringMatching(/^postgres:\/\//) });
    expect(c.signingKey).toBe('/etc/cvm-agent-controller/keys/token-signing.pem');
  });
});

describe('challenge book', () => {
  const binding = { agentId: 'vm-1', sessionKid: 'kid-1', replica: 'r1' };
  it('answers once, before expiry; tells replay, expiry and unknown ids apart', async () => {
    const book = new ChallengeBook(1000, binding);
    const t0 = new Date(1_000_000);
    const { challenge: c, stored } = book.issue(t0);
    await stored;
    expect(c.nonce.length).toBe(32);
    expect(book.issue(t0).challenge.nonce.equals(c.nonce)).toBe(false);
    expect((await book.take(c.id, new Date(t0.getTime() + 999))).ok).toBe(true);
    expect(await book.take(c.id, t0)).toMatchObject({ ok: false, code: 'replayed-challenge' });
    const late = book.issue(t0).challenge;
    expect(await book.take(late.id, new Date(t0.getTime() + 1001))).toMatchObject({ ok: false, code: 'expired-challenge' });
    expect(await book.take('never-issued', t0)).toMatchObject({ ok: false, code: 'unknown-challenge' });
  });

  it('a challenge answers only for the agent id and session key it was issued to, on any book sharing the store', async () => {
    const store = new MemoryChallenges();
    const t0 = new Date(1_000_000);
    const a = new ChallengeBook(1000, binding, store);
    const c = a.issue(t0).challenge;
    expect(await new ChallengeBook(1000, { ...binding, agentId: 'vm-2' }, store).take(c.id, t0)).toMatchObject({ ok: false, code: 'unknown-challenge' });
    expect(await new ChallengeBook(1000, { ...binding, sessionKid: 'other' }, store).take(c.id, t0)).toMatchObject({ ok: false, code: 'unknown-challenge' });
    // Another connection of the same agent and key (a reconnect) may answer it, once.
    expect((await new ChallengeBook(1000, { ...binding, replica: 'r2' }, store).take(c.id, t0)).ok).toBe(true);
    expect(await a.take(c.id, t0)).toMatchObject({ ok: false, code: 'replayed-challenge' });
  });

  it('keeps at most 16 open challenges per agent: the oldest count as expired', async () => {
    const store = new MemoryChallenges();
    const t0 = new Date(1_000_000);
    const book = new ChallengeBook(60_000, binding, store);
    const ids = Array.from({ length: 17 }, () => book.issue(t0).challenge.id);
    expect(store.outstanding('vm-1')).toBe(16);
    expect(await book.take(ids[0]!, t0)).toMatchObject({ ok: false, code: 'expired-challenge' });
    expect((await book.take(ids[16]!, t0)).ok).toBe(true);
  });
});

describe('cvm-agent controller CLI', () => {
  const io = () => {
    const err: string[] = [];
    return { err, io: { stdout: { write: () => true }, stderr: { write: (s: string) => err.push(s) }, env: {}, cwd: '/' } };
  };
  it('bad --listen and an unreadable or invalid config exit 2 with the reason', async () => {
    const { main } = await import('../../../agent/cli/main.js');
    const a = io();
    expect(await main(['controller', '--listen', 'no-port'], a.io)).toBe(2);
    expect(a.err.join('')).toMatch(/--listen must be HOST:PORT/);
    const b = io();
    expect(await main(['controller', '--config', '/nonexistent/ctl.yaml'], b.io)).toBe(2);
    expect(b.err.join('')).toMatch(/cannot read \/nonexistent\/ctl.yaml/);
    const dir = mkdtempSync(join(tmpdir(), 'ctl-cli-'));
    writeFileSync(join(dir, 'c.yaml'), 'challengeTtlSec: 0\n');
    const c = io();
    expect(await main(['controller', '--config', join(dir, 'c.yaml')], c.io)).toBe(2);
    expect(c.err.join('')).toMatch(/challengeTtlSec: must be an integer between 1 and 3600/);
  });
});
