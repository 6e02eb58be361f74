/**
 * A hostile agent against the REAL reference controller over loopback, claiming an agent id that is
 * not its own: with another agent's bound token, with a fleet (unbound) token for an id that has a
 * bound token, with a client certificate that names another id. Secrets restricted to an id go only to
 * a session whose credential proves that id, and a controller config that restricts secrets by id
 * while accepting an unbound token is refused at start. Issue 9, item 2.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compactDecrypt } from 'jose';
import { parseControllerConfig, tokenDigest } from '../../agent/controller/config.js';
import { secretsFor } from '../../agent/controller/secret-release.js';
import { ConfigError } from '../../agent/errors.js';
import { CLOSE } from '../../agent/link/protocol.js';
import { FakeAgent, makeBundle, openSim, startController, TOKEN, type ControllerUnderTest, type Sim } from '../helpers/controller-fixture.js';
import { makeTestPki } from '../helpers/test-controller.js';
import { CLI } from '../helpers/daemon-process.js';
import { repoRoot } from '../helpers/paths.js';

const run = promisify(execFile);
const bound = (tokenA: string, tokenB: string) =>
  [
    'agents:',
    '  tokens:',
    `    - {agentId: vm-a, sha256: ${tokenDigest(tokenA).toString('hex')}}`,
    `    - {agentId: vm-b, sha256: ${tokenDigest(tokenB).toString('hex')}}`,
    'secrets:',
    '  - {name: fleet-key, value: for-every-attested-agent}',
    '  - {name: vm-a-key, value: only-for-vm-a, agents: [vm-a]}',
    '',
  ].join('\n');

let sim: Sim;
let boundCtl: ControllerUnderTest; // tokens bound to vm-a and vm-b, a secret restricted to vm-a
let fleetCtl: ControllerUnderTest; // the fixture's fleet token + a token bound to "bound-agent"
let tmp: string;

beforeAll(async () => {
  sim = await openSim();
  tmp = mkdtempSync(join(tmpdir(), 'cvm-hostile-claims-'));
  boundCtl = await startController(sim, 'simulation: {trust: true, dir: SIMDIR}\n', undefined, bound('token-a', 'token-b'));
  fleetCtl = await startController(sim, 'simulation: {trust: true, dir: SIMDIR}\n');
}, 120_000);

afterAll(async () => {
  await Promise.all([boundCtl, fleetCtl].map((c) => c?.controller.close()));
  if (sim) rmSync(sim.dir, { recursive: true, force: true });
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

async function attest(url: string, agentId: string, opts: Parameters<typeof FakeAgent.connect>[1]) {
  const a = await FakeAgent.connect(url, opts);
  a.hello(agentId);
  const challenge = await a.next('challenge');
  await a.answer(challenge, await makeBundle(sim, Buffer.from(challenge.nonce, 'hex'), a.key.publicJwk, agentId));
  return { agent: a, verdict: await a.next('verdict') };
}

describe('hostile agent: claiming another agent id', () => {
  it('a controller config that restricts secrets by id while accepting a fleet token is refused at start, saying why', async () => {
    const yaml = `agents:\n  tokens:\n    - {sha256: ${tokenDigest(TOKEN).toString('hex')}}\n    - {agentId: vm-a, sha256: ${tokenDigest('token-a').toString('hex')}}\nsecrets:\n  - {name: open, value: x}\n  - {name: vm-a-key, value: y, agents: [vm-a]}\n`;
    expect(() => parseControllerConfig(yaml, 'ctl.yaml')).toThrow(ConfigError);
    expect(() => parseControllerConfig(yaml, 'ctl.yaml')).toThrow(
      /secrets\[1\]\.agents: restricts a secret to agent ids, but agents\.tokens\[0\] is not bound to an agent id, so its holder could claim any id/,
    );
    // The command refuses to start: exit 2 with the one-line reason, no stack trace.
    writeFileSync(join(tmp, 'ctl.yaml'), `listen: {host: 127.0.0.1, port: 0}\n${yaml}`);
    const r = await run(process.execPath, [CLI, 'controller', '--config', join(tmp, 'ctl.yaml')], { cwd: repoRoot, timeout: 60_000 }).then(
      () => ({ code: 0, stderr: '' }),
      (err: { code: number; stderr: string }) => ({ code: err.code, stderr: err.stderr }),
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/is not bound to an agent id/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  }, 60_000);

  it("vm-b's bound token saying agentId vm-a is refused before any challenge (4003), and gets nothing", async () => {
    const a = await FakeAgent.connect(boundCtl.controller.address().wsUrl, { token: 'token-b' });
    a.hello('vm-a');
    const closed = await a.waitClosed();
    expect(closed.code).toBe(CLOSE.FORBIDDEN);
    expect(a.inbox.map((m) => m.type)).toEqual(['error']);
    expect(a.inbox[0]).toMatchObject({ code: 'forbidden' });
  });

  it('an attested vm-b (its own bound token) receives only the fleet secret, never the secret restricted to vm-a', async () => {
    const { agent, verdict } = await attest(boundCtl.controller.address().wsUrl, 'vm-b', { token: 'token-b' });
    expect(verdict.secrets?.map((s) => s.name)).toEqual(['fleet-key']);
    agent.close();
    // Control: vm-a with its bound token does get it.
    const { agent: a, verdict: va } = await attest(boundCtl.controller.address().wsUrl, 'vm-a', { token: 'token-a' });
    expect(va.secrets?.map((s) => s.name).sort()).toEqual(['fleet-key', 'vm-a-key']);
    const jwe = va.secrets!.find((s) => s.name === 'vm-a-key')!.jwe;
    expect(Buffer.from((await compactDecrypt(jwe, a.key.agreementKey)).plaintext).toString()).toBe('only-for-vm-a');
    a.close();
  }, 60_000);

  it('a fleet token cannot claim an id that a token is bound to (4003)', async () => {
    const a = await FakeAgent.connect(fleetCtl.controller.address().wsUrl, { token: TOKEN });
    a.hello('bound-agent');
    expect((await a.waitClosed()).code).toBe(CLOSE.FORBIDDEN);
    expect(a.inbox.some((m) => m.type === 'welcome' || m.type === 'challenge')).toBe(false);
  });

  it('restricted secrets are released only to a credential that proves the id (defence in depth below the config check)', () => {
    const secrets = [
      { name: 'open', value: Buffer.from('o') },
      { name: 'a-only', value: Buffer.from('a'), agents: ['vm-a'] },
    ];
    expect(secretsFor('vm-a', secrets, false).map((s) => s.name)).toEqual(['open']);
    expect(secretsFor('vm-a', secrets, true).map((s) => s.name)).toEqual(['open', 'a-only']);
    expect(secretsFor('vm-b', secrets, true).map((s) => s.name)).toEqual(['open']);
  });
});

describe('hostile agent: a client certificate names the ids it may use', () => {
  let tlsCtl: ControllerUnderTest;
  let pkiA: ReturnType<typeof makeTestPki>;

  beforeAll(async () => {
    pkiA = makeTestPki('idp', 'vm-a');
    const dir = mkdtempSync(join(tmp, 'tls-'));
    writeFileSync(join(dir, 'server.pem'), pkiA.server.certPem);
    writeFileSync(join(dir, 'server.key'), pkiA.server.keyPem);
    writeFileSync(join(dir, 'ca.pem'), pkiA.caPem);
    const creds = `tls: {cert: ${dir}/server.pem, key: ${dir}/server.key, clientCa: ${dir}/ca.pem, requireClientCert: true}\nsecrets:\n  - {name: vm-a-key, value: only-for-vm-a, agents: [vm-a]}\n`;
    tlsCtl = await startController(sim, 'simulation: {trust: true, dir: SIMDIR}\n', undefined, creds);
  }, 60_000);
  afterAll(async () => {
    await tlsCtl?.controller.close();
  });

  it("a certificate for vm-a saying agentId vm-c is refused (4003); saying vm-a it attests and gets vm-a's secret", async () => {
    const url = tlsCtl.controller.address().wsUrl;
    expect(url).toMatch(/^wss:/);
    const tls = { ca: pkiA.caPem, cert: pkiA.client.certPem, key: pkiA.client.keyPem };
    const bad = await FakeAgent.connect(url, { token: null, tls });
    bad.hello('vm-c');
    expect((await bad.waitClosed()).code).toBe(CLOSE.FORBIDDEN);
    expect(bad.inbox[0]).toMatchObject({ type: 'error', code: 'forbidden', message: expect.stringMatching(/does not name agent id "vm-c"/) });
    const { agent, verdict } = await attest(url, 'vm-a', { token: null, tls });
    expect(verdict.secrets?.map((s) => s.name)).toEqual(['vm-a-key']);
    agent.close();
  }, 60_000);
});
