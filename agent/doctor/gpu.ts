/**
 * GPU checks (pure): NVML and the driver, the GPUs, the confidential-computing state (CC feature,
 * DevTools, environment, multi-GPU mode, ready state), and whether the RIMs and OCSP responses the
 * verifier will need are in the collateral cache and fresh. Facts in (doctor/gather-gpu.ts), findings out.
 */
import type { GpuCcState } from '../evidence/gpu-nvml.js';
import type { FreshnessState } from '../collateral/collateral-types.js';
import { fail, pass, skipped, warn, type Finding } from './finding.js';

const A = 'gpu' as const;

/** R535 is the first driver branch with H100 confidential computing (NVIDIA "Confidential Computing Deployment Guide"). */
export const MIN_CC_DRIVER_MAJOR = 535;

export interface GpuDeviceFacts {
  index: number;
  name: string;
  architecture: string;
  vbiosVersion?: string;
  /** NVML's protected memory size (0: CC off on this GPU). */
  protectedKib?: number;
}

/** One cached collateral item as the doctor found it (undefined state: not in the cache). */
export interface CachedItem {
  what: string;
  state: FreshnessState | 'missing' | 'unreadable';
  detail: string;
}

export interface GpuFacts {
  enabled: 'auto' | 'on' | 'off';
  setReadyState: boolean;
  online: boolean;
  nvml: { available: true; library: string; driverVersion: string; nvmlVersion?: string; deviceCount: number } | { available: false; reason: string };
  devices?: GpuDeviceFacts[] | { error: string };
  cc?: GpuCcState;
  /** Why the CC state could not be read (a driver without the CC API). */
  ccError?: string;
  ready?: boolean | { error: string };
  /** Driver and VBIOS RIMs, one entry per RIM id (or per VBIOS version when the id needs the report). */
  rims?: CachedItem[];
  /** OCSP responses for each GPU's device chain intermediates; `problem` when the chain could not be read. */
  ocsp?: Array<{ index: number; items: CachedItem[]; problem?: string }>;
}

const IDS = ['gpu.nvml', 'gpu.driver', 'gpu.devices', 'gpu.cc', 'gpu.devtools', 'gpu.environment', 'gpu.multi-gpu', 'gpu.ready', 'gpu.rim', 'gpu.ocsp'];

const HOST_CC_FIX =
  'CC mode is set on the host, not in the guest: on the host run NVIDIA nvtrust "nvidia_gpu_tools.py --gpu-bdf=<BDF> --set-cc-mode=on --reset-after-cc-mode-switch" and restart the VM (on Azure: use an NCC H100 v5 size, where the platform sets it)';

export function driverMajor(version: string): number | undefined {
  const m = /^(\d+)\./.exec(version);
  return m ? Number(m[1]) : undefined;
}

export function gpuFindings(f: GpuFacts, simulated: boolean): Finding[] {
  if (simulated) return IDS.map((id) => skipped(id, A, 'tee: simulated: the GPUs are simulated'));
  if (f.enabled === 'off') return IDS.map((id) => skipped(id, A, 'gpus.enabled: off', 'set gpus.enabled: auto to attest the GPUs'));
  const out: Finding[] = [];
  if (!f.nvml.available) {
    const fixNvml = 'install the NVIDIA driver (R535+, open kernel modules) so that libnvidia-ml.so.1 loads, or point devices.nvmlLibrary at it';
    out.push(
      f.enabled === 'on'
        ? fail('gpu.nvml', A, `gpus.enabled is "on" but ${f.nvml.reason}`, fixNvml)
        : skipped('gpu.nvml', A, `${f.nvml.reason}: treated as a VM without GPUs (gpus.enabled: auto)`, `if this VM has GPUs: ${fixNvml}`),
    );
    for (const id of IDS.slice(1)) out.push(skipped(id, A, 'no NVML (see gpu.nvml)'));
    return out;
  }
  const n = f.nvml;
  out.push(pass('gpu.nvml', A, `${n.library}${n.nvmlVersion ? `, NVML ${n.nvmlVersion}` : ''}`));
  const major = driverMajor(n.driverVersion);
  if (major === undefined || major < MIN_CC_DRIVER_MAJOR || f.ccError !== undefined)
    out.push(
      fail(
        'gpu.driver',
        A,
        `driver ${n.driverVersion}${major !== undefined && major < MIN_CC_DRIVER_MAJOR ? ` is older than R${MIN_CC_DRIVER_MAJOR}, the first with confidential computing` : ''}${f.ccError ? `; its NVML has no confidential-computing API (${f.ccError})` : ''}`,
        `install an NVIDIA data-center driver >= ${MIN_CC_DRIVER_MAJOR} with the open kernel modules (e.g. nvidia-driver-550-server-open), then reboot`,
      ),
    );
  else out.push(pass('gpu.driver', A, `driver ${n.driverVersion}`));

  const devs = f.devices;
  if (!devs || !Array.isArray(devs))
    out.push(fail('gpu.devices', A, `NVML cannot list the GPUs: ${devs?.error ?? 'not asked'}`, 'check "nvidia-smi" and "dmesg | grep -i nvrm"'));
  else if (devs.length === 0)
    out.push(
      f.enabled === 'on'
        ? fail('gpu.devices', A, 'gpus.enabled is "on" but NVML lists no GPU', 'check "nvidia-smi" and the VM size; or set gpus.enabled: auto')
        : skipped('gpu.devices', A, 'NVML lists no GPU'),
    );
  else {
    const names = devs.map((d) => `${d.index}: ${d.name} (${d.architecture}${d.vbiosVersion ? `, VBIOS ${d.vbiosVersion}` : ''})`).join('; ');
    const notCc = devs.filter((d) => d.architecture !== 'hopper' && d.architecture !== 'blackwell');
    out.push(
      notCc.length > 0
        ? fail(
            'gpu.devices',
            A,
            `${devs.length} GPU(s): ${names}; ${notCc.map((d) => `GPU ${d.index}`).join(', ')} cannot do confidential computing (Hopper or Blackwell needed)`,
            'use H100/H200/B200 GPUs, or set gpus.enabled: off',
          )
        : pass('gpu.devices', A, `${devs.length} GPU(s): ${names}`),
    );
  }
  out.push(...ccFindings(f, Array.isArray(devs) ? devs : []));
  out.push(readyFinding(f));
  out.push(rimFinding(f));
  out.push(ocspFinding(f));
  return out;
}

function ccFindings(f: GpuFacts, devs: GpuDeviceFacts[]): Finding[] {
  const cc = f.cc;
  if (!cc) {
    const because = `the CC state cannot be read${f.ccError ? ` (${f.ccError})` : ''}: see gpu.driver`;
    return ['gpu.cc', 'gpu.devtools', 'gpu.environment', 'gpu.multi-gpu'].map((id) => skipped(id, A, because));
  }
  const out: Finding[] = [];
  const ppcie = cc.multiGpuMode === 'protected-pcie';
  const offGpus = devs.filter((d) => d.protectedKib === 0).map((d) => d.index);
  if (!cc.ccEnabled && !ppcie) out.push(fail('gpu.cc', A, 'confidential computing is off (CC feature disabled, not in protected-PCIe mode)', HOST_CC_FIX));
  else if (cc.ccEnabled && offGpus.length > 0)
    out.push(fail('gpu.cc', A, `CC is on, but GPU ${offGpus.join(', ')} report(s) no protected memory: CC mode is off on that GPU`, HOST_CC_FIX));
  else out.push(pass('gpu.cc', A, cc.ccEnabled ? 'CC feature on' : 'protected-PCIe mode (multi-GPU CC)'));
  out.push(
    cc.devToolsMode
      ? fail(
          'gpu.devtools',
          A,
          'DevTools mode is on: the GPU allows debugging and profiling of confidential workloads, and the policy rejects it (gpu.cc.devtools)',
          'on the host switch the GPU to production CC: "nvidia_gpu_tools.py --gpu-bdf=<BDF> --set-cc-mode=on --reset-after-cc-mode-switch" (not devtools), then restart the VM',
        )
      : pass('gpu.devtools', A, 'DevTools mode is off'),
  );
  out.push(
    cc.environment === 'prod'
      ? pass('gpu.environment', A, 'production environment')
      : fail(
          'gpu.environment',
          A,
          `the CC environment is "${cc.environment}", not "prod": ${cc.environment === 'sim' ? 'a simulated GPU' : 'the driver reports no CC environment'}`,
          'use production GPUs with a production VBIOS and driver; a "sim" environment is for NVIDIA development only',
        ),
  );
  const mode = cc.multiGpuMode ?? 'none';
  out.push(
    mode === 'unknown'
      ? warn('gpu.multi-gpu', A, 'the driver reports a multi-GPU mode this agent does not know', 'update cvm-agent; check "nvidia-smi conf-compute -mgm"')
      : pass('gpu.multi-gpu', A, mode === 'none' ? 'single-GPU CC (no protected-PCIe / NVLink encryption mode)' : `multi-GPU mode ${mode}`),
  );
  return out;
}

function readyFinding(f: GpuFacts): Finding {
  const id = 'gpu.ready';
  const r = f.cc?.readyState ?? f.ready;
  if (r === undefined) return skipped(id, A, 'the ready state cannot be read (see gpu.driver)');
  if (typeof r === 'object') return warn(id, A, `the ready state cannot be read: ${r.error}`, 'check "nvidia-smi conf-compute -grs"');
  if (r) return pass(id, A, 'the GPUs accept work (ready state set)');
  if (!f.setReadyState)
    return warn(
      id,
      A,
      'the GPUs do not accept work (ready state not set), and gpus.setReadyState is false: nothing will set it',
      'set gpus.setReadyState: true (the agent sets it after a passing cycle), or run "cvm-agent gpu ready --set" after attesting',
    );
  return pass(id, A, 'not set yet: the agent sets it after the first cycle in which the CPU and every GPU pass (read-only here)');
}

const worst = (items: readonly CachedItem[]): CachedItem['state'] => {
  const rank: Record<CachedItem['state'], number> = { fresh: 0, stale: 1, expired: 2, unreadable: 3, missing: 4 };
  return items.reduce<CachedItem['state']>((w, i) => (rank[i.state] > rank[w] ? i.state : w), 'fresh');
};

function rimFinding(f: GpuFacts): Finding {
  const id = 'gpu.rim';
  const rims = f.rims;
  if (!rims || rims.length === 0) return skipped(id, A, 'no GPU to look RIMs up for');
  const detail = rims.map((r) => `${r.what}: ${r.detail}`).join('; ');
  const state = worst(rims);
  const fix = f.online
    ? 'collateral.online is on: the agent fetches them at the first cycle; to have them now, import them: cvm-agent collateral import FILE'
    : 'download each RIM from https://rim.attestation.nvidia.com/v1/rim/<id> and import it: cvm-agent collateral import FILE (or set collateral.online: true)';
  if (state === 'missing' || state === 'unreadable')
    return f.online ? warn(id, A, detail, fix) : fail(id, A, `${detail}; GPU attestation fails without them (gpu.rim.*)`, fix);
  if (state === 'expired' || state === 'stale') return warn(id, A, detail, fix);
  return pass(id, A, detail);
}

function ocspFinding(f: GpuFacts): Finding {
  const id = 'gpu.ocsp';
  const per = f.ocsp;
  if (!per || per.length === 0) return skipped(id, A, 'no GPU certificate chain to look OCSP responses up for');
  const items = per.flatMap((p) => p.items);
  const problems = per.filter((p) => p.problem).map((p) => `GPU ${p.index}: ${p.problem}`);
  const detail = [
    ...problems,
    ...per.filter((p) => p.items.length > 0).map((p) => `GPU ${p.index}: ${p.items.map((i) => `${i.what} ${i.detail}`).join(', ')}`),
  ].join('; ');
  const fix = 'set collateral.online: true (the agent asks NVIDIA OCSP at each cycle), or import current responses: cvm-agent collateral import FILE';
  if (items.length === 0)
    return problems.length > 0
      ? warn(id, A, detail, 'check "cvm-agent gpu evidence" (the device certificate chain)')
      : skipped(id, A, 'no certificate to check');
  const state = worst(items);
  if (state === 'fresh') return pass(id, A, detail);
  if (state === 'missing' && f.online) return pass(id, A, `${detail} (collateral.online: fetched at each cycle)`);
  return warn(id, A, `${detail}; revocation is not checked and cycles warn (gpu.revocation)`, fix);
}
