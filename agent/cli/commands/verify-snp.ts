/**
 * `cvm-agent verify snp`: verify a SEV-SNP attestation report offline against the pinned AMD roots.
 * Thin edge: read files, decode their containers, call the pure verifier, print, map to exit codes.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { ParseError, UsageError } from '../../errors.js';
import { hexToBytes } from '../../util/bytes.js';
import { EXIT, parseOptions, type CliIO, type Command } from '../command.js';
import { DEFAULT_SNP_POLICY, parseSnpPolicy, type SnpPolicy } from '../../appraise/snp-policy.js';
import { parseSnpReport, SNP_REPORT_SIZE } from '../../verify/snp/abi/index.js';
import { certificatesFromBytes, classifyCertificates } from '../../verify/snp/cert-input.js';
import { parseCrl } from '../../verify/snp/crl.js';
import { verifySnpAttestation } from '../../verify/snp/verify.js';
import type { Check } from '../../verify/checks.js';
import type { SimulatedRootsInput } from '../../roots/amd.js';

const usage = `Usage: cvm-agent verify snp --report FILE [--cert FILE]... [--crl FILE]... [--report-data HEX]
                         [--at ISO8601] [--policy FILE] [--allow-debug] [--sim-roots FILE] [--json]

Verify an AMD SEV-SNP attestation report offline: the report signature, the VCEK/VLEK chain up to
the AMD roots pinned in this package (Milan, Genoa, Turin), certificate validity, revocation (when a
CRL is given), the VCEK's TCB and chip ID against the report, and the appraisal policy.

Options:
  --report FILE       the 1184-byte ATTESTATION_REPORT, raw binary or hex text (required)
  --cert FILE         the VCEK or VLEK, optionally with ASK/ASVK/ARK: PEM (one or more certificates),
                      DER, or a GHCB certificate table (SNP_GET_EXT_REPORT certs / configfs-tsm auxblob).
                      Repeatable. A supplied ASK/ARK must be the pinned AMD one or verification fails.
  --crl FILE          AMD KDS CRL (DER or PEM), e.g. https://kdsintf.amd.com/vcek/v1/Milan/crl. Repeatable.
                      Without a CRL the result is at best "warning" (revocation not checked).
  --report-data HEX   expected REPORT_DATA (up to 64 bytes; shorter values are zero-padded)
  --at ISO8601        verification time for certificate/CRL validity (default: now)
  --policy FILE       SNP appraisal policy, YAML or JSON (see docs/policy-snp.md); default: debug and
                      migration agent rejected, VMPL 0 required
  --allow-debug       accept POLICY.DEBUG=1 guests (development only)
  --sim-roots FILE    ALSO trust these simulator roots (PEM/DER with ARK-<P> and SEV-<P>); results
                      then say SIMULATED. For the demo and tests only — never for real evidence.
  --json              print one JSON object {ok, status, simulated, report, checks}
  -h, --help          show this help

Exit codes:
  0  verified, every check passed (affirming)
  1  a check failed (contraindicated)
  2  usage error or unreadable/malformed input
  3  verified with warnings only (e.g. revocation not checked)
`;

function readInput(file: string, io: CliIO, what: string): Buffer {
  try {
    return readFileSync(resolve(io.cwd, file));
  } catch (err) {
    throw new UsageError(`cannot read ${what} "${file}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** Raw 1184 bytes, or the same as hex text (whitespace allowed). */
export function decodeReportFile(bytes: Buffer): Buffer {
  if (bytes.length === SNP_REPORT_SIZE) return bytes;
  const text = bytes.toString('latin1');
  if (/^[\s0-9a-fA-Fx]*$/.test(text) && text.trim().length > 0) {
    const raw = hexToBytes(text, 'report hex');
    if (raw.length !== SNP_REPORT_SIZE) throw new ParseError(`report hex decodes to ${raw.length} bytes, expected ${SNP_REPORT_SIZE}`);
    return raw;
  }
  throw new ParseError(`report file is ${bytes.length} bytes: expected a raw ${SNP_REPORT_SIZE}-byte report or its hex text`);
}

function decodeCrlFile(bytes: Buffer): Buffer[] {
  const text = bytes.subarray(0, 64).toString('latin1').trimStart();
  if (!text.startsWith('-----BEGIN')) return [bytes];
  const out = [...bytes.toString('latin1').matchAll(/-----BEGIN X509 CRL-----([A-Za-z0-9+/=\s]*?)-----END X509 CRL-----/g)].map((m) => Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64'));
  if (out.length === 0) throw new ParseError('CRL file: PEM without an X509 CRL block');
  return out;
}

/** Simulator roots file: the ARK-<P> and SEV-<P> (and optionally SEV-VLEK-<P>) certificates. */
function simRootsFrom(bytes: Buffer): SimulatedRootsInput {
  const certs = classifyCertificates(certificatesFromBytes(bytes, 'simulated roots file'));
  const ark = certs.find((c) => c.role === 'ark');
  const ask = certs.find((c) => c.role === 'ask');
  const asvk = certs.find((c) => c.role === 'asvk');
  if (!ark || !ask) throw new UsageError('simulated roots file must contain an ARK-<product> and a SEV-<product> certificate');
  return { product: ark.productName!, ark: ark.cert.der, ask: ask.cert.der, ...(asvk ? { asvk: asvk.cert.der } : {}), simulated: true };
}

const MARK = (c: Check) => (!c.ok ? '✘' : c.warning ? '⚠' : '✔');

function formatTable(status: string, simulated: boolean, checks: Check[]): string {
  const width = Math.max(...checks.map((c) => c.name.length));
  const lines = checks.map((c) => `${MARK(c)} ${c.name.padEnd(width)}  ${c.detail}`);
  const failed = checks.filter((c) => !c.ok).length;
  const warned = checks.filter((c) => c.ok && c.warning).length;
  const head = `SEV-SNP attestation: ${status.toUpperCase()}${simulated ? ' (SIMULATED)' : ''} — ${checks.length} checks, ${failed} failed, ${warned} warning(s)`;
  return `${head}\n${lines.join('\n')}\n`;
}

async function run(argv: string[], io: CliIO): Promise<number> {
  const { values } = parseOptions(argv, {
    report: { type: 'string' },
    cert: { type: 'string', multiple: true },
    crl: { type: 'string', multiple: true },
    'report-data': { type: 'string' },
    at: { type: 'string' },
    policy: { type: 'string' },
    'allow-debug': { type: 'boolean' },
    'sim-roots': { type: 'string' },
    json: { type: 'boolean' },
  });
  if (!values.report) throw new UsageError('--report FILE is required');

  const report = decodeReportFile(readInput(values.report, io, 'report'));
  parseSnpReport(report); // malformed report → ParseError → exit 2 (the verifier would only fail a check)

  const certificates = (values.cert ?? []).flatMap((f) => {
    const bytes = readInput(f, io, 'certificate file');
    try {
      return certificatesFromBytes(bytes, `certificate file "${f}"`);
    } catch (err) {
      if (err instanceof ParseError) throw new ParseError(err.message, undefined, { cause: err });
      throw err;
    }
  });
  classifyCertificates(certificates); // malformed DER → ParseError → exit 2
  const crls = (values.crl ?? []).flatMap((f) => decodeCrlFile(readInput(f, io, 'CRL file')));
  crls.forEach((c, i) => {
    try {
      parseCrl(c);
    } catch (err) {
      if (err instanceof ParseError) throw new ParseError(`CRL #${i + 1}: ${err.message}`);
      throw err;
    }
  });

  let expectedReportData: Buffer | undefined;
  if (values['report-data'] !== undefined) {
    try {
      expectedReportData = hexToBytes(values['report-data'], '--report-data');
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    if (expectedReportData.length === 0 || expectedReportData.length > 64) throw new UsageError(`--report-data must be 1..64 bytes, got ${expectedReportData.length}`);
  }
  let at = new Date();
  if (values.at !== undefined) {
    if (!/^\d{4}-\d{2}-\d{2}(T[\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(values.at) || Number.isNaN(Date.parse(values.at))) {
      throw new UsageError(`--at "${values.at}" is not an ISO 8601 date/time (e.g. 2025-06-01T00:00:00Z)`);
    }
    at = new Date(values.at);
  }
  let policy: SnpPolicy = { ...DEFAULT_SNP_POLICY };
  if (values.policy !== undefined) policy = parseSnpPolicy(readInput(values.policy, io, 'policy file').toString('utf8'));
  if (values['allow-debug']) policy = { ...policy, allowDebug: true };

  const simulatedRoots = values['sim-roots'] === undefined ? undefined : [simRootsFrom(readInput(values['sim-roots'], io, 'simulated roots file'))];
  const result = verifySnpAttestation({ report, certificates, crls }, {
    at, policy, ...(expectedReportData ? { expectedReportData } : {}), ...(simulatedRoots ? { simulatedRoots } : {}),
  });
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

export const verifySnpCommand: Command = {
  path: ['verify', 'snp'],
  summary: 'verify a SEV-SNP attestation report against the pinned AMD roots and a policy',
  usage,
  run,
};
