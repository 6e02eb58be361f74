/**
 * The PostgreSQL store's schema, as numbered migrations applied in order at start (postgres-store.ts
 * `migrate`: one transaction under an advisory lock, so replicas starting together apply each once).
 * A migration is never edited once released: a change is a new version. A controller refuses to start
 * on a database whose schema is newer than LATEST_SCHEMA (it would write rows a newer controller does
 * not expect), with ERR_STORE_SCHEMA.
 *
 * Text columns hold JSON documents (JSON.stringify output: a NUL or a lone surrogate in agent-supplied
 * text is escaped, which jsonb would refuse). Every table is prefixed `cvm_`, so the store can share a
 * database with others.
 */

export interface Migration {
  version: number;
  what: string;
  sql: string;
}

/** The advisory lock key migrations run under (pg_advisory_xact_lock): "cvm" and 1. */
export const MIGRATION_LOCK = 0x63766d01;
/** The advisory lock key of the retention prune (pg_try_advisory_lock: one replica prunes at a time): "cvm" and 2. */
export const PRUNE_LOCK = 0x63766d02;

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    what: 'agents, events, gaps, alarms, attested keys, verdicts, secret releases, challenges',
    sql: `
CREATE TABLE cvm_agents (
  agent_id text PRIMARY KEY,
  last_seq bigint NOT NULL CHECK (last_seq >= 0),
  credential text,
  record text NOT NULL,
  summary text NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  updated_by text NOT NULL
);
CREATE TABLE cvm_events (
  agent_id text NOT NULL REFERENCES cvm_agents (agent_id),
  seq bigint NOT NULL CHECK (seq > 0),
  hash text NOT NULL,
  kind text NOT NULL,
  doc text NOT NULL,
  received_at timestamptz NOT NULL,
  PRIMARY KEY (agent_id, seq)
);
CREATE TABLE cvm_gaps (
  agent_id text NOT NULL REFERENCES cvm_agents (agent_id),
  from_seq bigint NOT NULL,
  to_seq bigint NOT NULL CHECK (to_seq >= from_seq),
  reason text NOT NULL,
  doc text NOT NULL,
  PRIMARY KEY (agent_id, from_seq)
);
CREATE TABLE cvm_alarms (
  id bigserial PRIMARY KEY,
  agent_id text NOT NULL REFERENCES cvm_agents (agent_id),
  seq bigint NOT NULL,
  code text NOT NULL,
  doc text NOT NULL
);
CREATE TABLE cvm_attested_keys (
  agent_id text NOT NULL REFERENCES cvm_agents (agent_id),
  jkt text NOT NULL,
  jwk text NOT NULL,
  first_at timestamptz NOT NULL,
  PRIMARY KEY (agent_id, jkt)
);
CREATE TABLE cvm_verdicts (
  challenge_id text PRIMARY KEY,
  agent_id text NOT NULL REFERENCES cvm_agents (agent_id),
  at timestamptz NOT NULL,
  status text NOT NULL,
  doc text NOT NULL,
  replica text NOT NULL
);
CREATE INDEX cvm_verdicts_agent ON cvm_verdicts (agent_id, at);
CREATE TABLE cvm_secret_releases (
  id bigserial PRIMARY KEY,
  agent_id text NOT NULL REFERENCES cvm_agents (agent_id),
  secret text NOT NULL,
  at timestamptz NOT NULL,
  challenge_id text NOT NULL REFERENCES cvm_verdicts (challenge_id),
  status text NOT NULL,
  jkt text NOT NULL,
  replica text NOT NULL
);
CREATE INDEX cvm_secret_releases_agent ON cvm_secret_releases (agent_id, at);
CREATE TABLE cvm_challenges (
  id text PRIMARY KEY,
  agent_id text NOT NULL,
  session_kid text NOT NULL,
  nonce bytea NOT NULL,
  issued_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  issued_by text NOT NULL,
  answered_at timestamptz,
  answered_by text
);
CREATE INDEX cvm_challenges_expiry ON cvm_challenges (expires_at);
`,
  },
  {
    version: 2,
    what: 'session leases: one live session per agent id over all replicas',
    sql: `
CREATE TABLE cvm_sessions (
  agent_id text PRIMARY KEY,
  replica text NOT NULL,
  session_id text NOT NULL,
  bound boolean NOT NULL,
  attested boolean NOT NULL,
  heartbeat_at timestamptz NOT NULL
);
CREATE INDEX cvm_sessions_replica ON cvm_sessions (replica);
`,
  },
];

export const LATEST_SCHEMA = MIGRATIONS[MIGRATIONS.length - 1]!.version;
