/**
 * `cvm-agent azure evidence`: collect Azure confidential VM evidence from the vTPM (HCL report,
 * optionally refreshed with a nonce as user data, and a quote by the AK) as a JSON bundle.
 */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { UsageError } from '../../errors.js';
import { EXIT, parseOptions, type CliIO, type Command } from '../command.js';
import { TpmClient } from '../../evidence/tpm/tpm-client.js';
import { DEFAULT_TPM_DEVICE, openTransport, parseTransportSpec } from '../../evidence/tpm/transport.js';
import { collectAzureEvidence } from '../../evidence/azure-vtpm.js';
import { parseNonce } from './verify-azure.js';

const usage = `Usage: cvm-agent azure evidence [--nonce HEX | --nonce-text TEXT] [--out FILE]
                              [--tpm PATH | --swtpm HOST:PORT | --swtpm unix:PATH] [--timeout SECONDS]

Collect Azure confidential VM evidence from the vTPM: the HCL report (SEV-SNP report + runtime
claims) from NV index 0x01400001 and a TPM2_Quote over SHA-256 PCRs 0-23 by the AK at 0x81000003.
With a nonce, the nonce (zero-padded to 64 bytes) is written as user data to NV 0x01400002 (defined
if absent), the HCL report is re-read until the paravisor has regenerated it with that user data, and
SHA-256 of the 64 bytes is the quote's qualifying data. Verify with "cvm-agent verify azure".

Options:
  --nonce HEX          binding, 1..64 bytes (hex)
  --nonce-text TEXT    the same as UTF-8 text
  --out FILE           write the JSON bundle here instead of stdout
  --tpm PATH           TPM device (default ${DEFAULT_TPM_DEVICE})
  --swtpm ADDR         a swtpm server socket instead: HOST:PORT (TCP) or unix:PATH
  --timeout SECONDS    how long to wait for the refreshed HCL report (default 10)
  -h, --help           show this help

Exit codes: 0 evidence written, 2 usage error, 4 TPM unavailable or it refused a command.
`;

async function run(argv: string[], io: CliIO): Promise<number> {
  const { values } = parseOptions(argv, {
    nonce: { type: 'string' },
    'nonce-text': { type: 'string' },
    out: { type: 'string' },
    tpm: { type: 'string' },
    swtpm: { type: 'string' },
    timeout: { type: 'string' },
  });
  if (values.tpm !== undefined && values.swtpm !== undefined) throw new UsageError('give either --tpm or --swtpm, not both');
  const binding = parseNonce(values.nonce, values['nonce-text']);
  let timeoutMs = 10_000;
  if (values.timeout !== undefined) {
    const s = Number(values.timeout);
    if (!Number.isFinite(s) || s <= 0 || s > 600) throw new UsageError(`--timeout must be 0..600 seconds, got "${values.timeout}"`);
    timeoutMs = s * 1000;
  }
  const spec = values.swtpm !== undefined ? parseTransportSpec(values.swtpm, 'swtpm') : parseTransportSpec(values.tpm ?? DEFAULT_TPM_DEVICE, 'device');
  const client = new TpmClient(await openTransport(spec));
  let bundle;
  try {
    bundle = await collectAzureEvidence(client, { timeoutMs, ...(binding ? { binding } : {}) });
  } finally {
    await client.close();
  }
  const text = `${JSON.stringify(bundle, null, 2)}\n`;
  if (values.out !== undefined) {
    try {
      writeFileSync(resolve(io.cwd, values.out), text, { mode: 0o644 });
    } catch (err) {
      throw new UsageError(`cannot write "${values.out}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    io.stderr.write(`cvm-agent azure evidence: wrote ${values.out}\n`);
  } else {
    io.stdout.write(text);
  }
  return EXIT.OK;
}

export const azureEvidenceCommand: Command = {
  path: ['azure', 'evidence'],
  usage,
  run,
};
