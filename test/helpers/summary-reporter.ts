/**
 * Prints one plain closing line, "Tests: N passed, N failed, N skipped", after vitest's own summary,
 * so CI logs carry a runner-independent count; then, when suites were skipped for a missing tool
 * (test/helpers/tools.ts), one line naming them and the apt-get command that enables them.
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Reporter, TestModule } from 'vitest/node';
import { SKIPS_DIR_ENV, readSkips, skipSummary } from './tools.js';

export default class SummaryReporter implements Reporter {
  private skipsDir: string | undefined;

  onInit(): void {
    // Before any worker starts: the workers inherit process.env and record their skips here.
    const dir = mkdtempSync(join(tmpdir(), 'cvm-test-skips-'));
    this.skipsDir = dir;
    process.env[SKIPS_DIR_ENV] = dir;
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  }

  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    for (const mod of testModules) {
      for (const test of mod.children.allTests()) {
        const state = test.result().state;
        if (state === 'passed') passed++;
        else if (state === 'failed') failed++;
        else skipped++;
      }
      if (mod.state() === 'failed' && [...mod.children.allTests()].length === 0) failed++;
    }
    process.stdout.write(`\nTests: ${passed} passed, ${failed} failed, ${skipped} skipped\n`);
    if (this.skipsDir) {
      const line = skipSummary(readSkips(this.skipsDir));
      // Emptied, not removed: a watch-mode rerun records its own skips here.
      for (const f of readdirSync(this.skipsDir)) rmSync(join(this.skipsDir, f), { force: true });
      if (line) process.stdout.write(`${line}\n`);
    }
  }
}
