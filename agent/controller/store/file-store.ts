/**
 * The embedded store (no server): one JSON file per agent in stateDir, `<agentId>.json`, written
 * atomically (util/atomic-file.ts), in the format the controller has always written, so existing
 * state directories keep working. The ledgers live in the record, bounded as registry.ts says
 * (recent events, hashes of the last seqs, gaps, alarms, keys, the last verdict); the secret-release
 * audit is appended to `secret-releases.jsonl` (one JSON object a line, written before the record
 * that names the verdict); when an append would take it past `releaseLogBytes` it is first renamed to
 * `secret-releases.jsonl.1` (replacing the previous one), so the audit takes at most twice that many
 * bytes plus one write, and the newest lines are always kept. Without a stateDir nothing is written (memory only).
 * Why files and not an embedded database: see docs/controller.md "Deployment" (no server and no
 * native dependency; the measured cost per event is in the benchmark).
 */
import { appendFile, mkdir, readdir, rename, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { readBoundedText } from '../../util/bounded-read.js';
import { writeFileAtomic } from '../../util/atomic-file.js';
import { AGENT_ID } from '../config.js';
import { ParseError } from '../../errors.js';
import type { AgentRecord } from '../registry.js';
import type { AgentDelta, ControllerStore } from './controller-store.js';
import { MemoryChallenges } from './memory-challenges.js';

export const RELEASE_LOG = 'secret-releases.jsonl';
/** Default byte cap of secret-releases.jsonl before it rotates (config.ts store.retention.releaseLogBytes). */
export const RELEASE_LOG_BYTES = 64 * 1024 * 1024;

/** A parsed agent file, checked for the fields the registry relies on. */
export function checkAgentRecord(rec: unknown, id: string): AgentRecord {
  const r = rec as AgentRecord;
  if (
    typeof r !== 'object' ||
    r === null ||
    r.agentId !== id ||
    !Number.isSafeInteger(r.lastSeq) ||
    r.lastSeq < 0 ||
    !Array.isArray(r.gaps) ||
    !Array.isArray(r.attestedKeys) ||
    !Array.isArray(r.recentEvents)
  ) {
    throw new ParseError('not an agent record');
  }
  return r;
}

export class FileStore implements ControllerStore {
  readonly kind = 'files';
  readonly shared = false;
  readonly challenges = new MemoryChallenges();
  readonly durable: boolean;
  private dirReady: Promise<void> | undefined;
  /** Bytes in secret-releases.jsonl (read once, then counted). */
  private logBytes: number | undefined;

  constructor(
    readonly stateDir: string | undefined,
    readonly replicaId = 'controller',
    readonly releaseLogBytes = RELEASE_LOG_BYTES,
  ) {
    this.durable = stateDir !== undefined;
  }

  private ensureDir(): Promise<void> {
    this.dirReady ??= this.stateDir ? mkdir(this.stateDir, { recursive: true, mode: 0o700 }).then(() => undefined) : Promise.resolve();
    return this.dirReady;
  }

  async loadAgents(onProblem: (where: string, why: string) => void = () => undefined): Promise<AgentRecord[]> {
    if (!this.stateDir) return [];
    await this.ensureDir();
    const out: AgentRecord[] = [];
    for (const name of await readdir(this.stateDir)) {
      if (!name.endsWith('.json')) continue;
      const id = name.slice(0, -5);
      if (!AGENT_ID.test(id)) continue;
      try {
        out.push(checkAgentRecord(JSON.parse(await readBoundedText(join(this.stateDir, name), 'agentRecord')), id));
      } catch (err) {
        onProblem(name, (err as Error).message);
      }
    }
    return out;
  }

  async loadAgent(agentId: string): Promise<AgentRecord | undefined> {
    if (!this.stateDir || !AGENT_ID.test(agentId)) return undefined;
    try {
      return checkAgentRecord(JSON.parse(await readBoundedText(join(this.stateDir, `${agentId}.json`), 'agentRecord')), agentId);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async saveAgent(record: AgentRecord, delta: AgentDelta): Promise<void> {
    if (!this.stateDir) return;
    await this.ensureDir();
    if (delta.releases.length > 0) await this.appendReleases(delta.releases.map((r) => `${JSON.stringify(r)}\n`).join(''));
    await writeFileAtomic(join(this.stateDir, `${record.agentId}.json`), `${JSON.stringify(record, null, 1)}\n`);
  }

  /** Append to the release audit, rotating it first when the lines would take it past its cap. */
  private async appendReleases(lines: string): Promise<void> {
    const file = join(this.stateDir!, RELEASE_LOG);
    const add = Buffer.byteLength(lines);
    if (this.logBytes === undefined) {
      this.logBytes = await stat(file).then(
        (s) => s.size,
        (err: NodeJS.ErrnoException) => {
          if (err.code === 'ENOENT') return 0;
          throw err;
        },
      );
    }
    if (this.logBytes > 0 && this.logBytes + add > this.releaseLogBytes) {
      await rename(file, `${file}.1`);
      this.logBytes = 0;
    }
    try {
      await appendFile(file, lines, { mode: 0o600 });
      this.logBytes += add;
    } catch (err) {
      // A partial append: re-read the size next time.
      this.logBytes = undefined;
      throw err;
    }
  }

  async close(): Promise<void> {}
}
