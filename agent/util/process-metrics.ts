/**
 * What every cvm-agent process exposes on its /metrics besides its own series: prom-client's
 * standard process_* and nodejs_* metrics under their usual names (the names dashboards for Node.js
 * services expect), and a <prefix>_build_info gauge, value 1, whose labels say what is running.
 */
import { Gauge, type Registry, collectDefaultMetrics } from 'prom-client';
import { packageVersion } from './package-version.js';

/**
 * prom-client's default gauges that end in "_total" (a suffix Prometheus reserves for counters;
 * `promtool check metrics` reports them). Their values are the sums of the labelled gauges of the
 * same name without the suffix, which stay.
 */
export const TOTAL_SUFFIXED_GAUGES = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'] as const;

/** The labels of <prefix>_build_info: the package version, the commit it was built from, the Node.js runtime. */
export function buildInfoLabels(commit: string): { version: string; commit: string; node: string } {
  return { version: packageVersion(), commit, node: process.version };
}

/**
 * The standard process and runtime metrics, unprefixed. Event-loop lag is sampled every 100 ms
 * instead of prom-client's 10 ms: an idle daemon should stay idle.
 */
export function registerDefaultMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 100 });
  for (const name of TOTAL_SUFFIXED_GAUGES) registry.removeSingleMetric(name);
}

/**
 * `${prefix}_build_info{version,commit,node} 1`, the usual way to put a build on a dashboard. `commit`
 * comes from the caller (util/build-info.ts buildCommit, which needs the package root).
 */
export function registerBuildInfo(registry: Registry, prefix: string, what: string, commit: string): void {
  const labels = buildInfoLabels(commit);
  const info = new Gauge({
    name: `${prefix}_build_info`,
    help: `The ${what} build that is running (always 1): package version, commit and Node.js version as labels.`,
    labelNames: Object.keys(labels) as Array<keyof typeof labels>,
    registers: [registry],
  });
  info.set(labels, 1);
}
