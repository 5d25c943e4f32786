/** The closed registry of token store backends (never loaded by a user-supplied module name). */
import type { Config } from '../config/schema.js';
import { MemoryTokenStore } from './memory-store.js';
import { SqliteTokenStore } from './sqlite-store.js';
import type { TokenSource, TokenStore, TokenStoreClock } from './store.js';

/** Where the proxy validates tokens: Nova's database in nova mode, else the store itself. */
export async function createTokenSource(config: Config, store: TokenStore, clock?: TokenStoreClock): Promise<TokenSource> {
  if (config.porthole.token_source !== 'nova') return store;
  const { NovaTokenSource } = await import('./nova-source.js');
  return NovaTokenSource.open({ connection: config.database.connection, ...(clock === undefined ? {} : { clock }) });
}

export async function createTokenStore(config: Config, clock?: TokenStoreClock): Promise<TokenStore> {
  const opts = clock === undefined ? {} : { clock };
  // In nova mode Nova issues the tokens; this node's own store only backs refusals of the API's mint.
  if (config.porthole.token_source === 'nova') return new MemoryTokenStore(opts);
  switch (config.cache.backend) {
    case 'memory':
      return new MemoryTokenStore(opts);
    case 'sqlite':
      return SqliteTokenStore.open({ path: config.cache.sqlite_path, ...opts });
    case 'redis': {
      const { RedisTokenStore } = await import('./redis-store.js');
      return RedisTokenStore.open({
        server: config.cache.redis_server,
        sentinels: config.cache.redis_sentinels,
        sentinelName: config.cache.redis_sentinel_service_name,
        ...opts,
      });
    }
    case 'postgresql':
    case 'mysql': {
      const { SqlTokenStore } = await import('./sql-store.js');
      return SqlTokenStore.open({ connection: config.cache.connection, ...opts });
    }
    case 'memcached': {
      const { MemcachedTokenStore } = await import('./memcached-store.js');
      return MemcachedTokenStore.open({ servers: config.cache.memcache_servers, ...opts });
    }
  }
}
