import { createHash } from 'node:crypto';
import type { ConnectInfo } from '../console/types.js';

/** The token store interface every backend implements, and what it stores. */

/** A ConnectInfo read back from JSON (which drops undefined fields), with every field present. */
export function connectInfoFromJson(json: string): ConnectInfo {
  return normaliseConnectInfo(JSON.parse(json) as ConnectInfo);
}

export function normaliseConnectInfo(o: ConnectInfo): ConnectInfo {
  return {
    instance: o.instance, instanceUuid: o.instanceUuid, protocol: o.protocol, consoleType: o.consoleType,
    host: o.host, port: o.port, accessUrlBase: o.accessUrlBase,
    ...whoOf(whoColumn(o)),
  };
}

/**
 * The keys a token can be revoked by: the instance name and, if known, its UUID, both as recorded
 * at mint — so a revoke by UUID works after the instance left the driver's inventory. Pure.
 */
export function revocationKeys(info: Pick<ConnectInfo, 'instance' | 'instanceUuid'>): string[] {
  return info.instanceUuid === undefined || info.instanceUuid === info.instance ? [info.instance] : [info.instance, info.instanceUuid];
}

export interface IssuedToken {
  readonly token: string;
  readonly expiresAt: number; // ms since epoch
}

export type TokenLookup =
  | { readonly status: 'valid'; readonly connectInfo: ConnectInfo; readonly expiresAt: number }
  | { readonly status: 'expired' }
  | { readonly status: 'revoked' }
  /** The token's target is no longer the instance's console (Nova: migrating, shelved-offloaded). */
  | { readonly status: 'stale'; readonly reason: string }
  | { readonly status: 'unknown' };

export interface TokenStoreHealth {
  readonly backend: string;
  /** Short hash of the store identity: equal on every node that shares this store. */
  readonly fingerprint?: string;
  readonly ok: boolean;
  readonly detail?: string;
}

export type TokenSourceHealth = TokenStoreHealth;

/**
 * Where the proxy validates console tokens: Porthole's own stores, or Nova's database (read only).
 * "Not found" is a value (`status: 'unknown'`); a broken backend throws PH_ERR_STORE_UNAVAILABLE.
 */
export interface TokenSource {
  readonly backend: string;
  /** What identifies the source (no secrets); equal on nodes that share it. */
  readonly identity: string;
  validate(token: string): Promise<TokenLookup>;
  health(): Promise<TokenSourceHealth>;
  close(): Promise<void>;
}

/**
 * Where console tokens are minted and revoked (the API's side). Tokens are stored only as SHA-256
 * hashes, with an expiry and an instance → tokens index. Nova mode has none: Nova issues.
 */
export interface TokenIssuer {
  /** False where the backend cannot count what revokeInstance revoked (memcached): it returns 0. */
  readonly countsRevocations: boolean;
  /** Mint a token for `connectInfo`, valid for `ttlMs`. */
  authorize(connectInfo: ConnectInfo, ttlMs: number): Promise<IssuedToken>;
  /** Revoke every live token whose instance name or UUID (as recorded at mint) is `instance`; returns how many. */
  revokeInstance(instance: string): Promise<number>;
  /** Delete rows past expiry + tombstone time; returns how many. */
  purgeExpired(): Promise<number>;
}

/**
 * Porthole's own token store: one backend that both issues (the API) and validates (the proxy).
 * `identity` identifies the store this node uses (backend + normalised servers, or host + file for
 * a private store), without secrets; nodes that share tokens have equal identities. "Not found" is
 * a value (`status: 'unknown'`); a broken backend throws PH_ERR_STORE_UNAVAILABLE — the two must
 * never be confused. `health()` probes with a write, a read and a delete.
 */
export interface TokenStore extends TokenSource, TokenIssuer {
  health(): Promise<TokenStoreHealth>;
}

export interface TokenStoreClock {
  now(): number;
}

export const SYSTEM_CLOCK: TokenStoreClock = { now: () => Date.now() };

/** 16 hex digits of SHA-256 over a store identity. */
export function storeFingerprint(identity: string): string {
  return createHash('sha256').update(identity).digest('hex').slice(0, 16);
}

/**
 * A store client's failure in words an operator can act on. Client libraries report the same few
 * situations in their own terms ("Stream isn't writeable and enableOfflineQueue options is false",
 * "Connection terminated unexpectedly"); the original stays the error's `cause`. Pure.
 */
export function describeStoreFailure(err: unknown): string {
  const code = String((err as { code?: unknown }).code ?? '');
  const text = (err as Error).message ?? String(err);
  if (code === 'ECONNREFUSED' || /ECONNREFUSED/.test(text)) return 'connection refused: is the server running and listening at that address?';
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || /ENOTFOUND|EAI_AGAIN/.test(text)) return 'the host name does not resolve';
  if (code === 'ETIMEDOUT' || /timed? ?out|timeout/i.test(text)) return 'no answer in time: server overloaded, or packets dropped on the way';
  if (/enableOfflineQueue|Connection is closed|Stream isn't writeable|Connection terminated|Connection lost|ECONNRESET|EPIPE|socket hang up/i.test(text) || code === 'ECONNRESET' || code === 'EPIPE' || code === 'PROTOCOL_CONNECTION_LOST') {
    return 'not connected: the connection to the server was lost (reconnecting in the background)';
  }
  if (/NOAUTH|WRONGPASS|password authentication failed|Access denied|ER_ACCESS_DENIED/i.test(text) || code === '28P01' || code === 'ER_ACCESS_DENIED_ERROR') {
    return 'authentication failed: check the user and password in the store\'s connection settings';
  }
  return text;
}

/**
 * Health of a shared store: `probe` does a round trip (write/read/delete or a query). One shape
 * for every networked backend; an error is reported, never thrown.
 */
export async function sharedStoreHealth(store: { backend: string; identity: string }, display: string, probe: () => Promise<boolean>): Promise<TokenStoreHealth> {
  const base = { backend: store.backend, fingerprint: storeFingerprint(store.identity) };
  try {
    return { ...base, ok: await probe(), detail: `${display} (shared)` };
  } catch (err) {
    return { ...base, ok: false, detail: `${display}: ${describeStoreFailure(err)}` };
  }
}

/**
 * The SQL stores' `who` column: a small JSON text of what a mint recorded besides the target —
 * who (key, user, project) and the console's grants (`view_only`, `record`) — NULL when nothing.
 * One column for both, so a grant added later needs no schema change. Pure.
 */
export function whoColumn(info: Pick<ConnectInfo, 'who' | 'viewOnly' | 'record'>): string | null {
  const w = info.who;
  const o = {
    ...(w?.key === undefined ? {} : { key: w.key }), ...(w?.user === undefined ? {} : { user: w.user }), ...(w?.project === undefined ? {} : { project: w.project }),
    ...(info.viewOnly === true ? { view_only: true } : {}), ...(info.record === true ? { record: true } : {}),
  };
  return Object.keys(o).length === 0 ? null : JSON.stringify(o);
}

/** The `who` column back; a value that is not ours is ignored rather than failing the console. Pure. */
export function whoOf(column: string | null): Pick<ConnectInfo, 'who' | 'viewOnly' | 'record'> {
  if (column === null) return {};
  try {
    const parsed = JSON.parse(column) as Record<string, unknown>;
    const pick = (k: string) => (typeof parsed[k] === 'string' ? { [k]: parsed[k] as string } : {});
    const who = { ...pick('key'), ...pick('user'), ...pick('project') };
    return {
      ...(Object.keys(who).length === 0 ? {} : { who }),
      ...(parsed.view_only === true ? { viewOnly: true } : {}),
      ...(parsed.record === true ? { record: true } : {}),
    };
  } catch {
    return {};
  }
}
