/**
 * Differential test: every VCEK/VLEK in test/vectors/snp judged by
 * `openssl verify -CAfile <pinned ARK(s)> -untrusted <pinned ASK/ASVK(s)> -attime T <leaf>` and by ours
 * (agent/formats/x509 parser + agent/verify/snp/amd-chain.ts: selectRoots, then snp.chain.ask,
 * snp.chain.ark, snp.cert.validity), on the vectors and on mutations both must refuse: a flipped byte
 * in the leaf's signature, a time after the leaf's notAfter, and only another product's roots
 * (wrong issuer).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseCertificate, type Certificate } from '../../../../agent/formats/x509/certificate.js';
import { AMD_PRODUCTS, pinnedAmdRoots, type AmdProduct, type AmdProductRoots } from '../../../../agent/roots/amd.js';
import { checkChain, selectRoots, type LeafKind } from '../../../../agent/verify/snp/amd-chain.js';
import { requireTool } from '../../../helpers/tools.js';
import { vector } from '../../../helpers/paths.js';
import { mapPool, runTool, scratchDir } from '../../../helpers/tool-pool.js';

const HAVE_OPENSSL = requireTool('openssl', 'openssl');

const LEAVES = [
  'gosevguest_vcek.der',
  'trustee_snp_test-vcek.der',
  'trustee_snp_test-vcek-invalid-legacy.der',
  'trustee_snp_test-vcek-invalid-new.der',
  'trustee_snp_test-vlek.der',
  'virtee_vcek_milan.der',
  'virtee_vcek_turin.der',
  'trustee_az-snp-vtpm_vcek.pem',
  'trustee_az-snp-vtpm_vcek-genoa.pem',
];
const pem = (der: Uint8Array) =>
  `-----BEGIN CERTIFICATE-----\n${Buffer.from(der)
    .toString('base64')
    .match(/.{1,64}/g)!
    .join('\n')}\n-----END CERTIFICATE-----\n`;
const toDer = (name: string) => {
  const raw = vector(`snp/${name}`);
  return name.endsWith('.pem') ? Buffer.from(raw.toString('utf8').replace(/-----[^-]+-----|\s/g, ''), 'base64') : raw;
};
const DAY = 86_400_000;

interface Case {
  name: string;
  der: Buffer;
  kind: LeafKind;
  products: readonly AmdProduct[];
  at: Date;
}

function ours(c: Case): boolean {
  let leaf: Certificate;
  try {
    leaf = parseCertificate(c.der);
  } catch {
    return false;
  }
  const candidates: AmdProductRoots[] = c.products.map(pinnedAmdRoots);
  const roots = selectRoots(leaf, c.kind, candidates);
  if (!roots) return false;
  return checkChain({ leaf, kind: c.kind, suppliedIntermediates: [], suppliedArks: [], roots, leafVerified: true, at: c.at }).every((x) => x.ok);
}

describe.runIf(HAVE_OPENSSL)('AMD VCEK/VLEK chains: openssl verify and agent/verify/snp/amd-chain agree', () => {
  const scratch = scratchDir('amd-chain-openssl-');
  let cases: Case[] = [];
  const rows = new Map<string, { ours: boolean; openssl: boolean; why: string }>();

  beforeAll(async () => {
    cases = LEAVES.flatMap((name): Case[] => {
      const der = toDer(name);
      const leaf = parseCertificate(der);
      const kind: LeafKind = leaf.subjectCn === 'SEV-VLEK' ? 'vlek' : 'vcek';
      const product = AMD_PRODUCTS.find((p) => leaf.issuerCn.endsWith(`-${p}`))!;
      const at = new Date(leaf.notBefore.getTime() + 30 * DAY);
      const flipped = Buffer.from(der);
      flipped[flipped.length - 1] = flipped[flipped.length - 1]! ^ 0x01;
      return [
        { name, der, kind, products: AMD_PRODUCTS, at },
        { name: `${name} (signature byte flipped)`, der: flipped, kind, products: AMD_PRODUCTS, at },
        { name: `${name} (a day after notAfter)`, der, kind, products: AMD_PRODUCTS, at: new Date(leaf.notAfter.getTime() + DAY) },
        { name: `${name} (only other products' roots: wrong issuer)`, der, kind, products: AMD_PRODUCTS.filter((p) => p !== product), at },
      ];
    });
    const results = await mapPool(cases, async (c, i) => {
      const roots = c.products.map(pinnedAmdRoots);
      const cas = scratch.write(`${i}-ark.pem`, roots.map((r) => pem(r.ark.der)).join(''));
      const inter = scratch.write(
        `${i}-ask.pem`,
        roots
          .flatMap((r) => [r.ask, ...(r.asvk ? [r.asvk] : [])])
          .map((r) => pem(r.der))
          .join(''),
      );
      const leaf = scratch.write(`${i}-leaf.pem`, pem(c.der));
      const r = await runTool('openssl', ['verify', '-CAfile', cas, '-untrusted', inter, '-attime', String(Math.floor(c.at.getTime() / 1000)), leaf]);
      return { ours: ours(c), openssl: r.code === 0, why: (r.stdout.toString() + r.stderr).trim() };
    });
    cases.forEach((c, i) => rows.set(c.name, results[i]!));
  });
  afterAll(() => scratch.remove());

  it('every leaf and mutation gets the same verdict', () => {
    const disagreements = cases
      .map((c) => ({ c, r: rows.get(c.name)! }))
      .filter(({ r }) => r.ours !== r.openssl)
      .map(({ c, r }) => `${c.name}: ours ${r.ours ? 'accepts' : 'refuses'}, openssl ${r.openssl ? 'accepts' : 'refuses'} (${r.why})`);
    expect(disagreements).toEqual([]);
  });

  it('the AMD-signed leaves are accepted; the synthetic trustee "invalid" VCEKs (not AMD-signed) and every mutation refused', () => {
    expect(cases.filter((c) => rows.get(c.name)!.ours).map((c) => c.name)).toEqual(LEAVES.filter((n) => !n.includes('-invalid-')));
  });
});
