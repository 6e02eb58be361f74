/**
 * Bit-flip and truncation sweeps over every public NVSwitch (LS10) vector other than the report, whose
 * sweeps are in switch-verify.test.ts (every bit flip) and switch-opaque.test.ts (parser): the device
 * certificate chain, the switch VBIOS RIM, and NVIDIA's serialized switch evidence JSON (all from
 * test/vectors/nvidia/attestation-sdk/switch-ls10). Truncations are swept exhaustively where a rejection
 * is cheap (DER, JSON); bit flips, which cost a chain or XML-DSig verification each, are sampled with
 * fast-check. Every damaged input is rejected by a named check (or a ParseError for the JSON), with one
 * exception the RIM verifier makes by design: the self-issued root that a RIM carries in KeyInfo is
 * dropped, never trusted (rim-signer-chain.ts), so a flip inside it changes nothing that is verified.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { vector, FC_RUNS } from '../../../helpers/paths.js';
import { reportBytesFromFile } from '../../../../agent/verify/nvidia/gpu-report.js';
import { verifySwitchReport } from '../../../../agent/verify/nvidia/switch-verify.js';
import { decodeGpuEvidenceJson } from '../../../../agent/formats/nvidia-evidence-json.js';
import { CvmError } from '../../../../agent/errors.js';
import { derToPem, pemBlocks } from '../../../../agent/util/pem.js';

/** The certificates of a PEM chain as DER, hex: what the verifier checks. */
const chainDers = (pem: string): string[] => pemBlocks(pem).map((der) => der.toString('hex'));

const D = 'nvidia/attestation-sdk/switch-ls10';
const report = reportBytesFromFile(vector(`${D}/switchAttestationReport.txt`));
const certChainPem = vector(`${D}/switchCertChain.txt`).toString('latin1');
const rimText = vector(`${D}/switchVBIOSRim_NV_SWITCH_BIOS_5612_0002_890_9610550001.xml`).toString('utf8');
const evidenceJson = vector(`${D}/switch_evidence_ls10.json`);
const nonce = Buffer.from('931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb', 'hex');
const AT = new Date('2026-06-30T00:00:00Z');
/** The chain and the evidence JSON are checked without the RIM and OCSP (not what they damage). */
const skip = new Set(['rim', 'revocation'] as const);
const RUNS = Math.min(FC_RUNS, 300);

const failed = (r: { checks: { name: string; ok: boolean }[] }) => r.checks.filter((c) => !c.ok).map((c) => c.name);
const ders = certChainPem
  .match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g)!
  .map((b) => Buffer.from(b.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, ''), 'base64'));
const chainWith = (index: number, der: Buffer) => ders.map((d, i) => derToPem(i === index ? der : d)).join('');
/** A chain failure (any switch.chain* check) or, for the leaf, the report signature. */
const chainRejected = (f: string[]) => f.some((n) => n.startsWith('switch.chain') || n === 'switch.signature');

describe('the switch device chain (5 certificates)', () => {
  it('the unmodified vectors verify (the baseline of every sweep below)', () => {
    expect(ders.map((d) => d.length)).toEqual([896, 597, 685, 654, 527]);
    expect(failed(verifySwitchReport({ report, certChainPem }, { at: AT, expectedNonce: nonce, skip }))).toEqual([]);
    expect(
      failed(
        verifySwitchReport({ report, certChainPem }, { at: AT, expectedNonce: nonce, rims: { switchBios: rimText }, skip: new Set(['revocation'] as const) }),
      ),
    ).toEqual([]);
  });

  it('every truncation of every certificate is rejected by a named chain check', () => {
    let n = 0;
    ders.forEach((der, i) => {
      for (let len = 0; len < der.length; len++) {
        const f = failed(verifySwitchReport({ report, certChainPem: chainWith(i, der.subarray(0, len)) }, { at: AT, expectedNonce: nonce, skip }));
        expect(chainRejected(f), `certificate ${i} cut to ${len} bytes: ${f.join(', ')}`).toBe(true);
        n++;
      }
    });
    expect(n).toBe(896 + 597 + 685 + 654 + 527);
  }, 120_000);

  it('every truncation of the PEM text is rejected (fewer certificates, or a broken last one)', () => {
    for (let len = 0; len < certChainPem.trimEnd().length; len += 11) {
      const f = failed(verifySwitchReport({ report, certChainPem: certChainPem.slice(0, len) }, { at: AT, expectedNonce: nonce, skip }));
      expect(chainRejected(f), `PEM cut to ${len} characters: ${f.join(', ')}`).toBe(true);
    }
  }, 120_000);

  it('any single-bit flip in any certificate is rejected by a named chain check (fast-check)', () => {
    fc.assert(
      fc.property(fc.nat(ders.length - 1), fc.nat(), fc.nat(7), (i, at, bit) => {
        const der = Buffer.from(ders[i]!);
        const pos = at % der.length;
        der[pos] = der[pos]! ^ (1 << bit);
        const f = failed(verifySwitchReport({ report, certChainPem: chainWith(i, der) }, { at: AT, expectedNonce: nonce, skip }));
        expect(chainRejected(f), `certificate ${i} byte ${pos} bit ${bit}: ${f.join(', ')}`).toBe(true);
      }),
      { numRuns: RUNS },
    );
  }, 120_000);
});

describe('the switch VBIOS RIM', () => {
  const rim = Buffer.from(rimText, 'utf8');
  const verifyRim = (text: string) =>
    verifySwitchReport({ report, certChainPem }, { at: AT, expectedNonce: nonce, rims: { switchBios: text }, skip: new Set(['revocation'] as const) });
  // The KeyInfo's last certificate is the RIM's own self-issued root, which the verifier drops (only pinned roots are trusted).
  const lastCert = rimText.lastIndexOf('<ds:X509Certificate>') + '<ds:X509Certificate>'.length;
  const droppedRoot = [lastCert, rimText.indexOf('</ds:X509Certificate>', lastCert)] as const;
  const end = rimText.trimEnd().length;

  it("the RIM's own root is where this file says it is (the one region a flip may leave harmless)", () => {
    expect(rimText.slice(droppedRoot[0], droppedRoot[1]).replace(/\s+/g, '')).toMatch(/^MII[A-Za-z0-9+/=]+$/);
    expect(droppedRoot[1]).toBeGreaterThan(droppedRoot[0] + 500);
    expect(droppedRoot[1]).toBeLessThan(end);
  });

  it('every truncation is rejected by switch.rim.vbios (both ends swept, the middle sampled by fast-check)', () => {
    const lengths = [...Array.from({ length: 256 }, (_, i) => i), ...Array.from({ length: 512 }, (_, i) => end - 1 - i)];
    for (const len of lengths) expect(failed(verifyRim(rimText.slice(0, len))), `cut to ${len}`).toContain('switch.rim.vbios');
    fc.assert(
      fc.property(fc.nat(end - 1), (len) => {
        expect(failed(verifyRim(rimText.slice(0, len)))).toContain('switch.rim.vbios');
      }),
      { numRuns: Math.min(RUNS, 150) },
    );
  }, 180_000);

  it('any single-bit flip outside the dropped root is rejected by switch.rim.vbios (fast-check)', () => {
    fc.assert(
      fc.property(fc.nat(rim.length - 1), fc.nat(7), (pos, bit) => {
        const b = Buffer.from(rim);
        b[pos] = b[pos]! ^ (1 << bit);
        const f = failed(verifyRim(b.toString('utf8')));
        if (pos >= droppedRoot[0] && pos < droppedRoot[1]) return; // ignored by design; see the file header
        expect(f, `byte ${pos} bit ${bit}`).toContain('switch.rim.vbios');
      }),
      { numRuns: Math.min(RUNS, 200) },
    );
  }, 180_000);
});

describe("NVIDIA's serialized switch evidence (switch_evidence_ls10.json)", () => {
  const decodeAndVerify = (bytes: Uint8Array) => {
    const d = decodeGpuEvidenceJson(bytes);
    return d.gpus.map((g) => verifySwitchReport(g, { at: AT, expectedNonce: nonce, skip }));
  };
  const original = decodeGpuEvidenceJson(evidenceJson).gpus[0]!;

  it('the unmodified file decodes to the verifying switch', () => {
    expect(decodeAndVerify(evidenceJson).map(failed)).toEqual([[]]);
  });

  it('every truncation is a ParseError', () => {
    const end = evidenceJson.toString('utf8').trimEnd().length;
    for (let len = 0; len < end; len++) {
      let threw: unknown;
      try {
        decodeAndVerify(evidenceJson.subarray(0, len));
      } catch (err) {
        threw = err;
      }
      expect(threw, `cut to ${len}`).toBeInstanceOf(CvmError);
    }
  }, 120_000);

  it('any single-bit flip is a typed error, a named failed check, or decodes to the very same evidence (fast-check)', () => {
    fc.assert(
      fc.property(fc.nat(evidenceJson.length - 1), fc.nat(7), (pos, bit) => {
        const b = Buffer.from(evidenceJson);
        b[pos] = b[pos]! ^ (1 << bit);
        let results;
        try {
          results = decodeAndVerify(b);
        } catch (err) {
          expect(err).toBeInstanceOf(CvmError);
          return;
        }
        if (results.length === 1 && failed(results[0]!).length === 0) {
          // Accepted only when nothing that is verified changed: the report bytes and the certificates'
          // DER (e.g. the unused low bits of a base64 quantum, or a PEM line break turned into another
          // whitespace character such as a vertical tab, which the PEM decoder skips like a line break).
          const d = decodeGpuEvidenceJson(b).gpus[0]!;
          expect(Buffer.compare(d.report, original.report), `byte ${pos} bit ${bit}`).toBe(0);
          expect(chainDers(d.certChainPem), `byte ${pos} bit ${bit}`).toEqual(chainDers(original.certChainPem));
          return;
        }
        expect(results.some((r) => failed(r).length > 0)).toBe(true);
      }),
      { numRuns: RUNS },
    );
  }, 120_000);
});
