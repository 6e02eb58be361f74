/**
 * `cvm-agent verify snp`: verify a SEV-SNP attestation report offline against the pinned AMD roots.
 * Thin edge: read files, decode their containers, call the pure verifier, print, map to exit codes.
 */
import { readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ParseError, UsageError } from '../../errors.js';
import { hexToBytes } from '../../util/bytes.js';
import { parseOptions, type CliIO, type Command } from '../command.js';
import { loadCrlFiles, loadSnpPolicyOption, parseAt, printResult, readInput } from '../verify-output.js';
import { parseSnpReport } from '../../formats/snp-abi/index.js';
import { decodeSnpReportInput, SNP_REPORT_FORMATS } from '../../formats/snp-input/report-input.js';
import { certificatesFromBytes, classifyCertificates } from '../../verify/snp/cert-input.js';
import { verifySnpAttestation } from '../../attest/verify-and-appraise.js';
import type { SimulatedRootsInput } from '../../roots/amd.js';

const usage = `Usage: cvm-agent verify snp --report FILE [--cert FILE]... [--certs-dir DIR] [--crl FILE]...
                         [--report-data HEX] [--at ISO8601] [--policy FILE] [--allow-debug] [--sim-roots FILE] [--json]

Verify an AMD SEV-SNP attestation report offline: the report signature, the VCEK/VLEK chain up to
the AMD roots pinned in this package (Milan, Genoa, Turin), certificate validity, revocation (when a
CRL is given), the VCEK's TCB and chip ID against the report, and the appraisal policy.

Options:
  --report FILE       the ATTESTATION_REPORT in any format listed below (required)
  --cert FILE         the VCEK or VLEK, optionally with ASK/ASVK/ARK: PEM (one or more certificates),
                      DER, or a GHCB certificate table (SNP_GET_EXT_REPORT certs / configfs-tsm auxblob).
                      Repeatable. A supplied ASK/ARK must be the pinned AMD one or verification fails.
                      Certificates carried by the report input (cert table, cert_chain) are used too.
  --certs-dir DIR     every .pem/.der/.crt/.cer file in DIR (snpguest fetch ca/vcek output directory)
  --crl FILE          AMD KDS CRL (DER or PEM), e.g. https://kdsintf.amd.com/vcek/v1/Milan/crl. Repeatable.
                      Without a CRL the result is at best "warning" (revocation not checked).
  --report-data HEX   expected REPORT_DATA (up to 64 bytes; shorter values are zero-padded)
  --at ISO8601        verification time for certificate/CRL validity (default: now)
  --policy FILE       SNP appraisal policy, a YAML or JSON mapping (see docs/policy-snp.md; an empty
                      file is an error, {} means the defaults); default: debug and migration agent
                      rejected, VMPL 0 required
  --allow-debug       accept POLICY.DEBUG=1 guests (development only)
  --sim-roots FILE    ALSO trust these simulator roots (PEM/DER with ARK-<P> and SEV-<P>); results
                      then say SIMULATED. For the demo and tests only — never for real evidence.
  --json              print one JSON object {ok, status, simulated, report, checks, input}
  -h, --help          show this help

Report formats (detected; the output names the one found as "input", with notes on what was ignored):
${SNP_REPORT_FORMATS.map((l) => `  ${l}`).join('\n')}

Exit codes:
  0  verified, every check passed (affirming)
  1  a check failed (contraindicated)
  2  usage error or unreadable/malformed input (also a file over its size limit, docs/config.md)
  3  verified with warnings only (e.g. revocation not checked)
  70 internal error (a bug: report it with the output of cvm-agent --version)
`;

const MAX_CERTS_DIR_FILES = 64;

/**
 * --certs-dir: every *.pem, *.der, *.crt, *.cer file in DIR (snpguest `fetch ca` / `fetch vcek` write
 * ark/ask/asvk and vcek/vlek there, PEM or DER), in name order. Anything else in DIR is left alone.
 */
function certificatesFromDir(dir: string, io: CliIO): Uint8Array[] {
  let names: string[];
  try {
    names = readdirSync(resolve(io.cwd, dir)).sort();
  } catch (err) {
    throw new UsageError(`cannot read certificate directory "${dir}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const files = names.filter((n) => /\.(pem|der|crt|cer)$/i.test(n)).slice(0, MAX_CERTS_DIR_FILES);
  if (files.length === 0) throw new UsageError(`certificate directory "${dir}" holds no .pem/.der/.crt/.cer file`);
  return files.flatMap((n) => certificatesFromBytes(readInput(join(dir, n), io, 'certificate file', 'certificate'), `certificate file "${join(dir, n)}"`));
}

/** Certificates in order, each DER once (the same VCEK may come with the report and from --cert). */
function unique(certs: readonly Uint8Array[]): Uint8Array[] {
  const seen = new Set<string>();
  return certs.filter((c) => {
    const key = Buffer.from(c).toString('base64');
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
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

async function run(argv: string[], io: CliIO): Promise<number> {
  const { values } = parseOptions(argv, {
    report: { type: 'string' },
    cert: { type: 'string', multiple: true },
    'certs-dir': { type: 'string' },
    crl: { type: 'string', multiple: true },
    'report-data': { type: 'string' },
    at: { type: 'string' },
    policy: { type: 'string' },
    'allow-debug': { type: 'boolean' },
    'sim-roots': { type: 'string' },
    json: { type: 'boolean' },
  });
  if (!values.report) throw new UsageError('--report FILE is required');

  const input = decodeSnpReportInput(readInput(values.report, io, 'report', 'snpReport'));
  const report = input.report;
  parseSnpReport(report); // malformed report → ParseError → exit 2 (the verifier would only fail a check)

  const fromFiles = (values.cert ?? []).flatMap((f) => {
    const bytes = readInput(f, io, 'certificate file', 'certificate');
    try {
      return certificatesFromBytes(bytes, `certificate file "${f}"`);
    } catch (err) {
      if (err instanceof ParseError) throw new ParseError(err.message, undefined, { cause: err });
      throw err;
    }
  });
  const fromDir = values['certs-dir'] === undefined ? [] : certificatesFromDir(values['certs-dir'], io);
  const certificates = unique([...input.certificates, ...fromFiles, ...fromDir]);
  classifyCertificates(certificates); // malformed DER → ParseError → exit 2
  const crls = loadCrlFiles(values.crl, io);

  let expectedReportData: Buffer | undefined;
  if (values['report-data'] !== undefined) {
    try {
      expectedReportData = hexToBytes(values['report-data'], '--report-data');
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    if (expectedReportData.length === 0 || expectedReportData.length > 64)
      throw new UsageError(`--report-data must be 1..64 bytes, got ${expectedReportData.length}`);
  }
  const at = parseAt(values.at);
  let policy = loadSnpPolicyOption(values.policy, io);
  if (values['allow-debug']) policy = { ...policy, allowDebug: true };

  const simulatedRoots =
    values['sim-roots'] === undefined ? undefined : [simRootsFrom(readInput(values['sim-roots'], io, 'simulated roots file', 'certificate'))];
  const result = verifySnpAttestation(
    { report, certificates, crls },
    {
      at,
      policy,
      ...(expectedReportData ? { expectedReportData } : {}),
      ...(simulatedRoots ? { simulatedRoots } : {}),
    },
  );
  return printResult(io, result, 'SEV-SNP attestation', values.json, input);
}

export const verifySnpCommand: Command = {
  path: ['verify', 'snp'],
  usage,
  run,
};
