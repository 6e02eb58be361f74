/**
 * Client commands for a running agent, over the local socket: status, health, attest, evidence, token.
 * Exit codes scripts can use: 0 ok/affirming, 3 degraded/warning, 1 failing/contraindicated,
 * 4 agent unreachable or the request was refused, 2 usage.
 */
import { EXIT, parseOptions, type CliIO, type Command } from '../command.js';
import { callApi, defaultSocket, problemText } from '../api-client.js';
import { UsageError } from '../../errors.js';
import { hexToBytes } from '../../util/bytes.js';

const socketOpt = { socket: { type: 'string' } } as const;
const SOCKET_HELP = '  --socket PATH  agent socket (default $CVM_AGENT_SOCKET or /run/cvm-agent/api.sock)';
const EXIT_HELP = 'Exit codes: 0 ok, 3 degraded (warnings), 1 failing, 4 agent unreachable or request refused, 2 usage.';

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
  health: { status: string; reasons: string[] };
  policy: string;
  lastAttestation: null | { at: string; status: string; durationMs: number; reason: string; devices: Record<string, { status: string; failed: { name: string; detail: string }[]; warnings: { name: string; detail: string }[] }>; error?: string };
  nextAttestation: null | { at: string; reason: string };
  gpus: { present: boolean; readyState: boolean; readyReason: string };
  controller: { state: string };
  api: { socket: string };
}

export function formatStatus(s: StatusDoc): string {
  const lines = [
    `cvm-agent ${s.version}${s.tee.simulated ? '  [SIMULATED TEE]' : ''}`,
    `  health        ${s.health.status}${s.health.reasons.length ? `: ${s.health.reasons[0]}` : ''}`,
    `  tee           ${s.tee.kind} (${s.tee.source})`,
    `  policy        ${s.policy}`,
    `  last          ${s.lastAttestation ? `${s.lastAttestation.status} at ${s.lastAttestation.at} (${s.lastAttestation.reason}, ${s.lastAttestation.durationMs} ms)` : 'none yet'}`,
    `  next          ${s.nextAttestation ? `${s.nextAttestation.at} (${s.nextAttestation.reason})` : 'not scheduled'}`,
    `  gpu ready     ${s.gpus.present ? (s.gpus.readyState ? 'set' : `not set: ${s.gpus.readyReason}`) : 'no GPUs'}`,
    `  controller    ${s.controller.state}`,
  ];
  if (s.lastAttestation) {
    lines.push('', '  device  status           details');
    for (const [id, d] of Object.entries(s.lastAttestation.devices)) {
      const notes = [...d.failed.map((c) => `FAILED ${c.name}: ${c.detail}`), ...d.warnings.map((c) => `warning ${c.name}: ${c.detail}`)];
      lines.push(`  ${id.padEnd(6)}  ${d.status.padEnd(15)}  ${notes[0] ?? 'all checks passed'}`);
      for (const n of notes.slice(1)) lines.push(`  ${''.padEnd(6)}  ${''.padEnd(15)}  ${n}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

export const statusCommand: Command = {
  path: ['status'],
  summary: 'show the running agent\'s status (a table on a terminal, JSON otherwise)',
  usage: `Usage: cvm-agent status [--json] [--socket PATH]

Shows TEE kind, health, last and next attestation, the verdict per device, GPU ready state and the
controller link of the running agent.

Options:
  --json         print JSON (the default when stdout is not a terminal)
  --table        print the table even when stdout is not a terminal
${SOCKET_HELP}

${EXIT_HELP}`,
  async run(argv, io) {
    const { values } = parseOptions(argv, { ...socketOpt, json: { type: 'boolean' }, table: { type: 'boolean' } });
    const r = await callApi(values.socket ?? defaultSocket(io.env), 'GET', '/v1/status');
    if (r.status !== 200) return refused(io, 'status', r);
    const s = r.json() as StatusDoc;
    const asJson = values.json || (!values.table && !io.stdout.isTTY);
    io.stdout.write(asJson ? `${JSON.stringify(s, null, 2)}\n` : formatStatus(s));
    return exitForStatus(s.health.status);
  },
};

export const healthCommand: Command = {
  path: ['health'],
  summary: 'print ok | degraded | failing and why (for scripts and probes)',
  usage: `Usage: cvm-agent health [--json] [--socket PATH]

Options:
  --json         print the health object as JSON
${SOCKET_HELP}

${EXIT_HELP}`,
  async run(argv, io) {
    const { values } = parseOptions(argv, { ...socketOpt, json: { type: 'boolean' } });
    const r = await callApi(values.socket ?? defaultSocket(io.env), 'GET', '/v1/health');
    if (r.status !== 200 && r.status !== 503) return refused(io, 'health', r);
    const h = r.json() as { status: string; reasons: string[] };
    io.stdout.write(values.json ? `${JSON.stringify(h)}\n` : `${h.status}\n${h.reasons.map((x) => `  ${x}\n`).join('')}`);
    return exitForStatus(h.status);
  },
};

export const attestCommand: Command = {
  path: ['attest'],
  summary: 'run an attestation cycle now (joins a running one) and print the EAR',
  usage: `Usage: cvm-agent attest [--nonce HEX] [--bundle] [--socket PATH]

Asks the running agent for a cycle now. With --nonce (8-64 bytes of hex) the evidence is bound to
your nonce; without it a running cycle is joined.

Options:
  --nonce HEX    bind the cycle to this nonce
  --bundle       also print the evidence bundle
${SOCKET_HELP}

Exit codes: 0 affirming, 3 warning, 1 contraindicated, 4 agent unreachable or refused, 2 usage.`,
  async run(argv, io) {
    const { values } = parseOptions(argv, { ...socketOpt, nonce: { type: 'string' }, bundle: { type: 'boolean' } });
    const nonce = nonceArg(values.nonce, false);
    const r = await callApi(values.socket ?? defaultSocket(io.env), 'POST', '/v1/attest', nonce ? { nonce } : {});
    if (r.status !== 200) return refused(io, 'attest', r);
    const doc = r.json() as { status: string; ear: unknown; bundle: unknown };
    io.stdout.write(`${JSON.stringify(values.bundle ? doc : { status: doc.status, ear: doc.ear }, null, 2)}\n`);
    return exitForStatus(doc.status);
  },
};

export const evidenceCommand: Command = {
  path: ['evidence'],
  summary: 'fetch fresh evidence bound to your nonce (for your own verifier)',
  usage: `Usage: cvm-agent evidence --nonce HEX [--out FILE] [--socket PATH]

Prints (or writes to FILE) the evidence bundle: SNP report or Azure HCL report + vTPM quote, every
GPU's SPDM report and certificate chain, the agent's public key and its agent id, all bound to your
nonce (a verifier recomputes the binding from the bundle's agentId and must check that id itself).

${SOCKET_HELP}

Exit codes: 0 ok, 4 agent unreachable or refused, 2 usage.`,
  async run(argv, io) {
    const { values } = parseOptions(argv, { ...socketOpt, nonce: { type: 'string' }, out: { type: 'string' } });
    const nonce = nonceArg(values.nonce, true)!;
    const r = await callApi(values.socket ?? defaultSocket(io.env), 'GET', `/v1/evidence?nonce=${nonce}`);
    if (r.status !== 200) return refused(io, 'evidence', r);
    const text = `${JSON.stringify(r.json(), null, 2)}\n`;
    if (values.out) {
      const { writeFile } = await import('node:fs/promises');
      await writeFile(values.out, text, { mode: 0o644 });
    } else io.stdout.write(text);
    return EXIT.OK;
  },
};

export const tokenCommand: Command = {
  path: ['token'],
  summary: 'print the controller-issued attestation token, if still valid',
  usage: `Usage: cvm-agent token [--json] [--socket PATH]

Prints the latest EAR token the controller issued to this VM (a JWT), while it is valid.

${SOCKET_HELP}

Exit codes: 0 a valid token was printed, 1 no valid token, 4 agent unreachable or refused, 2 usage.`,
  async run(argv, io) {
    const { values } = parseOptions(argv, { ...socketOpt, json: { type: 'boolean' } });
    const r = await callApi(values.socket ?? defaultSocket(io.env), 'GET', '/v1/token');
    if (r.status === 404) {
      io.stderr.write(`cvm-agent token: ${problemText(r)}\n`);
      return EXIT.FAILED;
    }
    if (r.status !== 200) return refused(io, 'token', r);
    const t = r.json() as { token: string; expiresAt: string };
    io.stdout.write(values.json ? `${JSON.stringify(t)}\n` : `${t.token}\n`);
    return EXIT.OK;
  },
};
