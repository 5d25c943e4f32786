/**
 * Nova as the token source (`[porthole] token_source = nova`): console tokens minted by Nova
 * itself (nova-compute's `ConsoleAuthToken.authorize`) are validated read-only against Nova's own
 * `console_auth_tokens` table, in the database of Nova's `[database] connection`. Exactly Nova's
 * rule (`console_auth_token_get_valid`): `token_hash = sha256(token)` hex, `expires > now` in whole
 * seconds, reusable until then. SELECT only: a database user that may read `console_auth_tokens`
 * and `instances` is enough. This source validates; it never issues or revokes (Nova does).
 *
 * On top of the row, the instance row is checked (exists, not deleted, console not moved away by
 * a migration or shelve-offload): the part of nova-novncproxy's stale-port protection that the
 * database can answer (CVE-2013-0335 class).
 */
import { createHash } from 'node:crypto';
import { PortholeError } from '../errors.js';
import { connectionDisplayName, openPool, parseConnection, type SqlPool } from './sql-store.js';
import { describeStoreFailure, sharedStoreHealth, SYSTEM_CLOCK, type TokenLookup, type TokenSource, type TokenSourceHealth, type TokenStoreClock } from './store.js';
import type { ConnectInfo } from '../console/types.js';

/** Nova instance states in which the console is not where the token says (Zed task/vm states). */
const MOVED_TASK_STATES = new Set(['migrating', 'resize_migrating', 'resize_migrated', 'resize_finish', 'shelving_offloading', 'rebuilding', 'evacuating']);
const GONE_VM_STATES = new Set(['shelved_offloaded', 'deleted', 'soft-delete']);

/** Nova's console types and the Porthole protocol of each. */
const NOVA_CONSOLE_TYPES: Readonly<Record<string, ConnectInfo['protocol']>> = { novnc: 'vnc', serial: 'serial', 'spice-html5': 'spice' };

export interface NovaTokenSourceOptions {
  /** Nova's `[database] connection` (SQLAlchemy URL). */
  readonly connection: string;
  readonly clock?: TokenStoreClock;
  readonly timeoutMs?: number;
}

/** A parsed SQLAlchemy URL: an SQLite file, or a server database (driver-ready URL). Pure. */
export function parseNovaConnection(connection: string): { kind: 'sqlite'; path: string } | { kind: 'postgresql' | 'mysql'; url: URL } {
  const sqlite = /^sqlite(\+[a-z0-9_]+)?:\/\/(.*)$/i.exec(connection);
  if (sqlite) {
    // sqlite:////abs/path (four slashes) is absolute; sqlite:///rel/path is relative to the working directory.
    const path = ((sqlite[2] ?? '').split('?')[0] ?? '').replace(/^\//, '');
    if (path === '') throw new PortholeError('PH_ERR_CONFIG_INVALID', '[database] connection: sqlite:// in memory cannot be shared with Nova; name the file (sqlite:////var/lib/nova/nova.sqlite)');
    return { kind: 'sqlite', path };
  }
  const { dialect, url } = parseConnection(connection.replace(/\?.*$/, ''));
  return { kind: dialect, url };
}

interface NovaRow {
  console_type: string;
  host: string;
  port: number;
  internal_access_path: string | null;
  instance_uuid: string;
  expires: number;
  access_url_base: string | null;
  display_name: string | null;
  deleted: number | null;
  vm_state: string | null;
  task_state: string | null;
  instance_id: number | null;
  instance_host: string | null;
  instance_node: string | null;
  project_id?: string | null;
}

const SELECT_SQL = `SELECT t.console_type, t.host, t.port, t.internal_access_path, t.instance_uuid, t.expires, t.access_url_base,
  i.display_name, i.deleted, i.vm_state, i.task_state, i.id AS instance_id, i.host AS instance_host, i.node AS instance_node, i.project_id
  FROM console_auth_tokens t LEFT JOIN instances i ON i.uuid = t.instance_uuid AND i.deleted = 0
  WHERE t.token_hash = ?`;

/** What Nova's row (and its instance row) mean for a console. Pure. */
export function lookupFromNovaRow(row: NovaRow | undefined, nowSeconds: number): TokenLookup {
  if (row === undefined) return { status: 'unknown' };
  if (Number(row.expires) <= nowSeconds) return { status: 'expired' };
  if (row.deleted === null || row.deleted === undefined) return { status: 'revoked' }; // no live instance row: deleted
  const moved = (row.task_state !== null && MOVED_TASK_STATES.has(row.task_state)) || (row.vm_state !== null && GONE_VM_STATES.has(row.vm_state));
  if (moved) {
    return { status: 'stale', reason: `instance ${row.instance_uuid} is ${row.task_state ?? row.vm_state}: its console is no longer where the token points` };
  }
  const protocol = NOVA_CONSOLE_TYPES[row.console_type];
  return {
    status: 'valid',
    expiresAt: Number(row.expires) * 1000,
    connectInfo: {
      instance: row.display_name ?? row.instance_uuid,
      instanceUuid: row.instance_uuid,
      protocol: protocol ?? 'vnc',
      consoleType: row.console_type as ConnectInfo['consoleType'],
      host: row.host,
      port: Number(row.port),
      accessUrlBase: row.access_url_base ?? 'http://nova.invalid/',
      ...(row.internal_access_path ? { internalAccessPath: row.internal_access_path } : {}),
      ...(row.instance_id === null || row.instance_id === undefined ? {} : { nova: { id: Number(row.instance_id), host: row.instance_host, node: row.instance_node } }),
      // Who: Nova does not record the requester; the instance's project is what nova mode knows.
      ...(typeof row.project_id === 'string' && row.project_id !== '' ? { who: { project: row.project_id } } : {}),
    },
  };
}

export class NovaTokenSource implements TokenSource {
  readonly backend = 'nova';
  readonly identity: string;
  readonly #query: (token_hash: string) => Promise<NovaRow | undefined>;
  readonly #close: () => Promise<void>;
  readonly #clock: TokenStoreClock;
  readonly #display: string;

  private constructor(display: string, query: (h: string) => Promise<NovaRow | undefined>, close: () => Promise<void>, clock: TokenStoreClock) {
    this.#display = display;
    this.identity = `nova:${display}`;
    this.#query = query;
    this.#close = close;
    this.#clock = clock;
  }

  /** @throws PortholeError PH_ERR_STORE_UNAVAILABLE when Nova's database cannot be opened. */
  static async open(options: NovaTokenSourceOptions): Promise<NovaTokenSource> {
    const parsed = parseNovaConnection(options.connection);
    const clock = options.clock ?? SYSTEM_CLOCK;
    if (parsed.kind === 'sqlite') {
      const { default: Driver } = await import('better-sqlite3');
      let db;
      try {
        db = new Driver(parsed.path, { readonly: true, fileMustExist: true });
        db.pragma('busy_timeout = 2000'); // nova-compute may be writing
      } catch (err) {
        throw new PortholeError('PH_ERR_STORE_UNAVAILABLE', `Nova database ${parsed.path} cannot be opened read-only: ${(err as Error).message}`, { cause: err });
      }
      const select = db.prepare<[string], NovaRow>(SELECT_SQL);
      const source = new NovaTokenSource(`sqlite:${parsed.path}`, async (h) => select.get(h), async () => { db.close(); }, clock);
      return source;
    }
    const display = connectionDisplayName(parsed.url);
    const pool: SqlPool = await openPool(parsed.kind, parsed.url, options.timeoutMs ?? 1000);
    return new NovaTokenSource(`${parsed.kind}:${display}`, async (h) => (await pool.query(SELECT_SQL, [h])).rows[0] as NovaRow | undefined, () => pool.close(), clock);
  }

  async validate(token: string): Promise<TokenLookup> {
    // Nova's tokens are UUID strings; anything else cannot be one (and costs no query).
    if (!/^[0-9a-fA-F-]{32,36}$/.test(token)) return { status: 'unknown' };
    const hash = createHash('sha256').update(token, 'utf8').digest('hex');
    let row: NovaRow | undefined;
    try {
      row = await this.#query(hash);
    } catch (err) {
      throw new PortholeError('PH_ERR_STORE_UNAVAILABLE', `Nova database ${this.#display}: token look-up failed: ${describeStoreFailure(err)}`, { cause: err });
    }
    return lookupFromNovaRow(row, Math.floor(this.#clock.now() / 1000));
  }

  async health(): Promise<TokenSourceHealth> {
    return sharedStoreHealth(this, this.#display, async () => {
      await this.#query('0'.repeat(64));
      return true;
    });
  }

  async close(): Promise<void> {
    await this.#close();
  }
}

