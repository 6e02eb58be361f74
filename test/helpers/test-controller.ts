/**
 * A minimal controller for link tests: a `ws` WebSocketServer on 127.0.0.1 that checks the bearer
 * token (401 otherwise), picks the cvm-agent.v1 subprotocol, negotiates the version from hello,
 * records every agent message, and optionally acks events. Tests drive it directly (send raw frames,
 * drop connections, pause reading) to play a hostile or flaky controller.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bundleToJson, type EvidenceBundle } from '../../agent/formats/evidence-bundle.js';
import { createAgentKey, type AgentKey } from '../../agent/link/agent-key.js';
import { ControllerLink, type LinkHandlers, type LinkOptions } from '../../agent/link/link-client.js';
import { Outbox } from '../../agent/link/outbox.js';
import { SecretStore } from '../../agent/link/secret-unwrap.js';
import { vector } from './paths.js';
import { defaultIssuer } from './token-issuer.js';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { basicConstraints, buildCertificate, keyUsage } from '../../agent/simulation/x509-builder.js';
import { implicit, sequence as derSequence } from '../../agent/util/der-writer.js';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { TLSSocket } from 'node:tls';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import {
  CLOSE,
  MAX_MESSAGE_BYTES,
  PROTOCOL,
  decodeMessage,
  describeOffer,
  negotiateVersion,
  type AgentMessage,
  type ControllerMessage,
  type EventMessage,
  type EvidenceMessage,
  type HelloMessage,
  type VersionOffer,
  type WelcomeMessage,
} from '../../agent/link/protocol.js';

export interface TestControllerOptions {
  token?: string;
  supported?: VersionOffer;
  heartbeatSec?: number;
  attestIntervalSec?: number;
  autoAck?: boolean;
  /** Include resumeFrom in welcome (the controller's own idea of the next seq it wants). */
  resumeFrom?: (hello: HelloMessage) => number | undefined;
  /** Override the welcome entirely (e.g. a wrong protocol version). */
  welcome?: (hello: HelloMessage) => Record<string, unknown>;
  /** Don't answer hello at all. */
  silent?: boolean;
  onEvidence?: (e: EvidenceMessage, ws: WebSocket) => void;
  onHello?: (h: HelloMessage, ws: WebSocket) => void;
  /** Serve wss:// with this certificate; with `ca` + requestCert, require a client certificate from that CA. */
  tls?: { cert: string; key: string; ca?: string; requestCert?: boolean };
}

export class TestController {
  readonly received: AgentMessage[] = [];
  readonly hellos: HelloMessage[] = [];
  readonly events: EventMessage[] = [];
  readonly invalid: string[] = [];
  readonly sockets: WebSocket[] = [];
  readonly closes: Array<{ code: number; reason: string }> = [];
  unauthorized = 0;
  upgrades = 0;
  /** Subject CN of the client certificate of each accepted connection (wss with requestCert). */
  readonly clientCertCNs: string[] = [];
  private readonly wss: WebSocketServer;
  private constructor(
    private readonly http: Server,
    readonly opts: TestControllerOptions,
  ) {
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: MAX_MESSAGE_BYTES,
      handleProtocols: (protocols) => (protocols.has(PROTOCOL) ? PROTOCOL : false),
    });
    http.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
      this.upgrades++;
      if (opts.token !== undefined && req.headers.authorization !== `Bearer ${opts.token}`) {
        this.unauthorized++;
        socket.end('HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
        return;
      }
      const peer = (socket as TLSSocket).getPeerCertificate?.();
      if (peer && peer.subject) this.clientCertCNs.push(String(peer.subject.CN));
      this.wss.handleUpgrade(req, socket, head, (ws) => this.onConnection(ws));
    });
  }

  static async start(opts: TestControllerOptions = {}): Promise<TestController> {
    const handler = (_req: IncomingMessage, res: import('node:http').ServerResponse) => res.writeHead(426).end();
    const http: Server = opts.tls
      ? (createHttpsServer(
          { cert: opts.tls.cert, key: opts.tls.key, ca: opts.tls.ca, requestCert: opts.tls.requestCert ?? false, rejectUnauthorized: true },
          handler,
        ) as unknown as Server)
      : createServer(handler);
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    return new TestController(http, opts);
  }

  get url(): string {
    return `${this.opts.tls ? 'wss' : 'ws'}://127.0.0.1:${(this.http.address() as AddressInfo).port}/v1/agents`;
  }

  /** The most recent open connection. */
  get current(): WebSocket | undefined {
    const open = this.sockets.filter((s) => s.readyState === 1);
    return open[open.length - 1];
  }

  send(m: ControllerMessage | Record<string, unknown>, ws = this.current): void {
    ws?.send(JSON.stringify(m));
  }

  sendRaw(data: string | Buffer, ws = this.current): void {
    ws?.send(data);
  }

  /** Kill every connection abruptly (no close frame), as a crashed controller or a cut cable would. */
  dropAll(): void {
    for (const s of this.sockets) s.terminate();
  }

  /** Event seqs received, de-duplicated, in arrival order of first sight. */
  uniqueSeqs(): number[] {
    const seen = new Set<number>();
    const out: number[] = [];
    for (const e of this.events)
      if (!seen.has(e.seq)) {
        seen.add(e.seq);
        out.push(e.seq);
      }
    return out;
  }

  async waitFor(pred: () => boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pred()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.terminate();
    this.wss.close();
    this.http.closeAllConnections?.();
    await new Promise<void>((resolve) => this.http.close(() => resolve()));
  }

  private onConnection(ws: WebSocket): void {
    this.sockets.push(ws);
    ws.on('error', () => undefined);
    ws.on('close', (code, reason) => this.closes.push({ code, reason: reason.toString() }));
    ws.on('message', (data, isBinary) => {
      const d = isBinary ? { ok: false as const, error: 'binary' } : decodeMessage(data as Buffer, 'agent->controller');
      if (!d.ok) {
        this.invalid.push(d.error);
        return;
      }
      const m = d.message;
      this.received.push(m);
      if (m.type === 'hello') this.onHello(ws, m);
      else if (m.type === 'event') {
        this.events.push(m);
        if (this.opts.autoAck) this.send({ type: 'ack', seq: m.seq }, ws);
      } else if (m.type === 'evidence') this.opts.onEvidence?.(m, ws);
    });
  }

  private onHello(ws: WebSocket, h: HelloMessage): void {
    this.hellos.push(h);
    this.opts.onHello?.(h, ws);
    if (this.opts.silent) return;
    if (this.opts.welcome) {
      this.send(this.opts.welcome(h), ws);
      return;
    }
    const supported = this.opts.supported ?? { min: 1, max: 1 };
    const version = negotiateVersion(h.protocol, supported);
    if (version === undefined) {
      ws.close(CLOSE.VERSION_MISMATCH, `no common protocol version: agent ${describeOffer(h.protocol)}, controller ${describeOffer(supported)}`);
      return;
    }
    const welcome: WelcomeMessage = { type: 'welcome', protocol: version, heartbeatSec: this.opts.heartbeatSec ?? 30 };
    if (this.opts.attestIntervalSec !== undefined) welcome.attestIntervalSec = this.opts.attestIntervalSec;
    const resume = this.opts.resumeFrom?.(h);
    if (resume !== undefined) welcome.resumeFrom = resume;
    this.send(welcome, ws);
  }
}

// ---- agent side: a ControllerLink harness with fast backoff and a real evidence bundle ----------

export function realBundle(nonce: Buffer, key: AgentKey, agentId = 'vm-test-1'): Record<string, unknown> {
  const b: EvidenceBundle = {
    version: 1,
    agentId,
    nonce,
    teePubKey: key.publicJwk,
    simulated: false,
    cpu: { kind: 'snp', source: 'sev-guest', report: vector('snp/trustee_snp_test-report.bin'), certificates: [vector('snp/gosevguest_vcek.der')] },
    gpus: [],
  };
  return bundleToJson(b);
}

export interface Harness {
  dir: string;
  key: AgentKey;
  outbox: Outbox;
  link: ControllerLink;
  secrets: SecretStore;
  calls: { challenges: Array<{ nonce: Buffer; id: string }>; attests: number; verdicts: Array<{ token: string; names: string[] }> };
  logs: Array<{ level: string; msg: string; fields: object }>;
  close(): Promise<void>;
}

export async function makeHarness(
  url: string,
  over: Omit<Partial<LinkOptions>, 'handlers'> & { handlers?: Partial<LinkHandlers>; dir?: string; key?: AgentKey; maxEvents?: number } = {},
): Promise<Harness> {
  const dir = over.dir ?? (await mkdtemp(join(tmpdir(), 'cvm-link-')));
  const key = over.key ?? (await createAgentKey());
  const outbox = await Outbox.open({ dir, key, ...(over.maxEvents ? { maxEvents: over.maxEvents } : {}) });
  const secrets = new SecretStore();
  const calls: Harness['calls'] = { challenges: [], attests: 0, verdicts: [] };
  const logs: Harness['logs'] = [];
  const log = (level: string) => (fields: object, msg: string) => logs.push({ level, msg, fields });
  const handlers: LinkHandlers = {
    onChallenge: async (nonce, id) => {
      calls.challenges.push({ nonce, id });
      return {
        bundle: realBundle(nonce, key, over.agentId ?? 'vm-test-1'),
        localResult: { eat_profile: 'tag:github.com,2023:veraison/ear', 'ear.status': 'affirming' },
      };
    },
    onAttestRequest: async () => {
      calls.attests++;
    },
    onVerdict: (v, names) => {
      calls.verdicts.push({ token: v.token, names });
    },
    ...over.handlers,
  };
  const { handlers: _h, dir: _d, key: _k, maxEvents: _m, ...rest } = over;
  const link = new ControllerLink({
    url,
    // Test controllers listen on loopback; verdicts are checked against the default test issuer's key.
    insecure: /^ws:\/\//i.test(url),
    tokenKeys: [(await defaultIssuer()).publicJwk],
    agentId: 'vm-test-1',
    agentVersion: '0.1.0',
    key,
    outbox,
    handlers,
    secretStore: secrets,
    backoff: { baseMs: 20, capMs: 150 },
    handshakeTimeoutMs: 2000,
    log: { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') },
    ...rest,
  });
  return {
    dir,
    key,
    outbox,
    link,
    secrets,
    calls,
    logs,
    async close() {
      await link.stop();
      await outbox.close();
      if (!over.dir) await rm(dir, { recursive: true, force: true });
    },
  };
}

// ---- a throwaway PKI for wss tests (ECDSA P-384, built with agent/simulation/x509-builder.ts) ----------

export interface TestPki {
  caPem: string;
  server: { certPem: string; keyPem: string; spkiSha256: string };
  client: { certPem: string; keyPem: string };
}

/** `clientCn` is the client certificate's subject CN (the reference controller reads agent ids from it). */
export function makeTestPki(cn = 'cvm-test', clientCn = `${cn} agent`): TestPki {
  const pem = (der: Buffer) =>
    `-----BEGIN CERTIFICATE-----\n${der
      .toString('base64')
      .replace(/(.{64})/g, '$1\n')
      .replace(/\n?$/, '\n')}-----END CERTIFICATE-----\n`;
  const now = Date.now();
  const validity = { notBefore: new Date(now - 3600_000), notAfter: new Date(now + 86400_000) };
  const ca = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const caName = { CN: `${cn} CA` };
  const caDer = buildCertificate({
    serial: 1,
    issuer: caName,
    subject: caName,
    ...validity,
    subjectPublicKey: ca.publicKey,
    issuerKey: ca.privateKey,
    signature: 'ecdsa-sha384',
    extensions: [basicConstraints({ ca: true }), keyUsage(['keyCertSign', 'cRLSign'])],
  });
  const leaf = (serial: number, name: string, san: boolean) => {
    const k = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const extensions = [keyUsage(['digitalSignature'])];
    // subjectAltName (RFC 5280 §4.2.1.6): iPAddress [7] 127.0.0.1
    if (san) extensions.push({ oid: '2.5.29.17', value: derSequence(implicit(7, Buffer.from([127, 0, 0, 1]))) });
    const der = buildCertificate({
      serial,
      issuer: caName,
      subject: { CN: name },
      ...validity,
      subjectPublicKey: k.publicKey,
      issuerKey: ca.privateKey,
      signature: 'ecdsa-sha384',
      extensions,
    });
    return {
      certPem: pem(der),
      keyPem: k.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
      spkiSha256: createHash('sha256')
        .update(k.publicKey.export({ type: 'spki', format: 'der' }))
        .digest('base64'),
    };
  };
  const server = leaf(2, `${cn} controller`, true);
  const client = leaf(3, clientCn, false);
  return { caPem: pem(caDer), server, client: { certPem: client.certPem, keyPem: client.keyPem } };
}
