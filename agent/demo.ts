/**
 * The demo (README's first command): one attestation cycle on the built-in SIMULATED TEE — a software
 * SEV-SNP CPU and N software H100s — through the same binding, verifiers, appraisal and GPU ready-state
 * gate as production, then a summary per device.
 */
import { generateKeyPairSync, createHash } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PublicJwk } from './binding.js';
import { Attestor, type CycleResult } from './attest/attestor.js';
import { openSimulation } from './attest/simulation.js';
import { verifyBundle } from './attest/verify-bundle.js';

export interface DemoOptions {
  gpus: number;
  dir?: string;
  build: string;
  log?: (line: string) => void;
}

export async function runDemo(opts: DemoOptions): Promise<{ result: CycleResult; dir: string; teePubKey: PublicJwk }> {
  const log = opts.log ?? (() => undefined);
  const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), 'cvm-agent-demo-')));
  log(`[1/4] simulated TEE in ${dir}: SEV-SNP (Genoa) + ${opts.gpus} H100, test roots created on first use (SIMULATED, never trusted outside simulation)`);
  const sim = await openSimulation(dir, opts.gpus);
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const teePubKey = publicKey.export({ format: 'jwk' }) as PublicJwk;
  const thumb = createHash('sha256').update(JSON.stringify({ crv: teePubKey.crv, kty: teePubKey.kty, x: teePubKey.x, y: teePubKey.y })).digest('base64url');
  log(`[2/4] agent key: EC P-384, JWK thumbprint ${thumb} (private key stays in this process)`);
  const attestor = new Attestor({
    teePubKey,
    cpu: sim.cpu,
    ...(sim.gpus ? { gpus: sim.gpus } : {}),
    verify: (bundle, at) => verifyBundle(bundle, { at, ...sim.verifyOptions(at), policyId: 'cvm-agent/demo' }),
    setReadyState: true,
    stepTimeoutMs: 60_000,
    build: opts.build,
  });
  log('[3/4] attesting: fresh nonce -> GPU reports (nonce bound to the agent key) -> SNP report over all of them -> verify -> appraise');
  const result = await attestor.run({ reason: 'cli' });
  log(`[4/4] GPU ready state: ${result.gpuReady.reason}`);
  return { result, dir, teePubKey };
}

const ICON: Record<string, string> = { affirming: 'PASS', warning: 'WARN', contraindicated: 'FAIL', none: 'NONE' };

export function formatDemoSummary(result: CycleResult): string {
  const lines: string[] = [];
  lines.push('');
  lines.push(`Attestation result (SIMULATED): ${result.status.toUpperCase()} in ${result.durationMs} ms, nonce ${result.nonce.slice(0, 16)}...`);
  lines.push('');
  lines.push('  device  verdict  checks  notes');
  for (const [id, sub] of Object.entries(result.ear.submods)) {
    const checks = sub['cvm.checks'];
    const passed = checks.filter((c) => c.ok).length;
    const notes = checks.filter((c) => !c.ok || c.warning).map((c) => `${c.ok ? 'warning' : 'FAILED'} ${c.name}: ${c.detail}`);
    lines.push(`  ${id.padEnd(6)}  ${ICON[sub['ear.status']]!.padEnd(7)}  ${`${passed}/${checks.length}`.padEnd(6)}  ${notes[0] ?? 'all checks passed'}`);
    for (const n of notes.slice(1)) lines.push(`  ${''.padEnd(6)}  ${''.padEnd(7)}  ${''.padEnd(6)}  ${n}`);
  }
  lines.push('');
  lines.push(`GPU ready state: ${result.gpuReady.set ? 'SET' : 'not set'} (${result.gpuReady.reason})`);
  if (result.error) lines.push(`Error: ${result.error}`);
  lines.push('');
  return lines.join('\n');
}
