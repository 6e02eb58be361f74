/**
 * Attack (inverted: a legitimate client locked out, an illegitimate one let in): group allow-lists
 * used to match only the peer's primary gid from SO_PEERCRED, so a workload admitted through a
 * supplementary group (the usual way: `usermod -aG models inference`) was refused, and operators
 * widened the rules to make it work. The agent now reads the peer's supplementary groups with
 * SO_PEERGROUPS and allows a peer whose primary or any supplementary group is listed, and nothing
 * else.
 *
 * Clients are real child processes that set their groups as root and drop to uid/gid 1001 before
 * connecting; the kernel records the groups at connect(). First against the API server with the
 * addon's reader, then against a real `cvm-agent run` process.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createApiServer, type ApiService } from '../../agent/api/api-server.js';
import { listenUnix } from '../../agent/api/listen.js';
import { createPeerCredentialReader, type PeerCredentials } from '../../agent/native/system.js';
import { DeviceError } from '../../agent/errors.js';
import { startDaemon, type DaemonProcess } from '../helpers/daemon-process.js';
import { requestAs } from '../helpers/local-client.js';
import { stubService } from '../helpers/api-contract.js';

const SOCKET_GROUP = 2000; // the socket's group: every client below can connect through it
const MODELS = 3000; // the group the allow-list names

const service: ApiService = {
  health: async () => ({ status: 'ok', reasons: [] }),
  status: async () => ({ ok: true }),
  attest: async () => ({}),
  evidence: async () => ({}),
  token: async () => undefined,
  secret: async (name) => (name === 'model-key' ? Buffer.from('s3cret') : undefined),
  metrics: async () => ({ contentType: 'text/plain', body: '' }),
};

describe('group allow-lists match supplementary groups (API server, SO_PEERGROUPS through the addon)', () => {
  let dir: string;
  let socket: string;
  let server: ReturnType<typeof createApiServer>;
  const seen: PeerCredentials[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cvm-adv-groups-'));
    chmodSync(dir, 0o755);
    socket = join(dir, 'api.sock');
    const read = createPeerCredentialReader((reason) => {
      throw new Error(`SO_PEERGROUPS unavailable: ${reason}`);
    });
    server = createApiServer(service, {
      authorization: { status: { gids: [MODELS] }, secrets: { gids: [MODELS] } },
      maxRequestBytes: 1024,
      requestTimeoutMs: 10_000,
      peerCredentials: (s) => {
        const c = read(s);
        if (c) seen.push(c);
        return c;
      },
    });
    await listenUnix(server, { path: socket, gid: SOCKET_GROUP, env: {} });
    stubService(socket);
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  it('allows a peer whose supplementary group is listed (its primary gid is not)', async () => {
    const r = await requestAs({ uid: 1001, gid: 1001, groups: [SOCKET_GROUP, MODELS] }, socket, 'GET', '/v1/status');
    expect(r.status).toBe(200);
    expect(seen.at(-1)).toMatchObject({ uid: 1001, gid: 1001 });
    expect([...(seen.at(-1)!.groups ?? [])].sort()).toEqual([SOCKET_GROUP, MODELS]);
    const secret = await requestAs({ uid: 1001, gid: 1001, groups: [SOCKET_GROUP, MODELS] }, socket, 'GET', '/v1/secrets/model-key');
    expect(secret).toEqual({ status: 200, body: 's3cret' });
  });

  it('refuses a peer in none of the listed groups, primary or supplementary', async () => {
    const r = await requestAs({ uid: 1001, gid: 1001, groups: [SOCKET_GROUP] }, socket, 'GET', '/v1/status');
    expect(r.status).toBe(403);
    expect(JSON.parse(r.body).detail).toMatch(/uid 1001 \/ gid 1001 \/ groups 2000 is not allow-listed/);
    expect((await requestAs({ uid: 1001, gid: 1001, groups: [SOCKET_GROUP, MODELS + 1] }, socket, 'GET', '/v1/secrets/model-key')).status).toBe(403);
  });

  it('still allows a peer whose primary gid is listed', async () => {
    expect((await requestAs({ uid: 1001, gid: MODELS, groups: [SOCKET_GROUP] }, socket, 'GET', '/v1/status')).status).toBe(200);
  });
});

describe('without SO_PEERGROUPS the reader falls back to the primary gid, and says so once', () => {
  const fakeSocket = {} as import('node:net').Socket;
  const cred = { pid: 5, uid: 1001, gid: 1001 };

  it('an addon without peerGroups: primary gid only, one log line for any number of connections', () => {
    const said: string[] = [];
    const read = createPeerCredentialReader((r) => said.push(r), {
      peerCredentials: () => cred,
      peerGroups: () => {
        throw new DeviceError('ERR_NATIVE_UNAVAILABLE', 'the native addon predates SO_PEERGROUPS support');
      },
    });
    for (let i = 0; i < 3; i++) expect(read(fakeSocket)).toEqual(cred);
    expect(said).toEqual(['the native addon predates SO_PEERGROUPS support']);
  });

  it('a kernel without SO_PEERGROUPS (ENOPROTOOPT) likewise; one closed connection (EBADF) does not switch it off', () => {
    const said: string[] = [];
    let errno = 9; // EBADF: this connection only
    const read = createPeerCredentialReader((r) => said.push(r), {
      peerCredentials: () => cred,
      peerGroups: () => {
        throw new DeviceError('ERR_PEERGROUPS', 'getsockopt(SO_PEERGROUPS) failed', { errno });
      },
    });
    expect(read(fakeSocket)).toEqual(cred);
    expect(said).toEqual([]);
    errno = 92; // ENOPROTOOPT
    read(fakeSocket);
    read(fakeSocket);
    expect(said).toHaveLength(1);
  });

  it('no SO_PEERCRED at all: no credentials, so restricted endpoints deny', () => {
    const read = createPeerCredentialReader(() => undefined, {
      peerCredentials: () => {
        throw new DeviceError('ERR_NATIVE_UNAVAILABLE', 'no addon');
      },
      peerGroups: () => [],
    });
    expect(read(fakeSocket)).toBeUndefined();
  });
});

describe('group allow-lists in a running daemon (cvm-agent run, simulated TEE)', () => {
  let dir: string;
  let socket: string;
  let daemon: DaemonProcess;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cvm-adv-groups-daemon-'));
    chmodSync(dir, 0o755);
    socket = join(dir, 'api.sock');
    writeFileSync(
      join(dir, 'config.yaml'),
      `tee: simulated
simulation: { gpus: 0, dir: ${dir}/sim }
api:
  socket: ${socket}
  authorization:
    status: { gids: ["${MODELS}"] }
    secrets: { gids: ["${MODELS}"] }
state: { dir: ${dir}/state }
collateral: { dir: ${dir}/cache }
schedule: { cron: "0 0 1 1 *", jitterSec: 0, attestAtStart: false }
`,
    );
    daemon = startDaemon(['--config', join(dir, 'config.yaml')], {});
    await daemon.waitForLog((l) => l.msg === 'local API listening', 90_000);
  }, 120_000);

  afterAll(() => {
    daemon?.child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  // The daemon's socket is root:root 0660: supplementary group 0 lets uid 1001 connect at all.
  it('allows status to a supplementary member of the listed group, refuses everyone else', async () => {
    expect((await requestAs({ uid: 1001, gid: 1001, groups: [0, MODELS] }, socket, 'GET', '/v1/status')).status).toBe(200);
    expect((await requestAs({ uid: 1001, gid: 1001, groups: [0] }, socket, 'GET', '/v1/status')).status).toBe(403);
    // Allowed to ask for the secret (nothing was released: no controller), versus refused outright.
    expect((await requestAs({ uid: 1001, gid: 1001, groups: [0, MODELS] }, socket, 'GET', '/v1/secrets/model-key')).status).toBe(404);
    expect((await requestAs({ uid: 1001, gid: 1001, groups: [0] }, socket, 'GET', '/v1/secrets/model-key')).status).toBe(403);
    expect(daemon.logs.some((l) => String(l.msg ?? '').includes('SO_PEERGROUPS'))).toBe(false);
  });
});
