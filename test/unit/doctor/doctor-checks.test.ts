/** The doctor's pure checks: exit codes, the unit comparison, permissions, versions, the clock. */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { exitCodeFor, fail, pass, skipped, warn } from '../../../agent/doctor/finding.js';
import { clockFinding, mayAccess, serviceDirectives, unitDrift, unitFinding } from '../../../agent/doctor/agent-checks.js';
import { driverMajor } from '../../../agent/doctor/gpu.js';
import { kernelFinding, kernelVersion } from '../../../agent/doctor/platform.js';
import { controllerFindings } from '../../../agent/doctor/controller-checks.js';
import { repoRoot } from '../../helpers/paths.js';

const SHIPPED = readFileSync(join(repoRoot, 'systemd', 'cvm-agent.service'), 'utf8');

describe('doctor findings', () => {
  it('exit codes as the verify commands: 0 pass or skipped, 3 warnings only, 1 any failure', () => {
    expect(exitCodeFor([pass('a', 'agent', 'x'), skipped('b', 'gpu', 'y')])).toBe(0);
    expect(exitCodeFor([pass('a', 'agent', 'x'), warn('b', 'gpu', 'y', 'z')])).toBe(3);
    expect(exitCodeFor([warn('b', 'gpu', 'y', 'z'), fail('c', 'gpu', 'y', 'z')])).toBe(1);
  });

  it('the shipped unit has no drift against itself; a drop-in that weakens it is named, key by key', () => {
    expect(unitDrift(SHIPPED, [SHIPPED])).toEqual([]);
    const dropIn = '[Service]\nProtectSystem=full\nDeviceAllow=\nDeviceAllow=/dev/sev-guest rw\nSystemCallFilter=@mount\n';
    const drift = unitDrift(SHIPPED, [SHIPPED, dropIn]);
    expect(drift.some((d) => d.startsWith('ProtectSystem=full (shipped: strict)'))).toBe(true);
    expect(drift.some((d) => d.startsWith('DeviceAllow='))).toBe(true);
    expect(drift.some((d) => d.startsWith('SystemCallFilter='))).toBe(true);
    const f = unitFinding({
      installed: { path: '/usr/lib/systemd/system/cvm-agent.service', text: SHIPPED },
      dropIns: [{ path: '/etc/x.conf', text: dropIn }],
      shipped: SHIPPED,
      systemdRunning: true,
    });
    expect(f.status).toBe('warn');
    expect(f.fix).toContain('systemd-analyze security cvm-agent.service');
    expect(unitFinding({ dropIns: [], shipped: SHIPPED, systemdRunning: true })).toMatchObject({ status: 'warn', fix: expect.stringContaining('install.sh') });
    expect(serviceDirectives([SHIPPED]).get('User')).toEqual(['cvm-agent']);
  });

  it('write permission by owner, group, other; root always', () => {
    const user = { name: 'cvm-agent', uid: 998, gids: [998, 5], why: 'test' };
    expect(mayAccess({ uid: 998, gid: 0, mode: 0o700 }, user, 'w')).toBe(true);
    expect(mayAccess({ uid: 0, gid: 0, mode: 0o755 }, user, 'w')).toBe(false);
    expect(mayAccess({ uid: 0, gid: 5, mode: 0o770 }, user, 'w')).toBe(true);
    expect(mayAccess({ uid: 0, gid: 0, mode: 0o700 }, { ...user, uid: 0 }, 'w')).toBe(true);
  });

  it('versions: kernel and driver', () => {
    expect(kernelVersion('6.1.0-18-cloud-amd64')).toEqual([6, 1]);
    expect(kernelFinding('5.15.0-1050-azure', 'none').status).toBe('warn');
    expect(kernelFinding('5.15.0-1050-azure', 'azure').status).toBe('pass');
    expect(kernelFinding('6.5.0', 'tsm')).toMatchObject({ status: 'warn', fix: expect.stringContaining('6.7') });
    expect(driverMajor('550.90.07')).toBe(550);
  });

  it('the clock: before a certificate it needs is a failure, after one a warning', () => {
    const w = { what: 'the VCEK', notBefore: new Date('2026-01-01Z'), notAfter: new Date('2027-01-01Z') };
    expect(clockFinding(new Date('2026-06-01Z'), [w]).status).toBe('pass');
    expect(clockFinding(new Date('2025-06-01Z'), [w])).toMatchObject({ status: 'fail', fix: expect.stringContaining('timedatectl set-ntp true') });
    expect(clockFinding(new Date('2027-06-01Z'), [w]).status).toBe('warn');
    expect(clockFinding(new Date('2020-01-01Z'), []).status).toBe('fail');
  });

  it('controller stages after the first failure are skipped, naming it', () => {
    const f = controllerFindings({
      url: 'wss://c',
      insecure: false,
      clientCert: false,
      dns: { ok: true, detail: 'ok' },
      tcp: { ok: false, detail: 'refused' },
    });
    expect(f.map((x) => x.status)).toEqual(['pass', 'fail', 'skipped', 'skipped', 'skipped']);
    expect(f[2]!.detail).toBe('controller.tcp failed');
    expect(controllerFindings(undefined)[0]).toMatchObject({ id: 'controller.link', status: 'skipped' });
  });
});
