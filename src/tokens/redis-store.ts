/**
 * Redis token store (ioredis): shared by every node. One hash per token
 * (`porthole:t:<sha256>` → i=connect info JSON, e=expiry ms, r=revoked 0|1) that Redis expires
 * itself after expiry + tombstone time, and one set per instance (`porthole:i:<name>`) for revoke.
 * Commands fail fast while Redis is away (no offline queue): the proxy then answers "store
 * unavailable, try again" at once instead of hanging, and ioredis reconnects by itself.
 */
import type { Redis as RedisClient, RedisOptions } from 'ioredis';
import { PortholeError } from '../errors.js';
import { hashToken, isWellFormedToken, mintToken, TOKEN_TOMBSTONE_MS } from './token.js';
import { connectInfoFromJson, describeStoreFailure, revocationKeys, sharedStoreHealth, SYSTEM_CLOCK, type IssuedToken, type TokenLookup, type TokenStore, type TokenStoreClock, type TokenStoreHealth } from './store.js';
import type { ConnectInfo } from '../console/types.js';

export interface RedisTokenStoreOptions {
  /** `host:port` or a `redis://[:password@]host:port[/db]` URL; ignored when `sentinels` are given. */
  readonly server: string;
  /** Sentinel `host:port` list; ioredis asks them for the current primary of `sentinelName`. */
  readonly sentinels?: readonly string[];
  readonly sentinelName?: string;
  readonly clock?: TokenStoreClock;
  readonly commandTimeoutMs?: number;
  readonly keyPrefix?: string;
}

const REVOKE_SCRIPT = `
local n = 0
for _, h in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local k = ARGV[2] .. h
  local v = redis.call('HMGET', k, 'e', 'r')
  if v[1] and tonumber(v[1]) > tonumber(ARGV[1]) and v[2] == '0' then
    redis.call('HSET', k, 'r', '1')
    n = n + 1
  end
end
return n`;

/** `host:port` → redis URL; URLs pass through. Pure. */
export function redisUrl(server: string): string {
  return /^rediss?:\/\//.test(server) ? server : `redis://${server}`;
}

/** The server list without credentials, for logs, errors and store fingerprints. */
export function redisDisplayName(server: string): string {
  try {
    const u = new URL(redisUrl(server));
    return `${u.hostname}:${u.port || '6379'}${u.pathname.length > 1 ? u.pathname : ''}`;
  } catch {
    return '(unparsable redis address)';
  }
}

function storeDisplayName(options: RedisTokenStoreOptions): string {
  return options.sentinels && options.sentinels.length > 0
    ? `sentinel:${[...options.sentinels].sort().join(',')}/${options.sentinelName ?? 'mymaster'}`
    : redisDisplayName(options.server);
}

export class RedisTokenStore implements TokenStore {
  readonly backend = 'redis';
  readonly identity: string;
  readonly countsRevocations = true;
  readonly #client: RedisClient;
  readonly #clock: TokenStoreClock;
  readonly #prefix: string;
  readonly #display: string;

  private constructor(client: RedisClient, options: RedisTokenStoreOptions) {
    this.#client = client;
    this.#clock = options.clock ?? SYSTEM_CLOCK;
    this.#prefix = options.keyPrefix ?? 'porthole:';
    this.#display = storeDisplayName(options);
    this.identity = `redis:${this.#display}:${this.#prefix}`;
  }

  /** @throws PortholeError PH_ERR_STORE_UNAVAILABLE naming the server when it cannot be reached at start. */
  static async open(options: RedisTokenStoreOptions): Promise<RedisTokenStore> {
    const { Redis } = await import('ioredis');
    const redisOptions: RedisOptions = {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: options.commandTimeoutMs ?? 1000,
      connectTimeout: 2000,
      retryStrategy: (attempt) => Math.min(attempt * 100, 1000),
    };
    const sentinels = (options.sentinels ?? []).map((s) => {
      const [host, port] = s.split(/:(?=\d+$)/);
      return { host: host ?? s, port: Number(port ?? 26379) };
    });
    const client = sentinels.length > 0
      ? new Redis({ ...redisOptions, sentinels, name: options.sentinelName ?? 'mymaster', sentinelRetryStrategy: (n: number) => Math.min(n * 100, 1000) })
      : new Redis(redisUrl(options.server), redisOptions);
    client.on('error', () => { /* surfaced per command as PH_ERR_STORE_UNAVAILABLE */ });
    try {
      await client.connect();
      await client.ping();
    } catch (err) {
      client.disconnect();
      throw new PortholeError('PH_ERR_STORE_UNAVAILABLE',
        `redis token store at ${storeDisplayName(options)} is unreachable: ${(err as Error).message}`, { cause: err });
    }
    return new RedisTokenStore(client, options);
  }

  #fail(action: string, err: unknown): PortholeError {
    return new PortholeError('PH_ERR_STORE_UNAVAILABLE', `redis token store at ${this.#display}: ${action} failed: ${describeStoreFailure(err)}`, { cause: err });
  }

  async authorize(connectInfo: ConnectInfo, ttlMs: number): Promise<IssuedToken> {
    const token = mintToken();
    const hash = hashToken(token);
    const expiresAt = this.#clock.now() + ttlMs;
    const keepUntil = expiresAt + TOKEN_TOMBSTONE_MS;
    const tokenKey = `${this.#prefix}t:${hash}`;
    try {
      const multi = this.#client.multi()
        .hset(tokenKey, 'i', JSON.stringify(connectInfo), 'e', String(expiresAt), 'r', '0')
        .pexpireat(tokenKey, keepUntil);
      for (const key of revocationKeys(connectInfo)) {
        const indexKey = `${this.#prefix}i:${key}`;
        multi.sadd(indexKey, hash).pexpireat(indexKey, keepUntil, 'GT').pexpireat(indexKey, keepUntil, 'NX');
      }
      await multi.exec();
    } catch (err) {
      throw this.#fail('authorize', err);
    }
    return { token, expiresAt };
  }

  async validate(token: string): Promise<TokenLookup> {
    if (!isWellFormedToken(token)) return { status: 'unknown' };
    let row: Record<string, string>;
    try {
      row = await this.#client.hgetall(`${this.#prefix}t:${hashToken(token)}`);
    } catch (err) {
      throw this.#fail('validate', err);
    }
    if (row.i === undefined || row.e === undefined) return { status: 'unknown' };
    if (row.r === '1') return { status: 'revoked' };
    const expiresAt = Number(row.e);
    if (this.#clock.now() >= expiresAt) return { status: 'expired' };
    return { status: 'valid', connectInfo: connectInfoFromJson(row.i), expiresAt };
  }

  async revokeInstance(instance: string): Promise<number> {
    try {
      return Number(await this.#client.eval(REVOKE_SCRIPT, 1, `${this.#prefix}i:${instance}`, String(this.#clock.now()), `${this.#prefix}t:`));
    } catch (err) {
      throw this.#fail('revoke', err);
    }
  }

  /** Redis expires token keys itself. */
  async purgeExpired(): Promise<number> {
    return 0;
  }

  async health(): Promise<TokenStoreHealth> {
    const key = `${this.#prefix}health:${process.pid}`;
    return sharedStoreHealth(this, this.#display, async () => {
      await this.#client.set(key, '1', 'PX', 5000);
      const ok = (await this.#client.get(key)) === '1';
      await this.#client.del(key);
      return ok;
    });
  }

  async close(): Promise<void> {
    this.#client.disconnect();
  }
}
