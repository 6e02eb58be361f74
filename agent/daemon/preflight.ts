/**
 * The one validation path: `cvm-agent config check`, `cvm-agent run` and SIGHUP all run exactly
 * this, so "valid" means "will start" and a reload that would fail changes nothing. Beyond the
 * schema (schema.ts) it checks what only the environment can tell: the cron expression with
 * node-cron's own parser (the one the scheduler uses), user and group names in the authorization
 * table resolved from /etc/passwd and /etc/group (read, never a spawned getent), every referenced
 * file read and parsed (policy.file, controller CA/certificate/key/token/token key, the NVML library path),
 * the agent id (controller.agentId or the host name),
 * the API socket's directory, and the systemctl binary when units are to be stopped or started.
 * Every problem is collected, so one run lists them all.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { constants } from 'node:fs';
import { hostname } from 'node:os';
import { access, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import cron from 'node-cron';
import { AGENT_ID } from '../formats/nonce-binding.js';
import { ConfigError } from '../errors.js';
import { InputFileError, readBoundedText, type InputKind } from '../util/bounded-read.js';
import { parseIdDatabase, resolveTable, type AuthorizationTable } from '../api/authz.js';
import type { AppraisalPolicy } from '../appraise/policy.js';
import { loadPolicy } from './sources.js';
import { maxAttestationAgeSec } from './health.js';
import { loadConfigFile } from '../config/load.js';
import { DEFAULTS, type Config } from '../config/schema.js';
import { problemsError } from '../config/validate.js';
import { pemBlockTexts } from '../util/pem.js';

export interface ValidatedConfig {
  config: Config;
  authz: AuthorizationTable;
  policy: AppraisalPolicy;
  /** The staleness bound in force (health.maxAgeSec or its default). */
  maxAgeSec: number;
  /** This agent's id, bound into every report (agentIdFrom). */
  agentId: string;
}

/** This agent's id (bound into every report): controller.agentId, else the host name. */
export function agentIdFrom(config: Config): string {
  const id = config.controller.agentId ?? hostname();
  if (!AGENT_ID.test(id))
    throw new ConfigError(
      `controller.agentId: the host name "${id.slice(0, 128)}" is not a usable agent id (1..128 of letters, digits, ".", "_", ":", "@", "-"); set controller.agentId`,
    );
  return id;
}

/** systemd's directories override the built-in defaults, never an explicit config value. */
export function applySystemdDirectories(config: Config, env: NodeJS.ProcessEnv): Config {
  const first = (v: string | undefined) => v?.split(':')[0];
  const c = structuredClone(config);
  if (c.state.dir === DEFAULTS.state.dir && first(env.STATE_DIRECTORY)) c.state.dir = first(env.STATE_DIRECTORY)!;
  if (c.collateral.dir === DEFAULTS.collateral.dir && first(env.CACHE_DIRECTORY)) c.collateral.dir = first(env.CACHE_DIRECTORY)!;
  if (c.api.socket === DEFAULTS.api.socket && first(env.RUNTIME_DIRECTORY)) c.api.socket = join(first(env.RUNTIME_DIRECTORY)!, 'api.sock');
  if (c.simulation.dir === DEFAULTS.simulation.dir && first(env.STATE_DIRECTORY)) c.simulation.dir = join(first(env.STATE_DIRECTORY)!, 'simulation');
  return c;
}

async function readIdDb(path: string): Promise<Map<string, number>> {
  try {
    return parseIdDatabase(await readBoundedText(path, 'idDatabase'));
  } catch {
    return new Map();
  }
}

/** Name -> id from the local files; NSS-only accounts (LDAP, sssd) must be given as numeric ids. */
export async function resolveAuthorization(config: Config): Promise<{ table: AuthorizationTable; errors: string[] }> {
  const [users, groups] = await Promise.all([readIdDb('/etc/passwd'), readIdDb('/etc/group')]);
  const r = resolveTable(config.api.authorization, users, groups);
  return { table: r.table, errors: r.errors.map((e) => `${e} (not in /etc/passwd or /etc/group; use a numeric id for accounts from other NSS sources)`) };
}

export function cronProblems(expr: string): string[] {
  const v = cron.validateDetailed(expr);
  if (v.valid) return [];
  const why = v.errors.map((e) => (e.field ? `${e.field}: ${e.message}` : e.message)).join('; ');
  return [`schedule.cron: "${expr}" is not a valid cron expression (${why || 'rejected by node-cron'})`];
}

async function readText(path: string, key: string, kind: InputKind, problems: string[]): Promise<string | undefined> {
  try {
    return await readBoundedText(path, kind);
  } catch (err) {
    // A file over its size limit or of the wrong type says so itself (InputFileError: "<path>: why").
    problems.push(
      err instanceof InputFileError
        ? `${key}: ${err.message}`
        : `${key}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
    return undefined;
  }
}

async function checkCertificates(path: string | undefined, key: string, problems: string[]): Promise<void> {
  if (!path) return;
  const text = await readText(path, key, 'certificate', problems);
  if (text === undefined) return;
  const blocks = pemBlockTexts(text);
  if (blocks.length === 0) return void problems.push(`${key}: ${path} holds no PEM certificate`);
  for (const [i, b] of blocks.entries()) {
    try {
      new X509Certificate(b);
    } catch (err) {
      problems.push(`${key}: certificate ${i + 1} in ${path} does not parse: ${(err as Error).message}`);
    }
  }
}

async function checkControllerFiles(c: Config['controller'], problems: string[]): Promise<void> {
  await checkCertificates(c.caFile, 'controller.caFile', problems);
  await checkCertificates(c.certFile, 'controller.certFile', problems);
  if (c.keyFile) {
    const text = await readText(c.keyFile, 'controller.keyFile', 'privateKey', problems);
    if (text !== undefined) {
      try {
        createPrivateKey(text);
      } catch (err) {
        problems.push(`controller.keyFile: ${c.keyFile} is not a usable private key: ${(err as Error).message}`);
      }
    }
  }
  if (Boolean(c.certFile) !== Boolean(c.keyFile)) problems.push('controller: certFile and keyFile go together (the TLS client certificate and its key)');
  if (c.tokenFile) await readText(c.tokenFile, 'controller.tokenFile', 'token', problems);
  if (c.tokenKey) {
    try {
      const { loadTokenKeys } = await import('../link/verdict.js');
      await loadTokenKeys(c.tokenKey);
    } catch (err) {
      problems.push((err as Error).message);
    }
  }
}

async function isDirectory(path: string): Promise<string | undefined> {
  try {
    return (await stat(path)).isDirectory() ? undefined : 'is not a directory';
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'does not exist' : (err as Error).message;
  }
}

/** Everything beyond the schema; throws one ConfigError listing every problem. */
export async function validateConfig(config: Config, env: NodeJS.ProcessEnv = process.env, source = 'config'): Promise<ValidatedConfig> {
  const problems: string[] = cronProblems(config.schedule.cron);
  let agentId = '';
  try {
    agentId = agentIdFrom(config);
  } catch (err) {
    problems.push((err as Error).message);
  }
  const { table, errors } = await resolveAuthorization(config);
  problems.push(...errors);
  let policy: AppraisalPolicy | undefined;
  try {
    policy = await loadPolicy(config);
  } catch (err) {
    // loadPolicyFile's errors already start with "policy.file <path>".
    const msg = (err as Error).message;
    problems.push(msg.startsWith('policy.file') ? msg : `policy.file: ${msg}`);
  }
  await checkControllerFiles(config.controller, problems);
  // Under socket activation systemd owns the socket; otherwise its directory must exist (the agent does not create it).
  const activated = Number(env.LISTEN_FDS ?? '0') > 0 && Number(env.LISTEN_PID ?? '0') === process.pid;
  if (!activated) {
    const dir = dirname(config.api.socket);
    const bad = await isDirectory(dir);
    if (bad) problems.push(`api.socket: the directory ${dir} ${bad}`);
  }
  if (config.devices.nvmlLibrary) {
    const bad = await stat(config.devices.nvmlLibrary).then(
      (s) => (s.isFile() ? undefined : 'is not a file'),
      (err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? 'does not exist' : err.message),
    );
    if (bad) problems.push(`devices.nvmlLibrary: ${config.devices.nvmlLibrary} ${bad}`);
  }
  const units = config.consequences.units;
  if (units.stop.length + units.start.length > 0) {
    await access(config.consequences.systemctl, constants.X_OK).catch((err: NodeJS.ErrnoException) => {
      problems.push(
        `consequences.systemctl: ${config.consequences.systemctl} is not executable (${err.code ?? err.message}), and consequences.units lists units to stop/start`,
      );
    });
  }
  for (const [key, dir] of [
    ['state.dir', config.state.dir],
    ['collateral.dir', config.collateral.dir],
  ] as const) {
    const bad = await isDirectory(dir);
    if (bad && bad !== 'does not exist') problems.push(`${key}: ${dir} ${bad}`);
  }
  let maxAgeSec = config.health.maxAgeSec ?? 0;
  if (problems.length === 0) maxAgeSec = maxAttestationAgeSec(config);
  if (problems.length > 0 || !policy) throw problemsError(source, problems);
  return { config, authz: table, policy, maxAgeSec, agentId };
}

/** Read, parse, apply systemd's directories, validate: what config check, run and SIGHUP share. */
export async function loadValidatedConfig(
  path: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): Promise<ValidatedConfig & { path: string; found: boolean }> {
  const loaded = await loadConfigFile(path);
  const config = applySystemdDirectories(loaded.config, env);
  const v = await validateConfig(config, env, loaded.path);
  return { ...v, path: loaded.path, found: loaded.found };
}

/** A ConfigError's problem list on one line (for a fatal start error: one line, no stack). */
export function oneLine(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg
    .replace(/:\n\s+- /, ': ')
    .replace(/\n\s+- /g, '; ')
    .replace(/\s*\n\s*/g, ' ');
}
