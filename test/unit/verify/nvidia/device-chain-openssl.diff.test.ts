/**
 * Differential test: every NVIDIA GPU device certificate chain in test/vectors/nvidia (the NVML
 * attestationCertChain PEM files and the chains inside the SDK evidence JSON) judged by
 * `openssl verify -CAfile <pinned NVIDIA Device Identity CA> -untrusted <intermediates> -attime T <leaf>`
 * and by ours (agent/formats/x509 parser + agent/verify/nvidia/device-chain.ts: gpu.chain and
 * gpu.chain.root), on the vectors and on mutations both must refuse: a flipped byte in the leaf's
 * signature, a time before the leaf's notBefore, an intermediate from another GPU's chain (wrong issuer).
 */
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseCertificateEager } from '../../../../agent/formats/x509/certificate.js';
import { nvidiaDeviceRoot } from '../../../../agent/roots/nvidia-device.js';
import { splitPemCertificates, verifyDeviceChain } from '../../../../agent/verify/nvidia/device-chain.js';
import { requireTool } from '../../../helpers/tools.js';
import { vector, vectorsDir } from '../../../helpers/paths.js';
import { mapPool, runTool, scratchDir } from '../../../helpers/tool-pool.js';

const HAVE_OPENSSL = requireTool('openssl', 'openssl');

const nvidiaDir = join(vectorsDir, 'nvidia');
function files(dir: string, test: (name: string) => boolean): string[] {
  return readdirSync(dir)
    .sort()
    .flatMap((name) => {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) return files(p, test);
      return test(name) ? [relative(nvidiaDir, p)] : [];
    });
}

/** name → chain DER list (leaf first), from the PEM files and from each evidence-json entry. */
function vectorChains(): { name: string; certs: Buffer[] }[] {
  const out: { name: string; certs: Buffer[] }[] = [];
  for (const rel of files(nvidiaDir, (n) => /CertChain\.txt$/i.test(n))) {
    out.push({ name: rel, certs: splitPemCertificates(vector(`nvidia/${rel}`).toString('utf8')) });
  }
  for (const rel of files(nvidiaDir, (n) => n.endsWith('.json') && !n.includes('parsed') && n !== 'index.json')) {
    const doc = JSON.parse(vector(`nvidia/${rel}`).toString('utf8')) as unknown;
    if (!Array.isArray(doc)) continue;
    doc.forEach((e: { certificate?: string }, i) => {
      if (typeof e.certificate === 'string')
        out.push({ name: `${rel}[${i}]`, certs: splitPemCertificates(Buffer.from(e.certificate, 'base64').toString('utf8')) });
    });
  }
  return out;
}

const pem = (der: Buffer) =>
  `-----BEGIN CERTIFICATE-----\n${der
    .toString('base64')
    .match(/.{1,64}/g)!
    .join('\n')}\n-----END CERTIFICATE-----\n`;
const T = new Date('2026-01-01T00:00:00Z');

interface Case {
  name: string;
  certs: Buffer[];
  at: Date;
}

function ours(c: Case): boolean {
  try {
    const r = verifyDeviceChain(c.certs.map(parseCertificateEager), parseCertificateEager(nvidiaDeviceRoot().der), c.at, 'NVIDIA Device Identity CA');
    return r.chain.ok && r.root.ok;
  } catch {
    return false; // a certificate our parser refuses: the chain is refused
  }
}

describe.runIf(HAVE_OPENSSL)('GPU device chains: openssl verify and agent/verify/nvidia/device-chain agree', () => {
  const scratch = scratchDir('device-chain-openssl-');
  const chains = vectorChains();
  const verdicts = new Map<string, { ours: boolean; openssl: boolean; why: string }>();
  let cases: Case[] = [];

  beforeAll(async () => {
    const root = scratch.write('root.pem', pem(nvidiaDeviceRoot().der));
    const flip = (der: Buffer) => {
      const b = Buffer.from(der);
      b[b.length - 1] = b[b.length - 1]! ^ 0x01; // last byte of the signature value's s
      return b;
    };
    cases = chains.flatMap((c, i) => {
      const other = chains[(i + 1) % chains.length]!;
      const base = { name: c.name, certs: c.certs, at: T };
      if (c.certs.length !== 5 || other.certs.length !== 5) return [base];
      return [
        base,
        { name: `${c.name} (leaf signature byte flipped)`, certs: [flip(c.certs[0]!), ...c.certs.slice(1)], at: T },
        { name: `${c.name} (before the leaf's notBefore)`, certs: c.certs, at: new Date('2019-01-01T00:00:00Z') },
        { name: `${c.name} (BROM certificate of another GPU: wrong issuer)`, certs: [c.certs[0]!, other.certs[1]!, ...c.certs.slice(2)], at: T },
      ];
    });
    const results = await mapPool(cases, async (c, i) => {
      // openssl gets the same path: the supplied root is dropped, the pinned one is the only anchor.
      const leaf = scratch.write(`${i}-leaf.pem`, pem(c.certs[0]!));
      const untrusted = scratch.write(`${i}-untrusted.pem`, c.certs.slice(1, -1).map(pem).join(''));
      const r = await runTool('openssl', ['verify', '-CAfile', root, '-untrusted', untrusted, '-attime', String(Math.floor(c.at.getTime() / 1000)), leaf]);
      return { ours: ours(c), openssl: r.code === 0, why: (r.stdout.toString() + r.stderr).trim() };
    });
    cases.forEach((c, i) => verdicts.set(c.name, results[i]!));
  });
  afterAll(() => scratch.remove());

  it('finds the chains of the vectors (PEM files and evidence JSON)', () => {
    expect(chains.length).toBeGreaterThanOrEqual(8);
    expect(cases.length).toBeGreaterThanOrEqual(4 * 7);
  });

  it('every vector and mutation gets the same verdict', () => {
    const disagreements = cases
      .map((c) => ({ name: c.name, ...verdicts.get(c.name)! }))
      .filter((r) => r.ours !== r.openssl)
      .map((r) => `${r.name}: ours ${r.ours ? 'accepts' : 'refuses'}, openssl ${r.openssl ? 'accepts' : 'refuses'} (${r.why})`);
    expect(disagreements).toEqual([]);
  });

  it('the genuine chains are accepted and every mutation refused (by both, as compared above)', () => {
    const accepted = cases.filter((c) => verdicts.get(c.name)!.ours).map((c) => c.name);
    expect(accepted).toEqual(chains.filter((c) => !c.name.includes('invalidCertChain')).map((c) => c.name));
  });
});
