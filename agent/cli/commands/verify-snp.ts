/**
 * `cvm-agent verify snp`: verify a SEV-SNP attestation report offline against the pinned AMD roots.
 * Thin edge: read files, decode their containers, call the pure verifier, print, map to exit codes.
 */
import { ParseError, UsageError } from '../../errors.js';
import { hexToBytes } from '../../util/bytes.js';
import { parseOptions, type CliIO, type Command } from '../command.js';
import { loadCrlFiles, loadSnpPolicyOption, parseAt, printResult, readInput } from '../verify-output.js';
import { parseSnpReport, SNP_REPORT_SIZE } from '../../formats/snp-abi/index.js';
import { certificatesFromBytes, classifyCertificates } from '../../verify/snp/cert-input.js';
import { verifySnpAttestation } from '../../attest/verify-and-appraise.js';
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
  --policy FILE       SNP appraisal policy, a YAML or JSON mapping (see docs/policy-snp.md; an empty
                      file is an error, {} means the defaults); default: debug and migration agent
                      rejected, VMPL 0 required
  --allow-debug       accept POLICY.DEBUG=1 guests (development only)
  --sim-roots FILE    ALSO trust these simulator roots (PEM/DER with ARK-<P> and SEV-<P>); results
                      then say SIMULATED. For the demo and tests only — never for real evidence.
  --json              print one JSON object {ok, status, simulated, report, checks}
  -h, --help          show this help

Exit codes:
  0  verified, every check passed (affirming)
  1  a check failed (contraindicated)
  2  usage error or unreadable/malformed input (also a file over its size limit, docs/config.md)
  3  verified with warnings only (e.g. revocation not checked)
  70 internal error (a bug: report it with the output of cvm-agent --version)
`;

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
    crl: { type: 'string', multiple: true },
    'report-data': { type: 'string' },
    at: { type: 'string' },
    policy: { type: 'string' },
    'allow-debug': { type: 'boolean' },
    'sim-roots': { type: 'string' },
    json: { type: 'boolean' },
  });
  if (!values.report) throw new UsageError('--report FILE is required');

  const report = decodeReportFile(readInput(values.report, io, 'report', 'snpReport'));
  parseSnpReport(report); // malformed report → ParseError → exit 2 (the verifier would only fail a check)

  const certificates = (values.cert ?? []).flatMap((f) => {
    const bytes = readInput(f, io, 'certificate file', 'certificate');
    try {
      return certificatesFromBytes(bytes, `certificate file "${f}"`);
    } catch (err) {
      if (err instanceof ParseError) throw new ParseError(err.message, undefined, { cause: err });
      throw err;
    }
  });
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
  return printResult(io, result, 'SEV-SNP attestation', values.json);
}

export const verifySnpCommand: Command = {
  path: ['verify', 'snp'],
  summary: 'verify a SEV-SNP attestation report against the pinned AMD roots and a policy',
  usage,
  run,
};
