/**
 * A loopback HTTP server (127.0.0.1, port 0) that behaves like the collateral services the agent can
 * talk to, for fetcher tests without any real network: AMD KDS (VCEK for the exact query, cert_chain,
 * CRL, 404 for anything unknown, optionally 429 + Retry-After once per path), Azure IMDS THIM (requires
 * `Metadata: true`), the NVIDIA RIM service (JSON {id, rim: base64}), and an OCSP responder that answers
 * the CertID it was asked about with a signed "good" response. Plus misbehaviours: /never (no answer),
 * /big (oversized body). Every request is logged so tests can prove that nothing was fetched.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { generateKeyPairSync, sign, createHash } from 'node:crypto';
import { bitString, explicit, generalizedTime, octetString, oid, sequence, tlv } from '../../agent/util/der-writer.js';
import { children, encodedOf, parseDer } from '../../agent/util/der.js';

export interface LoggedRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

export interface StaticRoute {
  status?: number;
  headers?: Record<string, string>;
  body: Buffer | string;
}

export interface FakeCollateralServerOptions {
  /** Exact "path?query" → response (KDS VCEKs, cert_chain, CRLs). */
  routes?: Record<string, StaticRoute>;
  /** Paths (without query) that answer 429 with this Retry-After the first time they are asked. */
  rateLimitOnce?: { paths: string[]; retryAfter: string };
  /** IMDS certification JSON body. */
  imds?: unknown;
  /** RIM id → RIM XML. */
  rims?: Record<string, string>;
  /** OCSP responder: validity window of the responses it signs. */
  ocsp?: { thisUpdate: Date; nextUpdate: Date };
  /** Size of the /big body. */
  bigBytes?: number;
}

export interface FakeCollateralServer {
  url: string;
  requests: LoggedRequest[];
  close(): Promise<void>;
}

const OID_OCSP_BASIC = '1.3.6.1.5.5.7.48.1.1';
const OID_ECDSA_SHA384 = '1.2.840.10045.4.3.3';

/** A signed BasicOCSPResponse saying "good" for the given CertID (RFC 6960 §4.2.1). */
export function buildGoodOcspResponse(certIdDer: Uint8Array, thisUpdate: Date, nextUpdate: Date): Buffer {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'secp384r1' });
  const keyHash = createHash('sha1')
    .update(publicKey.export({ type: 'spki', format: 'der' }))
    .digest();
  const single = sequence(certIdDer, Buffer.from([0x80, 0x00]), generalizedTime(thisUpdate), explicit(0, generalizedTime(nextUpdate)));
  const tbs = sequence(explicit(2, octetString(keyHash)), generalizedTime(thisUpdate), sequence(single));
  const basic = sequence(tbs, sequence(oid(OID_ECDSA_SHA384)), bitString(sign('sha384', tbs, privateKey)));
  return sequence(tlv(0x0a, Buffer.from([0])), explicit(0, sequence(oid(OID_OCSP_BASIC), octetString(basic))));
}

/** The first CertID of an OCSPRequest (tbsRequest.requestList[0].reqCert), as DER. */
export function certIdOfRequest(der: Uint8Array): Buffer {
  const tbs = children(parseDer(der))[0]!;
  const list = children(tbs).find((n) => n.tag === 0x30)!;
  const request = children(list)[0]!;
  return Buffer.from(encodedOf(children(request)[0]!));
}

function send(res: ServerResponse, status: number, body: Buffer | string, headers: Record<string, string> = {}): void {
  const b = typeof body === 'string' ? Buffer.from(body) : body;
  res.writeHead(status, { 'Content-Length': String(b.length), ...headers });
  res.end(b);
}

export async function startFakeCollateralServer(opts: FakeCollateralServerOptions = {}): Promise<FakeCollateralServer> {
  const requests: LoggedRequest[] = [];
  const limited = new Set(opts.rateLimitOnce?.paths ?? []);
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const url = req.url ?? '/';
      requests.push({ method: req.method ?? '', url, headers: req.headers, body });
      const path = url.split('?')[0]!;
      if (path === '/never') return; // hold the connection open, never answer
      if (path === '/big') {
        res.writeHead(200, { 'Content-Type': 'application/octet-stream' }); // chunked: no declared length
        const chunk = Buffer.alloc(64 * 1024, 0x41);
        let left = opts.bigBytes ?? 4 * 1024 * 1024;
        const pump = () => {
          while (left > 0) {
            left -= chunk.length;
            if (!res.write(chunk)) return void res.once('drain', pump);
          }
          res.end();
        };
        res.on('error', () => undefined);
        return pump();
      }
      if (limited.has(path)) {
        limited.delete(path);
        return send(res, 429, 'Too Many Requests', { 'Retry-After': opts.rateLimitOnce!.retryAfter });
      }
      if (path === '/metadata/THIM/amd/certification' && opts.imds !== undefined) {
        if (req.headers.metadata !== 'true') return send(res, 400, '{"error":"Bad request. Required metadata header not specified"}');
        return send(res, 200, JSON.stringify(opts.imds), { 'Content-Type': 'application/json' });
      }
      const rim = /^\/v1\/rim\/([^/]+)$/.exec(path);
      if (rim && opts.rims) {
        const id = decodeURIComponent(rim[1]!);
        const xml = opts.rims[id];
        if (xml === undefined) return send(res, 404, JSON.stringify({ error: 'RIM not found' }));
        return send(res, 200, JSON.stringify({ id, rim: Buffer.from(xml).toString('base64'), sha256: createHash('sha256').update(xml).digest('hex') }), {
          'Content-Type': 'application/json',
        });
      }
      if (req.method === 'POST' && path === '/ocsp' && opts.ocsp) {
        if (req.headers['content-type'] !== 'application/ocsp-request') return send(res, 415, 'expected application/ocsp-request');
        let certId: Buffer;
        try {
          certId = certIdOfRequest(body);
        } catch {
          return send(res, 200, sequence(tlv(0x0a, Buffer.from([1]))), { 'Content-Type': 'application/ocsp-response' }); // malformedRequest
        }
        return send(res, 200, buildGoodOcspResponse(certId, opts.ocsp.thisUpdate, opts.ocsp.nextUpdate), { 'Content-Type': 'application/ocsp-response' });
      }
      const route = opts.routes?.[url];
      if (route) return send(res, route.status ?? 200, route.body, route.headers);
      return send(res, 404, 'Not Found');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
