/**
 * What `GET /v1/status` answers (README.md "What it does", Local API): a pure view of the daemon's state, so the
 * CLI table and the JSON never disagree. `trust` says first whether the VM is trusted right now and
 * why; `gpus.readyState` is what the driver last reported (read after every cycle and every
 * consequence), never what the agent meant to set.
 */
import type { CycleResult } from '../attest/attestation-cycle.js';
import type { Daemon } from './daemon.js';
import { evaluateHealth, type Health } from './health.js';
import { failedChecks } from '../formats/checks.js';

export type { Health } from './health.js';

/** Health from the last cycle alone (no controller, staleness or collateral inputs). */
export function healthOf(last: CycleResult | undefined, startedAt: Date): Health {
  return evaluateHealth({
    now: new Date(),
    startedAt,
    last,
    lastSuccessAt: last?.ok ? new Date(last.finishedAt) : undefined,
    maxAgeSec: Number.MAX_SAFE_INTEGER,
    verdict: undefined,
    collateral: undefined,
  });
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
    trust: { ...v.trust, history: v.trustHistory },
    health: v.trust.health,
    policy: v.sources.policy.id,
    lastAttestation: last
      ? {
          id: last.id,
          reason: last.reason,
          at: last.finishedAt,
          durationMs: last.durationMs,
          status: last.status === 'none' ? 'error' : last.status,
          simulated: last.simulated,
          devices: Object.fromEntries(
            Object.entries(last.ear.submods).map(([id, s]) => [
              id,
              {
                // "error": the device or its library was unavailable; "contraindicated": its evidence showed a bad state.
                status: s['cvm.error'] ? 'error' : s['ear.status'],
                trustVector: s['ear.trustworthiness-vector'],
                failed: failedChecks(s['cvm.checks']).map((c) => ({ name: c.name, detail: c.detail })),
                warnings: s['cvm.checks'].filter((c) => c.warning).map((c) => ({ name: c.name, detail: c.detail })),
                ...(s['cvm.error'] ? { error: s['cvm.error'] } : {}),
              },
            ]),
          ),
          ...(last.error ? { error: last.error } : {}),
        }
      : null,
    attesting: v.running,
    nextAttestation: v.next ? { at: v.next.at.toISOString(), reason: v.next.reason } : null,
    consecutiveFailures: v.failures,
    gpus: {
      present: Boolean(v.sources.gpus),
      // Read from the driver; null when it could not be read (readError says why) or before the first read.
      readyState: v.gpuReadyRead ? v.gpuReadyRead.ready : null,
      ...(v.gpuReadyRead ? { readAt: v.gpuReadyRead.at, readBy: v.gpuReadyRead.source } : {}),
      ...(v.gpuReadyRead?.error ? { readError: v.gpuReadyRead.error } : {}),
      readyReason: last ? last.gpuReady.reason : 'no attestation yet',
    },
    // The NVSwitches of a protected-PCIe system (only the simulated HGX system, simulation.ppcie, has them today); each is a device switch<N> above.
    switches: { present: Boolean(v.sources.switches), count: v.sources.switches?.count ?? 0 },
    controller: { ...v.link, verdict: v.trust.controllerVerdict },
    collateral: v.collateral ? await v.collateral : { simulated: 'the simulated TEE brings its own collateral' },
    api: { socket: v.apiSocket, socketActivated: v.socketActivated },
    agentKey: { kty: v.teePubKey.kty, crv: v.teePubKey.crv, x: v.teePubKey.x, y: v.teePubKey.y },
    recent: v.history.map((h) => ({ id: h.id, at: h.finishedAt, reason: h.reason, status: h.status })),
    inventory,
  };
}
