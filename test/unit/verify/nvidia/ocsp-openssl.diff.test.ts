/**
 * Differential test: OCSP responses for GPU device-chain certificates (RFC 6960 BasicOCSPResponse,
 * ECDSA P-384) judged by `openssl ocsp -respin <resp> -issuer <issuer> -cert <cert> -CAfile <root>
 * -verify_other <chain>` and by agent/verify/nvidia/ocsp-check.ts (parseOcspResponse +
 * certRevocationStatus): the same status (good / revoked / unknown) or both refusing the response.
 * test/vectors holds no public NVIDIA OCSP response (NVIDIA's responder answers live), so the responses
 * are built with the simulation's builder for a simulated GPU chain: good, revoked, unknown, a flipped
 * signature byte, signed by a key that is not the issuer's (wrong signer), expired (nextUpdate passed)
 * and a response about another certificate (wrong issuer/serial in the CertID).
 * Times are relative to now: `openssl ocsp` judges thisUpdate/nextUpdate against the clock, not -attime.
 */
import type { KeyObject } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildOcspResponse, type OcspResponseSpec } from '../../../../agent/simulation/ocsp-sim.js';
import { loadOrCreateSimGpuIdentity } from '../../../../agent/simulation/gpu-sim.js';
import { parsePemChain } from '../../../../agent/verify/nvidia/device-chain.js';
import { certRevocationStatus, parseOcspResponse } from '../../../../agent/verify/nvidia/ocsp-check.js';
import type { Certificate } from '../../../../agent/formats/x509/certificate.js';
import { requireTool } from '../../../helpers/tools.js';
import { mapPool, runTool, scratchDir } from '../../../helpers/tool-pool.js';

const HAVE_OPENSSL = requireTool('openssl', 'openssl');

const HOUR = 3600_000;
const pem = (der: Uint8Array) =>
  `-----BEGIN CERTIFICATE-----\n${Buffer.from(der)
    .toString('base64')
    .match(/.{1,64}/g)!
    .join('\n')}\n-----END CERTIFICATE-----\n`;

type Status = 'good' | 'revoked' | 'unknown' | 'refused';

interface Case {
  name: string;
  /** Position in the chain of the certificate asked about (its issuer is the next one). */
  index: number;
  response: Buffer;
  expected: Status;
}

describe.runIf(HAVE_OPENSSL)('OCSP responses: openssl ocsp and agent/verify/nvidia/ocsp-check agree', () => {
  const scratch = scratchDir('ocsp-openssl-');
  let chain: Certificate[];
  let cases: Case[] = [];
  const rows = new Map<string, { ours: Status; openssl: Status; why: string }>();

  beforeAll(async () => {
    const id = await loadOrCreateSimGpuIdentity(scratch.dir, 1);
    chain = parsePemChain(id.gpus[0]!.chainPem);
    const keys: KeyObject[] = [id.gpus[0]!.leaf.key, id.gpus[0]!.brom.key, id.ica.key, id.identity.key, id.root.key];
    const now = Date.now();
    const spec = (i: number, over: Partial<OcspResponseSpec> = {}): OcspResponseSpec => ({
      cert: chain[i]!,
      issuer: chain[i + 1]!,
      signerKey: keys[i + 1]!,
      responderName: chain[i + 1]!.subjectDer,
      thisUpdate: new Date(now - HOUR),
      nextUpdate: new Date(now + 24 * HOUR),
      ...over,
    });
    const flip = (b: Buffer) => {
      const c = Buffer.from(b);
      c[c.length - 1] = c[c.length - 1]! ^ 0x01;
      return c;
    };
    cases = [1, 2, 3].flatMap((i): Case[] => [
      { name: `cert ${i}: good`, index: i, response: buildOcspResponse(spec(i)), expected: 'good' },
      { name: `cert ${i}: revoked (keyCompromise)`, index: i, response: buildOcspResponse(spec(i, { status: 'revoked', reason: 1 })), expected: 'revoked' },
      { name: `cert ${i}: unknown`, index: i, response: buildOcspResponse(spec(i, { status: 'unknown' })), expected: 'unknown' },
      // The response ends with the BIT STRING signature (no certs): its last byte is the signature's.
      { name: `cert ${i}: signature byte flipped`, index: i, response: flip(buildOcspResponse(spec(i))), expected: 'refused' },
      {
        name: `cert ${i}: signed by the subject's own key (wrong signer)`,
        index: i,
        response: buildOcspResponse(spec(i, { signerKey: keys[i]! })),
        expected: 'refused',
      },
      {
        name: `cert ${i}: expired (nextUpdate a day ago)`,
        index: i,
        response: buildOcspResponse(spec(i, { thisUpdate: new Date(now - 48 * HOUR), nextUpdate: new Date(now - 24 * HOUR) })),
        expected: 'refused',
      },
      {
        name: `cert ${i}: about another certificate (wrong issuer in the CertID)`,
        index: i,
        response: buildOcspResponse(spec(i === 1 ? 2 : 1)),
        expected: 'refused',
      },
    ]);
    const root = scratch.write('root.pem', pem(chain[4]!.der));
    const others = scratch.write(
      'chain.pem',
      chain
        .slice(1, 4)
        .map((c) => pem(c.der))
        .join(''),
    );
    const at = new Date(now);
    const results = await mapPool(cases, async (c, k) => {
      const respFile = scratch.write(`${k}.der`, c.response);
      const certFile = scratch.write(`${k}-cert.pem`, pem(chain[c.index]!.der));
      const issuerFile = scratch.write(`${k}-issuer.pem`, pem(chain[c.index + 1]!.der));
      const r = await runTool('openssl', ['ocsp', '-respin', respFile, '-issuer', issuerFile, '-cert', certFile, '-CAfile', root, '-verify_other', others]);
      const out = (r.stdout.toString() + r.stderr).trim();
      const status = new RegExp(`${certFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: (good|revoked|unknown)`).exec(out)?.[1] as Status | undefined;
      const theirs: Status = r.code === 0 && /Response verify OK/.test(out) && status && !/WARNING: Status times invalid/.test(out) ? status : 'refused';
      let mine: Status;
      try {
        const s = certRevocationStatus(chain[c.index]!, chain[c.index + 1]!, [parseOcspResponse(c.response)], at).state;
        mine = s === 'good' || s === 'revoked' || s === 'unknown' ? s : s === 'hold' ? 'revoked' : 'refused';
      } catch {
        mine = 'refused';
      }
      return { ours: mine, openssl: theirs, why: out };
    });
    cases.forEach((c, k) => rows.set(c.name, results[k]!));
  });
  afterAll(() => scratch.remove());

  it('21 cases over the three checked certificates of the chain', () => expect(cases).toHaveLength(21));

  it('every response gets the same status from both, and the expected one', () => {
    const disagreements = cases
      .map((c) => ({ c, r: rows.get(c.name)! }))
      .filter(({ r }) => r.ours !== r.openssl)
      .map(({ c, r }) => `${c.name}: ours ${r.ours}, openssl ${r.openssl} (${r.why})`);
    expect(disagreements).toEqual([]);
    for (const c of cases) expect(rows.get(c.name)!.ours, c.name).toBe(c.expected);
  });
});
