/**
 * `cvm-agent verify azure`: verify Azure confidential VM evidence (HCL report + vTPM quote) offline.
 * Thin edge: read files, decode containers, call the pure verifier, print, map to exit codes
 * (same contract as `verify snp`).
 */
import { UsageError } from '../../errors.js';
import { hexToBytes } from '../../util/bytes.js';
import { parseOptions, type CliIO, type Command } from '../command.js';
import { loadCrlFiles, loadSnpPolicyOption, parseAt, printResult, readInput } from '../verify-output.js';
import { certificatesFromBytes, classifyCertificates } from '../../verify/snp/cert-input.js';
import { isImdsCertificationJson, parseAzureEvidence, parseImdsCertification, type AzureEvidenceFormat } from '../../formats/azure/evidence-formats.js';
import { verifyAzureEvidence } from '../../attest/verify-and-appraise.js';

const usage = `Usage: cvm-agent verify azure --evidence FILE [--nonce HEX | --nonce-text TEXT] [--cert FILE]...
                           [--crl FILE]... [--at ISO8601] [--policy FILE] [--json]

Verify Azure confidential VM (SEV-SNP paravisor + vTPM) evidence offline: the HCL report's
REPORT_DATA binding of the runtime claims, the TPM quote signature under the AK named in those
claims (HCLAkPub), the quote nonce and PCR digest, the HCL user data, and the SEV-SNP report
(VCEK chain to the pinned AMD roots, signature, TCB, policy with VMPL 0).

Evidence formats (detected; the output names the one found as "input"):
  the cvm-agent bundle ("cvm-agent azure evidence", {kind: "azure-snp-vtpm", version: 1, ...})
  Confidential Containers az-snp-vtpm attester evidence JSON, versions 1 and 2 (guest-components)
  trustee's Genoa sample (quote and HCL report as integer arrays, vcek PEM)

Options:
  --evidence FILE     evidence JSON (required)
  --nonce HEX         the verifier's nonce. cvm-agent bundle: the binding (1..64 bytes) that must be
                      the HCL user-data, with SHA-256 of the zero-padded 64 bytes as quote extraData.
                      az-snp-vtpm evidence: the quote extraData (v2 also: the user-data prefix).
  --nonce-text TEXT   the same, given as UTF-8 text (e.g. "challenge")
  --cert FILE         VCEK and/or ASK/ARK: PEM, DER, or Azure IMDS THIM certification JSON
                      ({"vcekCert", "certificateChain"}). Repeatable. Added to certificates in the evidence.
  --crl FILE          AMD KDS CRL (DER or PEM). Repeatable. Without one, revocation is a warning.
  --at ISO8601        verification time for certificate validity (default: now)
  --policy FILE       SNP appraisal policy, a YAML or JSON mapping ({} means the defaults); VMPL is
                      always 0 on Azure (the paravisor's level)
  --json              print one JSON object {ok, status, simulated, report, checks, input}
  -h, --help          show this help

Without a nonce the quote's freshness is not checked and the result is at best "warning".

Exit codes:
  0  verified, every check passed (affirming)
  1  a check failed (contraindicated)
  2  usage error or unreadable/malformed input (also a file over its size limit, docs/config.md)
  3  verified with warnings only (e.g. no nonce, revocation not checked)
  70 internal error (a bug: report it with the output of cvm-agent --version)
`;

/** The evidence formats parseAzureEvidence detects, as the output names them. */
const FORMAT_NAMES: Record<AzureEvidenceFormat, string> = {
  'cvm-agent': 'cvm-agent Azure evidence bundle (azure-snp-vtpm v1)',
  'coco-v1': 'Confidential Containers az-snp-vtpm evidence JSON v1',
  'coco-v2': 'Confidential Containers az-snp-vtpm evidence JSON v2',
  'trustee-genoa': "trustee's az-snp-vtpm Genoa evidence JSON (integer arrays)",
};

function certificatesFromFile(bytes: Buffer, file: string): Uint8Array[] {
  if (isImdsCertificationJson(bytes)) {
    const { vcek, chain } = parseImdsCertification(bytes.toString('utf8'));
    return [vcek, ...chain];
  }
  return certificatesFromBytes(bytes, `certificate file "${file}"`);
}

/** --nonce HEX / --nonce-text TEXT (mutually exclusive), 1..64 bytes. */
export function parseNonce(hex: string | undefined, text: string | undefined): Buffer | undefined {
  if (hex !== undefined && text !== undefined) throw new UsageError('give either --nonce or --nonce-text, not both');
  let nonce: Buffer | undefined;
  if (hex !== undefined) {
    try {
      nonce = hexToBytes(hex, '--nonce');
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  } else if (text !== undefined) nonce = Buffer.from(text, 'utf8');
  if (nonce !== undefined && (nonce.length === 0 || nonce.length > 64)) throw new UsageError(`the nonce must be 1..64 bytes, got ${nonce.length}`);
  return nonce;
}

async function run(argv: string[], io: CliIO): Promise<number> {
  const { values } = parseOptions(argv, {
    evidence: { type: 'string' },
    nonce: { type: 'string' },
    'nonce-text': { type: 'string' },
    cert: { type: 'string', multiple: true },
    crl: { type: 'string', multiple: true },
    at: { type: 'string' },
    policy: { type: 'string' },
    json: { type: 'boolean' },
  });
  if (!values.evidence) throw new UsageError('--evidence FILE is required');
  const nonce = parseNonce(values.nonce, values['nonce-text']);
  const at = parseAt(values.at);
  const evidence = parseAzureEvidence(readInput(values.evidence, io, 'evidence file', 'azureEvidence').toString('utf8'));
  const certificates = (values.cert ?? []).flatMap((f) => certificatesFromFile(readInput(f, io, 'certificate file', 'certificate'), f));
  classifyCertificates([...evidence.certificates, ...certificates]); // malformed DER → ParseError → exit 2
  const crls = loadCrlFiles(values.crl, io);
  const policy = loadSnpPolicyOption(values.policy, io);

  const result = verifyAzureEvidence(evidence, { at, policy, certificates, crls, ...(nonce ? { nonce } : {}) });
  const input = { format: `azure-${evidence.format}`, name: FORMAT_NAMES[evidence.format], notes: [] };
  return printResult(io, result, 'Azure SEV-SNP vTPM attestation', values.json, input);
}

export const verifyAzureCommand: Command = {
  path: ['verify', 'azure'],
  usage,
  run,
};
