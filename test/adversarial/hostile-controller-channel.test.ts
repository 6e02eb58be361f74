/**
 * The channel to the controller under attack: an agent configured with a plain ws:// URL must refuse
 * to start unless the config says `controller.insecure: true` (and then still needs the controller's
 * token key pinned), and a token key offered in `welcome` counts only over TLS with a pinned CA: over
 * ws:// anything on the path could offer its own key and sign its own verdicts. Issue 9, item 3.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createPublicKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSimulation } from '../../agent/simulation/open.js';
import { parseConfig } from '../../agent/config/schema.js';
import { ControllerLink } from '../../agent/link/link-client.js';
import { ConfigError } from '../../agent/errors.js';
import { loadTokenKeys } from '../../agent/link/verdict.js';
import { makeHarness, makeTestPki, TestController } from '../helpers/test-controller.js';
import { prepareAgentDaemon } from '../helpers/agent-daemon.js';
import { TokenIssuer } from '../helpers/token-issuer.js';
import type { HelloMessage } from '../../agent/link/protocol.js';

let simDir: string;
let keyDir: string;
let issuer: TokenIssuer;
const cleanup: Array<() => Promise<void>> = [];

beforeAll(async () => {
  simDir = mkdtempSync(join(tmpdir(), 'cvm-hostile-chan-sim-'));
  await openSimulation(simDir, 0);
  issuer = await TokenIssuer.create();
  keyDir = mkdtempSync(join(tmpdir(), 'cvm-hostile-chan-key-'));
  writeFileSync(join(keyDir, 'controller.jwk'), JSON.stringify(issuer.publicJwk));
}, 60_000);
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});
afterAll(() => {
  if (simDir) rmSync(simDir, { recursive: true, force: true });
  if (keyDir) rmSync(keyDir, { recursive: true, force: true });
});

describe('hostile path: ws:// and where the token key comes from', () => {
  it('ws:// without controller.insecure: the config is refused, the daemon does not start, the link cannot be built', async () => {
    expect(() => parseConfig(`controller: {url: "ws://127.0.0.1:1/v1/link", tokenKey: ${join(keyDir, 'controller.jwk')}}`)).toThrow(
      /controller\.url: ws:\/\/ is unencrypted.*controller\.insecure: true/,
    );
    const controller = await TestController.start({});
    cleanup.push(() => controller.close());
    const d = await prepareAgentDaemon({ agentId: 'vm-plain', simDir, controller: { url: controller.url, tokenKey: join(keyDir, 'controller.jwk') } });
    cleanup.push(() => d.stop());
    await expect(d.start()).rejects.toThrow(ConfigError);
    expect(controller.upgrades).toBe(0); // never even connected
    expect(() => new ControllerLink({ url: controller.url, tokenKeys: [issuer.publicJwk] } as never)).toThrow(/ws:\/\/.*insecure: true/);
  });

  it('controller.insecure: true without a pinned token key is refused too (nothing could authenticate a verdict)', async () => {
    expect(() => parseConfig('controller: {url: "ws://127.0.0.1:1/v1/link", insecure: true}')).toThrow(
      /controller\.tokenKey: required to authenticate verdicts/,
    );
    expect(() => parseConfig('controller: {url: "wss://ctl.example/v1/link"}')).toThrow(/controller\.tokenKey: required/);
    expect(() => new ControllerLink({ url: 'ws://127.0.0.1:1/', insecure: true } as never)).toThrow(/could not be authenticated/);
    // wss:// with a pinned CA may take the key from welcome instead.
    expect(() => parseConfig('controller: {url: "wss://ctl.example/v1/link", caFile: /etc/ca.pem}')).not.toThrow();
    // A private key where the public one belongs, or a key of another kind, is refused with the reason.
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    writeFileSync(join(keyDir, 'private.pem'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
    writeFileSync(join(keyDir, 'private.jwk'), JSON.stringify(privateKey.export({ format: 'jwk' })));
    writeFileSync(join(keyDir, 'p256.jwk'), JSON.stringify(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' })));
    await expect(loadTokenKeys(join(keyDir, 'private.pem'))).rejects.toThrow(/PRIVATE key/);
    await expect(loadTokenKeys(join(keyDir, 'private.jwk'))).rejects.toThrow(/PRIVATE key/);
    await expect(loadTokenKeys(join(keyDir, 'p256.jwk'))).rejects.toThrow(/EC P-384/);
    await expect(loadTokenKeys(join(keyDir, 'controller.jwk'))).resolves.toHaveLength(1);
    // The public half as PEM (what `openssl ec -pubout` gives) is the same key.
    writeFileSync(join(keyDir, 'public.pem'), createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }));
    const [fromPem] = await loadTokenKeys(join(keyDir, 'public.pem'));
    expect(fromPem).toMatchObject({ kty: 'EC', crv: 'P-384', x: (privateKey.export({ format: 'jwk' }) as { x: string }).x });
  });

  it('a token key offered in welcome over ws:// is ignored: a verdict signed with it is refused and nothing is stored', async () => {
    const mitm = await TokenIssuer.create();
    const controller = await TestController.start({
      welcome: () => ({ type: 'welcome', protocol: 1, heartbeatSec: 30, tokenKeys: { keys: [mitm.publicJwk] } }),
      onEvidence: () => undefined,
    });
    cleanup.push(() => controller.close());
    const h = await makeHarness(controller.url, { tokenKeys: [issuer.publicJwk] });
    cleanup.push(() => h.close());
    h.link.start();
    await controller.waitFor(() => h.link.status().state === 'up', 10_000, 'link up');
    const c = await challenge(controller);
    const v = await mitm.verdict({
      agentId: 'vm-test-1',
      challengeId: c.id,
      nonce: c.nonce,
      jkt: h.key.kid,
      teePubKey: (controller.hellos[0] as HelloMessage).teePubKey,
      secrets: { 'model-key': 'mitm' },
    });
    controller.send(v);
    await controller.waitFor(() => controller.received.some((m) => m.type === 'error' && m.challengeId === c.id), 10_000, 'verdict-rejected');
    expect(controller.received.find((m) => m.type === 'error' && m.challengeId === c.id)).toMatchObject({ code: 'verdict-rejected' });
    expect(h.calls.verdicts).toHaveLength(0);
    expect(h.secrets.size).toBe(0);
    expect(h.logs.some((l) => /ignoring welcome\.tokenKeys/.test(l.msg))).toBe(true);
  });

  it('over wss:// with a pinned CA, the welcome JWKS authenticates verdicts (and a key outside it still fails)', async () => {
    const pki = makeTestPki('chan');
    const good = await TokenIssuer.create();
    const controller = await TestController.start({
      tls: { cert: pki.server.certPem, key: pki.server.keyPem },
      welcome: () => ({ type: 'welcome', protocol: 1, heartbeatSec: 30, tokenKeys: { keys: [good.publicJwk] } }),
      onEvidence: () => undefined,
    });
    cleanup.push(() => controller.close());
    const h = await makeHarness(controller.url, { tls: { ca: pki.caPem }, tokenKeys: [] });
    cleanup.push(() => h.close());
    h.link.start();
    await controller.waitFor(() => h.link.status().state === 'up', 10_000, 'link up over wss');
    const teePubKey = (controller.hellos[0] as HelloMessage).teePubKey;
    const c1 = await challenge(controller);
    const rogue = await TokenIssuer.create();
    controller.send(await rogue.verdict({ agentId: 'vm-test-1', challengeId: c1.id, nonce: c1.nonce, jkt: h.key.kid, teePubKey, secrets: { k: 'rogue' } }));
    await controller.waitFor(() => controller.received.some((m) => m.type === 'error' && m.challengeId === c1.id), 10_000, 'rogue verdict rejected');
    expect(h.secrets.size).toBe(0);
    const c2 = await challenge(controller);
    controller.send(await good.verdict({ agentId: 'vm-test-1', challengeId: c2.id, nonce: c2.nonce, jkt: h.key.kid, teePubKey, secrets: { k: 'real' } }));
    await controller.waitFor(() => h.calls.verdicts.length === 1, 10_000, 'verdict accepted');
    expect(Buffer.from(h.secrets.get('k')!).toString()).toBe('real');
  });
});

async function challenge(controller: TestController): Promise<{ id: string; nonce: string }> {
  const id = `ch-${randomBytes(4).toString('hex')}`;
  const nonce = randomBytes(32).toString('hex');
  controller.send({ type: 'challenge', id, nonce, expiresAt: new Date(Date.now() + 30_000).toISOString() });
  await controller.waitFor(() => controller.received.some((m) => m.type === 'evidence' && m.challengeId === id), 10_000, `evidence for ${id}`);
  return { id, nonce };
}
