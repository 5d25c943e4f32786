import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
/** In-process token store: fast, lost on restart, private to one node. */
import { hashToken, isWellFormedToken, mintToken, TOKEN_TOMBSTONE_MS } from './token.js';
import { revocationKeys, storeFingerprint, SYSTEM_CLOCK, type IssuedToken, type TokenLookup, type TokenStore, type TokenStoreClock, type TokenStoreHealth } from './store.js';
import type { ConnectInfo } from '../console/types.js';

interface TokenRow {
  readonly connectInfo: ConnectInfo;
  readonly expiresAt: number;
  revokedAt: number | undefined;
}

export interface MemoryTokenStoreOptions {
  clock?: TokenStoreClock;
}

export class MemoryTokenStore implements TokenStore {
  readonly backend = 'memory';
  readonly identity: string;
  readonly countsRevocations = true;
  readonly #rows = new Map<string, TokenRow>();
  readonly #byInstance = new Map<string, Set<string>>();
  readonly #clock: TokenStoreClock;

  constructor(options: MemoryTokenStoreOptions = {}) {
    this.#clock = options.clock ?? SYSTEM_CLOCK;
    this.identity = `memory:${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  }

  async authorize(connectInfo: ConnectInfo, ttlMs: number): Promise<IssuedToken> {
    const token = mintToken();
    const hash = hashToken(token);
    const expiresAt = this.#clock.now() + ttlMs;
    this.#rows.set(hash, { connectInfo, expiresAt, revokedAt: undefined });
    for (const key of revocationKeys(connectInfo)) {
      let set = this.#byInstance.get(key);
      if (!set) this.#byInstance.set(key, (set = new Set()));
      set.add(hash);
    }
    return { token, expiresAt };
  }

  async validate(token: string): Promise<TokenLookup> {
    if (!isWellFormedToken(token)) return { status: 'unknown' };
    const row = this.#rows.get(hashToken(token));
    if (!row) return { status: 'unknown' };
    if (row.revokedAt !== undefined) return { status: 'revoked' };
    if (this.#clock.now() >= row.expiresAt) return { status: 'expired' };
    return { status: 'valid', connectInfo: row.connectInfo, expiresAt: row.expiresAt };
  }

  async revokeInstance(instance: string): Promise<number> {
    const now = this.#clock.now();
    let count = 0;
    for (const hash of this.#byInstance.get(instance) ?? []) {
      const row = this.#rows.get(hash);
      if (row && row.revokedAt === undefined && now < row.expiresAt) {
        row.revokedAt = now;
        count++;
      }
    }
    return count;
  }

  async purgeExpired(): Promise<number> {
    const cutoff = this.#clock.now() - TOKEN_TOMBSTONE_MS;
    let count = 0;
    for (const [hash, row] of this.#rows) {
      if (row.expiresAt <= cutoff) {
        this.#rows.delete(hash);
        for (const key of revocationKeys(row.connectInfo)) {
          const set = this.#byInstance.get(key);
          set?.delete(hash);
          if (set?.size === 0) this.#byInstance.delete(key);
        }
        count++;
      }
    }
    return count;
  }

  async health(): Promise<TokenStoreHealth> {
    return { backend: this.backend, fingerprint: storeFingerprint(this.identity), ok: true, detail: `${this.#rows.size} tokens (not shared with other nodes)` };
  }

  async close(): Promise<void> {
    this.#rows.clear();
    this.#byInstance.clear();
  }
}
