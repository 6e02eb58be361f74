/**
 * Shared setup for the ControllerLink tests: a per-test teardown list (run in reverse after each
 * test) and setup(), which starts a TestController and a link harness pointed at it, both torn down.
 * Call linkFixture() at the top level of a test file (it registers an afterEach).
 */
import { afterEach } from 'vitest';
import { makeHarness, TestController, type Harness } from './test-controller.js';

export function linkFixture() {
  const cleanup: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });
  async function setup(ctl: Parameters<typeof TestController.start>[0] = {}, over: Parameters<typeof makeHarness>[1] = {}) {
    const controller = await TestController.start(ctl);
    cleanup.push(() => controller.close());
    const h = await makeHarness(controller.url, over);
    cleanup.push(() => h.close());
    return { controller, h };
  }
  return { cleanup, setup };
}

/** A waitFor() predicate: the link reports state "up". */
export const linkUp = (h: Harness) => () => h.link.status().state === 'up';

/** Make the controller ask the agent to resume at the first sequence number it has not received. */
export function resumeAtFirstGap(controller: TestController): void {
  controller.opts.resumeFrom = () => {
    const seqs = controller.uniqueSeqs();
    let next = 1;
    while (seqs.includes(next)) next++;
    return next;
  };
}
