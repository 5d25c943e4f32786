/**
 * The console page's token swap: the page POSTs the token from its URL to {@link EXCHANGE_PATH},
 * gets it back as an HttpOnly, SameSite=Strict cookie scoped to a WebSocket path of its own, and
 * removes the token from the address bar. From then on the token is in no URL: not in the history,
 * not in a Referer, not in a reverse proxy's access log of the WebSocket request.
 *
 * Each console gets its own cookie path (`/websockify/c/<random id>`), so two console tabs in one
 * browser never send each other's token: a single cookie name at one path would let the second tab
 * overwrite the first tab's cookie, and a reconnect in the first tab would open the wrong VM.
 * Pure helpers; the proxy does the I/O.
 */
import { randomBytes } from 'node:crypto';

export const EXCHANGE_PATH = '/console-session';
export const CONSOLE_COOKIE = 'porthole_console';
export const COOKIE_PATH_SEGMENT = 'websockify/c/';
/** A token is 32 base64url characters; anything much longer is not a token. */
export const MAX_EXCHANGE_BODY_BYTES = 1024;

/**
 * A fresh per-console WebSocket path (not secret: the cookie at that path is), under the page's
 * directory as the browser sees it: behind a reverse proxy that serves the console at
 * `/console/`, the browser must store the cookie for `/console/websockify/c/…`. The page sends its
 * directory; anything that is not a plain absolute path falls back to `/`.
 */
export function newConsolePath(pageDirectory: string | undefined): string {
  const base = pageDirectory !== undefined && pageDirectory.length <= 256 && /^\/([A-Za-z0-9._~-]+\/)*$/.test(pageDirectory) && !/(^|\/)\.\.?\//.test(pageDirectory)
    ? pageDirectory : '/';
  return `${base}${COOKIE_PATH_SEGMENT}${randomBytes(12).toString('base64url')}`;
}

export interface ConsoleCookie {
  readonly token: string;
  readonly path: string;
  /** Seconds the cookie lives: the token's remaining life, so it never outlives the token. */
  readonly maxAgeSeconds: number;
  /** Pages served over https (here, or behind a TLS-terminating balancer). */
  readonly secure: boolean;
}

export function setCookieHeader(c: ConsoleCookie): string {
  return `${CONSOLE_COOKIE}=${encodeURIComponent(c.token)}; Path=${c.path}; Max-Age=${Math.max(1, Math.ceil(c.maxAgeSeconds))}; HttpOnly; SameSite=Strict` +
    (c.secure ? '; Secure' : '');
}

/** The token and the page's directory from the exchange request body (form-encoded). */
export function parseExchangeBody(body: string): { token: string | undefined; pageDirectory: string | undefined } {
  const form = new URLSearchParams(body);
  const token = form.get('token');
  return { token: token === null || token === '' ? undefined : token, pageDirectory: form.get('dir') ?? undefined };
}
