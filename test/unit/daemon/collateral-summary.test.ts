import { describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CollateralStore } from '../../../agent/collateral/store.js';
import { CollateralSummarizer } from '../../../agent/daemon/collateral-summary.js';
import { vector } from '../../helpers/paths.js';

describe('collateral summary for status', () => {
  it('counts fresh and expired entries per kind and names what needs attention', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cvm-coll-sum-'));
    const store = new CollateralStore(dir);
    await store.putBytes(vector('snp/virtee_vcek_milan.der'), { source: 'test' });
    await store.putBytes(vector('snp/trustee_snp_test-vlek.der'), { source: 'test' });
    const s = new CollateralSummarizer(dir, false);
    const inside = await s.get(new Date('2025-06-01T00:00:00Z'));
    expect(inside.kinds.vcek).toEqual({ fresh: 1, stale: 0, expired: 0 });
    expect(inside.kinds.vlek).toEqual({ fresh: 1, stale: 0, expired: 0 });
    const later = await new CollateralSummarizer(dir, false).get(new Date('2026-06-01T00:00:00Z'));
    expect(later.kinds.vlek).toEqual({ fresh: 0, stale: 0, expired: 1 });
    expect(later.attention[0]).toMatchObject({ state: 'expired' });
    expect(later.attention[0]!.path).toMatch(/vlek/);
  });

  it('reports an unreadable cache instead of throwing, and caches for a minute', async () => {
    const s = new CollateralSummarizer('/nonexistent/cvm-cache', true);
    const a = await s.get(new Date(0));
    expect(a.online).toBe(true);
    expect(Object.keys(a.kinds)).toEqual([]);
    expect(await s.get(new Date(30_000))).toBe(a);
    expect(await s.get(new Date(61_000))).not.toBe(a);
  });
});
