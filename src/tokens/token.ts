/** Console tokens: minting, hashing, TTL math. Pure apart from the random source. */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** 192 random bits: above the 128-bit floor, and 32 base64url characters (URL- and cookie-safe). */
export const TOKEN_BYTES = 24;
export const TOKEN_RE = /^[A-Za-z0-9_-]{16,256}$/;

/**
 * How long an expired or revoked token's hash is kept so that a late user is told "expired" or
 * "revoked" rather than "invalid". After this, purgeExpired() deletes it.
 */
export const TOKEN_TOMBSTONE_MS = 60 * 60 * 1000;

export function mintToken(random: (n: number) => Buffer = randomBytes): string {
  return random(TOKEN_BYTES).toString('base64url');
}

/** SHA-256 hex: the only form in which a token is ever stored. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** First 8 hex digits of the hash: enough to correlate log lines, useless to an attacker. */
export function tokenLogId(token: string): string {
  return hashToken(token).slice(0, 8);
}

/**
 * Constant-time equality of two hex hashes. Stores look a token up by its hash (an attacker cannot
 * steer a SHA-256 prefix, so index lookups leak nothing useful); backends whose lookup could match
 * loosely confirm the stored hash with this before trusting it.
 */
export function hashesEqual(a: string, b: string): boolean {
  const ab = Buffer.from(a, 'hex');
  const bb = Buffer.from(b, 'hex');
  return ab.length === bb.length && ab.length > 0 && timingSafeEqual(ab, bb);
}

/** A syntactically possible token (cheap reject before touching the store). */
export function isWellFormedToken(token: string): boolean {
  return TOKEN_RE.test(token);
}

/**
 * The token as a host name: remote-viewer (GLib) lower-cases the CONNECT host, and a base64url
 * token does not survive that, so the `.vv` carries the token's bytes in hex. Pure.
 */
export function tokenAsHost(token: string): string {
  return Buffer.from(token, 'base64url').toString('hex');
}

/** The token back from a CONNECT host: hex from a `.vv`, anything else taken as it is. Pure. */
export function tokenFromHost(host: string): string {
  if (/^[0-9a-f]+$/i.test(host) && host.length % 2 === 0) {
    const token = Buffer.from(host, 'hex').toString('base64url');
    if (tokenAsHost(token) === host.toLowerCase()) return token;
  }
  return host;
}
