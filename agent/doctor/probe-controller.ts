/**
 * The controller probe: the connection the daemon makes, stage by stage, and nothing more. It
 * resolves the host, opens TCP, does TLS with the configured CA (and client certificate), opens the
 * WebSocket with the bearer token, says hello with a throw-away key and waits for welcome, then closes.
 * It never answers a challenge and never sends evidence or events. When the daemon is running it stops
 * after the upgrade: a second hello under the same agent id could take the daemon's session over.
 */
import { lookup } from 'node:dns/promises';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import WebSocket from 'ws';
import { createAgentKey } from '../link/agent-key.js';
import { makeServerIdentityCheck } from '../link/link-client.js';
import { CLOSE, decodeMessage, encodeMessage, MAX_MESSAGE_BYTES, PROTOCOL, SUPPORTED_VERSIONS } from '../link/protocol.js';
import type { ControllerProbe, StageResult } from './controller-checks.js';

export interface ProbeInput {
  url: string;
  insecure: boolean;
  agentId: string;
  version: string;
  caFile?: string;
  ca?: string;
  cert?: string;
  key?: string;
  tokenFile?: string;
  token?: string;
  /** The daemon answers on its socket: stop before hello. */
  daemonRunning: boolean;
  timeoutMs: number;
}

const msg = (err: unknown) => (err instanceof Error ? err.message : String(err));

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([p, new Promise<T>((_, reject) => (t = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms)))]).finally(() =>
    clearTimeout(t),
  );
}

function tcp(host: string, port: number, ms: number): Promise<void> {
  return withTimeout(
    new Promise<void>((resolve, reject) => {
      const s = netConnect({ host, port });
      s.once('connect', () => {
        s.destroy();
        resolve();
      });
      s.once('error', reject);
    }),
    ms,
    'TCP connect',
  );
}

function tls(host: string, port: number, servername: string | undefined, input: ProbeInput): Promise<string> {
  const opts: ConnectionOptions = { host, port, rejectUnauthorized: true, checkServerIdentity: makeServerIdentityCheck(undefined) };
  if (servername !== undefined) opts.servername = servername;
  if (input.ca !== undefined) opts.ca = input.ca;
  if (input.cert !== undefined) opts.cert = input.cert;
  if (input.key !== undefined) opts.key = input.key;
  return withTimeout(
    new Promise<string>((resolve, reject) => {
      const s = tlsConnect(opts);
      s.once('secureConnect', () => {
        const peer = s.getPeerCertificate();
        const cn = peer?.subject?.CN;
        const proto = s.getProtocol();
        s.destroy();
        resolve(
          `${proto ?? 'TLS'}, controller certificate "${cn ?? '?'}" verified${input.ca ? ` against controller.caFile${input.caFile ? ` (${input.caFile})` : ''}` : ' against the system roots'}`,
        );
      });
      s.once('error', reject);
    }),
    input.timeoutMs,
    'TLS handshake',
  );
}

/** Upgrade (token) and hello/welcome (protocol) on one WebSocket. */
async function websocket(input: ProbeInput, servername: string | undefined): Promise<{ token: StageResult; protocol: StageResult }> {
  const headers: Record<string, string> = {};
  if (input.token) headers.Authorization = `Bearer ${input.token}`;
  const options: WebSocket.ClientOptions & ConnectionOptions = {
    handshakeTimeout: input.timeoutMs,
    perMessageDeflate: false,
    maxPayload: MAX_MESSAGE_BYTES,
    followRedirects: false,
    headers,
    rejectUnauthorized: true,
  };
  (options as ConnectionOptions).checkServerIdentity = makeServerIdentityCheck(undefined);
  if (input.ca !== undefined) options.ca = input.ca;
  if (input.cert !== undefined) options.cert = input.cert;
  if (input.key !== undefined) options.key = input.key;
  if (servername !== undefined) options.servername = servername;
  const key = input.daemonRunning ? undefined : await createAgentKey();
  const credential = input.token ? `bearer token${input.tokenFile ? ` from ${input.tokenFile}` : ''}` : input.cert ? 'client certificate' : 'no credential';
  return new Promise((resolve) => {
    let token: StageResult | undefined;
    let done = false;
    const ws = new WebSocket(input.url, [PROTOCOL], options);
    const finish = (protocol: StageResult) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (ws.readyState === WebSocket.OPEN) ws.close(CLOSE.NORMAL, 'cvm-agent doctor');
      else ws.terminate();
      resolve({ token: token ?? { ok: false, detail: 'the WebSocket upgrade did not complete' }, protocol });
    };
    const timer = setTimeout(() => finish({ ok: false, detail: `no welcome within ${input.timeoutMs} ms` }), input.timeoutMs * 2);
    ws.on('error', (err) => {
      if (!token) token = { ok: false, detail: `WebSocket upgrade failed: ${msg(err)}` };
      finish({ skipped: 'the upgrade failed (see controller.token)' });
    });
    ws.on('unexpected-response', (_req, res) => {
      token = {
        ok: false,
        status: res.statusCode ?? 0,
        detail: `the controller answered the upgrade with HTTP ${res.statusCode} ${res.statusMessage ?? ''} (${credential})`.trim(),
      };
      res.resume();
      finish({ skipped: 'the upgrade was refused (see controller.token)' });
    });
    ws.on('open', () => {
      if (ws.protocol !== PROTOCOL) {
        token = { ok: true, detail: `upgrade accepted (${credential})` };
        return finish({ ok: false, detail: `the controller selected subprotocol "${ws.protocol}", expected ${PROTOCOL}` });
      }
      token = { ok: true, detail: `upgrade accepted with the ${credential}` };
      if (!key) return finish({ skipped: 'the daemon is running and holds the link: hello not sent (see "cvm-agent status" for its link)' });
      ws.send(
        encodeMessage('agent->controller', {
          type: 'hello',
          agentId: input.agentId,
          version: input.version,
          protocol: { ...SUPPORTED_VERSIONS },
          teePubKey: key.publicJwk,
          inventory: {},
          capabilities: [],
          resumeFrom: 1,
        }),
      );
    });
    ws.on('message', (data) => {
      const d = decodeMessage(data as Buffer, 'controller->agent');
      if (!d.ok) return finish({ ok: false, detail: `the controller sent a message this agent cannot read: ${d.error}` });
      if (d.message.type === 'welcome')
        return finish({
          ok: true,
          detail: `welcome: protocol version ${d.message.protocol} (this agent speaks ${SUPPORTED_VERSIONS.min}..${SUPPORTED_VERSIONS.max}), agent id "${input.agentId}"`,
        });
    });
    ws.on('close', (code, reason) => {
      const why = reason.toString('utf8').slice(0, 200);
      finish({ ok: false, code, detail: `the controller closed the connection after hello: code ${code}${why ? ` (${why})` : ''}` });
    });
  });
}

export async function probeController(input: ProbeInput): Promise<ControllerProbe> {
  const p: ControllerProbe = {
    url: input.url,
    insecure: input.insecure,
    clientCert: input.cert !== undefined,
    ...(input.caFile ? { caFile: input.caFile } : {}),
    ...(input.tokenFile ? { tokenFile: input.tokenFile } : {}),
  };
  let u: URL;
  try {
    u = new URL(input.url);
  } catch (err) {
    p.dns = { ok: false, detail: `controller.url "${input.url}" is not a URL: ${msg(err)}` };
    return p;
  }
  const secure = u.protocol === 'wss:';
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = Number(u.port || (secure ? 443 : 80));
  try {
    const addrs = await withTimeout(lookup(host, { all: true }), input.timeoutMs, 'DNS');
    p.dns = { ok: true, detail: `${host} -> ${addrs.map((a) => a.address).join(', ')}` };
  } catch (err) {
    p.dns = { ok: false, detail: `cannot resolve ${host}: ${msg(err)}` };
    return p;
  }
  try {
    await tcp(host, port, input.timeoutMs);
    p.tcp = { ok: true, detail: `${host}:${port} accepts connections` };
  } catch (err) {
    p.tcp = { ok: false, detail: `cannot connect to ${host}:${port}: ${msg(err)}` };
    return p;
  }
  const servername = /^[\d.]+$|:/.test(host) ? undefined : host;
  if (secure) {
    try {
      p.tls = { ok: true, detail: await tls(host, port, servername, input) };
    } catch (err) {
      p.tls = { ok: false, detail: `TLS with ${host}:${port} failed: ${msg(err)}` };
      return p;
    }
  } else p.tls = { ok: true, detail: `ws:// without TLS (controller.insecure: ${input.insecure})` };
  const ws = await websocket(input, servername);
  p.token = ws.token;
  p.protocol = ws.protocol;
  return p;
}
