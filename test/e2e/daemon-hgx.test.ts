/**
 * A simulated HGX protected-PCIe system end to end, through the real processes: a `cvm-agent run` child
 * on the simulated TEE with `simulation.ppcie` (8 GPUs and 4 NVSwitches, agent/simulation/switch-sim.ts)
 * linked over loopback WebSocket to the reference controller, which trusts the same simulation
 * directory. The controller's verdict is AFFIRMING with one EAR submod per GPU and per switch, and the
 * agent's GET /v1/status lists the switches. Then the hostile variants: the agent's test hook
 * (agent/daemon/test-hooks.ts, CVM_AGENT_TEST_SWITCH_TAMPER) damages one switch's evidence on every
 * cycle, and the controller says CONTRAINDICATED, naming the failing check on that switch.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, type DaemonProcess } from '../helpers/daemon-process.js';
import { startController, until, type ControllerFixture } from '../helpers/trust-fixture.js';
import { openSimulation } from '../../agent/simulation/open.js';
import { callApi } from '../../agent/cli/api-client.js';

const GPUS = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => `gpu${i}`);
const SWITCHES = ['switch0', 'switch1', 'switch2', 'switch3'];

interface Hgx {
  dir: string;
  socket: string;
  ctl: ControllerFixture;
  agent: DaemonProcess;
}

/** A controller trusting a fresh simulated HGX system, and the agent on that system linked to it. */
async function startHgx(env: Record<string, string> = {}): Promise<Hgx> {
  const dir = mkdtempSync(join(tmpdir(), 'cvm-hgx-'));
  chmodSync(dir, 0o755);
  const simDir = join(dir, 'sim');
  // Created before the controller looks (as an agent that ran once would have): CPU, 8 GPUs, 4 switches.
  await openSimulation(simDir, 8, { ppcie: true });
  const ctl = await startController({ simDir });
  const socket = join(dir, 'api.sock');
  const uid = String(process.getuid?.() ?? 0);
  writeFileSync(
    join(dir, 'config.yaml'),
    `tee: simulated
simulation: { ppcie: true, dir: ${simDir} }
api:
  socket: ${socket}
  authorization:
    attest: { uids: ["${uid}"] }
state: { dir: ${dir}/state }
collateral: { dir: ${dir}/cache }
schedule: { cron: "0 0 1 1 *", jitterSec: 0, retry: { initialSec: 3600, maxSec: 3600 } }
${ctl.agentYaml}
`,
  );
  const agent = startDaemon(['--config', join(dir, 'config.yaml')], { CVM_AGENT_LOG_LEVEL: 'debug', ...env });
  return { dir, socket, ctl, agent };
}

async function stopHgx(h: Hgx | undefined): Promise<void> {
  if (!h) return;
  if (h.agent.child.exitCode === null && h.agent.child.signalCode === null) {
    h.agent.child.kill('SIGTERM');
    await Promise.race([h.agent.exit, new Promise((r) => setTimeout(r, 8000))]);
    if (h.agent.child.exitCode === null) h.agent.child.kill('SIGKILL');
  }
  await h.ctl.close();
}

/** The controller's view of the agent (GET /v1/agents/{id}): its last verdict, with the EAR as signed. */
async function lastVerdict(h: Hgx): Promise<any> {
  const r = await fetch(`${h.ctl.controller.address().url}/v1/agents/trust-vm`);
  expect(r.status).toBe(200);
  return ((await r.json()) as { lastVerdict: any }).lastVerdict;
}

/** The controller has appraised the agent and says `status`; on a timeout, the agent's log messages say why not. */
const verdictGiven = (h: Hgx, status: string) =>
  until(
    `a ${status} verdict`,
    async () => {
      const r = await fetch(`${h.ctl.controller.address().url}/v1/agents/trust-vm`);
      return r.status === 200 && ((await r.json()) as { lastVerdict?: { status: string } }).lastVerdict?.status === status;
    },
    60_000,
  ).catch((err: Error) => {
    throw new Error(`${err.message}; agent messages: ${JSON.stringify(h.agent.logs.map((l) => [l.msg, l.err ?? l.status ?? l.stderr]))}`);
  });

/**
 * The agent's GET /v1/status once it holds the controller's verdict: the controller stores a verdict
 * before it sends it, so the agent applies it a moment after the controller's view shows it.
 */
async function agentStatusAfterVerdict(h: Hgx): Promise<any> {
  return until(
    "the agent's status showing the controller's verdict",
    async () => {
      const status = (await callApi(h.socket, 'GET', '/v1/status')).json() as any;
      return status.controller?.verdict ? status : undefined;
    },
    30_000,
  );
}

describe('a simulated HGX PPCIe system (8 GPUs, 4 NVSwitches) appraised by the reference controller', () => {
  let h: Hgx;
  beforeAll(async () => {
    h = await startHgx();
    await verdictGiven(h, 'affirming');
  }, 180_000);
  afterAll(() => stopHgx(h));

  it('the controller affirms: EAR submods cpu0, gpu0..7 and switch0..3, every switch and GPU with ppcie.topology passed', async () => {
    const v = await lastVerdict(h);
    expect(v.status).toBe('affirming');
    expect(Object.keys(v.ear.submods).sort()).toEqual(['cpu0', ...GPUS, ...SWITCHES].sort());
    expect(v.devices).toEqual(Object.fromEntries(['cpu0', ...GPUS, ...SWITCHES].map((id) => [id, 'affirming'])));
    for (const id of [...GPUS, ...SWITCHES]) {
      const checks = v.ear.submods[id]['cvm.checks'] as { name: string; ok: boolean; warning?: boolean }[];
      expect(checks.find((c) => c.name === 'ppcie.topology')).toMatchObject({ ok: true });
      expect(checks.filter((c) => !c.ok || c.warning)).toEqual([]);
    }
    // Switch revocation was checked against the simulated OCSP answers, not skipped.
    const revocation = (v.ear.submods.switch3['cvm.checks'] as { name: string; ok: boolean; detail: string }[]).find((c) => c.name === 'switch.revocation');
    expect(revocation).toMatchObject({ ok: true });
  });

  it('GET /v1/status lists the switches: switches {present, count 4} and devices switch0..3, affirming', async () => {
    const status = await agentStatusAfterVerdict(h);
    expect(status.switches).toEqual({ present: true, count: 4 });
    expect(status.tee.simulated).toBe(true);
    expect(Object.keys(status.lastAttestation.devices).sort()).toEqual(['cpu0', ...GPUS, ...SWITCHES].sort());
    for (const id of SWITCHES) expect(status.lastAttestation.devices[id]).toMatchObject({ status: 'affirming', failed: [], warnings: [] });
    expect(status.controller.verdict.status).toBe('affirming');
  });

  it('POST /v1/attest answers with the switches in the bundle (switches[]) and the EAR', async () => {
    const r = (await callApi(h.socket, 'POST', '/v1/attest')).json() as any;
    expect(r.ok).toBe(true);
    expect(r.bundle.switches.map((s: { index: number; arch: string }) => [s.index, s.arch])).toEqual(SWITCHES.map((_, i) => [i, 'LS10']));
    expect(Object.keys(r.ear.submods)).toEqual(expect.arrayContaining(SWITCHES));
  }, 60_000);
});

describe.each([
  { how: 'signature', index: 2, failing: 'switch.signature' },
  { how: 'foreign-gpu', index: 1, failing: 'ppcie.topology' },
])('hostile: switch $index evidence damaged by the test hook ($how)', ({ how, index, failing }) => {
  let h: Hgx;
  beforeAll(async () => {
    h = await startHgx({ CVM_AGENT_TEST_HOOKS: '1', CVM_AGENT_TEST_SWITCH_TAMPER: `${index}:${how}` });
    await verdictGiven(h, 'contraindicated');
  }, 180_000);
  afterAll(() => stopHgx(h));

  it(`the controller contraindicates, naming ${failing} on switch${index}`, async () => {
    expect(h.agent.logs.some((l) => typeof l.msg === 'string' && l.msg.includes('simulated NVSwitch evidence is damaged on purpose'))).toBe(true);
    const v = await lastVerdict(h);
    expect(v.status).toBe('contraindicated');
    expect(v.devices[`switch${index}`]).toBe('contraindicated');
    const failed = (id: string) => (v.ear.submods[id]['cvm.checks'] as { name: string; ok: boolean }[]).filter((c) => !c.ok).map((c) => c.name);
    expect(failed(`switch${index}`)).toContain(failing);
    expect(v.devices.cpu0).toBe('affirming');
    if (how === 'signature') {
      // Only the damaged switch fails; the topology still holds (its fields are intact).
      for (const id of [...GPUS, ...SWITCHES.filter((s) => s !== `switch${index}`)]) expect(failed(id)).toEqual([]);
    } else {
      // A topology the devices disagree on contraindicates every GPU and switch; each signature still verifies.
      for (const id of [...GPUS, ...SWITCHES]) expect(failed(id)).toEqual(['ppcie.topology']);
    }
    const status = await agentStatusAfterVerdict(h);
    expect(status.lastAttestation.devices[`switch${index}`].failed.map((f: { name: string }) => f.name)).toContain(failing);
    expect(status.controller.verdict.status).toBe('contraindicated');
  });
});
