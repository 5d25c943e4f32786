/** The token store interface every backend implements, and what it stores. */

export type ConsoleProtocol = 'vnc' | 'serial';
export type ConsoleType = 'novnc' | 'vnc' | 'serial';

/** Where a console lives, as recorded at mint time. The proxy only ever connects here. */
export interface ConnectInfo {
  readonly instance: string;
  readonly instanceUuid?: string | undefined;
  readonly protocol: ConsoleProtocol;
  readonly consoleType: ConsoleType;
  readonly host: string;
  readonly port: number;
  /** Public page the token was minted for; its scheme decides which Origin scheme is accepted. */
  readonly accessUrlBase: string;
}

export interface IssuedToken {
  readonly token: string;
  readonly expiresAt: number; // ms since epoch
}

export type TokenLookup =
  | { readonly status: 'valid'; readonly connectInfo: ConnectInfo; readonly expiresAt: number }
  | { readonly status: 'expired' }
  | { readonly status: 'revoked' }
  | { readonly status: 'unknown' };

export interface TokenStoreHealth {
  readonly backend: string;
  readonly ok: boolean;
  readonly detail?: string;
}

/**
 * Token store. Tokens are stored only as SHA-256 hashes, with an expiry and an instance → tokens
 * index. "Not found" is a value (`status: 'unknown'`); a broken backend throws
 * PH_ERR_STORE_UNAVAILABLE — the two must never be confused.
 */
export interface TokenStore {
  readonly backend: string;
  /** Mint a token for `connectInfo`, valid for `ttlMs`. */
  authorize(connectInfo: ConnectInfo, ttlMs: number): Promise<IssuedToken>;
  validate(token: string): Promise<TokenLookup>;
  /** Revoke every live token of an instance; returns how many. */
  revokeInstance(instance: string): Promise<number>;
  /** Delete rows past expiry + tombstone time; returns how many. */
  purgeExpired(): Promise<number>;
  /** Probe the backend (write/read/delete). */
  health(): Promise<TokenStoreHealth>;
  close(): Promise<void>;
}

export interface TokenStoreClock {
  now(): number;
}

export const SYSTEM_CLOCK: TokenStoreClock = { now: () => Date.now() };
