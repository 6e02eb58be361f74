/**
 * The controller appraises real-hardware evidence with collateral from its cache (config
 * collateral.dir): the VCEK is found by chip id and TCB, so signature and chain verify, while the
 * binding still decides (this real report was not made for our nonce).
 */
import { describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPairSync } from 'node:crypto';
import { appraiseEvidence } from '../../../agent/controller/appraise.js';
import { CollateralStore } from '../../../agent/collateral/store.js';
import { bundleToJson } from '../../../agent/formats/evidence-bundle.js';
import { parseControllerConfig } from '../../../agent/controller/config.js';
import type { PublicJwk } from '../../../agent/formats/nonce-binding.js';
import { vector } from '../../helpers/paths.js';
import { findCheck } from '../../helpers/checks.js';

const nonce = Buffer.alloc(32, 5);
const key = generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey.export({ format: 'jwk' }) as PublicJwk;
const bundle = bundleToJson({
  version: 1,
  agentId: 'vm-1',
  nonce,
  teePubKey: { kty: key.kty, crv: key.crv, x: key.x, y: key.y },
  simulated: false,
  cpu: { kind: 'snp', source: 'sev-guest', report: vector('snp/trustee_snp_test-report.bin'), certificates: [] },
  gpus: [],
});
const at = new Date('2025-06-01T00:00:00Z');
const check = (a: Awaited<ReturnType<typeof appraiseEvidence>>, name: string) => findCheck(a.devices[0]!.result, name);

describe('controller collateral', () => {
  it('takes the VCEK from the cache: signature and chain verify, the binding still fails for a foreign report', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ctl-coll-'));
    const store = new CollateralStore(dir);
    await store.putBytes(vector('snp/trustee_snp_test-vcek.der'), { source: 'test' });
    const a = await appraiseEvidence(bundle, nonce, at, { policyId: 'p', build: 'b', collateral: { store, online: false, timeoutMs: 1000 } });
    expect(check(a, 'collateral.vcek')?.ok).toBe(true);
    expect(check(a, 'snp.signature')?.ok).toBe(true);
    expect(check(a, 'snp.report-data')?.ok).toBe(false);
    expect(a.status).toBe('contraindicated');
  });

  it('without the VCEK in the cache says how to fix it and fails closed', async () => {
    const store = new CollateralStore(mkdtempSync(join(tmpdir(), 'ctl-coll-empty-')));
    const a = await appraiseEvidence(bundle, nonce, at, { policyId: 'p', build: 'b', collateral: { store, online: false, timeoutMs: 1000 } });
    expect(check(a, 'collateral.vcek')).toMatchObject({ ok: false });
    expect(check(a, 'collateral.vcek')!.detail).toMatch(/collateral import/);
    expect(a.status).toBe('contraindicated');
  });

  it('reads collateral.dir/online/timeoutMs from the controller config, resolving a relative dir', () => {
    const cfg = parseControllerConfig('collateral: {dir: cache, online: true}\n', 'test', '/etc/ctl');
    expect(cfg.collateral).toEqual({ dir: '/etc/ctl/cache', online: true, timeoutMs: 10_000 });
    expect(() => parseControllerConfig('collateral: {dir: cache, onlin: true}\n', 'test')).toThrow(/collateral.onlin: unknown key/);
  });
});
