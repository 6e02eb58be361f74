/**
 * Azure confidential VM evidence from the vTPM (Azure/confidential-computing-cvm-guest-attestation
 * cvm-guest-attestation.md and LinuxTpm/lib/Tss2Util.h; az-cvm-vtpm src/vtpm/mod.rs): the HCL report (SNP report +
 * runtime claims with the AK) from NV 0x01400001, optionally refreshed with our binding as user data
 * through NV 0x01400002, and a TPM2_Quote over SHA-256 PCRs 0-23 by the AK at 0x81000003.
 * Evidence only: nothing here verifies (the verifier re-derives every binding from the bundle).
 */
import { createHash } from 'node:crypto';
import { DeviceError, ParseError } from '../errors.js';
import { TpmClient, ALL_PCRS } from './tpm/tpm-client.js';
import { TpmError } from '../formats/tpm/response-codes.js';
import { AZURE, TPM_ALG, TPMA_NV } from '../formats/tpm/constants.js';
import { parseAttest } from '../formats/tpm/structures.js';
import { parseHclReport, HCL_SIGNATURE } from '../formats/azure/hcl.js';
import { encodeBundle, qualifyingDataFor, userDataFor, USER_DATA_SIZE, type AzureBundle, type AzureVtpmEvidence } from '../formats/azure/evidence-formats.js';

export interface AzureCollectOptions {
  /** 1..64 bytes bound into the HCL user data and (hashed) into the quote; none = boot-time report, empty extraData. */
  binding?: Uint8Array;
  /** How long to wait for the paravisor to regenerate the HCL report with the user data. Default 10 s. */
  timeoutMs?: number;
  /** Poll interval while waiting. Default 250 ms (az-cvm-vtpm sleeps 3 s once). */
  pollMs?: number;
  pcrs?: readonly number[];
  akHandle?: number;
}

/** Azure CVM detection without the native addon: the HCL report NV index exists and starts with "HCLA". */
export async function isAzureCvm(client: TpmClient): Promise<boolean> {
  if (!(await client.nvExists(AZURE.HCL_REPORT_INDEX))) return false;
  const head = await client.nvRead(AZURE.HCL_REPORT_INDEX, { size: 4 });
  return head.readUInt32LE(0) === HCL_SIGNATURE;
}

export async function readHclReport(client: TpmClient): Promise<Buffer> {
  try {
    return await client.nvRead(AZURE.HCL_REPORT_INDEX);
  } catch (err) {
    if (err instanceof TpmError && err.rcName === 'TPM_RC_HANDLE') {
      throw new DeviceError(
        'ERR_AZURE_NO_HCL_REPORT',
        `vTPM NV index 0x${AZURE.HCL_REPORT_INDEX.toString(16)} (HCL report) is not defined: not an Azure confidential VM`,
        { index: AZURE.HCL_REPORT_INDEX },
        { cause: err },
      );
    }
    throw err;
  }
}

/** Write the 64-byte user data to NV 0x01400002, defining it (owner read/write, 64 B) if absent (az-cvm-vtpm src/vtpm/mod.rs). */
export async function writeUserData(client: TpmClient, userData: Uint8Array): Promise<void> {
  if (userData.length !== USER_DATA_SIZE) throw new ParseError(`user data must be ${USER_DATA_SIZE} bytes, got ${userData.length}`);
  const index = AZURE.REPORT_DATA_INDEX;
  if (await client.nvExists(index)) {
    const pub = await client.nvReadPublic(index);
    if (pub.dataSize !== USER_DATA_SIZE) {
      throw new DeviceError('ERR_AZURE_USER_DATA_INDEX', `NV index 0x${index.toString(16)} is ${pub.dataSize} bytes, expected ${USER_DATA_SIZE}`, {
        index,
        dataSize: pub.dataSize,
      });
    }
  } else {
    await client.nvDefineSpace({
      nvIndex: index,
      nameAlg: TPM_ALG.SHA256,
      attributes: TPMA_NV.OWNERREAD | TPMA_NV.OWNERWRITE,
      authPolicy: Buffer.alloc(0),
      dataSize: USER_DATA_SIZE,
    });
  }
  await client.nvWrite(index, userData);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Re-read the HCL report until its runtime claims carry `userData` (the paravisor regenerates it
 * after the NV write; the delay is not documented, so poll with a bound and fail clearly).
 */
export async function waitForUserData(client: TpmClient, userData: Uint8Array, timeoutMs: number, pollMs: number): Promise<Buffer> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no HCL report read yet';
  for (;;) {
    const raw = await readHclReport(client);
    try {
      const hcl = parseHclReport(raw);
      const ud = hcl.runtimeClaims.userData;
      if (ud && Buffer.compare(ud, Buffer.from(userData)) === 0) return raw;
      last = ud ? `user-data is ${ud.toString('hex').slice(0, 16)}…` : 'runtime claims have no user-data';
    } catch (err) {
      if (!(err instanceof ParseError)) throw err;
      last = `HCL report unreadable: ${err.message}`;
    }
    if (Date.now() >= deadline) {
      throw new DeviceError(
        'ERR_AZURE_USER_DATA_TIMEOUT',
        `the HCL report did not pick up the user data within ${timeoutMs} ms (${last}); the paravisor may not support report refresh`,
        { timeoutMs },
      );
    }
    await sleep(pollMs);
  }
}

/**
 * Quote the SHA-256 PCRs and read their values. PCRs can be extended between the two commands, so
 * the values are checked against the quoted digest and the pair is retried (up to 3 times).
 */
export async function quotePcrs(
  client: TpmClient,
  akHandle: number,
  qualifyingData: Uint8Array,
  pcrs: readonly number[],
): Promise<{ message: Buffer; signature: Buffer; pcrValues: Buffer[] }> {
  const selection = [{ hash: TPM_ALG.SHA256, pcrs: [...pcrs].sort((a, b) => a - b) }];
  for (let attempt = 1; ; attempt++) {
    const q = await client.quote(akHandle, qualifyingData, selection);
    const values = await client.pcrRead(TPM_ALG.SHA256, selection[0]!.pcrs);
    const pcrValues = selection[0]!.pcrs.map((p) => values.values.get(p)!);
    const digest = createHash('sha256').update(Buffer.concat(pcrValues)).digest();
    const attest = parseAttest(q.quoted);
    if (attest.quote && digest.equals(attest.quote.pcrDigest)) return { message: q.quoted, signature: q.signatureBytes, pcrValues };
    if (attempt >= 3) throw new DeviceError('ERR_TPM_PCR_RACE', 'PCR values kept changing between TPM2_Quote and TPM2_PCR_Read (3 attempts)');
  }
}

/** The evidence as bytes (HCL report, quote, TPMT_SIGNATURE, PCR values): what the cycle's bundle carries. */
export async function collectAzureVtpmEvidence(client: TpmClient, opts: AzureCollectOptions = {}): Promise<AzureVtpmEvidence> {
  let hclReport: Buffer;
  let qualifyingData: Buffer = Buffer.alloc(0);
  if (opts.binding !== undefined) {
    const userData = userDataFor(opts.binding);
    await writeUserData(client, userData);
    hclReport = await waitForUserData(client, userData, opts.timeoutMs ?? 10_000, opts.pollMs ?? 250);
    qualifyingData = qualifyingDataFor(opts.binding);
  } else {
    hclReport = await readHclReport(client);
  }
  const q = await quotePcrs(client, opts.akHandle ?? AZURE.AK_HANDLE, qualifyingData, opts.pcrs ?? ALL_PCRS);
  return { hclReport, quote: { message: q.message, signature: q.signature, pcrs: q.pcrValues } };
}

/** The same evidence in our JSON container (`cvm-agent azure evidence`), with PEM certificates shipped along. */
export async function collectAzureEvidence(client: TpmClient, opts: AzureCollectOptions & { certsPem?: string[] } = {}): Promise<AzureBundle> {
  return encodeBundle(await collectAzureVtpmEvidence(client, opts), opts.certsPem);
}
