/**
 * Stopping and starting systemd units as a trust-loss consequence, through `systemctl`, which asks
 * PID 1 over its D-Bus API (org.freedesktop.systemd1.Manager.StopUnit/StartUnit). The agent runs as
 * the unprivileged user cvm-agent, so polkit must allow that user to manage exactly the listed units
 * (docs/systemd.md "Stopping workloads"). Unit names are validated by the config schema; `--` keeps
 * them from ever being read as options, and no shell is involved.
 */
import { execFile } from 'node:child_process';

export type UnitVerb = 'stop' | 'start';

export interface UnitControl {
  /** Never throws: the outcome says whether systemd did it, and why not. */
  run(verb: UnitVerb, unit: string): Promise<{ ok: boolean; detail: string }>;
}

/** systemctl's output is a few lines; anything bigger is cut (bounded like every buffer here). */
const MAX_OUTPUT = 16 * 1024;

export function systemctlUnits(opts: { systemctl: string; timeoutMs: number }): UnitControl {
  return {
    run(verb, unit) {
      return new Promise((resolve) => {
        // --no-ask-password: never block on an interactive polkit agent; fail with a message instead.
        execFile(
          opts.systemctl,
          ['--no-ask-password', verb, '--', unit],
          { timeout: opts.timeoutMs, maxBuffer: MAX_OUTPUT, env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C', SYSTEMD_PAGER: '', SYSTEMD_COLORS: '0' } },
          (err, _stdout, stderr) => {
            if (!err) return resolve({ ok: true, detail: `systemctl ${verb} ${unit}: done` });
            const e = err as NodeJS.ErrnoException & { killed?: boolean; code?: number | string };
            const why = e.killed
              ? `no answer within ${opts.timeoutMs} ms`
              : String(stderr || e.message)
                  .trim()
                  .split('\n')[0]!
                  .slice(0, 500);
            resolve({ ok: false, detail: `systemctl ${verb} ${unit} failed: ${why}` });
          },
        );
      });
    },
  };
}
