/**
 * Test helper: a throw-away swtpm (TPM 2.0 emulator) on loopback TCP or a Unix socket, with a temp
 * state dir; `--flags not-need-init,startup-clear` makes it ready for commands (CMD_INIT + TPM2_Startup
 * done by swtpm itself). stop() kills the process and removes the state.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SocketAddress } from '../../agent/evidence/tpm/transport.js';
import { createHash } from 'node:crypto';
import { TpmClient } from '../../agent/evidence/tpm/tpm-client.js';
import { AZURE, TPM_ALG, TPM_CC, TPM_ECC, TPM_RH, TPMA_NV, TPMA_OBJECT } from '../../agent/formats/tpm/constants.js';
import { publicKeyObject, type TpmPublic } from '../../agent/formats/tpm/structures.js';
import type { TpmTransport } from '../../agent/evidence/tpm/transport.js';
import { buildHclReport } from '../../agent/formats/azure/hcl.js';
import type { SimulatedSnpDevice } from '../../agent/simulation/snp-sim.js';

export interface Swtpm {
  address: SocketAddress;
  /** The same, in the CLI's --swtpm syntax. */
  spec: string;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function canConnect(address: SocketAddress): Promise<boolean> {
  return new Promise((resolve) => {
    const s = 'path' in address ? connect({ path: address.path }) : connect({ host: address.host, port: address.port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export async function startSwtpm(kind: 'tcp' | 'unix' = 'unix'): Promise<Swtpm> {
  const dir = mkdtempSync(join(tmpdir(), 'cvm-swtpm-'));
  let address: SocketAddress;
  let args: string[];
  if (kind === 'unix') {
    address = { path: join(dir, 'tpm.sock') };
    args = ['--server', `type=unixio,path=${address.path}`, '--ctrl', `type=unixio,path=${join(dir, 'ctrl.sock')}`];
  } else {
    const port = await freePort();
    const ctrl = await freePort();
    address = { host: '127.0.0.1', port };
    args = ['--server', `type=tcp,port=${port},bindaddr=127.0.0.1`, '--ctrl', `type=tcp,port=${ctrl},bindaddr=127.0.0.1`];
  }
  const proc: ChildProcess = spawn('swtpm', ['socket', '--tpm2', '--tpmstate', `dir=${dir}`, '--flags', 'not-need-init,startup-clear', ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  for (let i = 0; i < 100; i++) {
    if (proc.exitCode !== null) break;
    if (await canConnect(address)) {
      const spec = 'path' in address ? `unix:${address.path}` : `${address.host}:${address.port}`;
      return { address, spec, stop };
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  await stop();
  throw new Error(`swtpm did not start: ${stderr}`);
}

// ---------------------------------------------------------------------------------------------
// Azure vTPM emulation on top of swtpm.
//
// A real Azure vTPM is backed by the paravisor (HCL): NV 0x01400001 holds an HCL report whose SNP
// report is signed by the AMD firmware, and writing user data to NV 0x01400002 makes the paravisor
// regenerate that report with the new user-data in the runtime claims. swtpm is a plain TPM and does
// neither, so the tests emulate the paravisor HONESTLY AND EXPLICITLY here: provisionAzureVtpm()
// creates the AK and the first HCL report (SNP report from the SIMULATED SEV-SNP device, signed by
// simulated roots), and FakeParavisorTransport watches for a successful NV_Write to 0x01400002 and
// then rewrites 0x01400001 itself (optionally after a delay, to exercise the agent's polling).

/** Azure's AK: RSA-2048 restricted signing key, RSASSA/SHA-256 (az-cvm-vtpm src/vtpm/mod.rs; checked on test/vectors/snp/azure_quote.bin). */
export const RSA_AK_TEMPLATE: TpmPublic = {
  type: 'rsa',
  nameAlg: TPM_ALG.SHA256,
  objectAttributes:
    TPMA_OBJECT.fixedTPM |
    TPMA_OBJECT.fixedParent |
    TPMA_OBJECT.sensitiveDataOrigin |
    TPMA_OBJECT.userWithAuth |
    TPMA_OBJECT.noDA |
    TPMA_OBJECT.restricted |
    TPMA_OBJECT.sign,
  authPolicy: Buffer.alloc(0),
  symmetric: { algorithm: TPM_ALG.NULL },
  scheme: { scheme: TPM_ALG.RSASSA, hashAlg: TPM_ALG.SHA256 },
  keyBits: 2048,
  exponent: 0,
  modulus: Buffer.alloc(0),
};
export const ECC_AK_TEMPLATE: TpmPublic = {
  type: 'ecc',
  nameAlg: TPM_ALG.SHA256,
  objectAttributes: RSA_AK_TEMPLATE.objectAttributes,
  authPolicy: Buffer.alloc(0),
  symmetric: { algorithm: TPM_ALG.NULL },
  scheme: { scheme: TPM_ALG.ECDSA, hashAlg: TPM_ALG.SHA256 },
  curveId: TPM_ECC.NIST_P256,
  kdf: { scheme: TPM_ALG.NULL },
  x: Buffer.alloc(0),
  y: Buffer.alloc(0),
};

/** Create a primary key from `template` in the owner hierarchy and persist it at `handle`. */
export async function provisionKey(client: TpmClient, template: TpmPublic, handle: number): Promise<TpmPublic> {
  const { handle: transient } = await client.createPrimary(TPM_RH.OWNER, template);
  await client.evictControl(transient, handle);
  await client.flushContext(transient);
  return (await client.readPublic(handle)).public;
}

/** Runtime claims as the paravisor writes them (HCLAkPub JWK, vm-configuration, user-data uppercase hex). */
export function runtimeClaimsFor(ak: TpmPublic, userData: Uint8Array = Buffer.alloc(64)): Buffer {
  const jwk = publicKeyObject(ak).export({ format: 'jwk' });
  return Buffer.from(
    JSON.stringify({
      keys: [{ kid: 'HCLAkPub', key_ops: ['sign'], ...jwk }],
      'vm-configuration': { 'console-enabled': false, 'secure-boot': true, 'tpm-enabled': true, vmUniqueId: '00000000-0000-4000-8000-000000000001' },
      'user-data': Buffer.from(userData).toString('hex').toUpperCase(),
    }),
  );
}

export const HCL_NV_SIZE = 2048; // az-cvm-vtpm's dump is 2048 B; swtpm's TPM_PT_NV_INDEX_MAX is 2048

/** Write (defining if needed) the HCL report for `userData` into NV 0x01400001, SNP report from the simulator. */
export async function writeHclReport(client: TpmClient, sim: SimulatedSnpDevice, ak: TpmPublic, userData: Uint8Array = Buffer.alloc(64)): Promise<Buffer> {
  const claims = runtimeClaimsFor(ak, userData);
  const reportData = Buffer.concat([createHash('sha256').update(claims).digest(), Buffer.alloc(32)]); // trustee az_snp_vtpm verify_report_data
  const { report } = await sim.getReport(reportData, { vmpl: 0 });
  const hcl = buildHclReport(report, claims, { size: HCL_NV_SIZE });
  if (!(await client.nvExists(AZURE.HCL_REPORT_INDEX))) {
    await client.nvDefineSpace({
      nvIndex: AZURE.HCL_REPORT_INDEX,
      nameAlg: TPM_ALG.SHA256,
      attributes: TPMA_NV.OWNERREAD | TPMA_NV.OWNERWRITE,
      authPolicy: Buffer.alloc(0),
      dataSize: HCL_NV_SIZE,
    });
  }
  await client.nvWrite(AZURE.HCL_REPORT_INDEX, hcl);
  return hcl;
}

/** Provision swtpm like an Azure CVM's vTPM: RSA AK at 0x81000003 and a boot-time HCL report. */
export async function provisionAzureVtpm(client: TpmClient, sim: SimulatedSnpDevice): Promise<{ ak: TpmPublic }> {
  const ak = await provisionKey(client, RSA_AK_TEMPLATE, AZURE.AK_HANDLE);
  await writeHclReport(client, sim, ak);
  return { ak };
}

/**
 * Forwards every command to swtpm; after a successful TPM2_NV_Write to 0x01400002 it plays the
 * paravisor: reads the user data back and rewrites the HCL report with it (after `delayMs`, in the
 * background, as the real refresh is asynchronous).
 */
export class FakeParavisorTransport implements TpmTransport {
  readonly description: string;
  refreshes = 0;
  private pending: Promise<void> = Promise.resolve();
  private readonly side: TpmClient;

  constructor(
    private readonly inner: TpmTransport,
    private readonly sim: SimulatedSnpDevice,
    private readonly ak: TpmPublic,
    private readonly delayMs = 0,
  ) {
    this.description = `${inner.description} (+ emulated Azure paravisor)`;
    this.side = new TpmClient(inner);
  }

  async send(command: Buffer): Promise<Buffer> {
    const response = await this.inner.send(command);
    const code = command.readUInt32BE(6);
    const nvIndex = command.length >= 18 ? command.readUInt32BE(14) : 0;
    const rc = response.readUInt32BE(6);
    if (code === TPM_CC.NV_Write && nvIndex === AZURE.REPORT_DATA_INDEX && rc === 0) {
      this.pending = new Promise<void>((r) => setTimeout(r, this.delayMs)).then(async () => {
        const userData = await this.side.nvRead(AZURE.REPORT_DATA_INDEX);
        await writeHclReport(this.side, this.sim, this.ak, userData);
        this.refreshes++;
      });
    }
    return response;
  }

  async close(): Promise<void> {
    await this.pending.catch(() => undefined);
    await this.inner.close();
  }
}
