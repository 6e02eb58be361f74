/**
 * The boot test: cvm-agent installed the way operators install it, in a minimal Debian 12 root file
 * system booted with systemd as PID 1 (test/system/harness.ts), and checked only through systemctl,
 * journalctl and the CLI run inside. Twice: the npm tarball + systemd/install.sh, and the .deb (with
 * an upgrade, a removal and a purge). The agent runs on the simulated TEE (`tee: simulated`).
 *
 * The operator's commands are run exactly as docs/systemd.md and the README's "Install as a
 * service" write them (through `op`/`hostOp`, which record them); the last test checks that every
 * command in those code blocks was run, and the README's in its order.
 *
 * Bounds are generous upper limits taken from the unit (TimeoutStartSec=60s, WatchdogSec=30s,
 * RestartSec=5s), never expected durations.
 */
import { afterAll, beforeAll, describe, expect, it as vitestIt } from 'vitest';
import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { stageCheckout } from '../helpers/checkout.js';
import { repoRoot } from '../helpers/paths.js';
import { requireRoot, requireTool } from '../helpers/tools.js';
import { Machine, rootfs, waitFor, type Run } from './harness.js';

const START_BOUND_MS = 90_000; // TimeoutStartSec=60s, plus the time to notice
const RESTART_BOUND_MS = 120_000; // RestartSec=5s + a start
const WATCHDOG_BOUND_MS = 180_000; // WatchdogSec=30s + RestartSec=5s + a start
const JOURNAL_BOUND_MS = 30_000; // journald reading a line it was sent (it lags the unit's state): a generous bound
const CONFIG = 'tee: simulated\nsimulation:\n  gpus: 1\n';
// Reload: log.level applies at once (debug lines appear); simulation.gpus needs a restart, which
// the agent reports as a warning (what `journalctl -p warning` must show).
const CONFIG_RELOADED = 'tee: simulated\nsimulation:\n  gpus: 2\nlog:\n  level: debug\n';
const RESTART_WARNING = 'these keys changed but take effect only after a restart';
/** Test-only: SIGUSR2 blocks the event loop (agent/daemon/test-hooks.ts); never in the shipped unit. */
const TEST_DROPIN = '[Service]\nEnvironment=CVM_AGENT_TEST_HOOKS=1\n';
const TOKEN = 'boot-test-token-3f9a';

// Root (mounts, namespaces, cgroups), debootstrap (the root file system) and dpkg-dev (the .deb):
// without them the whole file is skipped, a failure under CI=true (test/helpers/tools.ts).
const canBoot = [requireRoot(), requireTool('debootstrap', 'debootstrap'), requireTool('dpkg-shlibdeps', 'dpkg-dev')].every(Boolean);
const bootDescribe = canBoot ? describe.sequential : describe.skip;

const work = mkdtempSync(join(tmpdir(), 'cvm-boot-test-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

// ---- documented commands, run as written and recorded -------------------------------------------

/** Every documented command run, in order (host and guest). */
const ranLog: string[] = [];

/** Runs a documented command on the host (bash, in `cwd`); must exit 0. */
function hostOp(cmd: string, cwd: string): Run {
  ranLog.push(cmd);
  const r = spawnSync('bash', ['-euo', 'pipefail', '-c', cmd], { cwd, encoding: 'utf8', timeout: 1_200_000, maxBuffer: 64 * 1024 * 1024 });
  const out = (r.stdout ?? '') + (r.stderr ?? '');
  if (r.status !== 0) throw new Error(`${cmd} (in ${cwd}) exited ${r.status}:\n${out.slice(-4000)}`);
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, out };
}

/** Runs a documented command in the booted system (bash, as root, in `cwd`); its exit status must be in `ok`. */
function op(m: Machine, cmd: string, opts: { cwd?: string; env?: Record<string, string>; ok?: number[]; timeoutMs?: number } = {}): Run {
  ranLog.push(cmd);
  const env = Object.entries(opts.env ?? {})
    .map(([k, v]) => `export ${k}=${JSON.stringify(v)}; `)
    .join('');
  const r = m.exec(['bash', '-euo', 'pipefail', '-c', `${env}cd ${opts.cwd ?? '/root'} && ${cmd}`], { timeoutMs: opts.timeoutMs ?? 120_000 });
  if (!(opts.ok ?? [0]).includes(r.status ?? -1)) throw new Error(`in the booted system: ${cmd} exited ${r.status}:\n${r.out.slice(-4000)}`);
  return r;
}

// ---- shared setup --------------------------------------------------------------------------------

let checkout = '';
let lower = '';
beforeAll(() => {
  if (!canBoot) return;
  lower = rootfs();
  checkout = stageCheckout(join(work, 'checkout'));
}, 1_800_000);

type Step = (name: string, fn: () => void | Promise<void>, timeoutMs?: number) => void;

/**
 * The steps of one describe run in order on one machine, each building on the last: after a
 * failure the later ones fail at once (naming the first failure) instead of waiting out their
 * bounds. A failure carries the unit's status and the journal's tail.
 */
function steps(m: () => Machine | undefined): Step {
  let broken: string | undefined;
  return (name, fn, timeoutMs = 120_000) =>
    vitestIt(
      name,
      async () => {
        if (broken) throw new Error(`not run: the earlier step "${broken}" failed`);
        try {
          await fn();
        } catch (err) {
          broken = name;
          const machine = m();
          if (machine) (err as Error).message += `\n--- in the booted system ---\n${machine.diagnostics()}`;
          throw err;
        }
      },
      timeoutMs,
    );
}

interface Status {
  recent: { id: number }[];
  api: { socketActivated: boolean };
  tee: { simulated: boolean };
}

function agentStatus(m: Machine): Status {
  const r = m.exec(['cvm-agent', 'status', '--json']);
  // 0 ok, 3 degraded (e.g. no attestation yet): both are answers from the running agent.
  if (r.status !== 0 && r.status !== 3) throw new Error(`cvm-agent status exited ${r.status}: ${r.out}`);
  return JSON.parse(r.stdout) as Status;
}

function agentLines(m: Machine): Record<string, string>[] {
  return m.journal(['-u', 'cvm-agent.service']).filter((e) => e.SYSLOG_IDENTIFIER === 'cvm-agent' && e._PID !== '1');
}

const running = (m: Machine) => (): Record<string, string> | undefined => {
  const s = m.show('cvm-agent.service', 'ActiveState', 'SubState', 'MainPID', 'StatusText', 'NRestarts');
  return s.ActiveState === 'active' && s.SubState === 'running' && /^SIMULATED affirming at /.test(s.StatusText ?? '') ? s : undefined;
};

/** Waits for a fresh main process (a restart) that is up and attested. */
const restarted = (m: Machine, oldPid: string | undefined) => () => {
  const s = running(m)();
  return s && s.MainPID !== oldPid ? s : undefined;
};

// ---- what every install must do under systemd (item 3 of the issue) -----------------------------

function serviceBehaviour(m: () => Machine, it: Step): void {
  it('configure, enable both units, start the socket: it listens and the agent is not running yet', () => {
    m().writeFile('/root/config.yaml', CONFIG);
    op(m(), 'sudo install -m 0640 -o root -g cvm-agent config.yaml /etc/cvm-agent/config.yaml');
    m().writeFile('/etc/systemd/system/cvm-agent.service.d/boot-test.conf', TEST_DROPIN);
    m().ok(['systemctl', 'daemon-reload']);
    op(m(), 'sudo systemctl enable cvm-agent.socket cvm-agent.service');
    op(m(), 'sudo systemctl start cvm-agent.socket');
    expect(m().show('cvm-agent.socket', 'ActiveState', 'SubState')).toEqual({ ActiveState: 'active', SubState: 'listening' });
    expect(m().show('cvm-agent.service', 'ActiveState').ActiveState).toBe('inactive');
    expect(m().ok(['stat', '-c', '%F %a %U:%G', '/run/cvm-agent/api.sock']).stdout.trim()).toBe('socket 660 cvm-agent:cvm-agent');
    expect(m().ok(['systemctl', 'is-enabled', 'cvm-agent.service', 'cvm-agent.socket']).stdout.trim().split('\n')).toEqual(['enabled', 'enabled']);
  });

  it(
    'the first request activates the agent, which reaches active (running) with READY and a STATUS line',
    async () => {
      const first = op(m(), 'cvm-agent status', { ok: [0, 3] }); // answered through the socket systemd holds
      expect(first.stdout).toMatch(/simulated/i);
      // Type=notify: "active (running)" only after READY=1; StatusText is the agent's STATUS=.
      const s = await waitFor('cvm-agent.service active (running) with STATUS', START_BOUND_MS, running(m()));
      expect(s.StatusText).toMatch(/^SIMULATED affirming at \S+; next schedule /);
      expect(Number(s.NRestarts)).toBe(0);
      const status = agentStatus(m());
      expect(status.api.socketActivated).toBe(true);
      expect(status.tee.simulated).toBe(true);
      // journald reads the agent's output on its own schedule, not in step with systemd's unit state.
      const listening = await waitFor('"local API listening" in the journal', JOURNAL_BOUND_MS, () =>
        agentLines(m()).find((e) => e.MESSAGE?.includes('"msg":"local API listening"')),
      );
      expect(listening.MESSAGE).toContain('"activated":true');
      const shown = op(m(), 'systemctl status cvm-agent');
      expect(shown.stdout).toMatch(/Active: active \(running\)/);
      expect(shown.stdout).toMatch(/Status: "SIMULATED affirming at /);
      expect(op(m(), 'systemctl show cvm-agent -p StatusText -p WatchdogTimestamp -p NRestarts -p Result').stdout).toMatch(/^Result=success$/m);
    },
    START_BOUND_MS + 30_000,
  );

  it('only root and members of group cvm-agent can reach the socket', () => {
    m().ok(['useradd', '--no-create-home', 'workload']);
    m().ok(['useradd', '--no-create-home', 'outsider']);
    const refused = m().exec(['sudo', '-u', 'outsider', 'cvm-agent', 'health']);
    expect(refused.status).toBe(4); // agent unavailable to this user: EACCES on the 0660 socket
    op(m(), 'sudo usermod -aG cvm-agent workload');
    expect(op(m(), 'sudo -u workload cvm-agent health').stdout.trim()).toBe('ok');
  });

  it(
    'systemctl reload applies a config change without a restart (no /bin/kill needed)',
    async () => {
      expect(m().exec(['test', '-e', '/bin/kill']).status).not.toBe(0); // procps is not installed
      const before = m().show('cvm-agent.service', 'MainPID').MainPID;
      expect(agentLines(m()).filter((e) => e.MESSAGE?.includes('"msg":"api request"'))).toEqual([]); // log.level info
      m().writeFile('/root/config.yaml', CONFIG_RELOADED);
      op(m(), 'sudo install -m 0640 -o root -g cvm-agent config.yaml /etc/cvm-agent/config.yaml');
      op(m(), 'sudo systemctl reload cvm-agent');
      await waitFor('"configuration reloaded" in the journal', START_BOUND_MS, () =>
        agentLines(m()).some((e) => e.MESSAGE?.includes('"msg":"configuration reloaded"')) ? true : undefined,
      );
      agentStatus(m());
      // log.level: debug took effect: the request above left an access line at debug level.
      const debug = await waitFor('a debug access line', START_BOUND_MS, () => agentLines(m()).find((e) => e.MESSAGE?.includes('"msg":"api request"')));
      expect(debug.PRIORITY).toBe('7');
      expect(m().show('cvm-agent.service', 'MainPID').MainPID).toBe(before);
      expect(m().show('cvm-agent.service', 'ActiveState').ActiveState).toBe('active');
    },
    START_BOUND_MS * 2 + 30_000,
  );

  it('journalctl -p warning shows the warning the agent logged, and only warnings and worse', () => {
    const shown = op(m(), 'journalctl -u cvm-agent -b -p warning');
    expect(shown.stdout).toContain(RESTART_WARNING);
    const warnings = m().journal(['-u', 'cvm-agent.service', '-b', '-p', 'warning']);
    const agentWarning = warnings.find((e) => e.MESSAGE?.includes(RESTART_WARNING));
    expect(agentWarning, JSON.stringify(warnings.map((e) => e.MESSAGE))).toBeDefined();
    expect(agentWarning!.PRIORITY).toBe('4');
    for (const e of warnings) expect(Number(e.PRIORITY), e.MESSAGE).toBeLessThanOrEqual(4);
    // Each agent line is stored at its own level, with the "<N>" prefix taken off by journald.
    const lines = agentLines(m());
    const levelOf = (e: Record<string, string>) => (JSON.parse(e.MESSAGE!) as { level: string }).level;
    const expected: Record<string, string> = { debug: '7', info: '6', warn: '4', error: '3', fatal: '2' };
    for (const e of lines) expect(e.PRIORITY, e.MESSAGE).toBe(expected[levelOf(e)]);
    expect(new Set(lines.map(levelOf))).toEqual(new Set(['info', 'warn', 'debug']));
    // ... and the full view still has the info lines.
    expect(op(m(), 'journalctl -u cvm-agent -b').stdout).toContain('"msg":"local API listening"');
  });

  it('systemd-analyze security cvm-agent.service inside the booted system: exposure 2.0 or lower', () => {
    const r = op(m(), 'sudo systemd-analyze security cvm-agent.service');
    const exposure = Number(/Overall exposure level for cvm-agent\.service: (\d+\.\d)/.exec(r.out)?.[1]);
    console.log(`systemd-analyze security cvm-agent.service (booted): exposure ${exposure}`);
    expect(exposure).toBeLessThanOrEqual(2.0);
  });

  it(
    'the controller token reaches the agent as a credential, plain and encrypted',
    async () => {
      op(m(), 'sudo install -m 0600 -o root -g root /dev/stdin /etc/cvm-agent/controller-token <<< "$TOKEN"', { env: { TOKEN } });
      op(m(), 'sudo systemctl restart cvm-agent');
      await waitFor('the agent after the restart', RESTART_BOUND_MS, running(m()));
      // The unit has its own mount namespace (PrivateMounts=, ProtectSystem=...): systemd mounts the
      // credentials there, so read them as the agent sees them.
      const credential = () => {
        const pid = m().show('cvm-agent.service', 'MainPID').MainPID!;
        expect(Number(pid)).toBeGreaterThan(1);
        return m().ok(['nsenter', '-t', pid, '-m', 'cat', '/run/credentials/cvm-agent.service/controller-token']).stdout.trim();
      };
      expect(credential()).toBe(TOKEN);
      // Encrypted at rest: a different token, so the credential shows which file systemd used.
      m().writeFile('/root/token.txt', `${TOKEN}-encrypted\n`, 0o600);
      op(m(), 'sudo systemd-creds encrypt --name=controller-token token.txt /etc/cvm-agent/controller-token.cred');
      op(m(), 'sudo mkdir -p /etc/systemd/system/cvm-agent.service.d');
      op(
        m(),
        "printf '[Service]\\nLoadCredential=\\nLoadCredentialEncrypted=controller-token:/etc/cvm-agent/controller-token.cred\\n' | sudo tee /etc/systemd/system/cvm-agent.service.d/credential.conf",
      );
      op(m(), 'sudo systemctl daemon-reload');
      op(m(), 'sudo systemctl restart cvm-agent');
      await waitFor('the agent after the restart', RESTART_BOUND_MS, running(m()));
      expect(credential()).toBe(`${TOKEN}-encrypted`);
      expect(m().ok(['cat', '/etc/cvm-agent/controller-token.cred']).stdout).not.toContain(TOKEN);
    },
    RESTART_BOUND_MS * 2 + 60_000,
  );

  it(
    'kill -9 of the main process: systemd restarts the agent and its history survives',
    async () => {
      const s0 = await waitFor('the agent running', START_BOUND_MS, running(m()));
      // The last cycle is on disk before the kill (history.jsonl: one fdatasync'd "<crc32> <record>" line per cycle).
      const persisted = await waitFor('a persisted history record', START_BOUND_MS, () => {
        const r = m().exec(['cat', '/var/lib/cvm-agent/history.jsonl']);
        const ids =
          r.status === 0
            ? r.stdout
                .split('\n')
                .filter((line) => /^[0-9a-f]{8} \{/.test(line))
                .map((line) => (JSON.parse(line.slice(9)) as { id: number }).id)
            : [];
        return ids.length > 0 ? ids : undefined;
      });
      m().kill('KILL', s0.MainPID);
      const s1 = await waitFor('a restarted agent', RESTART_BOUND_MS, restarted(m(), s0.MainPID));
      expect(Number(s1.NRestarts)).toBe(Number(s0.NRestarts) + 1);
      const ids = agentStatus(m()).recent.map((r) => r.id);
      expect(ids).toEqual(expect.arrayContaining(persisted));
      expect(Math.max(...ids)).toBeGreaterThan(Math.max(...persisted)); // and it attested again at start
    },
    RESTART_BOUND_MS + START_BOUND_MS * 2 + 30_000,
  );

  it(
    'a blocked event loop trips the watchdog: SIGABRT, then a restart',
    async () => {
      const s0 = m().show('cvm-agent.service', 'MainPID', 'NRestarts');
      m().kill('USR2', s0.MainPID); // test hook: block the event loop
      const s1 = await waitFor('the watchdog restart', WATCHDOG_BOUND_MS, restarted(m(), s0.MainPID), 1000);
      expect(Number(s1.NRestarts)).toBe(Number(s0.NRestarts) + 1);
      // systemd's own message reaches the journal through journald, which may lag the unit's state.
      await waitFor("systemd's watchdog message in the journal", JOURNAL_BOUND_MS, () =>
        m()
          .journal(['-u', 'cvm-agent.service'])
          .some((e) => e._PID === '1' && (e.MESSAGE ?? '').includes('Watchdog timeout'))
          ? true
          : undefined,
      );
      expect(agentLines(m()).some((e) => e._PID === s0.MainPID && e.MESSAGE?.includes('SIGUSR2 (test hook)'))).toBe(true);
    },
    WATCHDOG_BOUND_MS + 30_000,
  );

  it('systemctl stop drains: the agent exits 0 on SIGTERM before TimeoutStopSec (no SIGKILL)', async () => {
    const pid = m().show('cvm-agent.service', 'MainPID').MainPID;
    m().ok(['systemctl', 'stop', 'cvm-agent.service'], { timeoutMs: 60_000 });
    const s = m().show('cvm-agent.service', 'ActiveState', 'Result', 'ExecMainCode', 'ExecMainStatus', 'ExecMainPID');
    expect(s).toEqual({ ActiveState: 'inactive', Result: 'success', ExecMainCode: '1', ExecMainStatus: '0', ExecMainPID: pid });
    // Its last line, written just before it exited, reaches the journal when journald reads it: not
    // necessarily before systemctl stop returns.
    await waitFor('the agent\'s "stopped" line in the journal', JOURNAL_BOUND_MS, () =>
      agentLines(m()).some((e) => e._PID === pid && e.MESSAGE?.includes('"msg":"stopped"')) ? true : undefined,
    );
    // The socket stays: the next client starts the agent again.
    expect(m().show('cvm-agent.socket', 'SubState').SubState).toBe('listening');
  });
}

// ---- layout 1: npm tarball + install.sh -----------------------------------------------------------

bootDescribe('boot test: npm tarball + systemd/install.sh', () => {
  let m: Machine;
  const it = steps(() => m);
  afterAll(() => m?.destroy());

  beforeAll(async () => {
    const tgz = hostOp('npm pack', checkout).stdout.trim().split('\n').pop()!;
    m = new Machine(lower, 'npm');
    // The operator's Node 20 and npm (here: the ones running this test), in /usr/local.
    const npmDir = dirname(dirname(realpathSync(spawnSync('bash', ['-c', 'command -v npm'], { encoding: 'utf8' }).stdout.trim())));
    mkdirSync(join(m.root, 'usr', 'local', 'bin'), { recursive: true });
    copyFileSync(process.execPath, join(m.root, 'usr', 'local', 'bin', 'node'));
    spawnSync('chmod', ['0755', join(m.root, 'usr', 'local', 'bin', 'node')]);
    cpSync(npmDir, join(m.root, 'usr', 'local', 'lib', 'node_modules', 'npm'), { recursive: true });
    symlinkSync('../lib/node_modules/npm/bin/npm-cli.js', join(m.root, 'usr', 'local', 'bin', 'npm'));
    copyFileSync(join(checkout, tgz), join(m.root, 'root', tgz));
    // The guest's npm reaches the registry the way this machine's does: same registry, and the CA
    // file this machine's npm is configured with (on these machines, for a TLS-inspecting egress).
    const npmConfig = (key: string) => spawnSync('npm', ['config', 'get', key], { encoding: 'utf8' }).stdout.trim();
    let npmrc = `registry=${npmConfig('registry')}\nupdate-notifier=false\nfund=false\naudit=false\n`;
    const cafile = npmConfig('cafile');
    if (cafile && cafile !== 'null' && existsSync(cafile)) {
      m.writeFile(cafile, readFileSync(cafile, 'utf8'));
      npmrc += `cafile=${cafile}\n`;
    }
    m.writeFile('/usr/local/etc/npmrc', npmrc);
    await m.boot();
  }, 900_000);

  it('npm install -g of the tarball, then install.sh: the package is used in place, nothing starts', () => {
    op(m, 'sudo npm install -g ./cvm-agent-*.tgz', { timeoutMs: 600_000 });
    const r = op(m, 'sudo "$(npm root -g)/cvm-agent/systemd/install.sh"');
    expect(r.stdout).toContain('package: using /usr/local/lib/node_modules/cvm-agent in place (npm global install)');
    expect(r.stdout).toContain('+ systemd-sysusers /usr/lib/sysusers.d/cvm-agent.conf');
    expect(r.stdout).toContain('+ systemctl daemon-reload');
    expect(r.stdout).toContain('skip: udev (udevd is not running');
    expect(m.ok(['readlink', '/usr/bin/cvm-agent']).stdout.trim()).toBe('/usr/local/lib/node_modules/cvm-agent/bin/cvm-agent.js');
    expect(m.ok(['stat', '-c', '%a %U:%G', '/etc/cvm-agent']).stdout.trim()).toBe('750 root:cvm-agent');
    expect(m.exec(['systemctl', 'is-active', 'cvm-agent.service', 'cvm-agent.socket']).stdout.trim().split('\n')).toEqual(['inactive', 'inactive']);
    // The addon (sd_notify, peer credentials) loads from prebuilds/: no build/ in the installed copy.
    expect(m.ok(['ls', '/usr/local/lib/node_modules/cvm-agent']).stdout.split('\n')).not.toContain('build');
  });

  serviceBehaviour(() => m, it);

  it('install.sh --uninstall stops and disables the units and removes the installed files', () => {
    m.ok(['systemctl', 'start', 'cvm-agent.service']);
    const r = op(m, 'sudo "$(npm root -g)/cvm-agent/systemd/install.sh" --uninstall');
    expect(r.stdout).toContain('+ systemctl disable --now cvm-agent.service cvm-agent.socket');
    for (const u of ['cvm-agent.service', 'cvm-agent.socket']) {
      expect(m.show(u, 'LoadState', 'ActiveState')).toEqual({ LoadState: 'not-found', ActiveState: 'inactive' });
    }
    expect(m.exec(['test', '-e', '/usr/bin/cvm-agent']).status).not.toBe(0);
    expect(m.exec(['test', '-e', '/run/cvm-agent/api.sock']).status).not.toBe(0);
  });
});

// ---- layout 2: the .deb ---------------------------------------------------------------------------

bootDescribe('boot test: the .deb (install, upgrade, remove, purge)', () => {
  let m: Machine;
  const it = steps(() => m);
  afterAll(() => m?.destroy());

  beforeAll(async () => {
    hostOp('npm run package:deb', checkout);
    hostOp(`npm run package:deb -- --version "$(node -p 'require("./package.json").version')-2"`, checkout);
    const debs = readdirSync(join(checkout, 'dist-pkg'))
      .filter((f) => f.endsWith('.deb'))
      .sort();
    expect(debs).toHaveLength(2);
    m = new Machine(lower, 'deb');
    copyFileSync(join(checkout, 'dist-pkg', debs[0]!), join(m.root, 'root', debs[0]!));
    mkdirSync(join(m.root, 'root', 'upgrade'));
    copyFileSync(join(checkout, 'dist-pkg', debs[1]!), join(m.root, 'root', 'upgrade', debs[1]!));
    await m.boot();
  }, 1_800_000);

  it('dpkg -i installs a self-contained agent, creates the user and directories, and starts nothing', () => {
    expect(m.exec(['bash', '-c', 'command -v node']).status).not.toBe(0); // no Node in the image
    const r = op(m, 'sudo dpkg -i ./cvm-agent_*.deb');
    expect(r.out).not.toMatch(/warning|error/i);
    expect(m.ok(['dpkg-query', '-W', '-f', '${Status} ${Version}', 'cvm-agent']).stdout).toMatch(/^install ok installed \d+\.\d+\.\d+-1$/);
    expect(m.ok(['getent', 'passwd', 'cvm-agent']).stdout).toMatch(/^cvm-agent:x:\d+:\d+:.*:\/usr\/sbin\/nologin\n$/);
    expect(m.ok(['stat', '-c', '%a %U:%G', '/etc/cvm-agent', '/run/cvm-agent']).stdout.trim().split('\n')).toEqual([
      '750 root:cvm-agent',
      '750 cvm-agent:cvm-agent',
    ]);
    expect(m.exec(['systemctl', 'is-enabled', 'cvm-agent.service', 'cvm-agent.socket']).stdout.trim().split('\n')).toEqual(['disabled', 'disabled']);
    expect(m.exec(['systemctl', 'is-active', 'cvm-agent.service', 'cvm-agent.socket']).stdout.trim().split('\n')).toEqual(['inactive', 'inactive']);
    expect(m.ok(['cvm-agent', '--version']).stdout.trim()).toMatch(/^cvm-agent \d+\.\d+\.\d+/);
    expect(m.ok(['dpkg', '--audit']).out).toBe('');
  });

  serviceBehaviour(() => m, it);

  it(
    'dpkg -i of a higher version upgrades in place: the running agent restarts on the new files, state kept',
    async () => {
      m.ok(['systemctl', 'start', 'cvm-agent.service']);
      const s0 = await waitFor('the agent running before the upgrade', START_BOUND_MS, running(m));
      const before = agentStatus(m).recent.map((r) => r.id);
      op(m, 'sudo dpkg -i ./cvm-agent_*.deb', { cwd: '/root/upgrade' });
      expect(m.ok(['dpkg-query', '-W', '-f', '${Version}', 'cvm-agent']).stdout).toMatch(/-2$/);
      await waitFor('the agent restarted by the upgrade', RESTART_BOUND_MS, restarted(m, s0.MainPID));
      expect(agentStatus(m).recent.map((r) => r.id)).toEqual(expect.arrayContaining(before));
      // "running": the socket is up and held by the running agent.
      expect(m.show('cvm-agent.socket', 'ActiveState', 'SubState')).toEqual({ ActiveState: 'active', SubState: 'running' });
      expect(m.exec(['systemctl', 'is-enabled', 'cvm-agent.service']).stdout.trim()).toBe('enabled');
      expect(m.ok(['dpkg', '--audit']).out).toBe('');
    },
    START_BOUND_MS + RESTART_BOUND_MS + 60_000,
  );

  it('dpkg -r stops and disables the agent and removes the program; configuration and state stay', () => {
    op(m, 'sudo dpkg -r cvm-agent');
    expect(m.ok(['dpkg-query', '-W', '-f', '${Status}', 'cvm-agent']).stdout).toBe('deinstall ok config-files');
    for (const u of ['cvm-agent.service', 'cvm-agent.socket']) {
      expect(m.show(u, 'LoadState', 'ActiveState')).toEqual({ LoadState: 'not-found', ActiveState: 'inactive' });
    }
    for (const p of ['/usr/lib/cvm-agent', '/usr/bin/cvm-agent', '/etc/systemd/system/multi-user.target.wants/cvm-agent.service']) {
      expect(m.exec(['test', '-e', p]).status, `${p} is left after remove`).not.toBe(0);
    }
    for (const p of ['/etc/cvm-agent/config.yaml', '/var/lib/cvm-agent/history.jsonl']) {
      expect(m.exec(['test', '-e', p]).status, `${p} is gone after remove`).toBe(0);
    }
  });

  it('dpkg --purge removes the configuration, state and cache as well', () => {
    op(m, 'sudo dpkg --purge cvm-agent');
    expect(m.exec(['dpkg-query', '-W', '-f', '${Status}', 'cvm-agent']).stdout).not.toContain('installed');
    for (const p of [
      '/usr/lib/cvm-agent',
      '/usr/bin/cvm-agent',
      '/usr/lib/systemd/system/cvm-agent.service',
      '/usr/lib/sysusers.d/cvm-agent.conf',
      '/etc/cvm-agent',
      '/var/lib/cvm-agent',
      '/var/cache/cvm-agent',
      '/run/cvm-agent',
      '/etc/systemd/system/sockets.target.wants/cvm-agent.socket',
    ]) {
      expect(m.exec(['test', '-e', p]).status, `${p} is left after purge`).not.toBe(0);
    }
    // No agent process left (the image has no procps: read /proc).
    expect(m.sh('for p in /proc/[0-9]*; do cat "$p/comm" 2>/dev/null; done').stdout.split('\n')).not.toContain('node');
    // Kept on purpose (docs/systemd.md): the system user, whose id files elsewhere may still carry.
    expect(m.exec(['getent', 'passwd', 'cvm-agent']).status).toBe(0);
  });
});

// ---- the documentation is what was run -----------------------------------------------------------

/** Commands of the ```sh blocks in `text` that follow a `<!-- boot test -->` line; comments removed. */
function bootTestBlocks(text: string, file: string): string[] {
  const commands: string[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (lines[i] !== '```sh') continue;
    const marker = lines
      .slice(0, i)
      .reverse()
      .find((l) => l.trim() !== '');
    expect(marker, `${file}:${i + 1}: a sh block without a <!-- boot test --> or <!-- test/... --> marker`).toMatch(
      /^<!-- (boot test|test\/\S+\.test\.ts) -->$/,
    );
    const block: string[] = [];
    for (i++; lines[i] !== '```'; i++) block.push(lines[i]!);
    if (marker !== '<!-- boot test -->') continue;
    for (const l of block) {
      const cmd = l.replace(/\s+#\s.*$/, '').trim();
      if (cmd !== '' && !cmd.startsWith('#')) commands.push(cmd);
    }
  }
  return commands;
}

bootDescribe('documentation', () => {
  vitestIt('every command in docs/systemd.md and the README\'s "Install as a service" was run above', () => {
    const docs = bootTestBlocks(readFileSync(join(repoRoot, 'docs', 'systemd.md'), 'utf8'), 'docs/systemd.md');
    expect(docs.length).toBeGreaterThan(20);
    for (const c of docs) expect(ranLog, `docs/systemd.md: not run by the boot test: ${c}`).toContain(c);
    const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
    const section = /\n## Install as a service\n([\s\S]*?)\n## /.exec(readme)?.[1];
    expect(section, 'README.md has an "## Install as a service" section').toBeDefined();
    const steps = bootTestBlocks(section!, 'README.md');
    expect(steps.length).toBeGreaterThanOrEqual(5);
    // In the README's order (a subsequence of what the test ran).
    let at = 0;
    for (const c of steps) {
      const found = ranLog.indexOf(c, at);
      expect(found, `README.md: "${c}" was not run (after "${ranLog[at - 1] ?? ''}")`).toBeGreaterThanOrEqual(0);
      at = found + 1;
    }
  });
});
