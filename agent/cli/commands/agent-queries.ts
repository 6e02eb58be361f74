/**
 * Client commands for a running agent, over the local socket: status, health, attest, evidence, token.
 * Exit codes scripts can use: 0 ok/affirming, 3 degraded/warning, 1 failing/contraindicated,
 * 4 agent unreachable, the request was refused or not answered within --timeout, 2 usage.
 */
import { EXIT, parseOptions, type CliIO, type Command } from '../command.js';
import { callApi, defaultSocket, problemText } from '../api-client.js';
import { decodeJwt } from 'jose';
import { UsageError } from '../../errors.js';
import { hexToBytes } from '../../util/bytes.js';

const socketOpt = { socket: { type: 'string' }, timeout: { type: 'string' } } as const;
const SOCKET_HELP = '  --socket PATH  agent socket (default $CVM_AGENT_SOCKET or /run/cvm-agent/api.sock)';
const timeoutHelp = (defaultSec: number) => `  --timeout SEC  give up (exit 4) when the agent has not answered within SEC seconds (default ${defaultSec})`;

/** Defaults per command: a probe (health) must answer fast; a cycle (attest, evidence) may take minutes. */
const TIMEOUT_SEC = { status: 10, health: 5, attest: 120, evidence: 120, token: 10 } as const;
const MAX_TIMEOUT_SEC = 3600;

/** --timeout SEC: a positive number of seconds (fractions allowed), at most an hour. */
export function timeoutMs(text: string | undefined, defaultSec: number): number {
  if (text === undefined) return defaultSec * 1000;
  const sec = /^\d+(\.\d+)?$/.test(text) ? Number(text) : Number.NaN;
  if (!(sec > 0) || sec > MAX_TIMEOUT_SEC) throw new UsageError(`--timeout "${text}": expected seconds, more than 0 and at most ${MAX_TIMEOUT_SEC}`);
  return Math.round(sec * 1000);
}
const EXIT_HELP = 'Exit codes: 0 ok, 3 degraded (warnings), 1 failing, 4 agent unreachable, request refused or no answer in time, 2 usage.';

function exitForStatus(s: string | undefined): number {
  if (s === 'ok' || s === 'affirming') return EXIT.OK;
  if (s === 'degraded' || s === 'warning') return EXIT.WARNING;
  return EXIT.FAILED;
}

function refused(io: CliIO, what: string, r: { status: number } & Parameters<typeof problemText>[0]): number {
  io.stderr.write(`cvm-agent ${what}: the agent answered ${r.status}: ${problemText(r)}\n`);
  return EXIT.UNAVAILABLE;
}

function nonceArg(text: string | undefined, required: boolean): string | undefined {
  if (text === undefined) {
    if (required) throw new UsageError('--nonce HEX is required');
    return undefined;
  }
  const b = hexToBytes(text, '--nonce');
  if (b.length < 8 || b.length > 64) throw new UsageError('--nonce must be 8 to 64 bytes of hex');
  return b.toString('hex');
}

interface StatusDoc {
  version: string;
  tee: { kind: string; source: string; simulated: boolean };
  trust?: {
    trusted: boolean;
    summary: string;
    reasons: string[];
    triggers: { trigger: string; since: string; detail: string; actions: string[] }[];
    enforcement: Record<string, string>;
    history?: { at: string; kind: string; trigger: string; action?: string; phase?: string; outcome?: string; detail: string }[];
  };
  health: { status: string; reasons: string[] };
  policy: string;
  lastAttestation: null | {
    at: string;
    status: string;
    durationMs: number;
    reason: string;
    devices: Record<string, { status: string; failed: { name: string; detail: string }[]; warnings: { name: string; detail: string }[] }>;
    error?: string;
  };
  nextAttestation: null | { at: string; reason: string };
  gpus: { present: boolean; readyState: boolean | null; readAt?: string; readError?: string; readyReason: string };
  controller: { state: string; verdict?: { status: string; receivedAt: string; expiresAt: string } | null };
  api: { socket: string };
}

function gpuLine(g: StatusDoc['gpus']): string {
  if (!g.present) return 'no GPUs';
  const read = g.readyState === null ? `unknown (${g.readError ?? 'not read yet'})` : g.readyState ? 'accepting work' : 'NOT accepting work';
  return `${read}${g.readAt ? ` (read from the driver at ${g.readAt})` : ''}; gate: ${g.readyReason}`;
}

function controllerLine(c: StatusDoc['controller']): string {
  const v = c.verdict;
  if (!v) return c.state;
  const expired = Date.parse(v.expiresAt) <= Date.now();
  return `${c.state}; verdict ${v.status.toUpperCase()} at ${v.receivedAt}, token ${expired ? 'EXPIRED' : 'valid until'} ${v.expiresAt}`;
}

export function formatStatus(s: StatusDoc): string {
  const lines = [`cvm-agent ${s.version}${s.tee.simulated ? '  [SIMULATED TEE]' : ''}`];
  // First: is the VM trusted right now, and why (or why not).
  if (s.trust) {
    lines.push(`  trust         ${s.trust.summary}`);
    for (const r of s.trust.reasons.slice(0, 8)) lines.push(`                ${r}`);
    const e = s.trust.enforcement;
    lines.push(`  enforcement   secrets ${e.secrets}; token ${e.token}; GPU ready ${e.gpuReady}; units ${e.units}`);
  }
  lines.push(
    `  health        ${s.health.status}${s.health.reasons.length ? `: ${s.health.reasons[0]}` : ''}`,
    `  tee           ${s.tee.kind} (${s.tee.source})`,
    `  policy        ${s.policy}`,
    `  last          ${s.lastAttestation ? `${s.lastAttestation.status} at ${s.lastAttestation.at} (${s.lastAttestation.reason}, ${s.lastAttestation.durationMs} ms)` : 'none yet'}`,
    `  next          ${s.nextAttestation ? `${s.nextAttestation.at} (${s.nextAttestation.reason})` : 'not scheduled'}`,
    `  gpu ready     ${gpuLine(s.gpus)}`,
    `  controller    ${controllerLine(s.controller)}`,
  );
  if (s.lastAttestation) {
    lines.push('', '  device  status           details');
    for (const [id, d] of Object.entries(s.lastAttestation.devices)) {
      const notes = [...d.failed.map((c) => `FAILED ${c.name}: ${c.detail}`), ...d.warnings.map((c) => `warning ${c.name}: ${c.detail}`)];
      lines.push(`  ${id.padEnd(6)}  ${d.status.padEnd(15)}  ${notes[0] ?? 'all checks passed'}`);
      for (const n of notes.slice(1)) lines.push(`  ${''.padEnd(6)}  ${''.padEnd(15)}  ${n}`);
    }
  }
  const recent = s.trust?.history?.slice(0, 6) ?? [];
  if (recent.length) {
    lines.push('', '  recent trust events (newest first)');
    for (const h of recent) lines.push(`  ${h.at}  ${h.kind === 'action' ? `${h.phase} ${h.action} (${h.outcome})` : `${h.kind} ${h.trigger}`}: ${h.detail}`);
  }
  return `${lines.join('\n')}\n`;
}

export const statusCommand: Command = {
  path: ['status'],
  usage: `Usage: cvm-agent status [--json | --table] [--socket PATH] [--timeout SEC]

Shows first whether the VM is trusted right now and why (or why not), what is enforced because of
it (secrets, token, GPU ready state, units), then TEE kind, health, last and next attestation, the
verdict per device (affirming, warning, contraindicated, or error when the device was unavailable),
the GPU ready state as last read from the driver, the controller link and verdict, and the recent
trust history.

Options:
  --json         print JSON (the default when stdout is not a terminal)
  --table        print the table even when stdout is not a terminal
${SOCKET_HELP}
${timeoutHelp(TIMEOUT_SEC.status)}

${EXIT_HELP}`,
  async run(argv, io) {
    const { values } = parseOptions(argv, { ...socketOpt, json: { type: 'boolean' }, table: { type: 'boolean' } });
    const r = await callApi(values.socket ?? defaultSocket(io.env), 'GET', '/v1/status', undefined, timeoutMs(values.timeout, TIMEOUT_SEC.status));
    if (r.status !== 200) return refused(io, 'status', r);
    const s = r.json() as StatusDoc;
    const asJson = values.json || (!values.table && !io.stdout.isTTY);
    io.stdout.write(asJson ? `${JSON.stringify(s, null, 2)}\n` : formatStatus(s));
    return exitForStatus(s.health.status);
  },
};

export const healthCommand: Command = {
  path: ['health'],
  usage: `Usage: cvm-agent health [--json] [--socket PATH] [--timeout SEC]

failing: the last cycle failed or the controller's verdict is not affirming. degraded: no result
yet, the last success is older than health.maxAgeSec, the controller token expired, collateral is
expiring, or the last cycle passed with warnings. ok: none of these (docs/config.md "Health and trust").

Options:
  --json         print the health object as JSON
${SOCKET_HELP}
${timeoutHelp(TIMEOUT_SEC.health)}

${EXIT_HELP}`,
  async run(argv, io) {
    const { values } = parseOptions(argv, { ...socketOpt, json: { type: 'boolean' } });
    const r = await callApi(values.socket ?? defaultSocket(io.env), 'GET', '/v1/health', undefined, timeoutMs(values.timeout, TIMEOUT_SEC.health));
    if (r.status !== 200 && r.status !== 503) return refused(io, 'health', r);
    const h = r.json() as { status: string; reasons: string[] };
    io.stdout.write(values.json ? `${JSON.stringify(h)}\n` : `${h.status}\n${h.reasons.map((x) => `  ${x}\n`).join('')}`);
    return exitForStatus(h.status);
  },
};

interface AttestDoc {
  status: string;
  ear: { submods?: Record<string, { 'ear.status'?: string }> } & Record<string, unknown>;
  bundle?: unknown;
}

/** The terminal view of an attest result: the verdict, then one line per device of the EAR. */
export function formatAttest(doc: AttestDoc): string {
  const lines = [`attestation: ${doc.status.toUpperCase()}`];
  for (const [id, sub] of Object.entries(doc.ear?.submods ?? {})) lines.push(`  ${id.padEnd(8)}  ${String(sub['ear.status'] ?? 'unknown')}`);
  lines.push('', 'Run with --json for the whole EAR (and --bundle for the evidence).');
  return `${lines.join('\n')}\n`;
}

export const attestCommand: Command = {
  path: ['attest'],
  usage: `Usage: cvm-agent attest [--nonce HEX] [--json] [--bundle] [--socket PATH] [--timeout SEC]

Asks the running agent for a cycle now. With --nonce (8-64 bytes of hex) the evidence is bound to
your nonce; without it a running cycle is joined. A --nonce needs the evidence authorization (by
default root and the agent's own user only: docs/config.md, "API authorization").

Options:
  --nonce HEX    bind the cycle to this nonce
  --json         print {status, ear} as JSON (the default when stdout is not a terminal)
  --bundle       print JSON with the evidence bundle too ({status, ear, bundle})
${SOCKET_HELP}
${timeoutHelp(TIMEOUT_SEC.attest)}

Exit codes: 0 affirming, 3 warning, 1 contraindicated, 4 agent unreachable, refused or no answer in time, 2 usage.`,
  async run(argv, io) {
    const { values } = parseOptions(argv, { ...socketOpt, nonce: { type: 'string' }, bundle: { type: 'boolean' }, json: { type: 'boolean' } });
    const nonce = nonceArg(values.nonce, false);
    const wait = timeoutMs(values.timeout, TIMEOUT_SEC.attest);
    const r = await callApi(values.socket ?? defaultSocket(io.env), 'POST', '/v1/attest', nonce ? { nonce } : {}, wait);
    if (r.status !== 200) return refused(io, 'attest', r);
    const doc = r.json() as AttestDoc;
    const asJson = values.json || values.bundle || !io.stdout.isTTY;
    if (asJson) io.stdout.write(`${JSON.stringify(values.bundle ? doc : { status: doc.status, ear: doc.ear }, null, 2)}\n`);
    else io.stdout.write(formatAttest(doc));
    return exitForStatus(doc.status);
  },
};

export const evidenceCommand: Command = {
  path: ['evidence'],
  usage: `Usage: cvm-agent evidence --nonce HEX [--out FILE] [--socket PATH] [--timeout SEC]

Prints (or writes to FILE) the evidence bundle: SNP report or Azure HCL report + vTPM quote, every
GPU's SPDM report and certificate chain, the agent's public key and its agent id, all bound to your
nonce (a verifier recomputes the binding from the bundle's agentId and must check that id itself).
By default only root and the agent's own user may ask (api.authorization.evidence): evidence for a
nonce you choose can answer someone else's challenge as this VM (docs/config.md, "API authorization").

Options:
  --nonce HEX    your nonce, 8 to 64 bytes of hex (required): the bundle is bound to it
  --out FILE     write the bundle (JSON) to FILE instead of stdout (mode 0644)
${SOCKET_HELP}
${timeoutHelp(TIMEOUT_SEC.evidence)}

Exit codes: 0 ok, 4 agent unreachable, refused or no answer in time, 2 usage.`,
  async run(argv, io) {
    const { values } = parseOptions(argv, { ...socketOpt, nonce: { type: 'string' }, out: { type: 'string' } });
    const nonce = nonceArg(values.nonce, true)!;
    const wait = timeoutMs(values.timeout, TIMEOUT_SEC.evidence);
    const r = await callApi(values.socket ?? defaultSocket(io.env), 'GET', `/v1/evidence?nonce=${nonce}`, undefined, wait);
    if (r.status !== 200) return refused(io, 'evidence', r);
    const text = `${JSON.stringify(r.json(), null, 2)}\n`;
    if (values.out) {
      const { writeFile } = await import('node:fs/promises');
      await writeFile(values.out, text, { mode: 0o644 });
    } else io.stdout.write(text);
    return EXIT.OK;
  },
};

function problemCode(r: Parameters<typeof problemText>[0]): string | undefined {
  try {
    return (r.json() as { code?: string }).code;
  } catch {
    return undefined;
  }
}

/** The token's own verdict: fail closed on anything but an unexpired affirming (or warning) token. */
export function tokenVerdict(token: string, now = Date.now()): { ok: true; status: 'affirming' | 'warning' } | { ok: false; why: string } {
  let claims: Record<string, unknown>;
  try {
    claims = decodeJwt(token);
  } catch (err) {
    return { ok: false, why: `the agent returned something that is not a JWT (${(err as Error).message})` };
  }
  if (typeof claims.exp !== 'number' || claims.exp * 1000 <= now) {
    return { ok: false, why: `the token expired${typeof claims.exp === 'number' ? ` at ${new Date(claims.exp * 1000).toISOString()}` : ' (no "exp")'}` };
  }
  const status = claims['ear.status'];
  if (status === 'affirming' || status === 'warning') return { ok: true, status };
  return { ok: false, why: `the controller's verdict in the token is ${String(status ?? 'missing').toUpperCase()}: it does not attest this VM` };
}

export const tokenCommand: Command = {
  path: ['token'],
  usage: `Usage: cvm-agent token [--json] [--socket PATH] [--timeout SEC]

Prints the latest EAR token the controller issued to this VM (a JWT), while it is valid and its
verdict lets a relying party trust the VM. The token's own claims are checked here too: an expired
token, or one whose ear.status is not affirming, is not printed.

Options:
  --json         print {token, expiresAt, status} as JSON instead of the bare token
${SOCKET_HELP}
${timeoutHelp(TIMEOUT_SEC.token)}

Exit codes: 0 an affirming, unexpired token was printed, 3 printed but its verdict is "warning",
1 no usable token (none issued, expired, contraindicated, or withheld because trust is lost),
4 agent unreachable, refused or no answer in time, 2 usage.`,
  async run(argv, io) {
    const { values } = parseOptions(argv, { ...socketOpt, json: { type: 'boolean' } });
    const r = await callApi(values.socket ?? defaultSocket(io.env), 'GET', '/v1/token', undefined, timeoutMs(values.timeout, TIMEOUT_SEC.token));
    if (r.status === 404 || (r.status === 503 && problemCode(r) === 'ERR_TRUST_LOST')) {
      io.stderr.write(`cvm-agent token: ${problemText(r)}\n`);
      return EXIT.FAILED;
    }
    if (r.status !== 200) return refused(io, 'token', r);
    const t = r.json() as { token: string; expiresAt: string };
    const verdict = tokenVerdict(t.token);
    if (!verdict.ok) {
      io.stderr.write(`cvm-agent token: ${verdict.why}\n`);
      return EXIT.FAILED;
    }
    io.stdout.write(values.json ? `${JSON.stringify({ ...t, status: verdict.status })}\n` : `${t.token}\n`);
    return verdict.status === 'warning' ? EXIT.WARNING : EXIT.OK;
  },
};
