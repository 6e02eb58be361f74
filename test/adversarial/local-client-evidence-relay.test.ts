/**
 * Attack: evidence relay. A local peer that is merely in the socket group takes a nonce from a
 * controller's challenge (addressed to an agent it impersonates) and asks this VM's agent for
 * evidence bound to it, through GET /v1/evidence?nonce= or POST /v1/attest {nonce}; the answer is
 * genuine hardware evidence for the controller's nonce. By default these are now for root and the
 * agent's own user only; a configured rule still grants them (config compatibility), and running a
 * cycle without a caller nonce stays open.
 *
 * Against a real `cvm-agent run` process on the simulated TEE, with the attacker a child process
 * running as uid 1001 in the socket's group (gid 0 here, since the test daemon runs as root).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, type DaemonProcess } from '../helpers/daemon-process.js';
import { requestAs, type Identity } from '../helpers/local-client.js';
import { callApi } from '../../agent/cli/api-client.js';
import { authorize } from '../../agent/api/authz.js';

const SOCKET_MEMBER: Identity = { uid: 1001, gid: 1001, groups: [0] };

function config(dir: string, authorization = '') {
  writeFileSync(
    join(dir, 'config.yaml'),
    `tee: simulated
simulation: { gpus: 1, dir: ${dir}/sim }
api:
  socket: ${dir}/api.sock
${authorization}
state: { dir: ${dir}/state }
collateral: { dir: ${dir}/cache }
schedule: { cron: "0 0 1 1 *", jitterSec: 0 }
`,
  );
  return join(dir, 'config.yaml');
}

describe('evidence relay through the local API (cvm-agent run, simulated TEE)', () => {
  let dir: string;
  let socket: string;
  let daemon: DaemonProcess;
  const challengeNonce = randomBytes(32).toString('hex'); // what a controller sent to someone else

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cvm-adv-relay-'));
    chmodSync(dir, 0o755);
    socket = join(dir, 'api.sock');
    daemon = startDaemon(['--config', config(dir)], {});
    await daemon.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('attestation'), 90_000);
  }, 120_000);

  afterAll(() => {
    daemon?.child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a socket-group member evidence for a nonce it chose', async () => {
    const r = await requestAs(SOCKET_MEMBER, socket, 'GET', `/v1/evidence?nonce=${challengeNonce}`);
    expect(r.status).toBe(403);
    expect(r.body).not.toContain(challengeNonce);
    expect(JSON.parse(r.body)).toMatchObject({ title: 'not authorized' });
  });

  it('refuses the same through POST /v1/attest with a nonce', async () => {
    const r = await requestAs(SOCKET_MEMBER, socket, 'POST', '/v1/attest', JSON.stringify({ nonce: challengeNonce }));
    expect(r.status).toBe(403);
    expect(JSON.parse(r.body).detail).toMatch(/caller nonce needs the evidence authorization/);
    expect(r.body).not.toContain(challengeNonce);
  });

  it('still lets a socket-group member run a cycle without a nonce, and read health', async () => {
    const r = await requestAs(SOCKET_MEMBER, socket, 'POST', '/v1/attest', '{}');
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body).nonce).not.toBe(challengeNonce);
    expect((await requestAs(SOCKET_MEMBER, socket, 'GET', '/v1/health')).status).toBe(200);
  });

  it('gives root evidence bound to its nonce', async () => {
    const r = await callApi(socket, 'GET', `/v1/evidence?nonce=${challengeNonce}`);
    expect(r.status).toBe(200);
    expect((r.json() as { nonce: string }).nonce).toBe(challengeNonce);
  });

  it('keeps an explicitly configured evidence rule working (config compatibility, applied on reload)', async () => {
    config(dir, '  authorization:\n    evidence: { uids: ["1001"] }');
    daemon.child.kill('SIGHUP');
    await daemon.waitForLog((l) => l.msg === 'configuration reloaded');
    const r = await requestAs(SOCKET_MEMBER, socket, 'GET', `/v1/evidence?nonce=${challengeNonce}`);
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body).nonce).toBe(challengeNonce);
    expect((await requestAs(SOCKET_MEMBER, socket, 'POST', '/v1/attest', JSON.stringify({ nonce: challengeNonce }))).status).toBe(200);
    expect((await requestAs({ uid: 1002, gid: 1002, groups: [0] }, socket, 'GET', `/v1/evidence?nonce=${challengeNonce}`)).status).toBe(403);
  });
});

describe('the default evidence rule', () => {
  const member = { pid: 1, uid: 1001, gid: 999, groups: [999] };
  it("is root and the agent's own user, not the socket group", () => {
    expect(authorize('evidence', member, {}, 998).allowed).toBe(false);
    expect(authorize('evidence', { ...member, uid: 998 }, {}, 998)).toEqual({ allowed: true, reason: "the agent's own user" });
    expect(authorize('evidence', { ...member, uid: 0 }, {}, 998).allowed).toBe(true);
    expect(authorize('evidence', undefined, {}, 998).allowed).toBe(false);
  });

  it('is replaced by a configured rule, which may name the socket group (the old, open behaviour)', () => {
    expect(authorize('evidence', member, { evidence: { gids: [999] } }, 998).allowed).toBe(true);
    expect(authorize('evidence', { ...member, gid: 1001 }, { evidence: { gids: [999] } }, 998).allowed).toBe(true); // supplementary
  });

  it("never gives the agent's own user secrets without an allow-list", () => {
    expect(authorize('secrets', { ...member, uid: 998 }, {}, 998).allowed).toBe(false);
  });
});
