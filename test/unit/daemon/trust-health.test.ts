/**
 * Truthful state, pure parts: health from the last cycle, the controller verdict, the age of the
 * last success and collateral; the default staleness bound from the schedule; the token's own
 * verdict for `cvm-agent token`; validation helpers shared by config check, run and SIGHUP; the
 * persisted trust history read back strictly.
 */
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cronIntervalSec, evaluateHealth, maxAttestationAgeSec, trustView, type HealthInputs } from '../../../agent/daemon/health.js';
import { cronProblems, oneLine } from '../../../agent/daemon/preflight.js';
import { parseConfig } from '../../../agent/config/schema.js';
import { parsePolicyFile } from '../../../agent/appraise/policy.js';
import { tokenVerdict } from '../../../agent/cli/commands/agent-queries.js';
import { TrustLog } from '../../../agent/state/trust-log.js';
import { buildEar } from '../../../agent/appraise/ear.js';
import { fail, pass, resultOf } from '../../../agent/formats/checks.js';
import type { CycleResult } from '../../../agent/attest/attestation-cycle.js';

function cycle(ok: boolean, at: Date, opts: { warn?: boolean; error?: boolean } = {}): CycleResult {
  const checks = ok
    ? [pass('snp.signature', 'ok'), ...(opts.warn ? [{ name: 'snp.revocation', ok: true, warning: true, detail: 'no CRL' }] : [])]
    : [fail('gpu.cc.mode', 'CC mode is off')];
  const devices = [
    { id: 'cpu0', policyId: 'p', result: resultOf([pass('snp.signature', 'ok')], undefined) },
    opts.error
      ? {
          id: 'gpu1',
          policyId: 'p',
          result: { ok: false, status: 'none' as const, simulated: false, claims: undefined, checks: [fail('gpu.present', 'gone')] },
          error: { code: 'ERR_GPU_MISSING', message: 'gone' },
        }
      : { id: 'gpu1', policyId: 'p', result: resultOf(checks, undefined) },
  ];
  const ear = buildEar(devices, { at, build: 't' });
  return {
    id: 'c1',
    reason: 'schedule',
    startedAt: at.toISOString(),
    finishedAt: at.toISOString(),
    durationMs: 1,
    nonce: '00',
    ok: devices.every((d) => d.result.ok),
    status: ear['ear.status'],
    simulated: false,
    ear,
    bundle: undefined,
    gpuReady: { set: false, wrote: false, reason: '' },
  };
}

const T0 = new Date('2026-01-01T00:00:00Z');
const base = (over: Partial<HealthInputs> = {}): HealthInputs => ({
  now: new Date(T0.getTime() + 1000),
  startedAt: T0,
  last: cycle(true, T0),
  lastSuccessAt: T0,
  maxAgeSec: 600,
  verdict: undefined,
  collateral: undefined,
  ...over,
});

describe('health', () => {
  it('ok when the last cycle passed recently and nothing else is wrong', () => {
    expect(evaluateHealth(base())).toEqual({ status: 'ok', reasons: [] });
  });

  it('failing when the last cycle failed, naming the device', () => {
    const h = evaluateHealth(base({ last: cycle(false, T0) }));
    expect(h.status).toBe('failing');
    expect(h.reasons).toContain('gpu1: gpu.cc.mode: CC mode is off');
  });

  it('an unavailable device reads as an error, and the cycle is not affirming overall', () => {
    const c = cycle(true, T0, { error: true });
    expect(c.status).toBe('none');
    expect(c.ear.submods.gpu1!['ear.trustworthiness-vector']).toEqual({});
    const h = evaluateHealth(base({ last: c }));
    expect(h.reasons).toContain('gpu1: error (ERR_GPU_MISSING): gone');
  });

  it('failing when the controller says contraindicated, even if the local cycle passed', () => {
    const h = evaluateHealth(
      base({
        verdict: { status: 'contraindicated', challengeId: 'c', receivedAt: T0.toISOString(), expiresAt: new Date(T0.getTime() + 60_000).toISOString() },
      }),
    );
    expect(h.status).toBe('failing');
    expect(h.reasons[0]).toMatch(/controller verdict CONTRAINDICATED/);
  });

  it('degraded when the last success is older than the bound, or the token expired, or collateral is expiring', () => {
    expect(evaluateHealth(base({ now: new Date(T0.getTime() + 601_000) })).reasons[0]).toMatch(/older than the bound of 600 s/);
    expect(evaluateHealth(base({ lastSuccessAt: undefined, last: undefined, now: new Date(T0.getTime() + 601_000) })).reasons.join()).toMatch(
      /no successful attestation within 600 s of the start/,
    );
    const expired = evaluateHealth(base({ verdict: { status: 'affirming', challengeId: 'c', receivedAt: T0.toISOString(), expiresAt: T0.toISOString() } }));
    expect(expired).toMatchObject({ status: 'degraded', reasons: [expect.stringMatching(/token expired/)] });
    const coll = evaluateHealth(
      base({
        collateral: {
          dir: '/c',
          online: false,
          checkedAt: '',
          kinds: { crl: { fresh: 0, stale: 1, expired: 0 }, vcek: { fresh: 1, stale: 0, expired: 2 } },
          problems: 0,
          attention: [],
        },
      }),
    );
    expect(coll.status).toBe('degraded');
    expect(coll.reasons).toEqual(['collateral: 1 crl entry past the refresh time (expiring)', 'collateral: 2 vcek entries expired']);
  });

  it('trust: not trusted while any trigger is active, with the reason first', () => {
    const h = evaluateHealth(base());
    expect(trustView(cycle(true, T0), [], h).trusted).toBe(true);
    const t = trustView(cycle(true, T0), [{ trigger: 'tokenExpired', since: T0.toISOString(), detail: 'expired at X', actions: ['withhold-token'] }], h);
    expect(t).toMatchObject({ trusted: false, summary: 'NOT TRUSTED: the controller token expired' });
    expect(trustView(undefined, [], h).summary).toMatch(/NOT TRUSTED YET/);
  });
});

describe('staleness bound', () => {
  it('is 2 x the schedule interval + the longest retry + the jitter by default, or health.maxAgeSec', () => {
    expect(cronIntervalSec('*/10 * * * *')).toBe(600);
    expect(cronIntervalSec('0 */6 * * *')).toBe(6 * 3600);
    expect(maxAttestationAgeSec(parseConfig(''))).toBe(2 * 600 + 300 + 30);
    expect(maxAttestationAgeSec(parseConfig('health: { maxAgeSec: 90 }'))).toBe(90);
  });
});

describe('validation shared by config check, run and SIGHUP', () => {
  it("uses node-cron's own parser: what passes the 5/6-field shape check may still be rejected", () => {
    expect(parseConfig('schedule: { cron: "99 * * * *" }').schedule.cron).toBe('99 * * * *');
    expect(cronProblems('99 * * * *')[0]).toMatch(/^schedule\.cron: "99 \* \* \* \*" is not a valid cron expression \(minute: /);
    expect(cronProblems('*/10 * * * *')).toEqual([]);
  });

  it('says how to convert a flat verify --policy file', () => {
    expect(() => parsePolicyFile('allowDebug: false\nrequireCcMode: true\n', 'p.yaml')).toThrow(
      /flat "verify --policy" file \(top-level "allowDebug", "requireCcMode"\).*under "snp:".*under "gpu:"/,
    );
    expect(() => parsePolicyFile('bogus: 1\n', 'p.yaml')).toThrow(/key "bogus": unknown key \(known keys: id, snp, gpu\)/);
  });

  it('a problem list becomes one line for a fatal start error', () => {
    expect(oneLine(new Error('c.yaml: 2 problems:\n  - a: x\n  - b: y'))).toBe('c.yaml: 2 problems: a: x; b: y');
  });

  it('rejects unit names that could read as options, and unknown actions', () => {
    expect(() => parseConfig('consequences: { units: { stop: ["--now"] } }')).toThrow(/consequences\.units\.stop\[0\]: must be a systemd unit name/);
    expect(() => parseConfig('consequences: { units: { stop: ["inference"] } }')).toThrow(/systemd unit name/);
    expect(() => parseConfig('consequences: { cycleFailed: [reboot] }')).toThrow(/consequences\.cycleFailed\[0\]/);
    expect(parseConfig('consequences: { cycleFailed: [], units: { stop: [inference.service] } }').consequences).toMatchObject({
      cycleFailed: [],
      units: { stop: ['inference.service'], start: [], timeoutSec: 60 },
      tokenExpired: ['withhold-token'],
    });
  });
});

describe("cvm-agent token: the token's own verdict", () => {
  const jwt = (claims: Record<string, unknown>) =>
    `${Buffer.from('{"alg":"ES384"}').toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.sig`;
  const now = Date.parse('2026-01-01T00:00:00Z');
  it('affirming and unexpired: ok; warning: ok with status warning', () => {
    expect(tokenVerdict(jwt({ exp: now / 1000 + 60, 'ear.status': 'affirming' }), now)).toEqual({ ok: true, status: 'affirming' });
    expect(tokenVerdict(jwt({ exp: now / 1000 + 60, 'ear.status': 'warning' }), now)).toEqual({ ok: true, status: 'warning' });
  });
  it('contraindicated, none, missing status, expired or no exp: refused', () => {
    expect(tokenVerdict(jwt({ exp: now / 1000 + 60, 'ear.status': 'contraindicated' }), now)).toMatchObject({
      ok: false,
      why: expect.stringMatching(/CONTRAINDICATED/),
    });
    expect(tokenVerdict(jwt({ exp: now / 1000 + 60, 'ear.status': 'none' }), now).ok).toBe(false);
    expect(tokenVerdict(jwt({ exp: now / 1000 + 60 }), now).ok).toBe(false);
    expect(tokenVerdict(jwt({ exp: now / 1000 - 1, 'ear.status': 'affirming' }), now)).toMatchObject({ ok: false, why: expect.stringMatching(/expired at/) });
    expect(tokenVerdict(jwt({ 'ear.status': 'affirming' }), now)).toMatchObject({ ok: false, why: expect.stringMatching(/no "exp"/) });
    expect(tokenVerdict('not-a-jwt', now).ok).toBe(false);
  });
});

describe('trust history file', () => {
  it('persists, bounds and reads back; a tampered file is moved aside, not trusted', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cvm-trustlog-'));
    const log = new TrustLog(dir, 3);
    await log.load();
    for (let i = 0; i < 5; i++)
      await log.append({ at: new Date(i * 1000).toISOString(), kind: 'trigger', trigger: 'cycleFailed', detail: `n${i}${'x'.repeat(i === 4 ? 5000 : 0)}` });
    await log.flushed();
    const again = new TrustLog(dir, 3);
    await again.load();
    expect(again.list().map((e) => e.detail.slice(0, 2))).toEqual(['n4', 'n3', 'n2']);
    expect(again.list()[0]!.detail.length).toBe(1024);
    const doc = JSON.parse(readFileSync(join(dir, 'trust-log.json'), 'utf8'));
    doc.entries[0].evil = 1;
    writeFileSync(join(dir, 'trust-log.json'), JSON.stringify(doc));
    const problems: string[] = [];
    const third = new TrustLog(dir, 3, (m) => problems.push(m));
    await third.load();
    expect(third.list()).toEqual([]);
    expect(problems[0]).toMatch(/unusable/);
    expect(readdirSync(dir).some((f) => f.startsWith('trust-log.json.corrupt-'))).toBe(true);
  });
});
