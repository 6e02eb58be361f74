/**
 * `cvm-agent verify azure`: verify Azure confidential VM evidence (HCL report + vTPM quote) offline.
 * Thin edge: read files, decode containers, call the pure verifier, print, map to exit codes
 * (same contract as `verify snp`).
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { ParseError, UsageError } from '../../errors.js';
import { hexToBytes } from '../../util/bytes.js';
import { EXIT, parseOptions, type CliIO, type Command } from '../command.js';
import { DEFAULT_SNP_POLICY, parseSnpPolicy, type SnpPolicy } from '../../appraise/snp-policy.js';
import { certificatesFromBytes, classifyCertificates } from '../../verify/snp/cert-input.js';
import { parseCrl } from '../../verify/snp/crl.js';
import { isImdsCertificationJson, parseAzureEvidence, parseImdsCertification } from '../../verify/azure/evidence-formats.js';
import { verifyAzureEvidence } from '../../verify/azure/verify.js';
import type { Check } from '../../verify/checks.js';

const usage = `Usage: cvm-agent verify azure --evidence FILE [--nonce HEX | --nonce-text TEXT] [--cert FILE]...
                           [--crl FILE]... [--at ISO8601] [--policy FILE] [--json]

Verify Azure confidential VM (SEV-SNP paravisor + vTPM) evidence offline: the HCL report's
REPORT_DATA binding of the runtime claims, the TPM quote signature under the AK named in those
claims (HCLAkPub), the quote nonce and PCR digest, the HCL user data, and the SEV-SNP report
(VCEK chain to the pinned AMD roots, signature, TCB, policy with VMPL 0).

Evidence formats: the cvm-agent bundle ("cvm-agent azure evidence"), and the Confidential Containers
az-snp-vtpm attester evidence JSON (versions 1 and 2; trustee's Genoa int-array variant).

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
  --policy FILE       SNP appraisal policy (YAML/JSON); VMPL is always 0 on Azure (the paravisor's level)
  --json              print one JSON object {ok, status, simulated, report, checks}
  -h, --help          show this help

Without a nonce the quote's freshness is not checked and the result is at best "warning".

Exit codes:
  0  verified, every check passed (affirming)
  1  a check failed (contraindicated)
  2  usage error or unreadable/malformed input
  3  verified with warnings only (e.g. no nonce, revocation not checked)
`;

function readInput(file: string, io: CliIO, what: string): Buffer {
  try {
    return readFileSync(resolve(io.cwd, file));
  } catch (err) {
    throw new UsageError(`cannot read ${what} "${file}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

function certificatesFromFile(bytes: Buffer, file: string): Uint8Array[] {
  if (isImdsCertificationJson(bytes)) {
    const { vcek, chain } = parseImdsCertification(bytes.toString('utf8'));
    return [vcek, ...chain];
  }
  return certificatesFromBytes(bytes, `certificate file "${file}"`);
}

function decodeCrlFile(bytes: Buffer): Buffer[] {
  const text = bytes.subarray(0, 64).toString('latin1').trimStart();
  if (!text.startsWith('-----BEGIN')) return [bytes];
  const out = [...bytes.toString('latin1').matchAll(/-----BEGIN X509 CRL-----([A-Za-z0-9+/=\s]*?)-----END X509 CRL-----/g)].map((m) => Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64'));
  if (out.length === 0) throw new ParseError('CRL file: PEM without an X509 CRL block');
  return out;
}

export function parseAt(text: string | undefined): Date {
  if (text === undefined) return new Date();
  if (!/^\d{4}-\d{2}-\d{2}(T[\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(text) || Number.isNaN(Date.parse(text))) {
    throw new UsageError(`--at "${text}" is not an ISO 8601 date/time (e.g. 2025-06-01T00:00:00Z)`);
  }
  return new Date(text);
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

const MARK = (c: Check) => (!c.ok ? '✘' : c.warning ? '⚠' : '✔');

function formatTable(status: string, simulated: boolean, checks: Check[]): string {
  const width = Math.max(...checks.map((c) => c.name.length));
  const lines = checks.map((c) => `${MARK(c)} ${c.name.padEnd(width)}  ${c.detail}`);
  const failed = checks.filter((c) => !c.ok).length;
  const warned = checks.filter((c) => c.ok && c.warning).length;
  const head = `Azure SEV-SNP vTPM attestation: ${status.toUpperCase()}${simulated ? ' (SIMULATED)' : ''} — ${checks.length} checks, ${failed} failed, ${warned} warning(s)`;
  return `${head}\n${lines.join('\n')}\n`;
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
  const evidence = parseAzureEvidence(readInput(values.evidence, io, 'evidence file').toString('utf8'));
  const certificates = (values.cert ?? []).flatMap((f) => certificatesFromFile(readInput(f, io, 'certificate file'), f));
  classifyCertificates([...evidence.certificates, ...certificates]); // malformed DER → ParseError → exit 2
  const crls = (values.crl ?? []).flatMap((f) => decodeCrlFile(readInput(f, io, 'CRL file')));
  crls.forEach((c, i) => {
    try {
      parseCrl(c);
    } catch (err) {
      if (err instanceof ParseError) throw new ParseError(`CRL #${i + 1}: ${err.message}`);
      throw err;
    }
  });
  let policy: SnpPolicy = { ...DEFAULT_SNP_POLICY };
  if (values.policy !== undefined) policy = parseSnpPolicy(readInput(values.policy, io, 'policy file').toString('utf8'));

  const result = verifyAzureEvidence(evidence, { at, policy, certificates, crls, ...(nonce ? { nonce } : {}) });
  if (values.json) {
    const out = {
      ok: result.ok,
      status: result.status,
      simulated: result.simulated,
      report: result.claims ?? null,
      checks: result.checks.map((c) => ({ name: c.name, ok: c.ok, detail: c.detail, ...(c.warning ? { warning: true } : {}) })),
    };
    io.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  } else {
    io.stdout.write(formatTable(result.status, result.simulated, result.checks));
  }
  return result.status === 'affirming' ? EXIT.OK : result.status === 'warning' ? EXIT.WARNING : EXIT.FAILED;
}

export const verifyAzureCommand: Command = {
  path: ['verify', 'azure'],
  summary: 'verify Azure confidential VM evidence (HCL report + vTPM quote + SEV-SNP report)',
  usage,
  run,
};
