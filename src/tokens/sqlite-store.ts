/**
 * SQLite token store (better-sqlite3, WAL): persistent across restarts on one node.
 * The table mirrors Nova's console_auth_tokens (token_hash, console_type, host, port,
 * instance_uuid, access_url_base, expires) plus the instance name and a revocation mark.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { hostname } from 'node:os';
import type DatabaseConstructor from 'better-sqlite3';
import { PortholeError } from '../errors.js';
import { hashToken, isWellFormedToken, mintToken, TOKEN_TOMBSTONE_MS } from './token.js';
import { storeFingerprint, SYSTEM_CLOCK, type IssuedToken, type TokenLookup, type TokenStore, type TokenStoreClock, type TokenStoreHealth, whoColumn, whoOf } from './store.js';
import type { ConnectInfo, ConsoleProtocol, ConsoleType } from '../console/types.js';

type Database = DatabaseConstructor.Database;

export interface SqliteTokenStoreOptions {
  path: string;
  clock?: TokenStoreClock;
}

interface TokenRecord {
  instance: string;
  instance_uuid: string | null;
  protocol: string;
  console_type: string;
  host: string;
  port: number;
  access_url_base: string;
  who: string | null;
  expires: number;
  revoked_at: number | null;
}

const SCHEMA_SQL = `
CREATE TABLE IF NOT EXISTS console_auth_tokens (
  token_hash      TEXT PRIMARY KEY,
  instance        TEXT NOT NULL,
  instance_uuid   TEXT,
  protocol        TEXT NOT NULL,
  console_type    TEXT NOT NULL,
  host            TEXT NOT NULL,
  port            INTEGER NOT NULL,
  access_url_base TEXT NOT NULL,
  who             TEXT,
  expires         INTEGER NOT NULL,
  revoked_at      INTEGER,
  created_at      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS console_auth_tokens_instance_idx ON console_auth_tokens (instance);
CREATE INDEX IF NOT EXISTS console_auth_tokens_instance_uuid_idx ON console_auth_tokens (instance_uuid);
CREATE INDEX IF NOT EXISTS console_auth_tokens_expires_idx ON console_auth_tokens (expires);
`;

/**
 * What an SQLite failure means for the operator, and what to do: SQLite's own texts ("unable to
 * open database file", "database disk image is malformed") name neither the file nor a remedy. Pure.
 */
export function describeSqliteError(err: unknown, path: string): string {
  const code = String((err as { code?: unknown }).code ?? '');
  const text = (err as Error).message;
  if (code === 'SQLITE_CORRUPT' || code === 'SQLITE_NOTADB') {
    return `the token database ${path} is corrupt (${text}): stop porthole, move the file aside, start again (a new, empty one is created; open consoles need new URLs)`;
  }
  if (code === 'SQLITE_FULL') return `the disk holding the token database ${path} is full (${text}): free space there`;
  if (code === 'SQLITE_READONLY' || code.startsWith('SQLITE_READONLY_') || code === 'SQLITE_CANTOPEN' || code === 'SQLITE_PERM'
    || code === 'EACCES' || code === 'EROFS' || code === 'EPERM' || code === 'ENOTDIR') {
    return `cannot write the token database ${path} (${text}): the filesystem is read-only or porthole may not write there; set [cache] sqlite_path (default <[DEFAULT] state_path>/tokens.sqlite) to a writable file`;
  }
  return `${path}: ${text}`;
}

function storeError(action: string, err: unknown, path: string): PortholeError {
  return new PortholeError('PH_ERR_STORE_UNAVAILABLE', `sqlite token store: ${action} failed: ${describeSqliteError(err, path)}`, { cause: err });
}

export class SqliteTokenStore implements TokenStore {
  readonly backend = 'sqlite';
  readonly identity: string;
  readonly countsRevocations = true;
  readonly path: string;
  readonly #db: Database;
  readonly #clock: TokenStoreClock;
  readonly #insert: DatabaseConstructor.Statement;
  readonly #select: DatabaseConstructor.Statement<[string], TokenRecord>;
  readonly #revoke: DatabaseConstructor.Statement;
  readonly #purge: DatabaseConstructor.Statement;

  /** Use {@link SqliteTokenStore.open}: better-sqlite3 is loaded lazily so `memory` needs no native module. */
  private constructor(Driver: typeof DatabaseConstructor, options: SqliteTokenStoreOptions) {
    this.path = options.path;
    this.identity = `sqlite:${hostname()}:${options.path}`;
    this.#clock = options.clock ?? SYSTEM_CLOCK;
    try {
      if (options.path !== ':memory:') mkdirSync(dirname(options.path), { recursive: true, mode: 0o700 });
      this.#db = new Driver(options.path);
      this.#db.pragma('journal_mode = WAL');
      // NORMAL is durable against a crash of this process in WAL mode; only power loss can drop the last commit.
      this.#db.pragma('synchronous = NORMAL');
      this.#db.pragma('busy_timeout = 2000');
      this.#db.exec(SCHEMA_SQL);
      // Tables created before `who` existed get the column (NULL: nobody recorded).
      const columns = this.#db.pragma('table_info(console_auth_tokens)') as Array<{ name: string }>;
      if (!columns.some((c) => c.name === 'who')) this.#db.exec('ALTER TABLE console_auth_tokens ADD COLUMN who TEXT');
    } catch (err) {
      throw storeError('opening', err, options.path);
    }
    this.#insert = this.#db.prepare(`INSERT INTO console_auth_tokens
      (token_hash, instance, instance_uuid, protocol, console_type, host, port, access_url_base, who, expires, revoked_at, created_at)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?)`);
    this.#select = this.#db.prepare(`SELECT instance, instance_uuid, protocol, console_type, host, port, access_url_base, who, expires, revoked_at
      FROM console_auth_tokens WHERE token_hash = ?`);
    this.#revoke = this.#db.prepare('UPDATE console_auth_tokens SET revoked_at = ? WHERE (instance = ? OR instance_uuid = ?) AND revoked_at IS NULL AND expires > ?');
    this.#purge = this.#db.prepare('DELETE FROM console_auth_tokens WHERE expires <= ?');
  }

  static async open(options: SqliteTokenStoreOptions): Promise<SqliteTokenStore> {
    const { default: Driver } = await import('better-sqlite3');
    return new SqliteTokenStore(Driver, options);
  }

  async authorize(connectInfo: ConnectInfo, ttlMs: number): Promise<IssuedToken> {
    const token = mintToken();
    const now = this.#clock.now();
    const expiresAt = now + ttlMs;
    try {
      this.#insert.run(hashToken(token), connectInfo.instance, connectInfo.instanceUuid ?? null, connectInfo.protocol,
        connectInfo.consoleType, connectInfo.host, connectInfo.port, connectInfo.accessUrlBase, whoColumn(connectInfo), expiresAt, now);
    } catch (err) {
      throw storeError('authorize', err, this.path);
    }
    return { token, expiresAt };
  }

  async validate(token: string): Promise<TokenLookup> {
    if (!isWellFormedToken(token)) return { status: 'unknown' };
    let row: TokenRecord | undefined;
    try {
      row = this.#select.get(hashToken(token));
    } catch (err) {
      throw storeError('validate', err, this.path);
    }
    if (!row) return { status: 'unknown' };
    if (row.revoked_at !== null) return { status: 'revoked' };
    if (this.#clock.now() >= row.expires) return { status: 'expired' };
    return {
      status: 'valid',
      expiresAt: row.expires,
      connectInfo: {
        instance: row.instance,
        instanceUuid: row.instance_uuid ?? undefined,
        protocol: row.protocol as ConsoleProtocol,
        consoleType: row.console_type as ConsoleType,
        host: row.host,
        port: row.port,
        accessUrlBase: row.access_url_base,
        ...whoOf(row.who),
      },
    };
  }

  async revokeInstance(instance: string): Promise<number> {
    const now = this.#clock.now();
    try {
      return this.#revoke.run(now, instance, instance, now).changes;
    } catch (err) {
      throw storeError('revoke', err, this.path);
    }
  }

  async purgeExpired(): Promise<number> {
    try {
      return this.#purge.run(this.#clock.now() - TOKEN_TOMBSTONE_MS).changes;
    } catch (err) {
      throw storeError('purge', err, this.path);
    }
  }

  /** Exercises what minting and validating do: a committed write, a read, a delete. */
  async health(): Promise<TokenStoreHealth> {
    const base = { backend: this.backend, fingerprint: storeFingerprint(this.identity) };
    const probe = `health-probe-${process.pid}`;
    try {
      const now = this.#clock.now();
      this.#db.prepare('DELETE FROM console_auth_tokens WHERE token_hash = ?').run(probe); // left by a crash mid-probe
      this.#insert.run(probe, probe, null, 'vnc', 'novnc', '127.0.0.1', 1, 'http://health.invalid/', null, now, now);
      const found = this.#select.get(probe) !== undefined;
      this.#db.prepare('DELETE FROM console_auth_tokens WHERE token_hash = ?').run(probe);
      if (!found) return { ...base, ok: false, detail: `${this.path}: a row just written could not be read back` };
      return { ...base, ok: true, detail: `${this.path} (not shared with other nodes)` };
    } catch (err) {
      try {
        this.#db.prepare('DELETE FROM console_auth_tokens WHERE token_hash = ?').run(probe);
      } catch {
        // The database is broken; the probe row is the least of it (reported below).
      }
      return { ...base, ok: false, detail: describeSqliteError(err, this.path) };
    }
  }

  async close(): Promise<void> {
    if (this.#db.open) this.#db.close();
  }
}
