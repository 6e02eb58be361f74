/**
 * Who may call what on the local socket. The socket's 0660 mode already limits access to root and the
 * cvm-agent group; the table narrows it per endpoint by the peer's SO_PEERCRED uid/gid. Pure: the
 * table and the credentials in, a decision out. Names are resolved to ids once, at config load.
 */
export type Endpoint = 'health' | 'status' | 'attest' | 'evidence' | 'token' | 'secrets' | 'metrics' | 'events';
export const ENDPOINTS: readonly Endpoint[] = ['health', 'status', 'attest', 'evidence', 'token', 'secrets', 'metrics', 'events'];

export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}

/** Resolved rule: numeric ids; `undefined` lists mean "anyone who can open the socket". */
export interface Rule {
  uids?: number[];
  gids?: number[];
}

export type AuthorizationTable = Partial<Record<Endpoint, Rule>>;

/**
 * Defaults: anyone who can open the socket may read health/status/metrics, ask for evidence, run an
 * attestation and read the token; secrets are released to nobody until allow-listed explicitly.
 */
export const DEFAULT_TABLE: AuthorizationTable = {
  secrets: { uids: [], gids: [] },
};

export interface Decision {
  allowed: boolean;
  reason: string;
}

export function authorize(endpoint: Endpoint, peer: PeerCredentials | undefined, table: AuthorizationTable): Decision {
  const rule = table[endpoint] ?? DEFAULT_TABLE[endpoint];
  if (!rule) return { allowed: true, reason: 'open to every peer that can connect' };
  if (!peer) return { allowed: false, reason: 'peer credentials unavailable, and this endpoint is restricted' };
  if (peer.uid === 0 && endpoint !== 'secrets') return { allowed: true, reason: 'root' };
  if (rule.uids?.includes(peer.uid)) return { allowed: true, reason: `uid ${peer.uid} is allow-listed` };
  if (rule.gids?.includes(peer.gid)) return { allowed: true, reason: `gid ${peer.gid} is allow-listed` };
  return { allowed: false, reason: `uid ${peer.uid} / gid ${peer.gid} is not allow-listed for ${endpoint}` };
}

/** Parse /etc/passwd or /etc/group text into name -> id. */
export function parseIdDatabase(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length >= 3 && f[0] && /^\d+$/.test(f[2]!)) out.set(f[0], Number(f[2]));
  }
  return out;
}

/** Resolve names to ids; unknown names are reported (the config is then rejected). */
export function resolveTable(
  raw: Record<string, { uids?: string[]; gids?: string[] }>,
  users: Map<string, number>,
  groups: Map<string, number>,
): { table: AuthorizationTable; errors: string[] } {
  const errors: string[] = [];
  const table: AuthorizationTable = {};
  const resolve = (names: string[] | undefined, db: Map<string, number>, what: string, path: string) =>
    names?.flatMap((n) => {
      if (/^\d+$/.test(n)) return [Number(n)];
      const id = db.get(n);
      if (id === undefined) {
        errors.push(`${path}: unknown ${what} "${n}"`);
        return [];
      }
      return [id];
    });
  for (const [endpoint, rule] of Object.entries(raw)) {
    const base = `api.authorization.${endpoint}`;
    const r: Rule = {};
    const uids = resolve(rule.uids, users, 'user', `${base}.uids`);
    const gids = resolve(rule.gids, groups, 'group', `${base}.gids`);
    if (uids) r.uids = uids;
    if (gids) r.gids = gids;
    table[endpoint as Endpoint] = r;
  }
  return { table, errors };
}
