/**
 * Who may call what on the local socket. The socket's 0660 mode already limits access to root and the
 * cvm-agent group; the table narrows it per endpoint by the peer's kernel credentials: SO_PEERCRED
 * uid and primary gid, and the supplementary groups from SO_PEERGROUPS. Pure: the table and the
 * credentials in, a decision out. Names are resolved to ids once, at config load.
 */
export type Endpoint = 'health' | 'status' | 'attest' | 'evidence' | 'token' | 'secrets' | 'metrics' | 'events';
export const ENDPOINTS: readonly Endpoint[] = ['health', 'status', 'attest', 'evidence', 'token', 'secrets', 'metrics', 'events'];

export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
  /** Supplementary groups (SO_PEERGROUPS); absent when unavailable, and then only `gid` is matched. */
  groups?: readonly number[];
}

/** Resolved rule: numeric ids. A peer is allowed when its uid, its gid or any supplementary group is listed. */
export interface Rule {
  uids?: number[];
  gids?: number[];
}

export type AuthorizationTable = Partial<Record<Endpoint, Rule>>;

/**
 * Defaults, for endpoints the config does not name (a configured rule replaces the default):
 * - health, status, attest (without a caller nonce), token, metrics: anyone who can open the socket;
 * - evidence, and attest with a caller nonce: root and the agent's own user only. Evidence bound to a
 *   nonce the caller chose lets any socket peer relay a controller's challenge and answer it as this
 *   VM (docs/config.md, "API authorization"), so it is not for every member of the socket group;
 * - secrets: nobody until allow-listed (not even root).
 */
export const DEFAULT_TABLE: AuthorizationTable = {
  evidence: { uids: [], gids: [] },
  secrets: { uids: [], gids: [] },
};

export interface Decision {
  allowed: boolean;
  reason: string;
}

const ownUid = (): number => process.getuid?.() ?? -1;

/**
 * `selfUid` is the agent's own uid: it owns the socket, the state directory and the process, so it
 * is trusted like root (for everything but secrets, which only an allow-list releases).
 */
export function authorize(endpoint: Endpoint, peer: PeerCredentials | undefined, table: AuthorizationTable, selfUid: number = ownUid()): Decision {
  const rule = table[endpoint] ?? DEFAULT_TABLE[endpoint];
  if (!rule) return { allowed: true, reason: 'open to every peer that can connect' };
  if (!peer) return { allowed: false, reason: 'peer credentials unavailable, and this endpoint is restricted' };
  if (endpoint !== 'secrets') {
    if (peer.uid === 0) return { allowed: true, reason: 'root' };
    if (peer.uid === selfUid) return { allowed: true, reason: "the agent's own user" };
  }
  if (rule.uids?.includes(peer.uid)) return { allowed: true, reason: `uid ${peer.uid} is allow-listed` };
  if (rule.gids?.includes(peer.gid)) return { allowed: true, reason: `gid ${peer.gid} is allow-listed` };
  const supplementary = peer.groups?.find((g) => rule.gids?.includes(g));
  if (supplementary !== undefined) return { allowed: true, reason: `supplementary group ${supplementary} is allow-listed` };
  const groups =
    peer.groups === undefined
      ? ' (supplementary groups unknown)'
      : peer.groups.length
        ? ` / groups ${peer.groups.slice(0, 16).join(',')}${peer.groups.length > 16 ? ',...' : ''}`
        : '';
  return { allowed: false, reason: `uid ${peer.uid} / gid ${peer.gid}${groups} is not allow-listed for ${endpoint}` };
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
