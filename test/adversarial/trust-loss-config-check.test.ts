/**
 * "valid" must mean "will start": `config check` called files valid that `run` then rejected
 * (unknown users in authorization lists, a missing policy.file or controller.caFile, a policy file
 * in the flat `verify --policy` format, a cron node-cron rejects). Each such file must now fail
 * `config check` with the key named, and `run` must fail on it the same way (exit 2, one line).
 */
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, startDaemon } from '../helpers/daemon-process.js';
import { repoRoot } from '../helpers/paths.js';
import { main } from '../../agent/cli/main.js';

function io() {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { stdout: { write: (s: string) => out.push(s) }, stderr: { write: (s: string) => err.push(s) }, env: {}, cwd: process.cwd() } };
}

const dir = mkdtempSync(join(tmpdir(), 'cvm-check-'));
chmodSync(dir, 0o755);

/** `authorization` goes inside the api mapping (YAML rejects a second "api" key). */
function config(name: string, extra: string, authorization = ''): string {
  const file = join(dir, `${name}.yaml`);
  const cron = extra.startsWith('CRON=') ? extra.slice(5) : '0 0 1 1 *';
  if (extra.startsWith('CRON=')) extra = '';
  writeFileSync(
    file,
    `tee: simulated
simulation: { gpus: 1, dir: ${dir}/sim }
api: { socket: ${dir}/${name}.sock${authorization ? `, authorization: ${authorization}` : ''} }
state: { dir: ${dir}/state-${name} }
collateral: { dir: ${dir}/cache }
schedule: { cron: "${cron}", jitterSec: 0 }
${extra}`,
  );
  return file;
}

function runToExit(file: string): Promise<{ code: number | null; stderr: string[] }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, 'run', '--config', file], { cwd: repoRoot, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => resolve({ code, stderr: stderr.split('\n').filter(Boolean) }));
  });
}

writeFileSync(join(dir, 'flat.policy.yaml'), 'allowDebug: false\nvmpl: [0]\nmeasurements: []\n');
writeFileSync(join(dir, 'not-a-cert.pem'), 'this is not a certificate\n');

const BAD: Array<[string, string, RegExp, string?]> = [
  ['unknown-user', '', /api\.authorization\.status\.uids: unknown user "no-such-user-x9"/, '{ status: { uids: ["no-such-user-x9"] } }'],
  ['unknown-group', '', /api\.authorization\.secrets\.gids: unknown group "no-such-group-x9"/, '{ secrets: { gids: ["no-such-group-x9"] } }'],
  ['missing-policy', `policy: { file: ${dir}/nope-policy.yaml }\n`, /policy\.file .*nope-policy\.yaml: cannot read: ENOENT/],
  ['flat-policy', `policy: { file: ${dir}/flat.policy.yaml }\n`, /flat "verify --policy" file .*"allowDebug".*needs sections/],
  ['missing-ca', `controller: { url: "wss://127.0.0.1:1/v1/link", caFile: ${dir}/nope-ca.pem }\n`, /controller\.caFile: cannot read .*nope-ca\.pem: ENOENT/],
  ['garbage-ca', `controller: { url: "wss://127.0.0.1:1/v1/link", caFile: ${dir}/not-a-cert.pem }\n`, /controller\.caFile: .*holds no PEM certificate/],
  ['bad-cron', 'CRON=99 * * * *', /schedule\.cron: "99 \* \* \* \*" is not a valid cron expression/],
];

describe('config check runs exactly what run runs', () => {
  for (const [name, extra, problem, authorization] of BAD) {
    it(`${name}: config check exits 2 naming the problem, and run refuses it the same way`, async () => {
      const file = config(name, extra, authorization);
      const t = io();
      expect(await main(['config', 'check', file], t.io)).toBe(2);
      expect(t.err.join('')).toMatch(problem);
      const r = await runToExit(file);
      expect(r.code).toBe(2);
      expect(r.stderr).toHaveLength(1);
      expect(r.stderr[0]).toMatch(problem);
    }, 60_000);
  }

  it('lists every problem of a file at once', async () => {
    const file = config('many', `policy: { file: ${dir}/flat.policy.yaml }\n`, '{ status: { uids: ["no-such-user-x9"] } }');
    writeFileSync(file, `${(await import('node:fs')).readFileSync(file, 'utf8').replace('"0 0 1 1 *"', '"99 * * * *"')}`);
    const t = io();
    expect(await main(['config', 'check', file], t.io)).toBe(2);
    const err = t.err.join('');
    expect(err).toMatch(/3 problems/);
    expect(err).toMatch(/schedule\.cron/);
    expect(err).toMatch(/api\.authorization\.status\.uids/);
    expect(err).toMatch(/policy\.file/);
  });

  it('a file config check accepts is one run starts with', async () => {
    writeFileSync(join(dir, 'good-policy.yaml'), 'id: prod-1\nsnp: { allowDebug: false, vmpl: [0] }\ngpu: { allowDevtools: false }\n');
    const file = config('good', `policy: { file: ${dir}/good-policy.yaml }\n`, '{ status: { uids: ["root"], gids: ["root"] } }');
    const t = io();
    expect(await main(['config', 'check', file], t.io)).toBe(0);
    expect(t.out.join('')).toMatch(/valid \(policy "prod-1", attestation counts as stale after \d+ s\)/);
    const d = startDaemon(['--config', file], {});
    try {
      await d.waitForLog((l) => typeof l.cycle === 'string', 60_000);
      expect(d.child.exitCode).toBeNull();
    } finally {
      d.child.kill('SIGTERM');
      expect((await d.exit).code).toBe(0);
    }
  }, 90_000);
});
