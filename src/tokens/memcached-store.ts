/**
 * memcached token store (memjs). memcached has no sets, so per-instance revocation uses a
 * generation value per instance (`ph:g:<sha256(instance)>`, a random string): each token records
 * the generation current when it was minted, and revoking an instance replaces the generation.
 * A token whose generation differs — including when the generation key was evicted — is revoked:
 * eviction can only revoke, never bring a revoked token back.
 *
 * Servers are sorted before keys are hashed onto them, so every node maps a key to the same server
 * whatever order its `memcache_servers` list is written in. Failover is off for the same reason: a
 * key that moved to another server would be invisible to the other nodes.
 *
 * Limits (docs/multi-node.md): memcached may evict tokens under memory pressure (they then read as
 * "invalid"); revokeInstance cannot count the tokens it revoked (it returns 0).
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Client as MemjsClient } from 'memjs';
import { PortholeError } from '../errors.js';
import { hashToken, isWellFormedToken, mintToken, TOKEN_TOMBSTONE_MS } from './token.js';
import { describeStoreFailure, normaliseConnectInfo, revocationKeys, sharedStoreHealth, SYSTEM_CLOCK, type IssuedToken, type TokenLookup, type TokenStore, type TokenStoreClock, type TokenStoreHealth } from './store.js';
import type { ConnectInfo } from '../console/types.js';

export interface MemcachedTokenStoreOptions {
  readonly servers: readonly string[];
  readonly clock?: TokenStoreClock;
  readonly timeoutMs?: number;
}

interface StoredToken {
  readonly i: ConnectInfo;
  readonly e: number;
  /** Generations of the revocation keys (name, then UUID if known), current at mint. */
  readonly g: string;
  readonly gu?: string;
}

/** Sorted, de-duplicated `host:port` list (port 11211 by default). Pure. */
export function normaliseMemcacheServers(servers: readonly string[]): string[] {
  return [...new Set(servers.map((s) => s.trim()).filter(Boolean).map((s) => (/:\d+$/.test(s) ? s : `${s}:11211`)))].sort();
}

/**
 * Ask every server for its stats (memjs calls back once per server): each must answer, since a
 * set/get probe would only reach the one server its key hashes to.
 * @returns the servers that did not answer, with why.
 */
function probeEachServer(client: MemjsClient, servers: readonly string[], timeoutMs: number): Promise<string[]> {
  return new Promise((resolve) => {
    const pending = new Set(servers);
    const failed: string[] = [];
    const finish = () => {
      clearTimeout(timer);
      resolve([...failed, ...[...pending].map((s) => `${s} (no answer within ${timeoutMs} ms)`)]);
    };
    const timer = setTimeout(finish, timeoutMs);
    client.stats((err, server) => {
      const name = servers.find((s) => server === s || server.endsWith(s)) ?? server;
      if (!pending.delete(name)) return;
      if (err) failed.push(`${name} (${err.message})`);
      if (pending.size === 0) finish();
    });
  });
}

export class MemcachedTokenStore implements TokenStore {
  readonly backend = 'memcached';
  readonly identity: string;
  readonly countsRevocations = false;
  readonly #client: MemjsClient;
  readonly #clock: TokenStoreClock;
  readonly #display: string;

  private constructor(client: MemjsClient, servers: readonly string[], clock: TokenStoreClock) {
    this.#client = client;
    this.#clock = clock;
    this.#display = servers.join(',');
    this.identity = `memcached:${this.#display}`;
  }

  /** @throws PortholeError PH_ERR_STORE_UNAVAILABLE naming every server that does not answer at start. */
  static async open(options: MemcachedTokenStoreOptions): Promise<MemcachedTokenStore> {
    const servers = normaliseMemcacheServers(options.servers);
    if (servers.length === 0) throw new PortholeError('PH_ERR_CONFIG_INVALID', '[cache] memcache_servers is empty');
    const memjs = await import('memjs');
    const timeout = (options.timeoutMs ?? 1000) / 1000;
    const client = memjs.Client.create(servers.join(','), { failover: false, retries: 0, timeout, conntimeout: timeout, keepAlive: true, logger: { log: () => undefined } });
    const down = await probeEachServer(client, servers, (options.timeoutMs ?? 1000) + 1000);
    if (down.length > 0) {
      client.close();
      throw new PortholeError('PH_ERR_STORE_UNAVAILABLE', `memcached token store: not answering: ${down.join(', ')}`);
    }
    return new MemcachedTokenStore(client, servers, options.clock ?? SYSTEM_CLOCK);
  }

  #fail(action: string, err: unknown): PortholeError {
    return new PortholeError('PH_ERR_STORE_UNAVAILABLE', `memcached token store (${this.#display}): ${action} failed: ${describeStoreFailure(err)}`, { cause: err });
  }

  static generationKey(instance: string): string {
    return `ph:g:${createHash('sha256').update(instance).digest('hex')}`;
  }

  async #generation(instance: string, create: boolean): Promise<string | undefined> {
    const key = MemcachedTokenStore.generationKey(instance);
    const { value } = await this.#client.get(key);
    if (value !== null) return value.toString();
    if (!create) return undefined;
    const fresh = randomBytes(8).toString('hex');
    // add, not set: two nodes minting at once must agree on one generation.
    if (await this.#client.add(key, fresh, { expires: 0 })) return fresh;
    return (await this.#client.get(key)).value?.toString();
  }

  async authorize(connectInfo: ConnectInfo, ttlMs: number): Promise<IssuedToken> {
    const token = mintToken();
    const expiresAt = this.#clock.now() + ttlMs;
    try {
      const [g, gu] = await Promise.all(revocationKeys(connectInfo).map((key) => this.#generation(key, true)));
      if (g === undefined || (connectInfo.instanceUuid !== undefined && connectInfo.instanceUuid !== connectInfo.instance && gu === undefined)) {
        throw new Error('generation key vanished while minting');
      }
      const body: StoredToken = { i: connectInfo, e: expiresAt, g, ...(gu === undefined ? {} : { gu }) };
      const keepSeconds = Math.min(Math.ceil((ttlMs + TOKEN_TOMBSTONE_MS) / 1000), 30 * 24 * 3600 - 1);
      await this.#client.set(`ph:t:${hashToken(token)}`, JSON.stringify(body), { expires: keepSeconds });
    } catch (err) {
      throw this.#fail('authorize', err);
    }
    return { token, expiresAt };
  }

  async validate(token: string): Promise<TokenLookup> {
    if (!isWellFormedToken(token)) return { status: 'unknown' };
    let stored: StoredToken;
    let current: Array<string | undefined>;
    try {
      const { value } = await this.#client.get(`ph:t:${hashToken(token)}`);
      if (value === null) return { status: 'unknown' };
      stored = JSON.parse(value.toString()) as StoredToken;
      current = await Promise.all(revocationKeys(stored.i).map((key) => this.#generation(key, false)));
    } catch (err) {
      throw this.#fail('validate', err);
    }
    if (current[0] !== stored.g || (stored.gu !== undefined && current[1] !== stored.gu)) return { status: 'revoked' };
    if (this.#clock.now() >= stored.e) return { status: 'expired' };
    return { status: 'valid', connectInfo: normaliseConnectInfo(stored.i), expiresAt: stored.e };
  }

  async revokeInstance(instance: string): Promise<number> {
    try {
      await this.#client.set(MemcachedTokenStore.generationKey(instance), randomBytes(8).toString('hex'), { expires: 0 });
    } catch (err) {
      throw this.#fail('revoke', err);
    }
    return 0;
  }

  async purgeExpired(): Promise<number> {
    return 0;
  }

  async health(): Promise<TokenStoreHealth> {
    const key = `ph:health:${process.pid}:${randomBytes(4).toString('hex')}`;
    return sharedStoreHealth(this, this.#display, async () => {
      await this.#client.set(key, '1', { expires: 5 });
      const ok = (await this.#client.get(key)).value?.toString() === '1';
      await this.#client.delete(key);
      return ok;
    });
  }

  async close(): Promise<void> {
    this.#client.close();
  }
}
