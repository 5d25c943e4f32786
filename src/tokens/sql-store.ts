/**
 * PostgreSQL and MySQL/MariaDB token stores (pg, mysql2), for operators who already run a shared
 * database. A table of token hashes with expiry, as today's Nova keeps console_auth_tokens, created
 * by the program; expired rows are purged by purgeExpired(). One pooled client per node.
 */
import { PortholeError } from '../errors.js';
import { hashToken, isWellFormedToken, mintToken, TOKEN_TOMBSTONE_MS } from './token.js';
import { describeStoreFailure, sharedStoreHealth, SYSTEM_CLOCK, type IssuedToken, type TokenLookup, type TokenStore, type TokenStoreClock, type TokenStoreHealth, whoColumn, whoOf } from './store.js';
import type { ConnectInfo, ConsoleProtocol, ConsoleType } from '../console/types.js';

export type SqlDialect = 'postgresql' | 'mysql';

/** The little a store needs from a database pool; `?` placeholders (pg's are rewritten). */
export interface SqlPool {
  query(sql: string, params: readonly unknown[]): Promise<{ rows: Array<Record<string, unknown>>; affected: number }>;
  close(): Promise<void>;
}

export interface SqlTokenStoreOptions {
  /** postgresql://user:pass@host:port/db or mysql://… (mysql+pymysql:// from nova.conf accepted). */
  readonly connection: string;
  readonly clock?: TokenStoreClock;
  readonly timeoutMs?: number;
}

/** Dialect and a driver-ready URL from a nova.conf-style connection string. Pure. */
export function parseConnection(connection: string): { dialect: SqlDialect; url: URL } {
  let url: URL;
  try {
    url = new URL(connection.replace(/^([a-z]+)\+[a-z0-9_]+:/i, '$1:'));
  } catch {
    throw new PortholeError('PH_ERR_CONFIG_INVALID', '[cache] connection is not a URL (postgresql://user:pass@host:port/db or mysql://…)');
  }
  const scheme = url.protocol.replace(/:$/, '');
  if (scheme === 'postgresql' || scheme === 'postgres') return { dialect: 'postgresql', url };
  if (scheme === 'mysql' || scheme === 'mariadb') {
    url.protocol = 'mysql:';
    return { dialect: 'mysql', url };
  }
  throw new PortholeError('PH_ERR_CONFIG_INVALID', `[cache] connection: unsupported database ${JSON.stringify(scheme)} (postgresql or mysql)`);
}

/** host:port/db without user or password, for messages and fingerprints. */
export function connectionDisplayName(url: URL): string {
  return `${url.hostname}:${url.port || (url.protocol === 'mysql:' ? '3306' : '5432')}${url.pathname}`;
}

export async function openPool(dialect: SqlDialect, url: URL, timeoutMs: number): Promise<SqlPool> {
  if (dialect === 'postgresql') {
    const { default: pg } = await import('pg');
    const pool = new pg.Pool({ connectionString: url.toString(), max: 10, connectionTimeoutMillis: timeoutMs, query_timeout: timeoutMs, idleTimeoutMillis: 30_000 });
    pool.on('error', () => { /* idle client errors surface on the next query */ });
    return {
      async query(sql, params) {
        let i = 0;
        const res = await pool.query(sql.replace(/\?/g, () => `$${++i}`), params as unknown[]);
        return { rows: res.rows as Array<Record<string, unknown>>, affected: res.rowCount ?? 0 };
      },
      close: () => pool.end(),
    };
  }
  const mysql = await import('mysql2/promise');
  const pool = mysql.createPool({ uri: url.toString(), connectionLimit: 10, connectTimeout: timeoutMs, supportBigNumbers: true, bigNumberStrings: false });
  return {
    async query(sql, params) {
      const [result] = await pool.query({ sql, timeout: timeoutMs }, params as unknown[]);
      return Array.isArray(result)
        ? { rows: result as Array<Record<string, unknown>>, affected: 0 }
        : { rows: [], affected: (result as { affectedRows: number }).affectedRows };
    },
    close: () => pool.end(),
  };
}

// CREATE INDEX IF NOT EXISTS: PostgreSQL 9.5+ and MariaDB 10.1+ (not Oracle MySQL 8).
const SCHEMA = [
  `CREATE TABLE IF NOT EXISTS console_auth_tokens (
    token_hash      VARCHAR(64) PRIMARY KEY,
    instance        VARCHAR(255) NOT NULL,
    instance_uuid   VARCHAR(36),
    protocol        VARCHAR(16) NOT NULL,
    console_type    VARCHAR(16) NOT NULL,
    host            VARCHAR(255) NOT NULL,
    port            INTEGER NOT NULL,
    access_url_base VARCHAR(2048) NOT NULL,
    who             TEXT,
    expires         BIGINT NOT NULL,
    revoked_at      BIGINT,
    created_at      BIGINT NOT NULL
  )`,
  'CREATE INDEX IF NOT EXISTS console_auth_tokens_instance_idx ON console_auth_tokens (instance)',
  'CREATE INDEX IF NOT EXISTS console_auth_tokens_instance_uuid_idx ON console_auth_tokens (instance_uuid)',
  'CREATE INDEX IF NOT EXISTS console_auth_tokens_expires_idx ON console_auth_tokens (expires)',
  // Tables created before `who` existed (PostgreSQL 9.6+, MariaDB 10.0+).
  'ALTER TABLE console_auth_tokens ADD COLUMN IF NOT EXISTS who TEXT',
];

export class SqlTokenStore implements TokenStore {
  readonly backend: SqlDialect;
  readonly identity: string;
  readonly countsRevocations = true;
  readonly #pool: SqlPool;
  readonly #clock: TokenStoreClock;
  readonly #display: string;

  private constructor(dialect: SqlDialect, pool: SqlPool, display: string, clock: TokenStoreClock) {
    this.backend = dialect;
    this.#pool = pool;
    this.#display = display;
    this.#clock = clock;
    this.identity = `${dialect}:${display}`;
  }

  /** Connects, creates the table if needed. @throws PortholeError PH_ERR_STORE_UNAVAILABLE naming the database. */
  static async open(options: SqlTokenStoreOptions): Promise<SqlTokenStore> {
    const { dialect, url } = parseConnection(options.connection);
    const display = connectionDisplayName(url);
    const pool = await openPool(dialect, url, options.timeoutMs ?? 1000);
    try {
      for (const statement of SCHEMA) await pool.query(statement, []);
    } catch (err) {
      await pool.close().catch(() => undefined);
      throw new PortholeError('PH_ERR_STORE_UNAVAILABLE', `${dialect} token store at ${display} is unreachable or unusable: ${(err as Error).message}`, { cause: err });
    }
    return new SqlTokenStore(dialect, pool, display, options.clock ?? SYSTEM_CLOCK);
  }

  #fail(action: string, err: unknown): PortholeError {
    return new PortholeError('PH_ERR_STORE_UNAVAILABLE', `${this.backend} token store at ${this.#display}: ${action} failed: ${describeStoreFailure(err)}`, { cause: err });
  }

  async authorize(connectInfo: ConnectInfo, ttlMs: number): Promise<IssuedToken> {
    const token = mintToken();
    const now = this.#clock.now();
    const expiresAt = now + ttlMs;
    try {
      await this.#pool.query(`INSERT INTO console_auth_tokens
        (token_hash, instance, instance_uuid, protocol, console_type, host, port, access_url_base, who, expires, revoked_at, created_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?)`,
      [hashToken(token), connectInfo.instance, connectInfo.instanceUuid ?? null, connectInfo.protocol, connectInfo.consoleType,
        connectInfo.host, connectInfo.port, connectInfo.accessUrlBase, whoColumn(connectInfo), expiresAt, now]);
    } catch (err) {
      throw this.#fail('authorize', err);
    }
    return { token, expiresAt };
  }

  async validate(token: string): Promise<TokenLookup> {
    if (!isWellFormedToken(token)) return { status: 'unknown' };
    let row: Record<string, unknown> | undefined;
    try {
      row = (await this.#pool.query(`SELECT instance, instance_uuid, protocol, console_type, host, port, access_url_base, who, expires, revoked_at
        FROM console_auth_tokens WHERE token_hash = ?`, [hashToken(token)])).rows[0];
    } catch (err) {
      throw this.#fail('validate', err);
    }
    if (!row) return { status: 'unknown' };
    if (row.revoked_at !== null && row.revoked_at !== undefined) return { status: 'revoked' };
    const expiresAt = Number(row.expires);
    if (this.#clock.now() >= expiresAt) return { status: 'expired' };
    return {
      status: 'valid',
      expiresAt,
      connectInfo: {
        instance: String(row.instance),
        instanceUuid: row.instance_uuid === null || row.instance_uuid === undefined ? undefined : String(row.instance_uuid),
        protocol: String(row.protocol) as ConsoleProtocol,
        consoleType: String(row.console_type) as ConsoleType,
        host: String(row.host),
        port: Number(row.port),
        accessUrlBase: String(row.access_url_base),
        ...whoOf(row.who === null || row.who === undefined ? null : String(row.who)),
      },
    };
  }

  async revokeInstance(instance: string): Promise<number> {
    const now = this.#clock.now();
    try {
      return (await this.#pool.query('UPDATE console_auth_tokens SET revoked_at = ? WHERE (instance = ? OR instance_uuid = ?) AND revoked_at IS NULL AND expires > ?', [now, instance, instance, now])).affected;
    } catch (err) {
      throw this.#fail('revoke', err);
    }
  }

  async purgeExpired(): Promise<number> {
    try {
      return (await this.#pool.query('DELETE FROM console_auth_tokens WHERE expires <= ?', [this.#clock.now() - TOKEN_TOMBSTONE_MS])).affected;
    } catch (err) {
      throw this.#fail('purge', err);
    }
  }

  async health(): Promise<TokenStoreHealth> {
    return sharedStoreHealth(this, this.#display, async () => {
      await this.#pool.query('SELECT 1 AS ok', []);
      return true;
    });
  }

  async close(): Promise<void> {
    await this.#pool.close();
  }
}
