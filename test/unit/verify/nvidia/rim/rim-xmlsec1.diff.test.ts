/**
 * Differential test: every RIM in test/vectors/nvidia verified by xmlsec1 (Debian package xmlsec1, an
 * independent XML-DSig implementation on libxml2 + OpenSSL) and by our code (agent/verify/nvidia/rim:
 * parse, C14N 1.1 in agent/util/xml-c14n.ts, ecdsa-sha384, the KeyInfo chain to the CoRIM root).
 *
 * Compared, per RIM and per mutation of six genuine RIMs (one per board family and source):
 * - the verdict with the chain: `xmlsec1 --verify --trusted-pem <CoRIM root> --verification-gmt-time`
 *   accepts exactly when our rim.signature.reference, rim.signature.value, rim.chain and
 *   rim.chain.validity all pass;
 * - the verdict without the chain (`--insecure`: the KeyInfo leaf key, certificates not checked)
 *   against our rim.signature.reference && rim.signature.value, so a chain problem cannot hide a
 *   signature disagreement;
 * - the canonical bytes: xmlsec1's PreDigest buffer (the document after enveloped-signature + C14N 1.1)
 *   and PreSigned buffer (the canonical SignedInfo) equal ours byte for byte wherever xmlsec1 got that far.
 * The verification time is inside each signer's validity as index.json records it (computed
 * independently of both), and the day after it expired (both must refuse).
 */
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseXml, childElements } from '../../../../../agent/util/xml.js';
import { canonicalizeDocument, canonicalizeSubset } from '../../../../../agent/util/xml-c14n.js';
import { DSIG_NS, verifyRim } from '../../../../../agent/verify/nvidia/rim/index.js';
import type { Check } from '../../../../../agent/formats/checks.js';
import { requireTool } from '../../../../helpers/tools.js';
import { vector, vectorsDir } from '../../../../helpers/paths.js';
import { mapPool, runTool, scratchDir } from '../../../../helpers/tool-pool.js';

const HAVE_XMLSEC1 = requireTool('xmlsec1', 'xmlsec1');

const nvidiaDir = join(vectorsDir, 'nvidia');
function rimFiles(dir: string): string[] {
  return readdirSync(dir)
    .sort()
    .flatMap((name) => {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) return rimFiles(p);
      return /\.(swidtag|xml)$/.test(name) ? [relative(nvidiaDir, p)] : [];
    });
}
const RIMS = rimFiles(nvidiaDir);

interface IndexEntry {
  rim?: { signer_cert: { not_before: string; not_after: string } };
}
const index = JSON.parse(vector('nvidia/index.json').toString('utf8')) as { files: Record<string, IndexEntry> };
const DAY = 86_400_000;
const signerWindow = (rel: string) => {
  const s = index.files[rel]!.rim!.signer_cert;
  return { from: Date.parse(s.not_before.replace(' ', 'T')), to: Date.parse(s.not_after.replace(' ', 'T')) };
};
/** Midway through the signer's validity (the one-day signer of *_expired.xml included). */
const inside = (rel: string) => {
  const w = signerWindow(rel);
  return new Date(Math.floor((w.from + w.to) / 2 / 1000) * 1000);
};
const after = (rel: string) => new Date(signerWindow(rel).to + DAY);

/** xmlsec1's "YYYY-MM-DD HH:MM:SS" (GMT). */
const gmt = (d: Date) => d.toISOString().slice(0, 19).replace('T', ' ');

interface Case {
  name: string;
  xml: string;
  at: Date;
}

/** Mutations of a genuine RIM that both verifiers must refuse. */
function mutations(rel: string, xml: string, otherDigest: string): Case[] {
  const at = inside(rel);
  const hash = /Hash0="([0-9a-f]{96})"/.exec(xml.replace(/Hash0="0{96}"/g, ''))?.[1];
  if (!hash) throw new Error(`${rel}: no non-zero measurement`);
  const flipped = (hash[0] === 'a' ? 'b' : 'a') + hash.slice(1);
  const version = /colloquialVersion="([^"]*)"/.exec(xml)![1]!;
  const ownDigest = /<ds:DigestValue>([^<]*)<\/ds:DigestValue>/.exec(xml)![1]!;
  return [
    { name: `${rel} (one measurement value changed)`, xml: xml.replace(`"${hash}"`, `"${flipped}"`), at },
    { name: `${rel} (colloquialVersion attribute changed)`, xml: xml.replace(`colloquialVersion="${version}"`, `colloquialVersion="${version}9"`), at },
    {
      name: `${rel} (SignatureValue removed)`,
      xml: xml.replace(/<ds:SignatureValue>[^<]*<\/ds:SignatureValue>/, '<ds:SignatureValue></ds:SignatureValue>'),
      at,
    },
    {
      name: `${rel} (DigestValue swapped for another RIM's)`,
      xml: xml.replace(`<ds:DigestValue>${ownDigest}</ds:DigestValue>`, `<ds:DigestValue>${otherDigest}</ds:DigestValue>`),
      at,
    },
    { name: `${rel} (the day after the signer expired)`, xml, at: after(rel) },
  ];
}

const SIGNATURE = ['rim.signature.reference', 'rim.signature.value'];
const ALL = [...SIGNATURE, 'rim.chain', 'rim.chain.validity'];

interface Ours {
  signature: boolean;
  full: boolean;
  failed: string[];
  c14nDocument: string;
  c14nSignedInfo: string;
}

function ours(c: Case): Ours {
  const { checks } = verifyRim(c.xml, { at: c.at });
  const ok = (names: string[]) => names.every((n) => checks.find((x: Check) => x.name === n)?.ok === true);
  const doc = parseXml(c.xml);
  const sig = childElements(doc.root, DSIG_NS, 'Signature')[0]!;
  return {
    signature: ok(SIGNATURE),
    full: ok(ALL),
    failed: checks.filter((x) => !x.ok).map((x) => x.name),
    c14nDocument: canonicalizeDocument(doc, { omit: sig }),
    c14nSignedInfo: canonicalizeSubset(childElements(sig, DSIG_NS, 'SignedInfo')[0]!),
  };
}

interface Theirs {
  ok: boolean;
  preDigest?: string;
  preSigned?: string;
  error: string;
}

/** The buffer xmlsec1 --print-debug prints between "== <what> - start buffer:\n" and "\n== <what> - end buffer". */
function debugBuffer(out: string, what: string): string | undefined {
  const start = out.indexOf(`== ${what} - start buffer:\n`);
  if (start < 0) return undefined;
  const from = start + `== ${what} - start buffer:\n`.length;
  const end = out.indexOf(`\n== ${what} - end buffer`, from);
  return end < 0 ? undefined : out.slice(from, end);
}

async function xmlsec1(file: string, root: string, at: Date | 'insecure'): Promise<Theirs> {
  const trust = at === 'insecure' ? ['--insecure'] : ['--trusted-pem', root, '--verification-gmt-time', gmt(at)];
  const r = await runTool('xmlsec1', ['--verify', ...trust, '--store-references', '--store-signatures', '--print-debug', file]);
  const out = r.stdout.toString('utf8');
  const preDigest = debugBuffer(out, 'PreDigest data');
  const preSigned = debugBuffer(out, 'PreSigned data');
  return {
    ok: r.code === 0,
    ...(preDigest === undefined ? {} : { preDigest }),
    ...(preSigned === undefined ? {} : { preSigned }),
    error: r.stderr.split('\n').find((l) => l.includes('error=')) ?? r.stderr.trim(),
  };
}

interface Row {
  case: Case;
  ours: Ours;
  full: Theirs;
  insecure?: Theirs;
}

describe.runIf(HAVE_XMLSEC1)('RIMs: xmlsec1 and agent/verify/nvidia/rim agree', () => {
  const scratch = scratchDir('rim-xmlsec1-');
  const rows = new Map<string, Row>();
  const originals: Case[] = RIMS.map((rel) => ({ name: rel, xml: vector(`nvidia/${rel}`).toString('utf8'), at: inside(rel) }));
  let mutated: Case[] = [];

  beforeAll(async () => {
    const root = join(nvidiaDir, 'nvtrust/roots/verifier_RIM_root.pem');
    const mine = new Map(originals.map((c) => [c, ours(c)]));
    const genuine = originals.filter((c) => mine.get(c)!.full);
    const digests = genuine.map((c) => /<ds:DigestValue>([^<]*)<\/ds:DigestValue>/.exec(c.xml)![1]!);
    // Mutations of one genuine RIM per source and kind (a VBIOS of each board family, each driver RIM):
    // every RIM of the vectors is compared unmutated above; mutating all 28 only costs time.
    const MUTATED = /1010_0200_882_96005E0001_PROD|g520_0200_885_9600740001_PROD|hopper-545-complete|rims\/NV_GPU_DRIVER|negative\/NV_GPU_VBIOS/;
    mutated = genuine.flatMap((c, i) => (MUTATED.test(c.name) ? mutations(c.name, c.xml, digests[(i + 1) % digests.length]!) : []));
    const all = [...originals.map((c) => ({ c, insecure: true })), ...mutated.map((c) => ({ c, insecure: false }))];
    const results = await mapPool(all, async ({ c, insecure }, i) => {
      const file = scratch.write(`${i}.xml`, c.xml);
      const [full, ins] = await Promise.all([xmlsec1(file, root, c.at), insecure ? xmlsec1(file, root, 'insecure') : undefined]);
      return { case: c, ours: mine.get(c) ?? ours(c), full, ...(ins ? { insecure: ins } : {}) };
    });
    for (const r of results) rows.set(r.case.name, r);
  });
  afterAll(() => scratch.remove());

  it('finds every RIM of the vectors (24 VBIOS samples and the rest)', () => {
    expect(RIMS.length).toBeGreaterThanOrEqual(31);
    expect(RIMS.filter((r) => r.startsWith('nvtrust/rims-vbios-samples/'))).toHaveLength(24);
  });

  it.each(RIMS)('%s: same verdict with and without the chain, same canonical bytes', (rel) => {
    const r = rows.get(rel)!;
    const why = `ours failed [${r.ours.failed.join(', ')}]; xmlsec1: ${r.full.error} / --insecure: ${r.insecure!.error}`;
    expect(r.full.ok, why).toBe(r.ours.full);
    expect(r.insecure!.ok, why).toBe(r.ours.signature);
    // --insecure always finds the key, so xmlsec1 always canonicalises the document.
    expect(r.insecure!.preDigest).toBeDefined();
    expect(r.insecure!.preDigest === r.ours.c14nDocument, 'canonical document differs').toBe(true);
    if (r.insecure!.preSigned !== undefined) expect(r.insecure!.preSigned === r.ours.c14nSignedInfo, 'canonical SignedInfo differs').toBe(true);
  });

  it('the verdicts are the ones the vectors document (both sides accept the genuine, refuse the negative ones)', () => {
    const accepted = RIMS.filter((rel) => rows.get(rel)!.full.ok).sort();
    expect(accepted).toEqual(RIMS.filter((rel) => !rel.startsWith('attestation-sdk/negative/') || rel.includes('VBIOS_1010_0200')).sort());
  });

  it('every mutation of the genuine RIMs is refused by both, xmlsec1 having canonicalised the same bytes', () => {
    expect(mutated).toHaveLength(5 * 6);
    const disagreements = mutated
      .map((c) => rows.get(c.name)!)
      .filter((r) => r.full.ok || r.ours.full)
      .map((r) => `${r.case.name}: xmlsec1 ${r.full.ok ? 'accepts' : 'refuses'}, ours ${r.ours.full ? 'accepts' : 'refuses'}`);
    expect(disagreements).toEqual([]);
    for (const c of mutated) {
      const r = rows.get(c.name)!;
      if (r.full.preDigest !== undefined) expect(r.full.preDigest === r.ours.c14nDocument, `${c.name}: canonical document differs`).toBe(true);
      if (r.full.preSigned !== undefined) expect(r.full.preSigned === r.ours.c14nSignedInfo, `${c.name}: canonical SignedInfo differs`).toBe(true);
    }
  });

  /**
   * Expected difference: at the signer's notAfter second itself. RFC 5280 §4.1.2.5 makes validity
   * "notBefore through notAfter, inclusive", so we accept; OpenSSL (which xmlsec1 uses to check
   * certificates) treats a certificate as expired when X509_cmp_time(notAfter, now) <= 0, i.e. at
   * notAfter too. One second later both refuse; at notBefore both accept. Ours is the RFC reading.
   */
  it('expected difference: at exactly notAfter OpenSSL/xmlsec1 call the signer expired, RFC 5280 (and we) do not', async () => {
    const rel = 'nvtrust/rims-vbios-samples/1010_0200_882_96005E0001_PROD.swidtag';
    const root = join(nvidiaDir, 'nvtrust/roots/verifier_RIM_root.pem');
    const file = join(nvidiaDir, rel);
    const xml = vector(`nvidia/${rel}`).toString('utf8');
    const { from, to } = signerWindow(rel);
    const times = [new Date(from), new Date(to), new Date(to + 1000)];
    const theirs = await Promise.all(times.map((at) => xmlsec1(file, root, at)));
    const mine = times.map((at) => ours({ name: rel, xml, at }));
    expect(theirs.map((t) => t.ok)).toEqual([true, false, false]);
    expect(mine.map((m) => m.full)).toEqual([true, true, false]);
  });
});
