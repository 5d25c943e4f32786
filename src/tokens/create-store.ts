/** The closed registry of token store backends (never loaded by a user-supplied module name). */
import type { Config } from '../config/schema.js';
import { MemoryTokenStore } from './memory-store.js';
import { SqliteTokenStore } from './sqlite-store.js';
import type { TokenStore, TokenStoreClock } from './store.js';

export async function createTokenStore(config: Config, clock?: TokenStoreClock): Promise<TokenStore> {
  const opts = clock === undefined ? {} : { clock };
  switch (config.cache.backend) {
    case 'memory':
      return new MemoryTokenStore(opts);
    case 'sqlite':
      return SqliteTokenStore.open({ path: config.cache.sqlite_path, ...opts });
  }
}
