/**
 * What the fleet view says about an agent beyond its verdict, derived from what the agent already
 * sends (hello, evidence bundle, signed events); pure, no I/O. Event data is agent input: only a
 * boolean is believed, anything else is "not said".
 */
/** The GPUs' ready state as the agent last reported it in a stored event. */
export interface GpuReadyReport {
  ready: boolean;
  /** The event's own time (agent clock) and seq. */
  at: string;
  seq: number;
  /** The agent's reason (gpu-ready events only), bounded. */
  reason?: string;
}

const MAX_REASON = 256;

/**
 * The ready state an event reports, if any: `gpu-ready` events carry `{ready, reason}`, every
 * `attestation` event carries `gpuReady` (daemon/link.ts cycleEventData). Undefined otherwise.
 */
export function gpuReadyFromEvent(ev: { seq: number; at: string; kind: string; data: unknown }): GpuReadyReport | undefined {
  if (typeof ev.data !== 'object' || ev.data === null) return undefined;
  const d = ev.data as Record<string, unknown>;
  const ready = ev.kind === 'gpu-ready' ? d.ready : ev.kind === 'attestation' ? d.gpuReady : undefined;
  if (typeof ready !== 'boolean') return undefined;
  const reason = ev.kind === 'gpu-ready' && typeof d.reason === 'string' ? d.reason.slice(0, MAX_REASON) : undefined;
  return { ready, at: ev.at, seq: ev.seq, ...(reason !== undefined ? { reason } : {}) };
}

/**
 * GPUs in the last appraised evidence: the bundle's count when it parsed (recorded with the
 * verdict), else the gpuN devices of a verdict recorded before that count was kept; null with no verdict.
 */
export function gpuCountOf(verdict: { gpuCount?: number; devices: Record<string, unknown> } | undefined): number | null {
  if (!verdict) return null;
  if (typeof verdict.gpuCount === 'number') return verdict.gpuCount;
  return Object.keys(verdict.devices).filter((id) => /^gpu\d+$/.test(id)).length;
}

/** Seqs accounted for (1..lastSeq) less those in the kept gap ranges: the events actually stored. */
export function eventsStored(lastSeq: number, gaps: readonly { from: number; to: number }[]): number {
  const missing = gaps.reduce((n, g) => n + Math.max(0, g.to - g.from + 1), 0);
  return Math.max(0, lastSeq - missing);
}
