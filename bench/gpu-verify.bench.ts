/**
 * GPU verification cost, like against like. Eight simulated GPUs with DISTINCT identities (each its
 * own AK leaf and BROM certificate under the shared simulated ICA/Identity/root, agent/simulation/gpu-sim.ts),
 * verified by verifyGpus with the device chain's OCSP responses checked as the daemon does
 * (agent/simulation/open.ts hands the verifier signed OCSP answers; 3 certificates per GPU).
 *  - warm: caches filled by an earlier verdict (chain links, RIMs, OCSP signatures memoised); floor =
 *    the crypto a warm verdict cannot avoid: the 8 report ECDSA P-384 signatures. Target <= 1.5x.
 *  - cold: every memo cache dropped before each call (clearAllCaches); floor = all the distinct
 *    signatures the verdict needs, once each, with node:crypto on pre-parsed keys: 8 reports, the
 *    distinct chain links, both RIMs (SignedInfo + chain) and every distinct OCSP response.
 * Subject and floor are sampled alternately (pairedMedians), so machine load falls on both alike.
 * The real NVIDIA 545 set (one GPU, revocation skipped: no NVIDIA OCSP answer is recorded for it) is
 * measured the same two ways.
 */
import { X509Certificate, verify } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { childElements, parseXml, textOf } from '../agent/util/xml.js';
import { canonicalizeSubset } from '../agent/util/xml-c14n.js';
import { clearAllCaches } from '../agent/util/bounded-cache.js';
import { DSIG_NS, parseRim } from '../agent/verify/nvidia/rim/index.js';
import type { GpuEvidenceRecord } from '../agent/formats/gpu-evidence-record.js';
import { verifyGpuEvidence, type GpuVerifyOptions, verifyGpus } from '../agent/attest/verify-and-appraise.js';
import { parseGpuReport, reportBytesFromFile } from '../agent/verify/nvidia/gpu-report.js';
import { parseCertificate } from '../agent/formats/x509/certificate.js';
import { parseOcspResponse } from '../agent/verify/nvidia/ocsp-check.js';
import { buildSimulatedReport, loadOrCreateSimGpuIdentity, simulatedRims, simulatedRoots } from '../agent/simulation/gpu-sim.js';
import { simulatedOcspResponses } from '../agent/simulation/ocsp-sim.js';
import { nvidiaRimRoot } from '../agent/roots/nvidia-rim.js';
import { nvidiaDeviceRoot } from '../agent/roots/nvidia-device.js';
import { pairedMedians, type BenchRow } from './lib.js';

type Verify = () => boolean;

/** The crypto a RIM verification cannot avoid: SignatureValue over canonical SignedInfo + chain links. */
function rimFloor(xml: string, anchor: X509Certificate): Verify[] {
  const doc = parseXml(xml);
  const sig = childElements(doc.root, DSIG_NS, 'Signature')[0]!;
  const signedInfo = Buffer.from(canonicalizeSubset(childElements(sig, DSIG_NS, 'SignedInfo')[0]!), 'utf8');
  const value = Buffer.from(textOf(childElements(sig, DSIG_NS, 'SignatureValue')[0]!).replace(/\s+/g, ''), 'base64');
  const certs = parseRim(xml).signerCerts.map((d) => new X509Certificate(d));
  const path = certs.length > 1 && certs[certs.length - 1]!.subject === certs[certs.length - 1]!.issuer ? certs.slice(0, -1) : certs;
  const chain = [...path, anchor];
  const out: Verify[] = [() => verify('sha384', signedInfo, { key: certs[0]!.publicKey, dsaEncoding: 'ieee-p1363' }, value)];
  for (let i = 0; i + 1 < chain.length; i++) out.push(() => chain[i]!.verify(chain[i + 1]!.publicKey));
  return out;
}

function chainOf(ev: GpuEvidenceRecord): X509Certificate[] {
  return (ev.certChainPem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? []).map((p) => new X509Certificate(p));
}

/** The report signature alone (all a warm verdict must verify per GPU). */
function reportFloor(ev: GpuEvidenceRecord): Verify {
  const r = parseGpuReport(ev.report);
  const leaf = chainOf(ev)[0]!;
  return () => verify('sha384', r.signedBytes, { key: leaf.publicKey, dsaEncoding: 'ieee-p1363' }, r.signature);
}

/** Device chain links (the pinned/simulated root replaces the supplied one), keyed so shared links count once. */
function linkFloor(ev: GpuEvidenceRecord, anchor: X509Certificate, into: Map<string, Verify>): void {
  const certs = chainOf(ev);
  const chain = [...certs.slice(0, -1), anchor];
  for (let i = 0; i + 1 < chain.length; i++) {
    const child = chain[i]!;
    const issuer = chain[i + 1]!;
    into.set(`${child.fingerprint256}:${issuer.fingerprint256}`, () => child.verify(issuer.publicKey));
  }
}

/** One OCSP response's signature under its responder (the simulated responses name their issuer by Name). */
function ocspFloor(der: Uint8Array, signers: ReadonlyMap<string, X509Certificate>): Verify {
  const r = parseOcspResponse(der);
  const signer = signers.get(Buffer.from(r.responderByName!).toString('hex'));
  if (!signer) throw new Error('bench: no signer for a simulated OCSP response');
  return () => verify('sha384', r.tbsResponseData, signer.publicKey, r.signature);
}

function runAll(fns: Verify[]): void {
  for (const f of fns) if (!f()) throw new Error('floor verification failed');
}

export default async function gpuVerifyBench(): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'gpu-bench-'));
  try {
    const id = await loadOrCreateSimGpuIdentity(dir, 8);
    const nonce = Buffer.alloc(32, 9);
    const rims = simulatedRims(id);
    const list = id.gpus.map((g, i) => ({ report: buildSimulatedReport(id, i, { nonce }), certChainPem: g.chainPem }));
    const at = new Date();
    const ocsp = simulatedOcspResponses(id, at);
    const options: GpuVerifyOptions = { at, expectedNonce: nonce, rims: { byId: rims.byId }, simulatedRoots: simulatedRoots(id), ocsp };
    const check = await verifyGpus(list, options);
    if (!check.ok || check.perGpu.some((r) => r.claims?.measres !== 'success' || r.checks.find((c) => c.name === 'gpu.revocation')?.warning !== undefined))
      throw new Error('simulated GPUs did not verify with revocation');
    if (new Set(list.map((e) => e.certChainPem)).size !== 8) throw new Error('the simulated GPUs are not distinct');

    const simRoot = new X509Certificate(id.root.der);
    const rimRoot = new X509Certificate(id.rimRoot.der);
    const warmFloor = list.map(reportFloor);
    const links = new Map<string, Verify>();
    for (const ev of list) linkFloor(ev, simRoot, links);
    const signers = new Map(
      [id.ica, id.identity, id.root, ...id.gpus.map((g) => g.brom)].map((c) => [
        Buffer.from(parseCertificate(c.der).subjectDer).toString('hex'),
        new X509Certificate(c.der),
      ]),
    );
    const ocspSigs = ocsp.map((der) => ocspFloor(der, signers));
    const coldFloor = [...warmFloor, ...links.values(), ...rimFloor(rims.driver, rimRoot), ...rimFloor(rims.vbios, rimRoot), ...ocspSigs];

    const { ms: warmMs, floorMs: warmFloorMs } = await pairedMedians(
      () => verifyGpus(list, options),
      () => runAll(warmFloor),
      { runs: 21, inner: 3 },
    );
    rows.push({
      name: 'gpu: verify 8 distinct simulated GPUs, with OCSP (3 certs/GPU), warm',
      cache: 'warm',
      medianMs: warmMs,
      runs: 21,
      baselineName: `floor: 8 report P-384 verifies`,
      baselineMs: warmFloorMs,
      target: '<= 1.5x floor',
      note: `sig+chain+2 RIMs+measurements+OCSP (${ocsp.length} distinct responses)`,
    });
    const { ms: coldMs, floorMs: coldFloorMs } = await pairedMedians(
      () => verifyGpus(list, options),
      () => runAll(coldFloor),
      { runs: 11, inner: 1, warmup: 2, before: clearAllCaches },
    );
    rows.push({
      name: 'gpu: verify 8 distinct simulated GPUs, with OCSP (3 certs/GPU), cold',
      cache: 'cold',
      medianMs: coldMs,
      runs: 11,
      baselineName: `floor: ${coldFloor.length} distinct verifies (8 reports, ${links.size} links, 2 RIMs, ${ocspSigs.length} OCSP)`,
      baselineMs: coldFloorMs,
      note: 'every memo cache dropped before each call; the floor uses pre-parsed keys',
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  // The real 545 set: one NVIDIA-signed GPU (report, chain, RIMs).
  const d = join(import.meta.dirname, '..', 'test', 'vectors', 'nvidia', 'nvtrust', 'hopper-545-complete');
  const ev: GpuEvidenceRecord = {
    report: reportBytesFromFile(readFileSync(join(d, 'attestationReport.txt'))),
    certChainPem: readFileSync(join(d, 'gpuAkCertChain.txt'), 'latin1'),
  };
  const driver = readFileSync(join(d, 'Driver_RIM_test_no_gpu.swidtag'), 'utf8');
  const vbios = readFileSync(join(d, '1010_0200_882_96005E0001_test_no_gpu.swidtag'), 'utf8');
  const opts545: GpuVerifyOptions = {
    at: new Date('2024-06-01T00:00:00Z'),
    expectedNonce: Buffer.from('4cff7f5380ead8fad8ec2c531c110aca4302a88f603792801a8ca29ee151af2e', 'hex'),
    rims: { driver, vbios },
    skip: new Set(['revocation']),
  };
  if (!verifyGpuEvidence(ev, opts545).ok) throw new Error('545 set did not verify');
  const warm545 = [reportFloor(ev)];
  const links545 = new Map<string, Verify>();
  linkFloor(ev, nvidiaDeviceRoot().x509, links545);
  const cold545 = [...warm545, ...links545.values(), ...rimFloor(driver, nvidiaRimRoot().x509), ...rimFloor(vbios, nvidiaRimRoot().x509)];
  const { ms: warm545Ms, floorMs: warm545Floor } = await pairedMedians(
    () => verifyGpuEvidence(ev, opts545),
    () => runAll(warm545),
    { runs: 31, inner: 10 },
  );
  rows.push({
    name: 'gpu: verify the real NVIDIA 545 set (1 GPU, revocation skipped: no OCSP recorded), warm',
    cache: 'warm',
    medianMs: warm545Ms,
    runs: 31,
    baselineName: 'floor: 1 report P-384 verify',
    baselineMs: warm545Floor,
  });
  const { ms: cold545Ms, floorMs: cold545Floor } = await pairedMedians(
    () => verifyGpuEvidence(ev, opts545),
    () => runAll(cold545),
    { runs: 21, inner: 1, warmup: 2, before: clearAllCaches },
  );
  rows.push({
    name: 'gpu: verify the real NVIDIA 545 set (1 GPU, revocation skipped: no OCSP recorded), cold',
    cache: 'cold',
    medianMs: cold545Ms,
    runs: 21,
    baselineName: `floor: ${cold545.length} verifies (report, ${links545.size} links, 2 RIMs)`,
    baselineMs: cold545Floor,
  });
  return rows;
}
