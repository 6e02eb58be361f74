/**
 * The import-boundary check (tools/check-layers.ts) itself: it must name the offending import for an
 * upward, sibling, unlayered or outside import, honour listed debt only while it still occurs, and
 * pass on the real agent/ tree (run as a child process, as CI runs it).
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkLayers, importSpecifiers } from '../../../tools/check-layers.js';
import { repoRoot } from '../../helpers/paths.js';

const none = new Map<string, string>();

describe('check-layers', () => {
  it('finds static, type-only, re-export, multi-line and dynamic imports, not commented ones', () => {
    const src = [
      "import { a } from './a.js';",
      "import type { B } from '../b/b.js';",
      "export * from './c.js';",
      "import {\n  d,\n  e,\n} from './d.js';",
      "const f = await import('../f/f.js');",
      "// import { g } from '../g/g.js';",
      "/* import { h } from '../h/h.js'; */",
      "import pino from 'pino';",
    ].join('\n');
    expect(importSpecifiers(src)).toEqual(['./a.js', '../b/b.js', './c.js', './d.js', '../f/f.js']);
  });

  it('rejects an upward import and names the file, the import and the layers', () => {
    const { violations } = checkLayers(new Map([['formats/x.ts', "import { AttestationCycle } from '../attest/attestation-cycle.js';"]]), none);
    expect(violations).toHaveLength(1);
    expect(violations[0]).toMatchObject({ file: 'formats/x.ts', specifier: '../attest/attestation-cycle.js', from: 'formats', to: 'attest' });
    expect(violations[0]!.reason).toMatch(/^upward import: formats \(layer \d+\) must not import attest \(layer \d+\)$/);
  });

  it('rejects a sibling import (same layer), which is how a cycle between folders would start', () => {
    const { violations } = checkLayers(new Map([['evidence/x.ts', "import type { Check } from '../verify/snp/snp-verifier.js';"]]), none);
    expect(violations.map((v) => v.reason)).toEqual([expect.stringMatching(/^sibling import: evidence and verify share layer/)]);
  });

  it('rejects a new root-level file and an import of one', () => {
    const { violations } = checkLayers(
      new Map([
        ['stray.ts', ''],
        ['daemon/d.ts', "import { x } from '../stray.js';"],
      ]),
      none,
    );
    expect(violations.map((v) => v.reason)).toEqual([expect.stringContaining('"stray.ts" has no layer'), expect.stringContaining('"stray.ts" has no layer')]);
  });

  it('rejects an import from outside agent/', () => {
    const { violations } = checkLayers(new Map([['cli/x.ts', "import { h } from '../../test/helpers/h.js';"]]), none);
    expect(violations[0]!.reason).toContain('outside agent/');
  });

  it('allows downward and same-folder imports', () => {
    const files = new Map([['cli/x.ts', "import { a } from '../daemon/daemon.js';\nimport { b } from './y.js';\nimport { E } from '../errors.js';"]]);
    expect(checkLayers(files, none)).toEqual({ violations: [], staleDebt: [] });
  });

  it('listed debt hides only its own edge, and a debt entry that no longer occurs is reported', () => {
    const debt = new Map([
      ['verify -> appraise', 'r'],
      ['link -> daemon', 'r'],
    ]);
    const files = new Map([['verify/v.ts', "import type { P } from '../appraise/p.js';\nimport { s } from '../simulation/s.js';"]]);
    const { violations, staleDebt } = checkLayers(files, debt);
    expect(violations.map((v) => v.to)).toEqual(['simulation']);
    expect(staleDebt).toEqual(['link -> daemon']);
  });

  it('production code reaches simulation/ only by dynamic import (or erased import type); the demo stack may import it', () => {
    const { violations } = checkLayers(
      new Map([
        ['controller/controller-server.ts', "import { SimulationRoots } from '../simulation/controller-trust.js';"],
        ['daemon/sources.ts', "export { openSimulation } from '../simulation/open.js';"],
        ['controller/appraise.ts', "import { type SimGpuIdentity } from '../simulation/gpu-sim.js';"],
        ['daemon/ok.ts', "const { openSimulation } = await import('../simulation/open.js');\nimport type { Simulation } from '../simulation/open.js';"],
        ['cli/demo-stack.ts', "import { openSimulation } from '../simulation/open.js';"],
        ['simulation/open.ts', "import { SimulatedSnpDevice } from './snp-sim.js';"],
      ]),
      none,
    );
    expect(violations.map((v) => [v.file, v.to])).toEqual([
      ['controller/controller-server.ts', 'simulation'],
      ['daemon/sources.ts', 'simulation'],
      ['controller/appraise.ts', 'simulation'],
    ]);
    expect(violations[0]!.reason).toMatch(/^static import of simulation\/: use `await import\(\)`/);
    // Not excusable as debt: listing the edge does not hide it.
    expect(
      checkLayers(new Map([['daemon/d.ts', "import { x } from '../simulation/x.js';"]]), new Map([['daemon -> simulation', 'r']])).violations,
    ).toHaveLength(1);
  });

  it('the real agent/ tree passes, as `npm run lint:layers` runs it', () => {
    const out = execFileSync(process.execPath, ['--import', 'tsx', join(repoRoot, 'tools', 'check-layers.ts')], { cwd: repoRoot, encoding: 'utf8' });
    expect(out).toMatch(/no upward or sibling imports/);
  }, 60_000);
});
