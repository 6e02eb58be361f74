/**
 * Attack: an explicitly configured policy file that is empty, comment-only, null, a scalar or a list.
 * Before the fix it silently meant "no allow-lists": `verify snp --policy empty.yaml` passed a
 * measurement the real policy rejects, and the daemon reported `affirming`. Required: a configured
 * policy must parse to a mapping, anything else is a config error — exit 2 with one line for the CLI
 * verifiers and `config check`, a start error for the daemon (and a rejected reload), a start error
 * for the controller. `{}` stays the explicit way to ask for every default.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { vectorsDir } from '../helpers/paths.js';
import { startDaemon } from '../helpers/daemon-process.js';
import { NotifyReceiver } from '../helpers/notify-receiver.js';
import { cleanupProbe, cli, expectConfigCheckProblem, expectOneLineRefusal } from './hostile-files-cli.js';

const snp = (f: string) => join(vectorsDir, 'snp', f);
const REPORT = snp('trustee_snp_test-report.bin');
const VCEK = snp('trustee_snp_test-vcek.der');
const AZURE = snp('trustee_az-snp-vtpm_evidence-v1.json');
const GPU_EVIDENCE = join(vectorsDir, 'nvidia', 'attestation-sdk', 'evidence-json', 'multi_gpu_hopper.json');
const AT = ['--at', '2025-06-01T00:00:00Z'];

/** Policies that are not a mapping, and what the one-line error must say. */
const NOT_A_MAPPING: Array<[string, string, RegExp]> = [
  ['empty', '', /empty \(only comments or whitespace\): a policy must be a mapping of keys; write \{\} to mean every default/],
  ['comment-only', '# measurements: [...] to be filled in\n\n   # TODO\n', /empty \(only comments or whitespace\)/],
  ['null', 'null\n', /must be a mapping of keys, got null/],
  ['scalar', 'allow everything\n', /must be a mapping of keys, got a string/],
  ['number', '42\n', /must be a mapping of keys, got a number/],
  ['list', '- measurements\n- vmpl\n', /must be a mapping of keys, got a list/],
];

let dir: string;
const file = (name: string) => join(dir, name);

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'hostile-files-policy-'));
  for (const [name, text] of NOT_A_MAPPING) writeFileSync(file(`${name}.yaml`), text);
  writeFileSync(file('defaults.yaml'), '{}\n');
  // The "real" policy: an allow-list that does not contain this report's measurement.
  writeFileSync(file('real.yaml'), `measurements:\n  - ${'00'.repeat(48)}\n`);
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  cleanupProbe();
});

describe('verify snp --policy', () => {
  it('control: the real policy rejects the measurement (exit 1); {} is the explicit defaults (exit 3: no CRL)', async () => {
    const real = await cli(['verify', 'snp', '--report', REPORT, '--cert', VCEK, ...AT, '--policy', file('real.yaml')]);
    expect(real.code, real.stderr).toBe(1);
    expect(real.stdout).toMatch(/✘ snp\.policy\.measurement/);
    const defaults = await cli(['verify', 'snp', '--report', REPORT, '--cert', VCEK, ...AT, '--policy', file('defaults.yaml')]);
    expect(defaults.code, defaults.stderr).toBe(3);
  }, 120_000);

  for (const [name, , message] of NOT_A_MAPPING) {
    it(`a ${name} policy file is a config error (exit 2), not "no allow-lists"`, async () => {
      const r = await cli(['verify', 'snp', '--report', REPORT, '--cert', VCEK, ...AT, '--policy', file(`${name}.yaml`)]);
      expectOneLineRefusal(r, new RegExp(`^cvm-agent verify snp: SNP policy ".*${name}\\.yaml": ${message.source}`));
      expect(r.stdout).toBe('');
    }, 120_000);
  }
});

describe('verify gpu --policy and verify azure --policy', () => {
  for (const name of ['empty', 'comment-only', 'scalar']) {
    const message = NOT_A_MAPPING.find(([n]) => n === name)![2];
    it(`verify gpu: a ${name} policy file is refused`, async () => {
      const r = await cli(['verify', 'gpu', '--evidence', GPU_EVIDENCE, '--skip', 'rim', '--policy', file(`${name}.yaml`)]);
      expectOneLineRefusal(r, new RegExp(`GPU policy ".*${name}\\.yaml": ${message.source}`));
    }, 120_000);
    it(`verify azure: a ${name} policy file is refused`, async () => {
      const r = await cli(['verify', 'azure', '--evidence', AZURE, '--nonce-text', 'challenge', ...AT, '--policy', file(`${name}.yaml`)]);
      expectOneLineRefusal(r, new RegExp(`SNP policy ".*${name}\\.yaml": ${message.source}`));
    }, 120_000);
  }
});

describe('the daemon: policy.file', () => {
  function daemonConfig(name: string, policy: string): string {
    const d = file(`daemon-${name}`);
    const cfg = file(`daemon-${name}.yaml`);
    // The API socket's directory must exist (the daemon does not create it; config check says so).
    mkdirSync(d, { recursive: true });
    writeFileSync(
      cfg,
      `tee: simulated
simulation: { gpus: 0, dir: ${d}/sim }
api: { socket: ${d}/api.sock }
state: { dir: ${d}/state }
collateral: { dir: ${d}/cache }
schedule: { cron: "0 0 1 1 *", jitterSec: 0, attestAtStart: false }
policy: { file: ${policy} }
`,
    );
    return cfg;
  }

  for (const name of ['empty', 'comment-only', 'scalar']) {
    it(`config check refuses a ${name} policy.file`, async () => {
      const r = await cli(['config', 'check', daemonConfig(`check-${name}`, file(`${name}.yaml`))]);
      expectConfigCheckProblem(r, /^policy\.file .*\.yaml: (empty|must be a mapping)/);
    }, 120_000);
  }

  it('config check accepts {} as policy.file', async () => {
    const r = await cli(['config', 'check', daemonConfig('check-defaults', file('defaults.yaml'))]);
    expect(r.code, r.stderr).toBe(0);
  }, 120_000);

  it('`run` refuses to start with a comment-only policy.file (exit 2, the reason logged)', async () => {
    const d = startDaemon(['--config', daemonConfig('start', file('comment-only.yaml'))], {});
    try {
      // A daemon that starts anyway would run forever: stop waiting (and kill it) well before the test limit.
      const exit = await Promise.race([d.exit, new Promise<{ code: string }>((r) => setTimeout(() => r({ code: 'still running' }), 90_000).unref())]);
      expect(exit.code).toBe(2);
      // One line on stderr (cli/commands/run.ts), naming the file and why.
      const fatal = d.logs.find((l) => typeof l.stderr === 'string' && l.stderr.startsWith('cvm-agent run: could not start:'));
      expect(fatal?.stderr).toMatch(/policy\.file .*comment-only\.yaml: empty \(only comments or whitespace\)/);
      expect(JSON.stringify(d.logs)).not.toMatch(/local API listening/);
    } finally {
      d.child.kill('SIGKILL');
    }
  }, 120_000);

  it('SIGHUP with a policy.file emptied in place is rejected; the running policy stays', async () => {
    const policy = file('live-policy.yaml');
    writeFileSync(policy, 'id: live-1\nsnp: { vmpl: [0] }\n');
    // SIGHUP right after READY=1, as `systemctl reload` may send it: it must reload, not kill (run.ts).
    const notify = await NotifyReceiver.start(file('notify.sock'));
    const d = startDaemon(['--config', daemonConfig('reload', policy)], { NOTIFY_SOCKET: notify.path });
    try {
      await notify.waitFor((m) => m.includes('READY=1'), 90_000);
      writeFileSync(policy, '# emptied by mistake\n');
      d.child.kill('SIGHUP');
      const rejected = await d
        .waitForLog((l) => l.msg === 'reload rejected: keeping the running configuration', 60_000)
        .catch((e: Error) => {
          throw new Error(`daemon exit code ${d.child.exitCode}, signal ${d.child.signalCode}: ${e.message}`);
        });
      expect(rejected.err).toMatch(/policy\.file .*live-policy\.yaml: empty/);
      expect(d.logs.some((l) => l.msg === 'configuration reloaded')).toBe(false);
      expect(d.child.exitCode).toBeNull();
    } finally {
      d.child.kill('SIGKILL');
      await d.exit;
      notify.stop();
    }
  }, 180_000);
});

describe('the controller: policy.snp and policy.gpu', () => {
  for (const [key, name] of [
    ['snp', 'empty'],
    ['gpu', 'comment-only'],
    ['snp', 'list'],
  ] as const) {
    it(`a ${name} policy.${key} stops the controller at start (exit 2)`, async () => {
      const cfg = file(`ctl-${key}-${name}.yaml`);
      writeFileSync(cfg, `policy: { ${key}: ${name}.yaml }\n`);
      const r = await cli(['controller', '--config', cfg, '--listen', '127.0.0.1:0']);
      expectOneLineRefusal(r, new RegExp(`policy\\.${key} \\(.*${name}\\.yaml\\): (SNP|GPU) policy: (empty|must be a mapping)`));
      expect(r.stdout).not.toMatch(/controller listening/);
    }, 120_000);
  }
});
