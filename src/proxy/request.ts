/** Helpers for reading what a request carries: the upgrade's token, a small body. */
import type { IncomingMessage } from 'node:http';
import { PortholeError } from '../errors.js';
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

/** The subprotocol the console speaks; noVNC and websockify offer it, other clients may offer none. */
export const CONSOLE_SUBPROTOCOL = 'binary';

const WS_KEY_RE = /^[+/0-9A-Za-z]{22}==$/;

/**
 * Is this a WebSocket upgrade we can accept (RFC 6455 §4.2.1), and with which subprotocol? Checked
 * before any token look-up or connection to a VNC server. Offering subprotocols without `binary` is
 * refused (the browser would fail the connection without saying why); offering none is fine.
 */
export function checkUpgradeRequest(req: IncomingMessage): { ok: true; protocol: string | undefined } | { ok: false; error: PortholeError } {
  const bad = (message: string) => ({ ok: false as const, error: new PortholeError('PH_ERR_API_BAD_REQUEST', message) });
  if (req.method !== 'GET') return bad('a WebSocket upgrade must be a GET request');
  if ((req.headers.upgrade ?? '').toLowerCase() !== 'websocket') return bad('Upgrade: websocket expected');
  const key = req.headers['sec-websocket-key'];
  if (typeof key !== 'string' || !WS_KEY_RE.test(key.trim())) return bad('missing or malformed Sec-WebSocket-Key');
  if (req.headers['sec-websocket-version'] !== '13') return bad('Sec-WebSocket-Version 13 expected');
  const offered = req.headers['sec-websocket-protocol'];
  if (offered === undefined) return { ok: true, protocol: undefined };
  const protocols = offered.split(',').map((p) => p.trim());
  if (protocols.includes(CONSOLE_SUBPROTOCOL)) return { ok: true, protocol: CONSOLE_SUBPROTOCOL };
  return { ok: false, error: new PortholeError('PH_ERR_PROTOCOL', `WebSocket subprotocol ${JSON.stringify(offered)} is not supported; offer "${CONSOLE_SUBPROTOCOL}" or none`) };
}
