/**
 * RIM verification cost: XML parse + C14N 1.1 + SHA-384 digest + ecdsa-sha384 + 3-link chain, for
 * one genuine driver RIM, against a crypto floor measured in the same run, sample for sample
 * (pairedMedians): exactly the verifier's cryptography on the same inputs and nothing else, i.e. the
 * SHA-384 of the canonical document, the ecdsa-sha384 SignatureValue over the canonical SignedInfo,
 * and the three certificate links (signer -> L3 CA -> GH100 CA -> pinned CoRIM root), every key
 * already imported. What the floor leaves out is the verifier's own work: XML parse, C14N, the RIM
 * model, reading the KeyInfo certificates (our DER parser and OpenSSL's X509Certificate, which decodes
 * each public key) and the checks around them.
 * Cold rows: every memo cache (certificates, chain links) is dropped before each call, so each call
 * reads the KeyInfo certificates and imports their keys again. The pinned CoRIM root is a constant:
 * it is parsed once per process (verify/nvidia/rim/rim-signature.ts), as the floor's keys are.
 * Reference point: ~18 ms for both RIMs in a Python + cryptography verifier with pure-Python C14N
 * (measured offline; NVIDIA publishes no timing).
 */
import { X509Certificate, createHash, verify, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { childElements, parseXml, textOf } from '../agent/util/xml.js';
import { canonicalizeDocument, canonicalizeSubset } from '../agent/util/xml-c14n.js';
import { DSIG_NS, parseRim, verifyRim } from '../agent/verify/nvidia/rim/index.js';
import { nvidiaRimRoot } from '../agent/roots/nvidia-rim.js';
import { medianMs, pairedMedians, type BenchRow } from './lib.js';
import { clearAllCaches } from '../agent/util/bounded-cache.js';

export default async function rimBench(): Promise<BenchRow[]> {
  const dir = join(import.meta.dirname, '..', 'test', 'vectors', 'nvidia', 'nvtrust', 'hopper-545-complete');
  const driver = readFileSync(join(dir, 'Driver_RIM_test_no_gpu.swidtag'), 'utf8');
  const vbios = readFileSync(join(dir, '1010_0200_882_96005E0001_test_no_gpu.swidtag'), 'utf8');
  const at = new Date('2024-06-01T00:00:00Z');

  // The floor's inputs, prepared once: the canonical document and SignedInfo, the SignatureValue, the
  // KeyInfo chain without its own root, then the pinned root, each key imported.
  const doc = parseXml(driver);
  const signature = childElements(doc.root, DSIG_NS, 'Signature')[0]!;
  const canonicalDoc = canonicalizeDocument(doc, { omit: signature });
  const signedInfo = Buffer.from(canonicalizeSubset(childElements(signature, DSIG_NS, 'SignedInfo')[0]!), 'utf8');
  const signatureValue = Buffer.from(textOf(childElements(signature, DSIG_NS, 'SignatureValue')[0]!), 'base64');
  const keyInfo = parseRim(driver).signerCerts;
  const chain = [...keyInfo.slice(0, -1).map((d) => new X509Certificate(d)), nvidiaRimRoot().x509];
  const keys: KeyObject[] = chain.map((c) => c.publicKey);
  const floor = () => {
    createHash('sha384').update(canonicalDoc, 'utf8').digest();
    if (!verify('sha384', signedInfo, { key: keys[0]!, dsaEncoding: 'ieee-p1363' }, signatureValue)) throw new Error('floor: SignatureValue');
    for (let i = 0; i + 1 < chain.length; i++) if (!chain[i]!.verify(keys[i + 1]!)) throw new Error(`floor: link ${i}`);
  };
  floor();
  const links = chain.length - 1;

  const verifyOne = () => {
    const r = verifyRim(driver, { at });
    if (!r.checks.every((c) => c.ok)) throw new Error('rim bench: the genuine RIM did not verify');
  };
  const one = await pairedMedians(verifyOne, floor, { runs: 31, inner: 10, before: clearAllCaches });
  // The part of the margin no parser can remove: OpenSSL reading the KeyInfo certificates the chain uses
  // (d2i_X509 decodes each public key; the key has to be imported to verify with it).
  const reads = await pairedMedians(
    () => {
      for (const d of keyInfo.slice(0, -1)) void new X509Certificate(d).publicKey;
    },
    floor,
    { runs: 31, inner: 10 },
  );
  const bothMs = await medianMs(
    () => {
      verifyRim(driver, { at });
      verifyRim(vbios, { at });
    },
    { runs: 21, inner: 5, before: clearAllCaches },
  );
  const c14nMs = await medianMs(() => canonicalizeDocument(parseXml(driver)), { runs: 31, inner: 20 });
  const floorName = `crypto floor (SHA-384 of the canonical document, SignatureValue, ${links} link verifies; keys imported)`;
  return [
    {
      name: 'rim: verify one driver RIM (parse+c14n+digest+sig+chain), cold',
      cache: 'cold',
      medianMs: one.ms,
      runs: 31,
      baselineName: floorName,
      baselineMs: one.floorMs,
      target: '<= 1.3x floor',
      note: `${driver.length} chars; pinned root parsed once per process, KeyInfo certificates read and their keys imported on every call`,
    },
    {
      name: `rim: of which OpenSSL reading the ${keyInfo.length - 1} KeyInfo chain certificates (X509Certificate, key decoded)`,
      medianMs: reads.ms,
      runs: 31,
      baselineName: floorName,
      baselineMs: reads.floorMs,
    },
    { name: 'rim: verify driver + VBIOS RIMs, cold', cache: 'cold', medianMs: bothMs, runs: 21, target: '< 18 ms (Python reference verifier)' },
    { name: 'rim: parse + C14N 1.1 only (driver RIM)', medianMs: c14nMs, runs: 31 },
  ];
}
