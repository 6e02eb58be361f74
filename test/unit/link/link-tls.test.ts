/**
 * wss:// with a pinned controller CA, a client certificate (mutual TLS), optional SPKI pinning, and a
 * bearer token on top. The PKI is generated per run (ECDSA P-384).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { makeHarness, makeTestPki, TestController, type TestPki } from '../../helpers/test-controller.js';
import { makeServerIdentityCheck } from '../../../agent/link/link-client.js';
import { X509Certificate } from 'node:crypto';

let pki: TestPki;
let other: TestPki;
let controller: TestController;
const cleanup: Array<() => Promise<void>> = [];

beforeAll(async () => {
  pki = makeTestPki('cvm');
  other = makeTestPki('rogue');
  controller = await TestController.start({ tls: { cert: pki.server.certPem, key: pki.server.keyPem, ca: pki.caPem, requestCert: true } });
});
afterAll(async () => {
  await controller.close();
});
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

async function harness(tls: NonNullable<Parameters<typeof makeHarness>[1]>['tls']) {
  const h = await makeHarness(controller.url, { tls, backoff: { baseMs: 50, capMs: 200 } });
  cleanup.push(() => h.close());
  h.link.start();
  return h;
}

describe('ControllerLink over TLS', () => {
  it('connects with the pinned CA and a client certificate (mutual TLS), and the SPKI pin', async () => {
    expect(controller.url).toMatch(/^wss:\/\//);
    const before = controller.hellos.length;
    const h = await harness({ ca: pki.caPem, cert: pki.client.certPem, key: pki.client.keyPem, pinnedSpkiSha256: [pki.server.spkiSha256] });
    await controller
      .waitFor(() => h.link.status().state === 'up', 5000, 'link up over wss')
      .catch((e) => {
        throw new Error(`${e.message}: ${h.link.status().lastError}`);
      });
    expect(controller.hellos.length).toBe(before + 1);
    expect(controller.clientCertCNs).toContain('cvm agent');
  });

  it('refuses a controller whose certificate does not chain to the pinned CA', async () => {
    const h = await harness({ ca: other.caPem, cert: pki.client.certPem, key: pki.client.keyPem });
    await controller.waitFor(() => h.link.status().attempt >= 2, 5000, 'retries');
    expect(h.link.status().state).not.toBe('up');
    expect(h.link.status().lastError).toMatch(/certificate/i);
  });

  it('refuses a controller whose key is not pinned, even with a valid chain', async () => {
    const h = await harness({ ca: pki.caPem, cert: pki.client.certPem, key: pki.client.keyPem, pinnedSpkiSha256: [other.server.spkiSha256] });
    await controller.waitFor(() => h.link.status().attempt >= 2, 5000, 'retries');
    expect(h.link.status().state).not.toBe('up');
    expect(h.link.status().lastError).toMatch(/not pinned/);
  });

  it('is refused by the controller without a client certificate', async () => {
    const h = await harness({ ca: pki.caPem });
    await controller.waitFor(() => h.link.status().attempt >= 2, 5000, 'retries');
    expect(h.link.status().state).not.toBe('up');
    expect(h.link.status().lastError).toBeDefined();
  });

  it('checkServerIdentity keeps the host name check and adds the pin', () => {
    const cert = new X509Certificate(pki.server.certPem);
    const peer = { subject: { CN: 'cvm controller' }, subjectaltname: 'IP Address:127.0.0.1', raw: cert.raw } as never;
    expect(makeServerIdentityCheck([pki.server.spkiSha256])('127.0.0.1', peer)).toBeUndefined();
    expect(makeServerIdentityCheck(undefined)('127.0.0.1', peer)).toBeUndefined();
    expect(makeServerIdentityCheck([pki.server.spkiSha256])('10.0.0.1', peer)).toBeInstanceOf(Error);
    expect(makeServerIdentityCheck(['AAAA'])('127.0.0.1', peer)?.message).toMatch(/not pinned/);
  });
});
