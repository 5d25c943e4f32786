/** Pure helpers for reading what a WebSocket upgrade request carries. */
import { splitTarget } from '../web/target.js';

export { splitTarget };

/** One cookie's value from a Cookie header. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq !== -1 && part.slice(0, eq).trim() === name) {
      const raw = part.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1');
      try {
        return decodeURIComponent(raw);
      } catch {
        return raw;
      }
    }
  }
  return undefined;
}

/**
 * The console token of an upgrade: `?token=` in the URL (websockify and Nova form), else the
 * `token` cookie (Nova's fallback for old noVNC pages).
 */
export function extractToken(target: string, cookieHeader: string | undefined): string | undefined {
  const fromQuery = splitTarget(target).query.get('token');
  if (fromQuery) return fromQuery;
  const fromCookie = cookieValue(cookieHeader, 'token');
  return fromCookie || undefined;
}
