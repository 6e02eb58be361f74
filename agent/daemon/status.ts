/**
 * What `GET /v1/health` and `GET /v1/status` answer (DESIGN.md "Local API"). Pure functions of the
 * daemon's state, so the CLI table and the JSON never disagree.
 */
import type { CycleResult } from '../attest/attestor.js';
import type { Daemon } from './daemon.js';

export interface Health {
  status: 'ok' | 'degraded' | 'failing';
  reasons: string[];
}

export function healthOf(last: CycleResult | undefined, startedAt: Date): Health {
  if (!last) return { status: 'degraded', reasons: [`no attestation has completed since the agent started at ${startedAt.toISOString()}`] };
  const failed = Object.entries(last.ear.submods).flatMap(([id, s]) => s['cvm.checks'].filter((c) => !c.ok).map((c) => `${id}: ${c.name}: ${c.detail}`));
  if (!last.ok) return { status: 'failing', reasons: last.error ? [`last attestation failed: ${last.error}`, ...failed] : failed };
  const warnings = Object.entries(last.ear.submods).flatMap(([id, s]) => s['cvm.checks'].filter((c) => c.warning).map((c) => `${id}: ${c.name}: ${c.detail}`));
  if (last.status === 'warning') return { status: 'degraded', reasons: warnings };
  return { status: 'ok', reasons: [] };
}

export async function describeStatus(d: Daemon) {
  const v = d.view();
  let inventory: unknown;
  try {
    inventory = await v.inventory;
  } catch (err) {
    inventory = { error: (err as Error).message };
  }
  const last = v.last;
  return {
    version: v.version,
    startedAt: v.startedAt.toISOString(),
    uptimeSec: Math.round((Date.now() - v.startedAt.getTime()) / 1000),
    tee: { kind: v.sources.kind, source: v.sources.cpu.source, simulated: v.sources.simulated },
    health: healthOf(last, v.startedAt),
    policy: v.sources.policy.id,
    lastAttestation: last
      ? {
          id: last.id,
          reason: last.reason,
          at: last.finishedAt,
          durationMs: last.durationMs,
          status: last.status,
          simulated: last.simulated,
          devices: Object.fromEntries(
            Object.entries(last.ear.submods).map(([id, s]) => [
              id,
              {
                status: s['ear.status'],
                trustVector: s['ear.trustworthiness-vector'],
                failed: s['cvm.checks'].filter((c) => !c.ok).map((c) => ({ name: c.name, detail: c.detail })),
                warnings: s['cvm.checks'].filter((c) => c.warning).map((c) => ({ name: c.name, detail: c.detail })),
              },
            ]),
          ),
          ...(last.error ? { error: last.error } : {}),
        }
      : null,
    attesting: v.running,
    nextAttestation: v.next ? { at: v.next.at.toISOString(), reason: v.next.reason } : null,
    consecutiveFailures: v.failures,
    gpus: { present: Boolean(v.sources.gpus), readyState: last ? last.gpuReady.set : false, readyReason: last ? last.gpuReady.reason : 'no attestation yet' },
    controller: v.link,
    collateral: v.collateral ? await v.collateral : { simulated: 'the simulated TEE brings its own collateral' },
    api: { socket: v.config.api.socket, socketActivated: v.socketActivated },
    agentKey: { kty: v.teePubKey.kty, crv: v.teePubKey.crv, x: v.teePubKey.x, y: v.teePubKey.y },
    recent: v.history.map((h) => ({ id: h.id, at: h.finishedAt, reason: h.reason, status: h.status })),
    inventory,
  };
}
