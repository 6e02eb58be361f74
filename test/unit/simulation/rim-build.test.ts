import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { basicConstraints, buildCertificate, keyUsage, type NameSpec } from '../../../agent/simulation/x509-builder.js';
import { CvmError } from '../../../agent/errors.js';
import type { Check } from '../../../agent/formats/checks.js';
import { parseGpuReport, reportBytesFromFile } from '../../../agent/verify/nvidia/gpu-report.js';
import { compareMeasurements, parseRim, verifyRimSignature } from '../../../agent/verify/nvidia/rim/index.js';
import { buildSignedRim } from '../../../agent/simulation/rim-build.js';
import { vector } from '../../helpers/paths.js';

const p384 = () => generateKeyPairSync('ec', { namedCurve: 'P-384' });
const byName = (checks: Check[]) => Object.fromEntries(checks.map((c) => [c.name, c]));

/** A simulated RIM signing chain root → CA → leaf, like NVIDIA's (P-384, ecdsa-with-SHA384). */
function simulatedChain(validTo = new Date('2030-01-01T00:00:00Z'), leafUsage: 'digitalSignature' | 'keyAgreement' = 'digitalSignature') {
  const names: NameSpec[] = [
    { CN: 'SIMULATED CoRIM Root', O: 'cvm-agent' },
    { CN: 'SIMULATED Reference Value CA', O: 'cvm-agent' },
    { CN: 'SIMULATED RIM Signer', O: 'cvm-agent' },
  ];
  const keys = [p384(), p384(), p384()];
  const notBefore = new Date('2024-01-01T00:00:00Z');
  const cert = (i: number, issuer: number, ca: boolean, serial: number) =>
    buildCertificate({
      serial,
      issuer: names[issuer]!,
      subject: names[i]!,
      notBefore,
      notAfter: i === 2 ? validTo : new Date('2040-01-01T00:00:00Z'),
      subjectPublicKey: keys[i]!.publicKey,
      issuerKey: keys[issuer]!.privateKey,
      signature: 'ecdsa-sha384',
      extensions: ca ? [basicConstraints({ ca: true }), keyUsage(['keyCertSign', 'cRLSign'])] : [basicConstraints({ ca: false }), keyUsage([leafUsage])],
    });
  const root = cert(0, 0, true, 1);
  const ca = cert(1, 0, true, 2);
  const leaf = cert(2, 1, false, 3);
  return { root, ca, leaf, leafKey: keys[2]!.privateKey as KeyObject };
}

const R545 = parseGpuReport(reportBytesFromFile(vector('nvidia/nvtrust/hopper-545-complete/attestationReport.txt')));
const at = new Date('2026-01-01T00:00:00Z');

describe('buildSignedRim (simulated GPUs)', () => {
  const sim = simulatedChain();
  const driverIdx = [7, ...Array.from({ length: 20 }, (_, i) => 21 + i)];
  const driverXml = buildSignedRim({
    kind: 'driver',
    version: '550.90.07',
    measurements: driverIdx.map((i) => ({ index: i, alternatives: [Buffer.from(R545.measurements.get(i + 1)!)] })),
    signer: { key: sim.leafKey, chain: [sim.leaf, sim.ca, sim.root] },
  });

  it('is accepted with the simulation root passed in extraRoots', () => {
    const checks = verifyRimSignature(driverXml, { at, extraRoots: [sim.root] });
    for (const c of checks) expect(c, c.detail).toMatchObject({ ok: true });
    expect(byName(checks)['rim.chain']!.detail).toMatch(/simulation root/);
  });

  it('is rejected without it: simulated roots are never trusted by default', () => {
    const c = byName(verifyRimSignature(driverXml, { at }));
    expect(c['rim.chain']).toMatchObject({ ok: false });
    // The signature itself is fine; only trust is missing.
    expect(c['rim.signature.reference']!.ok && c['rim.signature.value']!.ok).toBe(true);
  });

  it('is rejected with a different simulation root', () => {
    const other = simulatedChain();
    expect(byName(verifyRimSignature(driverXml, { at, extraRoots: [other.root] }))['rim.chain']).toMatchObject({ ok: false });
  });

  it('verifies without the root in KeyInfo too', () => {
    const xml = buildSignedRim({
      kind: 'vbios',
      version: '96.00.5E.00.01',
      measurements: [{ index: 0, alternatives: [Buffer.alloc(48, 1)] }],
      signer: { key: sim.leafKey, chain: [sim.leaf, sim.ca] },
    });
    expect(verifyRimSignature(xml, { at, extraRoots: [sim.root] }).every((c) => c.ok)).toBe(true);
  });

  it('round-trips through parseRim and matches the report it was built from', () => {
    const rim = parseRim(driverXml);
    expect(rim.colloquialVersion).toBe('550.90.07');
    expect(rim.measurements.map((m) => m.index)).toEqual(driverIdx);
    expect(rim.signerCerts).toHaveLength(3);
    const vbiosIdx = [0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12];
    const vbios = parseRim(
      buildSignedRim({
        kind: 'vbios',
        version: '96.00.5E.00.01',
        measurements: vbiosIdx.map((i) => ({ index: i, alternatives: [Buffer.alloc(48, 7), Buffer.from(R545.measurements.get(i + 1)!)] })),
        signer: { key: sim.leafKey, chain: [sim.leaf, sim.ca, sim.root] },
      }),
    );
    expect(vbios.measurements[0]!.alternatives).toHaveLength(2);
    expect(compareMeasurements(R545.measurements, rim, vbios, { nvdec0Status: 0xaa }).every((c) => c.ok)).toBe(true);
  });

  it('tampering with a built RIM breaks its digest', () => {
    const tampered = driverXml.replace('index="7" active="True"', 'index="7" active="False"');
    expect(tampered).not.toBe(driverXml);
    expect(byName(verifyRimSignature(tampered, { at, extraRoots: [sim.root] }))['rim.signature.reference']).toMatchObject({ ok: false });
  });

  it('an expired simulated signer fails validity', () => {
    const old = simulatedChain(new Date('2025-01-01T00:00:00Z'));
    const xml = buildSignedRim({
      kind: 'driver',
      version: '1.0',
      measurements: [{ index: 7, alternatives: [Buffer.alloc(48)] }],
      signer: { key: old.leafKey, chain: [old.leaf, old.ca] },
    });
    expect(byName(verifyRimSignature(xml, { at, extraRoots: [old.root] }))['rim.chain.validity']).toMatchObject({ ok: false });
  });

  it('a signer whose keyUsage lacks digitalSignature is not accepted', () => {
    const ka = simulatedChain(undefined, 'keyAgreement');
    const xml = buildSignedRim({
      kind: 'driver',
      version: '1.0',
      measurements: [{ index: 7, alternatives: [Buffer.alloc(48)] }],
      signer: { key: ka.leafKey, chain: [ka.leaf, ka.ca] },
    });
    const c = byName(verifyRimSignature(xml, { at, extraRoots: [ka.root] }));
    expect(c['rim.chain']).toMatchObject({ ok: false });
    expect(c['rim.chain']!.detail).toMatch(/digitalSignature/);
  });

  it('refuses unusable input with a typed error', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    expect(() => buildSignedRim({ kind: 'driver', version: '1', measurements: [], signer: { key: rsa, chain: [sim.leaf] } })).toThrow(CvmError);
    expect(() =>
      buildSignedRim({
        kind: 'driver',
        version: '1',
        measurements: [{ index: 1, alternatives: [Buffer.alloc(32)] }],
        signer: { key: sim.leafKey, chain: [sim.leaf] },
      }),
    ).toThrow(/48 bytes/);
    expect(() =>
      buildSignedRim({ kind: 'driver', version: '1', measurements: [{ index: 1, alternatives: [Buffer.alloc(48)] }], signer: { key: sim.leafKey, chain: [] } }),
    ).toThrow(CvmError);
    expect(() => buildSignedRim({ kind: 'driver', version: '1', measurements: [], signer: { key: sim.leafKey, chain: [sim.leaf] } })).toThrow(
      /at least one measurement/,
    );
  });
});
