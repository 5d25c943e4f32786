/** Helpers for reading what a request carries: the upgrade's token, a small body. */
import type { IncomingMessage } from 'node:http';
import { splitTarget } from '../web/target.js';
import { CONSOLE_COOKIE } from './console-cookie.js';

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
 * console page's own cookie (the browser sends it only to that console's WebSocket path), else the
 * `token` cookie (Nova's fallback for old noVNC pages).
 */
export function extractToken(target: string, cookieHeader: string | undefined): string | undefined {
  const fromQuery = splitTarget(target).query.get('token');
  if (fromQuery) return fromQuery;
  const fromCookie = cookieValue(cookieHeader, CONSOLE_COOKIE) || cookieValue(cookieHeader, 'token');
  return fromCookie || undefined;
}

/** A request body of at most `maxBytes` as text. @throws Error when it is longer (the rest is not read). */
export async function readSmallBody(req: IncomingMessage, maxBytes: number): Promise<string> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > maxBytes) throw new Error(`request body larger than ${maxBytes} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) throw new Error(`request body larger than ${maxBytes} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}
