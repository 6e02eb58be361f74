/**
 * The agent's own setup (pure): the config (the same validation as `run`), the state directory, the
 * API socket's directory and group, the systemd unit against the shipped one, and the clock against
 * the certificate validity windows the agent will need. Facts in (doctor/gather-agent.ts), findings out.
 */
import { fail, pass, skipped, warn, type Finding } from './finding.js';

const A = 'agent' as const;

export interface ConfigFacts {
  path: string;
  found: boolean;
  /** Schema problems (parseConfig) or environment problems (validateConfig), one per line; empty when valid. */
  problems: string[];
  /** The schema failed: the rest of the doctor ran on the defaults. */
  usedDefaults: boolean;
}

export function configFinding(c: ConfigFacts): Finding {
  const id = 'agent.config';
  if (c.problems.length > 0) {
    const list = c.problems.slice(0, 10).join('; ') + (c.problems.length > 10 ? `; ... and ${c.problems.length - 10} more` : '');
    return fail(
      id,
      A,
      `${c.path}: ${c.problems.length} problem(s): ${list}${c.usedDefaults ? ' (the other checks used the defaults)' : ''}`,
      `fix each key named above in ${c.path} (docs/config.md), then: cvm-agent config check ${c.path}`,
    );
  }
  return c.found ? pass(id, A, `${c.path} is valid (the same checks as "cvm-agent run")`) : pass(id, A, `${c.path} not found: the defaults apply`);
}

/** Permission facts for one directory, judged for the user the daemon runs as. */
export interface DirFacts {
  path: string;
  exists: boolean;
  isDirectory?: boolean;
  uid?: number;
  gid?: number;
  mode?: number;
  ownerName?: string;
  groupName?: string;
}

export interface UserFacts {
  name: string;
  uid: number;
  gids: number[];
  /** How the user was chosen ("User= of the installed unit", "the service user", "this process"). */
  why: string;
}

/** rwx for `user` on a node with uid/gid/mode, by the classic owner/group/other rule; root may always. */
export function mayAccess(node: { uid?: number; gid?: number; mode?: number }, user: UserFacts, want: 'w' | 'rw'): boolean {
  if (user.uid === 0) return true;
  const mode = node.mode ?? 0;
  const bits = node.uid === user.uid ? (mode >> 6) & 7 : node.gid !== undefined && user.gids.includes(node.gid) ? (mode >> 3) & 7 : mode & 7;
  const need = want === 'w' ? 0o3 : 0o7; // write needs x on a directory too
  return (bits & need) === need;
}

const desc = (d: DirFacts) => `${d.ownerName ?? d.uid}:${d.groupName ?? d.gid} 0${((d.mode ?? 0) & 0o777).toString(8)}`;

export function stateDirFinding(d: DirFacts, user: UserFacts): Finding {
  const id = 'agent.state-dir';
  if (!d.exists)
    return warn(
      id,
      A,
      `${d.path} does not exist; systemd creates it when the service starts (StateDirectory=cvm-agent)`,
      `start the service (systemctl start cvm-agent.socket), or without systemd: install -d -o ${user.name} -m 0700 ${d.path}`,
    );
  if (!d.isDirectory) return fail(id, A, `${d.path} is not a directory`, `remove it, or set state.dir to a directory`);
  if (!mayAccess(d, user, 'w'))
    return fail(
      id,
      A,
      `${d.path} (${desc(d)}) is not writable by ${user.name} (${user.why}): the daemon cannot keep its history and outbox`,
      `chown ${user.name} ${d.path} && chmod 0700 ${d.path} (systemd's StateDirectory= does this at start), or set state.dir`,
    );
  return pass(id, A, `${d.path} (${desc(d)}) is writable by ${user.name} (${user.why})`);
}

export interface SocketFacts {
  path: string;
  dir: DirFacts;
  /** The socket node, when it exists. */
  node?: DirFacts;
  /** Something answered a connect on it (the daemon, or cvm-agent.socket). */
  answers?: boolean;
  /** systemd hands the socket over (LISTEN_FDS). */
  activated: boolean;
}

/** tmpfiles and cvm-agent.socket: /run/cvm-agent cvm-agent:cvm-agent 0750, api.sock 0660 group cvm-agent. */
export const SOCKET_GROUP = 'cvm-agent';

export function socketFinding(s: SocketFacts): Finding {
  const id = 'agent.socket';
  const tmpfiles = 'systemd-tmpfiles --create /usr/lib/tmpfiles.d/cvm-agent.conf (installed by systemd/install.sh or the .deb)';
  if (!s.dir.exists) return warn(id, A, `the socket directory ${s.dir.path} does not exist`, `${tmpfiles}, or start cvm-agent.socket`);
  if (s.dir.groupName !== SOCKET_GROUP)
    return warn(id, A, `${s.dir.path} is ${desc(s.dir)}; API clients in group ${SOCKET_GROUP} cannot reach ${s.path}`, tmpfiles);
  if (s.node && s.node.groupName !== SOCKET_GROUP)
    return warn(
      id,
      A,
      `${s.path} is ${desc(s.node)}; clients in group ${SOCKET_GROUP} cannot connect`,
      'let cvm-agent.socket create it (SocketGroup=cvm-agent, SocketMode=0660): systemctl restart cvm-agent.socket',
    );
  if (s.node && s.answers === false)
    return warn(id, A, `${s.path} exists but nothing answers: a stale socket`, 'systemctl restart cvm-agent.socket (or remove the file and start the daemon)');
  return pass(
    id,
    A,
    `${s.dir.path} (${desc(s.dir)}); ${s.node ? (s.answers ? `${s.path} answers (the daemon or its socket unit is up)` : `${s.path} present`) : `${s.path} not present (daemon and socket unit stopped)`}`,
  );
}

// ---- systemd unit ---------------------------------------------------------------------------

/** The [Service] directives that make up the hardening (docs/systemd.md); a drop-in that changes one is a finding. */
export const HARDENING_KEYS = [
  'Type',
  'User',
  'Group',
  'SupplementaryGroups',
  'UMask',
  'NoNewPrivileges',
  'CapabilityBoundingSet',
  'AmbientCapabilities',
  'RestrictSUIDSGID',
  'ProtectSystem',
  'ProtectHome',
  'PrivateTmp',
  'PrivateMounts',
  'ProtectKernelTunables',
  'ProtectKernelModules',
  'ProtectKernelLogs',
  'ProtectControlGroups',
  'ProtectClock',
  'ProtectHostname',
  'ProtectProc',
  'PrivateDevices',
  'DevicePolicy',
  'DeviceAllow',
  'RestrictAddressFamilies',
  'RestrictNamespaces',
  'RestrictRealtime',
  'LockPersonality',
  'RemoveIPC',
  'PrivateIPC',
  'KeyringMode',
  'SystemCallArchitectures',
  'SystemCallFilter',
  'SystemCallErrorNumber',
  'WatchdogSec',
] as const;

/** Directives that accumulate over lines (an empty assignment resets them, systemd.unit(5)). */
const LIST_KEYS = new Set([
  'SupplementaryGroups',
  'CapabilityBoundingSet',
  'AmbientCapabilities',
  'DeviceAllow',
  'RestrictAddressFamilies',
  'SystemCallFilter',
]);

/** The [Service] directives of a unit file and its drop-ins, applied in order, as systemd merges them. */
export function serviceDirectives(files: readonly string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const text of files) {
    let section = '';
    for (const raw of text.split('\n')) {
      const line = raw.trim();
      if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
      const sec = /^\[(.+)\]$/.exec(line);
      if (sec) {
        section = sec[1]!;
        continue;
      }
      if (section !== 'Service') continue;
      const eq = line.indexOf('=');
      if (eq <= 0) continue;
      const key = line.slice(0, eq).trim();
      const value = line.slice(eq + 1).trim();
      if (!LIST_KEYS.has(key)) out.set(key, [value]);
      else if (value === '') out.set(key, []);
      else out.set(key, [...(out.get(key) ?? []), value]);
    }
  }
  return out;
}

const norm = (key: string, values: string[] | undefined): string =>
  (values ?? [])
    .flatMap((v) => (key === 'DeviceAllow' || key === 'SystemCallFilter' ? [v.replace(/\s+/g, ' ')] : v.split(/\s+/)))
    .sort()
    .join(' ');

/** Hardening directives whose effective value differs from the shipped unit's: "Key: installed (shipped: ...)". */
export function unitDrift(shipped: string, installed: readonly string[]): string[] {
  const want = serviceDirectives([shipped]);
  const have = serviceDirectives(installed);
  const out: string[] = [];
  for (const key of HARDENING_KEYS) {
    const w = norm(key, want.get(key));
    const h = norm(key, have.get(key));
    if (w !== h) out.push(`${key}=${h || '(unset)'} (shipped: ${w || '(unset)'})`);
  }
  return out;
}

export interface UnitFacts {
  /** The installed unit and its drop-ins, in the order systemd applies them. */
  installed?: { path: string; text: string };
  dropIns: Array<{ path: string; text: string }>;
  /** The unit this package ships (systemd/cvm-agent.service). */
  shipped?: string;
  /** systemd is PID 1 here (/run/systemd/system exists). */
  systemdRunning: boolean;
}

export function unitFinding(u: UnitFacts): Finding {
  const id = 'agent.systemd-unit';
  if (!u.installed)
    return u.systemdRunning
      ? warn(
          id,
          A,
          'cvm-agent.service is not installed (not in /etc/systemd/system, /usr/lib/systemd/system or /lib/systemd/system)',
          'sudo dpkg -i cvm-agent_*.deb, or sudo "$(npm root -g)/cvm-agent/systemd/install.sh" (docs/systemd.md)',
        )
      : skipped(id, A, 'systemd is not running here and no unit is installed (a container, or run without systemd)');
  if (!u.shipped)
    return warn(id, A, `${u.installed.path} is installed, but this package's systemd/cvm-agent.service is missing to compare with`, 'reinstall the package');
  const drift = unitDrift(u.shipped, [u.installed.text, ...u.dropIns.map((d) => d.text)]);
  const where = `${u.installed.path}${u.dropIns.length ? ` + ${u.dropIns.map((d) => d.path).join(', ')}` : ''}`;
  if (drift.length > 0)
    return warn(
      id,
      A,
      `${where} is not hardened as shipped: ${drift.join('; ')}`,
      `reinstall the shipped unit (sudo systemd/install.sh --no-package), and move local changes out of the drop-ins that weaken it; check: systemd-analyze security cvm-agent.service`,
    );
  return pass(id, A, `${where}: every hardening directive as shipped`);
}

// ---- clock ----------------------------------------------------------------------------------

/** A date before which this release cannot run: it pins certificates issued later (newest pinned root). */
export const CLOCK_FLOOR = new Date('2025-01-01T00:00:00Z');

export interface ValidityWindow {
  what: string;
  notBefore: Date;
  notAfter: Date;
}

export function clockFinding(now: Date, windows: readonly ValidityWindow[]): Finding {
  const id = 'agent.clock';
  const fix = 'synchronise the clock: timedatectl set-ntp true (chrony or systemd-timesyncd; on Azure the hv_utils time sync), then check "timedatectl"';
  if (now < CLOCK_FLOOR) return fail(id, A, `the clock says ${now.toISOString()}, before this release was built`, fix);
  const early = windows.filter((w) => now < w.notBefore);
  if (early.length > 0)
    return fail(
      id,
      A,
      `the clock (${now.toISOString()}) is before the validity of ${early.map((w) => `${w.what} (from ${w.notBefore.toISOString()})`).join(', ')}`,
      fix,
    );
  const late = windows.filter((w) => now > w.notAfter);
  if (late.length > 0)
    return warn(
      id,
      A,
      `${late.map((w) => `${w.what} expired ${w.notAfter.toISOString()}`).join(', ')} (clock ${now.toISOString()}); renew it, or the clock is ahead`,
      `renew the expired certificate (re-import collateral: cvm-agent collateral import FILE; controller.caFile), or: ${fix}`,
    );
  return pass(
    id,
    A,
    windows.length > 0
      ? `${now.toISOString()} is inside the validity of the ${windows.length} certificate(s) checked (${windows.map((w) => w.what).join(', ')})`
      : `${now.toISOString()} (no certificate at hand to compare with)`,
  );
}
