/**
 * Controller checks (pure): one finding per stage of the connection the daemon will make, in order:
 * DNS, TCP, TLS with the configured CA, the bearer token (the WebSocket upgrade), and the protocol
 * version (hello/welcome). A stage that could not run says which earlier one stopped it. The probe that
 * gathers these facts (doctor/probe-controller.ts) never sends evidence.
 */
import { fail, pass, skipped, warn, type Finding } from './finding.js';

const A = 'controller' as const;

export type StageResult = { ok: true; detail: string } | { ok: false; detail: string; status?: number; code?: number } | { skipped: string };

export interface ControllerProbe {
  url: string;
  insecure: boolean;
  caFile?: string;
  tokenFile?: string;
  clientCert: boolean;
  dns?: StageResult;
  tcp?: StageResult;
  tls?: StageResult;
  token?: StageResult;
  protocol?: StageResult;
}

const STAGES = ['dns', 'tcp', 'tls', 'token', 'protocol'] as const;

function stageFix(stage: (typeof STAGES)[number], p: ControllerProbe, r: { detail: string; status?: number; code?: number }): string {
  switch (stage) {
    case 'dns':
      return `check controller.url (${p.url}) and the VM's resolver: getent hosts <host>`;
    case 'tcp':
      return 'check that the controller runs and that the network (NSG, firewall, proxy) lets this VM reach its port';
    case 'tls':
      return /self.signed|unable to get|issuer|verify|certificate/i.test(r.detail)
        ? `controller.caFile${p.caFile ? ` (${p.caFile})` : ''} must hold the CA that issued the controller's certificate: compare with "openssl s_client -connect <host>:<port> -showcerts"`
        : /altname|hostname|Host:|IP:/i.test(r.detail)
          ? "the controller's certificate does not name this host: use the name it was issued for in controller.url"
          : "check controller.caFile, controller.certFile/keyFile (mutual TLS) and the controller's TLS settings";
    case 'token':
      return r.status === 401 || r.status === 403
        ? `the controller refused the credentials: put a valid token in ${p.tokenFile ?? '/etc/cvm-agent/controller-token (LoadCredential=) or controller.tokenFile'}${p.clientCert ? ', and check the client certificate (controller.certFile)' : ''}`
        : 'check controller.url (its path) and that it is a cvm-agent controller';
    case 'protocol':
      return r.code === 4001
        ? 'the controller speaks another protocol version: upgrade the older of the two (cvm-agent --version)'
        : r.code === 4003
          ? "the controller refused this agent id (controller.agentId or the host name): see the detail, and the controller's agents.tokens"
          : "check the controller's log for this connection";
  }
}

export function controllerFindings(p: ControllerProbe | undefined): Finding[] {
  if (!p)
    return [
      skipped('controller.link', A, 'no controller configured (controller.url): the agent attests locally only', 'set controller.url to use a controller'),
    ];
  const out: Finding[] = [];
  let stopped: string | undefined;
  for (const stage of STAGES) {
    const id = `controller.${stage}`;
    const r = p[stage];
    if (stopped || !r) {
      out.push(skipped(id, A, stopped ? `${stopped} failed` : 'not reached'));
      continue;
    }
    if ('skipped' in r) {
      out.push(skipped(id, A, r.skipped));
      continue;
    }
    if (!r.ok) {
      out.push(fail(id, A, r.detail, stageFix(stage, p, r)));
      stopped = id;
      continue;
    }
    if (stage === 'tls' && p.insecure) {
      out.push(warn(id, A, r.detail, 'use wss:// with controller.caFile; controller.insecure: true is for loopback tests and demos only'));
      continue;
    }
    out.push(pass(id, A, r.detail));
  }
  return out;
}
