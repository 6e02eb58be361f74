/**
 * GPU verification of 8 GPUs with cached collateral (signature, device chain, driver + VBIOS RIMs,
 * golden measurements), against the raw crypto floor measured in the same run: per GPU one ECDSA P-384
 * report verify + the 4 device-chain verifies + both RIM signature verifies and their chain verifies,
 * with node:crypto on pre-parsed keys. Targets (issue): <= 1.5x the floor and < 20 ms for 8 GPUs.
 * Chain certificates and RIM verification results are memoised by hash (pure results), so a repeated
 * verification pays only for the per-report work (parse, report signature, measurement compare).
 */
import { X509Certificate, verify } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { childElements, parseXml, textOf } from '../agent/util/xml.js';
import { canonicalizeSubset } from '../agent/util/xml-c14n.js';
import { DSIG_NS, parseRim } from '../agent/verify/nvidia/rim/index.js';
import type { GpuEvidenceRecord } from '../agent/formats/gpu-evidence-record.js';
import { verifyGpuEvidence, type GpuVerifyOptions, verifyGpus } from '../agent/attest/verify-and-appraise.js';
import { parseGpuReport, reportBytesFromFile } from '../agent/verify/nvidia/gpu-report.js';
import { buildSimulatedReport, loadOrCreateSimGpuIdentity, simulatedRims, simulatedRoots } from '../agent/simulation/gpu-sim.js';
import { nvidiaRimRoot } from '../agent/roots/nvidia-rim.js';
import { nvidiaDeviceRoot } from '../agent/roots/nvidia-device.js';
import { medianMs, type BenchRow } from './lib.js';

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

/** Report signature + device chain links (the pinned/simulated root replaces the supplied one). */
function deviceFloor(ev: GpuEvidenceRecord, anchor: X509Certificate): Verify[] {
  const r = parseGpuReport(ev.report);
  const certs = (ev.certChainPem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? []).map((p) => new X509Certificate(p));
  const chain = [...certs.slice(0, -1), anchor];
  const out: Verify[] = [() => verify('sha384', r.signedBytes, { key: certs[0]!.publicKey, dsaEncoding: 'ieee-p1363' }, r.signature)];
  for (let i = 0; i + 1 < chain.length; i++) out.push(() => chain[i]!.verify(chain[i + 1]!.publicKey));
  return out;
}

function runAll(fns: Verify[]): void {
  for (const f of fns) if (!f()) throw new Error('floor verification failed');
}

export default async function gpuVerifyBench(): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];

  // 1. Eight simulated GPUs (distinct devices), full verification via verifyGpus.
  const dir = mkdtempSync(join(tmpdir(), 'gpu-bench-'));
  try {
    const id = await loadOrCreateSimGpuIdentity(dir, 8);
    const nonce = Buffer.alloc(32, 9);
    const rims = simulatedRims(id);
    const list = id.gpus.map((g, i) => ({ report: buildSimulatedReport(id, i, { nonce }), certChainPem: g.chainPem }));
    const options: GpuVerifyOptions = {
      at: new Date(),
      expectedNonce: nonce,
      rims: { byId: rims.byId },
      simulatedRoots: simulatedRoots(id),
      skip: new Set(['revocation']),
    };
    const check = await verifyGpus(list, options);
    if (!check.ok || check.perGpu.some((r) => r.claims?.measres !== 'success')) throw new Error('simulated GPUs did not verify');
    const simRoot = new X509Certificate(id.root.der);
    const rimRoot = new X509Certificate(id.rimRoot.der);
    const floor = [
      ...list.flatMap((ev) => deviceFloor(ev, simRoot)),
      ...Array.from({ length: 8 }, () => [...rimFloor(rims.driver, rimRoot), ...rimFloor(rims.vbios, rimRoot)]).flat(),
    ];
    const floorMs = await medianMs(() => runAll(floor), { runs: 21, inner: 3 });
    const ms = await medianMs(() => verifyGpus(list, options), { runs: 21, inner: 3 });
    rows.push({
      name: 'gpu: verify 8 simulated GPUs (sig+chain+2 RIMs+measurements, cached collateral)',
      medianMs: ms,
      baselineName: `raw crypto floor (${floor.length} P-384 verifies)`,
      baselineMs: floorMs,
      target: '<= 1.5x floor, < 20 ms',
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  // 2. The real 545 set x8 (NVIDIA-signed report, chain and RIMs), verified per GPU.
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
  const perGpu = [...deviceFloor(ev, nvidiaDeviceRoot().x509), ...rimFloor(driver, nvidiaRimRoot().x509), ...rimFloor(vbios, nvidiaRimRoot().x509)];
  const floor545 = Array.from({ length: 8 }, () => perGpu).flat();
  const floor545Ms = await medianMs(() => runAll(floor545), { runs: 21, inner: 3 });
  const eight = Array.from({ length: 8 }, () => ev);
  const ms545 = await medianMs(() => Promise.all(eight.map((e) => verifyGpuEvidence(e, opts545))), { runs: 21, inner: 3 });
  rows.push({
    name: 'gpu: verify real 545 set x8 (NVIDIA report+chain+RIMs, cached collateral)',
    medianMs: ms545,
    baselineName: `raw crypto floor (${floor545.length} P-384 verifies)`,
    baselineMs: floor545Ms,
    target: '<= 1.5x floor, < 20 ms',
  });

  // 3. One GPU's report-only work (what remains per GPU once collateral is cached).
  const oneMs = await medianMs(() => verifyGpuEvidence(ev, opts545), { runs: 31, inner: 10 });
  const reportFloor = deviceFloor(ev, nvidiaDeviceRoot().x509).slice(0, 1);
  const reportFloorMs = await medianMs(() => runAll(reportFloor), { runs: 31, inner: 10 });
  rows.push({ name: 'gpu: verify one GPU, collateral cached', medianMs: oneMs, baselineName: 'one report ECDSA P-384 verify', baselineMs: reportFloorMs });
  return rows;
}
