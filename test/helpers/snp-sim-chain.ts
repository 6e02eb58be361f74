/**
 * A simulated Genoa-shaped SEV-SNP chain for tests: ARK → ASK (RSA-2048, RSASSA-PSS SHA-384, AMD DNs)
 * → VCEK (EC P-384 with AMD extensions) and a version-3 report signed by the VCEK. Built with the
 * project's X.509 builder and report serializer; trusted only when passed as simulatedRoots.
 */
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { buildCertificate, buildCrl, basicConstraints, type NameSpec } from '../../agent/simulation/x509-builder.js';
import { ia5String, integer } from '../../agent/util/der-writer.js';
import { AMD_OID, encodeTcb, serializeSnpReport, signatureFromP1363, SNP_SIGNED_END } from '../../agent/formats/snp-abi/index.js';
import type { SimulatedRootsInput } from '../../agent/roots/amd.js';

export const amdName = (CN: string): NameSpec => ({ OU: 'Engineering', C: 'US', L: 'Santa Clara', ST: 'CA', O: 'Advanced Micro Devices', CN });

export interface SimSnpChain {
  arkKey: KeyObject;
  ark: Buffer;
  ask: Buffer;
  vcek: Buffer;
  report: Buffer;
  roots: SimulatedRootsInput;
  vcekSerial: bigint;
  askSerial: bigint;
}

export function makeSimSnpChain(): SimSnpChain {
  const rsa = () => generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ark = rsa();
  const ask = rsa();
  const vcek = generateKeyPairSync('ec', { namedCurve: 'secp384r1' });
  const nb = new Date('2025-01-01T00:00:00Z');
  const na = new Date('2050-01-01T00:00:00Z');
  const arkDer = buildCertificate({
    serial: 0x20000,
    issuer: amdName('ARK-Genoa'),
    subject: amdName('ARK-Genoa'),
    notBefore: nb,
    notAfter: na,
    subjectPublicKey: ark.publicKey,
    issuerKey: ark.privateKey,
    signature: 'rsa-pss-sha384',
    extensions: [basicConstraints({ ca: true })],
  });
  const askSerial = 0x20001n;
  const askDer = buildCertificate({
    serial: askSerial,
    issuer: amdName('ARK-Genoa'),
    subject: amdName('SEV-Genoa'),
    notBefore: nb,
    notAfter: na,
    subjectPublicKey: ask.publicKey,
    issuerKey: ark.privateKey,
    signature: 'rsa-pss-sha384',
    extensions: [basicConstraints({ ca: true, pathLen: 0 })],
  });
  const chipId = Buffer.alloc(64, 0x5a);
  const tcb = { bootloader: 9, tee: 0, snp: 21, microcode: 72 };
  const vcekSerial = 0x1234n;
  const vcekDer = buildCertificate({
    serial: vcekSerial,
    issuer: amdName('SEV-Genoa'),
    subject: amdName('SEV-VCEK'),
    notBefore: nb,
    notAfter: new Date('2032-01-01T00:00:00Z'),
    subjectPublicKey: vcek.publicKey,
    issuerKey: ask.privateKey,
    signature: 'rsa-pss-sha384',
    extensions: [
      { oid: AMD_OID.structVersion, value: integer(0) },
      { oid: AMD_OID.productName, value: ia5String('Genoa') },
      { oid: AMD_OID.blSpl, value: integer(tcb.bootloader) },
      { oid: AMD_OID.teeSpl, value: integer(tcb.tee) },
      { oid: AMD_OID.snpSpl, value: integer(tcb.snp) },
      { oid: AMD_OID.ucodeSpl, value: integer(tcb.microcode) },
      { oid: AMD_OID.hwId, value: chipId },
    ],
  });
  const raw = encodeTcb(tcb, 'legacy');
  // The same report fields signed and then serialized with their signature.
  const fields = {
    version: 3,
    policy: 0x30000n,
    currentTcb: raw,
    reportedTcb: raw,
    committedTcb: raw,
    launchTcb: raw,
    currentVersion: { major: 1, minor: 55, build: 40 },
    committedVersion: { major: 1, minor: 55, build: 40 },
    cpuid: { family: 0x19, model: 0x11, stepping: 1 },
    chipId,
    measurement: Buffer.alloc(48, 0x11),
    reportData: Buffer.alloc(64, 0x22),
  };
  const unsigned = serializeSnpReport(fields);
  const sig = sign('sha384', unsigned.subarray(0, SNP_SIGNED_END), { key: vcek.privateKey, dsaEncoding: 'ieee-p1363' });
  const report = serializeSnpReport({ ...fields, signature: signatureFromP1363(sig) });
  return {
    arkKey: ark.privateKey,
    ark: arkDer,
    ask: askDer,
    vcek: vcekDer,
    report,
    roots: { product: 'Genoa', ark: arkDer, ask: askDer, simulated: true },
    vcekSerial,
    askSerial,
  };
}

/** A CRL signed by the chain's ARK, fresh for 2026-02-01..2026-04-01. */
export function simCrl(sim: SimSnpChain, over: Partial<Parameters<typeof buildCrl>[0]> = {}): Buffer {
  return buildCrl({
    issuer: amdName('ARK-Genoa'),
    issuerKey: sim.arkKey,
    signature: 'rsa-pss-sha384',
    thisUpdate: new Date('2026-02-01T00:00:00Z'),
    nextUpdate: new Date('2026-04-01T00:00:00Z'),
    revoked: [],
    ...over,
  });
}
