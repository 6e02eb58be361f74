/**
 * The fleet web page in a real browser: headless Chromium (Debian package `chromium`) loads GET / from a
 * controller on loopback that has one SIMULATED affirmed-with-warnings agent and one contraindicated
 * agent; the page's script fetches /v1/agents under the strict CSP and renders the table. The
 * screenshot is kept under test-artifacts/ for CI.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { repoRoot } from '../helpers/paths.js';
import { findTool, requireTool } from '../helpers/tools.js';
import { FakeAgent, makeBundle, openSim, startController, type ControllerUnderTest, type Sim } from '../helpers/controller-fixture.js';

const run = promisify(execFile);
const BROWSERS = ['chromium', 'chromium-browser', 'google-chrome'];
// Without a browser the file is skipped (its hooks with it), a failure under CI=true.
const CHROMIUM = requireTool(BROWSERS, 'chromium') ? BROWSERS.map((b) => findTool(b)).find((p) => p !== undefined) : undefined;
const artifacts = join(repoRoot, 'test-artifacts');

let sim: Sim;
let ctl: ControllerUnderTest;
const agents: FakeAgent[] = [];
let profile: string;

/** Chromium flags from the task: no sandbox (root in CI containers), no GPU, no network beyond loopback. */
function chromiumArgs(extra: string[]): string[] {
  return [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--no-first-run',
    '--disable-dev-shm-usage',
    `--user-data-dir=${profile}`,
    '--window-size=1200,800',
    // Let the page's fetch('/v1/agents') complete before the DOM/screenshot is taken.
    '--virtual-time-budget=5000',
    ...extra,
  ];
}

beforeAll(async () => {
  profile = mkdtempSync(join(tmpdir(), 'chromium-profile-'));
  sim = await openSim();
  ctl = await startController(sim, 'simulation: {trust: true, dir: SIMDIR}\nreleaseSecretsOn: warning\n');
  // One good simulated agent...
  const good = await FakeAgent.connect(ctl.controller.address().wsUrl);
  good.hello('gpu-node-a');
  const c1 = await good.next('challenge');
  await good.answer(c1, await makeBundle(sim, Buffer.from(c1.nonce, 'hex'), good.key.publicJwk, 'gpu-node-a'));
  await good.next('verdict');
  // ...and one whose evidence was tampered with.
  const bad = await FakeAgent.connect(ctl.controller.address().wsUrl);
  bad.hello('gpu-node-b');
  const c2 = await bad.next('challenge');
  const bundle = await makeBundle(sim, Buffer.from(c2.nonce, 'hex'), bad.key.publicJwk, 'gpu-node-b');
  const cpu = bundle.cpu as { report: string };
  const r = Buffer.from(cpu.report, 'base64');
  r[0x90]! ^= 1;
  cpu.report = r.toString('base64');
  await bad.answer(c2, bundle);
  await bad.next('verdict');
  agents.push(good, bad);
}, 120_000);

afterAll(async () => {
  agents.forEach((a) => a.close());
  await ctl?.controller.close();
  rmSync(profile, { recursive: true, force: true });
  rmSync(sim.dir, { recursive: true, force: true });
});

describe.runIf(CHROMIUM)('fleet page in headless Chromium', () => {
  it('renders one table row per agent with status colours and the SIMULATED badge (--dump-dom)', async () => {
    const { stdout } = await run(CHROMIUM!, chromiumArgs(['--dump-dom', `${ctl.controller.address().url}/`]), { timeout: 90_000, maxBuffer: 16 * 1024 * 1024 });
    const rows = [...stdout.matchAll(/<tr class="agent" data-agent-id="([^"]+)">([\s\S]*?)<\/tr>/g)];
    expect(rows.map((m) => m[1])).toEqual(['gpu-node-a', 'gpu-node-b']);
    const [a, b] = rows.map((m) => m[2]!);
    expect(a).toContain('<span class="badge-sim">SIMULATED</span>');
    expect(a).toContain('<span class="status affirming">affirming</span>');
    expect(a).toMatch(/<span class="device affirming">gpu0: affirming<\/span>/);
    expect(b).toContain('<span class="status contraindicated">contraindicated</span>');
    expect(b).toContain('evidence-rejected');
    expect(stdout).toMatch(/2 agent\(s\), 2 connected/);
  }, 120_000);

  it('takes a non-trivial PNG screenshot (kept in test-artifacts/fleet-page.png)', async () => {
    mkdirSync(artifacts, { recursive: true });
    const file = join(artifacts, 'fleet-page.png');
    rmSync(file, { force: true });
    await run(CHROMIUM!, chromiumArgs([`--screenshot=${file}`, `${ctl.controller.address().url}/`]), { timeout: 90_000 });
    const png = readFileSync(file);
    expect(png.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))).toBe(true);
    expect(png.readUInt32BE(16)).toBe(1200); // IHDR width
    expect(png.readUInt32BE(20)).toBe(800); // IHDR height
    expect(png.length).toBeGreaterThan(10_000); // a rendered table, not a blank page
  }, 120_000);
});
