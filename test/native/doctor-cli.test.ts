/**
 * `cvm-agent doctor` end to end: the CLI in a child process against the OS-boundary fakes (the
 * /dev/sev-guest LD_PRELOAD shim, the fake libnvidia-ml, swtpm, a loopback controller), asserting each
 * finding and the fix it names. The addon is never loaded into the Vitest worker.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fakesDir, repoRoot, vectorsDir } from '../helpers/paths.js';
import { CLI } from '../helpers/built.js';
import { FAKE_NVML, FAKE_NVML_NOCC } from './nvml-helpers.js';
import { makeTestPki, TestController, type TestPki } from '../helpers/test-controller.js';
import { provisionAzureVtpm, startSwtpm, type Swtpm } from '../helpers/swtpm.js';
import { requireTool } from '../helpers/tools.js';
import { TpmClient } from '../../agent/evidence/tpm/tpm-client.js';
import { SocketTransport } from '../../agent/evidence/tpm/transport.js';
import { SimulatedSnpDevice } from '../../agent/simulation/snp-sim.js';

const SHIM = join(fakesDir, 'sevguest-shim.so');
const REPORT = join(vectorsDir, 'snp', 'gosevguest_attestation.bin');
const VCEK = join(vectorsDir, 'snp', 'gosevguest_vcek.der');
const DRIVER_RIM = join(vectorsDir, 'nvidia', 'attestation-sdk', 'rims', 'NV_GPU_DRIVER_GH100_550.144.03.xml');
const CHAIN = join(vectorsDir, 'nvidia', 'nvtrust', 'hopper-550', 'hopperCertChain.txt');

interface Finding {
  id: string;
  area: string;
  status: 'pass' | 'warn' | 'fail' | 'skipped';
  detail: string;
  fix?: string;
}
interface Out {
  code: number;
  json: { status: string; exitCode: number; findings: Finding[] };
  stderr: string;
}

let dir: string;

/** Environment without inherited fake knobs; `extra` adds the scenario's. */
function env(extra: Record<string, string>): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env))
    if (!/^(FAKE_NVML_|SEVGUEST_SHIM_|CVM_NVML_|LD_PRELOAD$|STATE_DIRECTORY$|CACHE_DIRECTORY$|RUNTIME_DIRECTORY$|CREDENTIALS_DIRECTORY$)/.test(k)) e[k] = v;
  return { ...e, ...extra };
}

function run(args: string[], extra: Record<string, string> = {}, as?: { uid: number; gid: number }): Promise<Out & { stdout: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, 'doctor', ...args], { cwd: repoRoot, env: env(extra), timeout: 60_000, ...(as ?? {}) }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      let json: Out['json'] = { status: '', exitCode: -1, findings: [] };
      try {
        json = JSON.parse(stdout);
      } catch {
        // not JSON: a usage error, or the table
      }
      resolve({ code, json, stderr, stdout });
    });
  });
}

/** A config in its own directory: devices point into it (missing unless the test creates them). */
function scenario(name: string, yaml = '', opts: { vcek?: boolean; rim?: boolean } = {}): { config: string; root: string; sevGuest: string; cache: string } {
  const root = join(dir, name);
  mkdirSync(root, { recursive: true });
  const cache = join(root, 'cache');
  const config = join(root, 'config.yaml');
  writeFileSync(
    config,
    `state: { dir: ${root}/state }\ncollateral: { dir: ${cache} }\napi: { socket: ${root}/api.sock }\n` +
      `devices: { sevGuest: ${root}/sev-guest, tsmRoot: ${root}/tsm, tpm: ${root}/tpmrm0 }\n${yaml}`,
  );
  const files = [...(opts.vcek ? [VCEK] : []), ...(opts.rim ? [DRIVER_RIM] : [])];
  if (files.length > 0)
    execFileSync(process.execPath, [CLI, 'collateral', 'import', ...files, '--dir', cache], { cwd: repoRoot, env: env({}), stdio: 'ignore' });
  return { config, root, sevGuest: join(root, 'sev-guest'), cache };
}

const find = (o: Out, id: string): Finding => {
  const f = o.json.findings.find((x) => x.id === id);
  if (!f) throw new Error(`no finding ${id}: ${JSON.stringify(o.json).slice(0, 500)} ${o.stderr}`);
  return f;
};

beforeAll(() => {
  for (const f of [join(repoRoot, 'build', 'Release', 'cvm_native.node'), SHIM, FAKE_NVML, FAKE_NVML_NOCC])
    expect(existsSync(f), `${f}: run "npm run build:native && npm run build:fakes"`).toBe(true);
  dir = mkdtempSync(join(tmpdir(), 'cvm-doctor-'));
  chmodSync(dir, 0o755); // the unwritable-state test runs the doctor as nobody
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('platform: /dev/sev-guest through the shim', () => {
  it('shim present, VCEK cached: the TEE, the report and the VCEK pass; the device node is not as the udev rule sets it', async () => {
    const s = scenario('snp-ok', '', { vcek: true });
    writeFileSync(s.sevGuest, '');
    chmodSync(s.sevGuest, 0o600);
    const o = await run(['--json', '--config', s.config], { LD_PRELOAD: SHIM, SEVGUEST_SHIM_PATH: s.sevGuest, SEVGUEST_SHIM_REPORT: REPORT });
    expect(find(o, 'platform.tee')).toMatchObject({ status: 'pass', detail: expect.stringContaining('SEV-SNP guest (bare') });
    expect(find(o, 'platform.sev-guest.device')).toMatchObject({ status: 'warn', detail: expect.stringContaining('expects group cvm-agent-tee mode 0660') });
    expect(find(o, 'platform.sev-guest.device').fix).toContain('udevadm trigger --action=change --subsystem-match=misc --sysname-match=sev-guest');
    expect(find(o, 'platform.snp.report')).toMatchObject({ status: 'warn', detail: expect.stringMatching(/report version 2, VMPL 0/) });
    expect(find(o, 'platform.snp.report').fix).toContain('firmware');
    expect(find(o, 'platform.snp.vcek')).toMatchObject({ status: 'pass', detail: expect.stringContaining('VCEK Milan') });
    expect(find(o, 'platform.snp.crl')).toMatchObject({ status: 'warn', fix: expect.stringContaining('cvm-agent collateral import') });
    expect(find(o, 'gpu.nvml').status).toBe('skipped');
    expect(o.code).toBe(3); // warnings only
    expect(o.json.exitCode).toBe(3);
  });

  it('shim present, VCEK not cached: platform.snp.vcek fails and says how to import it', async () => {
    const s = scenario('snp-novcek');
    writeFileSync(s.sevGuest, '');
    const o = await run(['--json', '--config', s.config], { LD_PRELOAD: SHIM, SEVGUEST_SHIM_PATH: s.sevGuest, SEVGUEST_SHIM_REPORT: REPORT });
    const f = find(o, 'platform.snp.vcek');
    expect(f.status).toBe('fail');
    expect(f.detail).toContain('is not in the collateral cache');
    expect(f.fix).toContain('cvm-agent collateral import FILE');
    expect(f.fix).toContain('collateral.online: true');
    expect(o.code).toBe(1);
  });

  it('the VMPCK wiped (ENOTTY): the test report fails with "reboot"', async () => {
    const s = scenario('snp-vmpck');
    writeFileSync(s.sevGuest, '');
    const o = await run(['--json', '--config', s.config], { LD_PRELOAD: SHIM, SEVGUEST_SHIM_PATH: s.sevGuest, SEVGUEST_SHIM_MODE: 'enotty' });
    const f = find(o, 'platform.snp.report');
    expect(f.status).toBe('fail');
    expect(f.detail).toContain('ERR_SNP_VMPCK_DISABLED');
    expect(f.fix).toMatch(/^reboot the VM/);
  });

  it('no sev-guest device and no other TEE: platform.tee and the module fail with "modprobe sev-guest"', async () => {
    const s = scenario('no-tee');
    const o = await run(['--json', '--config', s.config], { LD_PRELOAD: SHIM, SEVGUEST_SHIM_PATH: s.sevGuest, SEVGUEST_SHIM_MODE: 'absent' });
    expect(find(o, 'platform.tee')).toMatchObject({ status: 'fail', detail: expect.stringContaining('no confidential-computing interface') });
    expect(find(o, 'platform.tee').fix).toContain('modprobe sev-guest');
    expect(find(o, 'platform.tee').fix).toContain('tee: simulated');
    expect(find(o, 'platform.sev-guest.module')).toMatchObject({ status: 'fail', fix: expect.stringContaining('modprobe sev-guest') });
    expect(find(o, 'platform.snp.report').status).toBe('skipped');
    expect(find(o, 'vtpm.device').status).toBe('skipped');
    expect(o.code).toBe(1);
  });
});

describe('gpu: the fake NVML', () => {
  const gpuEnv = (extra: Record<string, string>) => ({ FAKE_NVML_CHAIN_FILE: CHAIN, ...extra });

  it('CC off and DevTools on: each fails with the host-side fix; the RIMs missing fail too', async () => {
    const s = scenario('gpu-ccoff', 'gpus: { enabled: on }\n');
    const o = await run(
      ['--json', '--config', s.config],
      gpuEnv({ CVM_NVML_LIBRARY: FAKE_NVML, FAKE_NVML_CC: 'off', FAKE_NVML_DEVTOOLS: '1', FAKE_NVML_GPUS: '2' }),
    );
    expect(find(o, 'gpu.nvml').status).toBe('pass');
    expect(find(o, 'gpu.devices')).toMatchObject({ status: 'pass', detail: expect.stringContaining('2 GPU(s)') });
    expect(find(o, 'gpu.cc')).toMatchObject({ status: 'fail', detail: expect.stringContaining('confidential computing is off') });
    expect(find(o, 'gpu.cc').fix).toContain('--set-cc-mode=on');
    expect(find(o, 'gpu.devtools')).toMatchObject({ status: 'fail', detail: expect.stringContaining('DevTools mode is on') });
    expect(find(o, 'gpu.devtools').fix).toContain('(not devtools)');
    expect(find(o, 'gpu.rim')).toMatchObject({ status: 'fail', detail: expect.stringContaining('NV_GPU_DRIVER_GH100_550.90.07: not in the collateral cache') });
    expect(find(o, 'gpu.rim').fix).toContain('https://rim.attestation.nvidia.com/v1/rim/');
    expect(find(o, 'gpu.ocsp')).toMatchObject({ status: 'warn', fix: expect.stringContaining('collateral.online: true') });
    expect(find(o, 'gpu.ready').status).toBe('pass');
    expect(o.code).toBe(1);
  });

  it('a driver whose NVML lacks the CC symbols: gpu.driver fails and the CC checks are skipped', async () => {
    const s = scenario('gpu-nocc', 'gpus: { enabled: on }\n');
    const o = await run(['--json', '--config', s.config], gpuEnv({ CVM_NVML_LIBRARY: FAKE_NVML_NOCC }));
    const f = find(o, 'gpu.driver');
    expect(f.status).toBe('fail');
    expect(f.detail).toContain('no confidential-computing API');
    expect(f.fix).toContain('driver >= 535');
    expect(find(o, 'gpu.cc').status).toBe('skipped');
    expect(find(o, 'gpu.devtools').status).toBe('skipped');
  });

  it('an old driver (R470): gpu.driver fails naming R535', async () => {
    const s = scenario('gpu-old', 'gpus: { enabled: on }\n');
    const o = await run(['--json', '--config', s.config], gpuEnv({ CVM_NVML_LIBRARY: FAKE_NVML, FAKE_NVML_DRIVER: '470.182.03' }));
    expect(find(o, 'gpu.driver')).toMatchObject({ status: 'fail', detail: expect.stringContaining('older than R535') });
    expect(find(o, 'gpu.driver').fix).toContain('>= 535');
  });

  it('CC on, production, driver RIM cached: the GPU checks pass; the VBIOS RIM is still missing', async () => {
    const s = scenario('gpu-ok', 'gpus: { enabled: on }\n', { rim: true });
    const o = await run(['--json', '--config', s.config], gpuEnv({ CVM_NVML_LIBRARY: FAKE_NVML, FAKE_NVML_DRIVER: '550.144.03' }));
    for (const id of ['gpu.nvml', 'gpu.driver', 'gpu.devices', 'gpu.cc', 'gpu.devtools', 'gpu.environment', 'gpu.multi-gpu'])
      expect(find(o, id).status, id).toBe('pass');
    const rim = find(o, 'gpu.rim');
    expect(rim.detail).toContain('NV_GPU_DRIVER_GH100_550.144.03 fresh');
    expect(rim.detail).toMatch(/VBIOS RIM for 96\.00\.9F\.00\.01 .*not in the collateral cache/);
  });

  it('no NVML with gpus.enabled: auto: a VM without GPUs, skipped, exit not 1 for it', async () => {
    const s = scenario('gpu-none');
    const o = await run(['--json', '--config', s.config], { CVM_NVML_LIBRARY: '/nonexistent/libnvidia-ml.so.1' });
    expect(find(o, 'gpu.nvml')).toMatchObject({ status: 'skipped', fix: expect.stringContaining('devices.nvmlLibrary') });
  });
});

// Locally a skip without swtpm, in CI a failure (test/helpers/tools.ts).
describe.runIf(requireTool('swtpm', 'swtpm'))('vtpm: swtpm', () => {
  let plain: Swtpm;
  let azure: Swtpm;
  let simDir: string;
  beforeAll(async () => {
    [plain, azure] = await Promise.all([startSwtpm('unix'), startSwtpm('unix')]);
    simDir = mkdtempSync(join(tmpdir(), 'cvm-doctor-sim-'));
    const sim = await SimulatedSnpDevice.open(simDir);
    const client = new TpmClient(await SocketTransport.connect(azure.address));
    try {
      await provisionAzureVtpm(client, sim);
    } finally {
      await client.close();
    }
  }, 120_000);
  afterAll(async () => {
    await plain?.stop();
    await azure?.stop();
    if (simDir) rmSync(simDir, { recursive: true, force: true });
  });

  it('with the HCL report NV index and the AK: the vTPM checks pass and the TEE is Azure', async () => {
    const s = scenario('vtpm-azure');
    const o = await run(['--json', '--config', s.config, '--swtpm', azure.spec], { CVM_NVML_LIBRARY: '/nonexistent/libnvidia-ml.so.1' });
    expect(find(o, 'platform.tee')).toMatchObject({ status: 'pass', detail: expect.stringContaining('Azure confidential VM') });
    expect(find(o, 'vtpm.device').status).toBe('pass');
    expect(find(o, 'vtpm.hcl-report')).toMatchObject({ status: 'pass', detail: expect.stringContaining('carry HCLAkPub') });
    expect(find(o, 'vtpm.ak')).toMatchObject({ status: 'pass', detail: expect.stringContaining('equals HCLAkPub') });
    expect(find(o, 'vtpm.user-data')).toMatchObject({ status: 'pass', fix: expect.stringContaining('--vtpm-refresh') });
    // The embedded SNP report is from the simulator: its product is read, its VCEK is not in the cache.
    expect(find(o, 'platform.snp.report')).toMatchObject({ status: 'pass', detail: expect.stringContaining('azure-hcl') });
    expect(find(o, 'platform.snp.vcek').status).toBe('fail');
  });

  it('--vtpm-refresh on a TPM without a paravisor: the refresh fails and says so', async () => {
    const s = scenario('vtpm-refresh');
    const o = await run(['--json', '--config', s.config, '--swtpm', azure.spec, '--vtpm-refresh'], { CVM_NVML_LIBRARY: '/nonexistent/libnvidia-ml.so.1' });
    const f = find(o, 'vtpm.user-data');
    expect(f.status).toBe('fail');
    expect(f.detail).toContain('did not refresh the HCL report');
    expect(f.fix).toContain('paravisor');
  }, 30_000);

  it('without the NV index (a plain TPM): not an Azure CVM, with the fix', async () => {
    const s = scenario('vtpm-plain');
    const o = await run(['--json', '--config', s.config, '--swtpm', plain.spec], { CVM_NVML_LIBRARY: '/nonexistent/libnvidia-ml.so.1' });
    expect(find(o, 'platform.tee')).toMatchObject({ status: 'fail', detail: expect.stringContaining('a plain TPM, not an Azure confidential VM') });
    const f = find(o, 'vtpm.hcl-report');
    expect(f.status).toBe('fail');
    expect(f.detail).toContain('NV index 0x01400001 (the HCL report) is not defined');
    expect(f.fix).toContain('securityType: ConfidentialVM');
    expect(find(o, 'vtpm.ak')).toMatchObject({ status: 'fail', fix: expect.stringContaining('restart the VM') });
    expect(o.code).toBe(1);
  });
});

describe('controller: a loopback controller over TLS', () => {
  let pki: TestPki;
  let rogue: TestPki;
  let controller: TestController;
  beforeAll(async () => {
    pki = makeTestPki('doctor');
    rogue = makeTestPki('rogue');
    controller = await TestController.start({ token: 'good-token', tls: { cert: pki.server.certPem, key: pki.server.keyPem } });
  });
  afterAll(async () => {
    await controller?.close();
  });

  function controllerScenario(name: string, ca: string, token: string): string {
    const s = scenario(name);
    writeFileSync(join(s.root, 'ca.pem'), ca);
    writeFileSync(join(s.root, 'token'), `${token}\n`);
    writeFileSync(s.config, `controller: { url: "${controller.url}", caFile: ${s.root}/ca.pem, tokenFile: ${s.root}/token, agentId: doctor-test }\n`, {
      flag: 'a',
    });
    return s.config;
  }

  it('the right CA and token: every stage passes, hello/welcome negotiates the version, no evidence is sent', async () => {
    const config = controllerScenario('ctl-ok', pki.caPem, 'good-token');
    const before = controller.received.length;
    const o = await run(['--json', '--config', config], { CVM_NVML_LIBRARY: '/nonexistent/libnvidia-ml.so.1' });
    for (const id of ['controller.dns', 'controller.tcp', 'controller.tls', 'controller.token', 'controller.protocol'])
      expect(find(o, id).status, id).toBe('pass');
    expect(find(o, 'controller.protocol').detail).toContain('protocol version 1');
    const sent = controller.received.slice(before);
    expect(sent.map((m) => m.type)).toEqual(['hello']);
    expect(find(o, 'agent.clock').detail).toContain('controller CA');
  });

  it('a CA that did not issue the controller certificate: controller.tls fails and names controller.caFile', async () => {
    const config = controllerScenario('ctl-wrong-ca', rogue.caPem, 'good-token');
    const o = await run(['--json', '--config', config], { CVM_NVML_LIBRARY: '/nonexistent/libnvidia-ml.so.1' });
    const f = find(o, 'controller.tls');
    expect(f.status).toBe('fail');
    expect(f.detail).toMatch(/certificate/i);
    expect(f.fix).toContain('controller.caFile');
    expect(find(o, 'controller.token')).toMatchObject({ status: 'skipped', detail: 'controller.tls failed' });
    expect(o.code).toBe(1);
  });

  it('a token the controller refuses: controller.token fails with HTTP 401 and names the token file', async () => {
    const config = controllerScenario('ctl-bad-token', pki.caPem, 'wrong-token');
    const o = await run(['--json', '--config', config], { CVM_NVML_LIBRARY: '/nonexistent/libnvidia-ml.so.1' });
    const f = find(o, 'controller.token');
    expect(f.status).toBe('fail');
    expect(f.detail).toContain('HTTP 401');
    expect(f.fix).toContain('valid token');
    expect(find(o, 'controller.protocol').status).toBe('skipped');
  });
});

describe('agent', () => {
  it('an invalid config: agent.config fails naming the key, the other checks still run (on the defaults)', async () => {
    const s = scenario('cfg-bad', 'schedule: { jitterSec: 99999 }\n');
    const o = await run(['--json', '--config', s.config], { CVM_NVML_LIBRARY: '/nonexistent/libnvidia-ml.so.1' });
    const f = find(o, 'agent.config');
    expect(f.status).toBe('fail');
    expect(f.detail).toContain('schedule.jitterSec: must be an integer between 0 and 3600');
    expect(f.fix).toContain(`cvm-agent config check ${s.config}`);
    expect(find(o, 'platform.tee')).toBeDefined();
    expect(o.code).toBe(1);
  });

  it('a config file that cannot be read: exit 2, no findings', async () => {
    const o = await run(['--json', '--config', join(dir, 'missing.yaml')]);
    expect(o.code).toBe(2);
    expect(o.stderr).toContain('cannot read');
  });

  it('usage: an unknown option exits 2; --help documents the checks and exit codes', async () => {
    expect((await run(['--bogus'])).code).toBe(2);
    const h = await run(['--help']);
    expect(h.code).toBe(0);
    expect(h.stdout).toContain('Usage: cvm-agent doctor');
    expect(h.stdout).toMatch(/Exit codes: 0 every check passed .*3 warnings only, 1 a check failed/s);
  });

  it.skipIf(process.getuid?.() !== 0)('a state directory the service user cannot write: agent.state-dir fails with the chown fix', async () => {
    const s = scenario('state-ro');
    mkdirSync(join(s.root, 'state'), { mode: 0o755 });
    for (const p of [s.root, s.config]) chmodSync(p, 0o755);
    // As nobody (no cvm-agent user on a test machine, so the doctor judges for the user it runs as).
    const o = await run(['--json', '--config', s.config], { CVM_NVML_LIBRARY: '/nonexistent/libnvidia-ml.so.1', HOME: '/tmp' }, { uid: 65534, gid: 65534 });
    const f = find(o, 'agent.state-dir');
    expect(f.status).toBe('fail');
    expect(f.detail).toContain('is not writable by nobody');
    expect(f.fix).toContain(`chown nobody ${s.root}/state`);
  });

  it('the table on a terminal: a headline with the counts, one line per finding, the fix below it', async () => {
    const s = scenario('table');
    const o = await run(['--config', s.config], { CVM_NVML_LIBRARY: '/nonexistent/libnvidia-ml.so.1' });
    expect(o.stdout).toMatch(/^cvm-agent doctor: FAILED — \d+ checks: \d+ passed, \d+ warning\(s\), \d+ failed, \d+ skipped\n/);
    expect(o.stdout).toMatch(/✘ platform\.tee +FAIL +no confidential-computing interface/);
    expect(o.stdout).toMatch(/\n +fix: +run the agent in an AMD SEV-SNP guest/);
  });
});
