/**
 * End to end against a real TPM 2.0 implementation (swtpm, libtpms): provision an Azure-like vTPM
 * (AK at 0x81000003, HCL report in NV 0x01400001 whose SNP report comes from the SIMULATED SEV-SNP
 * device), collect evidence over the swtpm socket with a fresh binding, verify it with simulation
 * enabled, and check that tampering is caught by the right named check.
 *
 * Honest limitation: swtpm does not regenerate the HCL report when user data is written to NV
 * 0x01400002 (the Azure paravisor does); test/helpers/swtpm.ts FakeParavisorTransport emulates that
 * step by rewriting NV 0x01400001 after the agent's NV_Write.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes, X509Certificate } from 'node:crypto';
import { DeviceError } from '../../agent/errors.js';
import { TpmClient } from '../../agent/evidence/tpm/tpm-client.js';
import { SocketTransport } from '../../agent/evidence/tpm/transport.js';
import { TpmError } from '../../agent/formats/tpm/response-codes.js';
import { AZURE, TPM_ALG, TPM_PT, TPMA_NV } from '../../agent/formats/tpm/constants.js';
import { publicKeyObject, parseAttest, type TpmPublic } from '../../agent/formats/tpm/structures.js';
import { collectAzureEvidence, isAzureCvm, readHclReport } from '../../agent/evidence/azure-vtpm.js';
import { parseAzureEvidence, type AzureEvidence } from '../../agent/formats/azure/evidence-formats.js';
import { verifyAzureEvidence, type AzureVerifyOptions } from '../../agent/attest/verify-and-appraise.js';
import { verifyQuoteSignature } from '../../agent/verify/azure/quote.js';
import { parseHclReport } from '../../agent/formats/azure/hcl.js';
import { SimulatedSnpDevice } from '../../agent/simulation/snp-sim.js';
import { main } from '../../agent/cli/main.js';
import type { Check } from '../../agent/formats/checks.js';
import { ECC_AK_TEMPLATE, FakeParavisorTransport, provisionAzureVtpm, provisionKey, startSwtpm, type Swtpm } from '../helpers/swtpm.js';
import { findCheck } from '../helpers/checks.js';
import { requireTool } from '../helpers/tools.js';

const FOREIGN_AK = 0x81000004;
/** Every suite here needs swtpm: without it the file is skipped (its hooks with it), a failure under CI=true. */
const hasSwtpm = requireTool('swtpm', 'swtpm');

let tpm: Swtpm;
let simDir: string;
let sim: SimulatedSnpDevice;
let ak: TpmPublic;
/** The simulated VCEK as PEM: what the agent would get from Azure IMDS THIM (az-cvm-vtpm az-snp-vtpm/src/imds.rs). */
let vcekPem: string;

beforeAll(async () => {
  tpm = await startSwtpm('unix');
  simDir = mkdtempSync(join(tmpdir(), 'cvm-sim-'));
  sim = await SimulatedSnpDevice.open(simDir);
  const client = new TpmClient(await SocketTransport.connect(tpm.address));
  try {
    await client.startup(); // already started by swtpm's startup-clear: TPM_RC_INITIALIZE is tolerated
    ({ ak } = await provisionAzureVtpm(client, sim));
    await provisionKey(client, ECC_AK_TEMPLATE, FOREIGN_AK);
    vcekPem = new X509Certificate((await sim.getReport(Buffer.alloc(64))).vcek).toString();
  } finally {
    await client.close();
  }
}, 120_000);

afterAll(async () => {
  await tpm?.stop();
  if (simDir) rmSync(simDir, { recursive: true, force: true });
});

async function withClient<T>(fn: (c: TpmClient, t: FakeParavisorTransport) => Promise<T>, delayMs = 0): Promise<T> {
  const transport = new FakeParavisorTransport(await SocketTransport.connect(tpm.address), sim, ak, delayMs);
  const client = new TpmClient(transport);
  try {
    return await fn(client, transport);
  } finally {
    await client.close();
  }
}

const simOptions = (nonce?: Buffer): AzureVerifyOptions => {
  const at = new Date();
  return { at, simulatedRoots: [sim.roots()], crls: [sim.crl(at)], ...(nonce ? { nonce } : {}) };
};

describe.runIf(hasSwtpm)('Azure vTPM evidence over swtpm', () => {
  it('the TPM client basics work against libtpms', async () => {
    await withClient(async (c) => {
      expect(await c.getProperty(TPM_PT.NV_BUFFER_MAX)).toBeGreaterThan(0);
      expect(await isAzureCvm(c)).toBe(true);
      const handles = await c.listHandles(0x81000000);
      expect(handles).toEqual(expect.arrayContaining([AZURE.AK_HANDLE, FOREIGN_AK]));
      const pcrs = await c.pcrRead(TPM_ALG.SHA256);
      expect(pcrs.values.size).toBe(24); // > 8 per PCR_Read: the client looped
      const err = await c.nvRead(0x01400099).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TpmError);
      expect((err as TpmError).rcName).toBe('TPM_RC_HANDLE');
      // an index defined but never written
      await c.nvDefineSpace({
        nvIndex: 0x01400010,
        nameAlg: TPM_ALG.SHA256,
        attributes: TPMA_NV.OWNERREAD | TPMA_NV.OWNERWRITE,
        authPolicy: Buffer.alloc(0),
        dataSize: 8,
      });
      const uninit = await c.nvRead(0x01400010).catch((e: unknown) => e);
      expect((uninit as TpmError).rcName).toBe('TPM_RC_NV_UNINITIALIZED');
      await c.nvUndefineSpace(0x01400010);
      expect(await c.nvExists(0x01400010)).toBe(false);
    });
  });

  it('collects with a fresh binding (paravisor refresh after a delay) and verifies end to end, SIMULATED', async () => {
    const binding = randomBytes(64);
    const bundle = await withClient(async (c, t) => {
      const b = await collectAzureEvidence(c, { binding, pollMs: 50, timeoutMs: 10_000, certsPem: [vcekPem] });
      expect(t.refreshes).toBe(1);
      return b;
    }, 300);
    expect(bundle.kind).toBe('azure-snp-vtpm');
    const ev = parseAzureEvidence(JSON.stringify(bundle));
    const hcl = parseHclReport(ev.hclReport);
    expect(hcl.runtimeClaims.userData).toEqual(binding);
    const r = verifyAzureEvidence(ev, simOptions(binding));
    const problems = r.checks.filter((c) => !c.ok || (c.warning && c.name !== 'snp.simulated'));
    expect(problems, JSON.stringify(problems, null, 1)).toEqual([]);
    for (const n of [
      'azure.hcl.report-data',
      'azure.quote.signature',
      'azure.quote.nonce',
      'azure.quote.pcr-digest',
      'azure.user-data',
      'snp.signature',
      'snp.policy.vmpl',
    ]) {
      expect(findCheck(r.checks, n)?.ok, n).toBe(true);
    }
    expect(r.simulated).toBe(true);
    expect(findCheck(r.checks, 'snp.simulated')?.detail).toContain('SIMULATED'); // flagged on the result and by a check
    expect(r.status).toBe('affirming');
    expect(r.ok).toBe(true);

    // the same evidence without simulation enabled: the simulated roots are not trusted
    const strict = verifyAzureEvidence(ev, { at: new Date(), nonce: binding });
    expect(strict.ok).toBe(false);
    expect(strict.checks.filter((c) => !c.ok).map((c) => c.name)).toEqual(expect.arrayContaining(['snp.chain.ask']));
  });

  describe('rejections', () => {
    let ev: AzureEvidence;
    let binding: Buffer;
    beforeAll(async () => {
      binding = randomBytes(32);
      ev = parseAzureEvidence(JSON.stringify(await withClient((c) => collectAzureEvidence(c, { binding, pollMs: 20, certsPem: [vcekPem] }))));
    });

    it('a tampered PCR value -> azure.quote.pcr-digest', () => {
      const pcrs = ev.quote.pcrs.map((p) => Buffer.from(p));
      pcrs[0]![31]! ^= 0xff;
      const r = verifyAzureEvidence({ ...ev, quote: { ...ev.quote, pcrs } }, simOptions(binding));
      expect(r.checks.filter((c) => !c.ok).map((c) => c.name)).toEqual(['azure.quote.pcr-digest']);
    });

    it('a wrong nonce -> azure.quote.nonce and azure.user-data', () => {
      const r = verifyAzureEvidence(ev, simOptions(randomBytes(32)));
      expect(
        r.checks
          .filter((c) => !c.ok)
          .map((c) => c.name)
          .sort(),
      ).toEqual(['azure.quote.nonce', 'azure.user-data']);
    });

    it('a quote by a foreign AK (ECDSA P-256 key at 0x81000004) -> azure.quote.signature', async () => {
      const { quote: foreign, ecKey } = await withClient(async (c) => {
        const b = await collectAzureEvidence(c, { binding, pollMs: 20, akHandle: FOREIGN_AK });
        return { quote: parseAzureEvidence(JSON.stringify(b)).quote, ecKey: publicKeyObject((await c.readPublic(FOREIGN_AK)).public) };
      });
      // the foreign quote is itself a valid ECDSA signature by its own key...
      expect(verifyQuoteSignature(foreign.message, foreign.signature, ecKey).ok).toBe(true);
      expect(parseAttest(foreign.message).extraData).toEqual(parseAttest(ev.quote.message).extraData);
      // ...but not by the AK the HCL report vouches for
      const r = verifyAzureEvidence({ ...ev, quote: foreign }, simOptions(binding));
      expect(r.checks.filter((c) => !c.ok).map((c) => c.name)).toEqual(['azure.quote.signature']);
    });
  });

  it('times out clearly when nothing refreshes the HCL report', async () => {
    const client = new TpmClient(await SocketTransport.connect(tpm.address)); // no paravisor emulation
    try {
      const err = await collectAzureEvidence(client, { binding: randomBytes(16), timeoutMs: 300, pollMs: 50 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DeviceError);
      expect((err as DeviceError).code).toBe('ERR_AZURE_USER_DATA_TIMEOUT');
      expect((err as DeviceError).message).toMatch(/did not pick up the user data within 300 ms/);
      // the boot-time path still works
      expect(parseHclReport(await readHclReport(client)).runtimeClaims.keys[0]?.kid).toBe('HCLAkPub');
    } finally {
      await client.close();
    }
  });

  it('works over TCP too', async () => {
    const tcp = await startSwtpm('tcp');
    try {
      const c = new TpmClient(await SocketTransport.connect(tcp.address));
      expect(await isAzureCvm(c)).toBe(false); // fresh TPM: no HCL report
      const q = await c.quote(0x81000003, Buffer.alloc(0), [{ hash: TPM_ALG.SHA256, pcrs: [0] }]).catch((e: unknown) => e);
      expect((q as TpmError).rcName).toBe('TPM_RC_HANDLE');
      await c.close();
    } finally {
      await tcp.stop();
    }
  });
});

describe.runIf(hasSwtpm)('CLI over swtpm', () => {
  const io = () => {
    const out: string[] = [];
    const err: string[] = [];
    return { out, err, io: { stdout: { write: (s: string) => out.push(s) }, stderr: { write: (s: string) => err.push(s) }, env: {}, cwd: simDir } };
  };

  it('azure evidence --swtpm writes a bundle that verify azure checks (simulated roots NOT trusted by the CLI)', async () => {
    const a = io();
    expect(await main(['azure', 'evidence', '--swtpm', tpm.spec, '--out', 'ev.json'], a.io)).toBe(0);
    const bundle = JSON.parse(readFileSync(join(simDir, 'ev.json'), 'utf8'));
    expect(bundle.kind).toBe('azure-snp-vtpm');
    const v = io();
    writeFileSync(join(simDir, 'vcek.pem'), vcekPem);
    const code = await main(['verify', 'azure', '--evidence', 'ev.json', '--cert', 'vcek.pem', '--json'], v.io);
    const out = JSON.parse(v.out.join(''));
    const ok = (n: string) => out.checks.find((c: Check) => c.name === n)?.ok;
    expect(ok('azure.quote.signature')).toBe(true);
    expect(ok('azure.hcl.report-data')).toBe(true);
    expect(ok('snp.cert.endorsement-key')).toBe(true);
    expect(ok('snp.chain.ask')).toBe(false); // the simulated ASK is not a pinned AMD root
    expect(code).toBe(1);
    expect(out.simulated).toBe(false);
  });

  it('azure evidence --nonce without a paravisor: exit 4 with the timeout reason', async () => {
    const a = io();
    expect(await main(['azure', 'evidence', '--swtpm', tpm.spec, '--nonce', 'aabb', '--timeout', '0.3'], a.io)).toBe(4);
    expect(a.err.join('')).toContain('ERR_AZURE_USER_DATA_TIMEOUT');
  });

  it('azure evidence against a missing TPM: exit 4', async () => {
    const a = io();
    expect(await main(['azure', 'evidence', '--tpm', join(simDir, 'no-such-tpm')], a.io)).toBe(4);
    expect(a.err.join('')).toMatch(/cannot open .*no-such-tpm: no TPM device/);
  });
});
