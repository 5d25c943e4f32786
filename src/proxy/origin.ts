/**
 * Origin check for WebSocket upgrades, as Nova's console proxy does it (nova/console/websocketproxy.py):
 * an Origin header, when present, must name this host (the Host header the browser used) or one of
 * `[console] allowed_origins`, and its scheme must fit the scheme of the console page the token was
 * minted for (http/ws or https/wss). This blocks cross-site WebSocket hijacking (OSSA-2015-005).
 * A request without Origin comes from a non-browser client and is allowed, as in Nova.
 */

import { originMatches, type AllowedOrigin } from '../config/allowed-origin.js';

export type OriginVerdict = { readonly ok: true } | { readonly ok: false; readonly reason: string };

export interface OriginCheckInput {
  readonly origin: string | undefined;
  readonly host: string | undefined;
  /** Parsed `[console] allowed_origins` (parseAllowedOrigin), parsed once at start. */
  readonly allowedOrigins: readonly AllowedOrigin[];
  /** Scheme of the console page (`http:` or `https:`), from the token's access URL; undefined: host only (before the token is known). */
  readonly expectedScheme: string | undefined;
}

/** Host name part of a Host header value (`example.com:6080`, `[::1]:6080`), lower-case, brackets kept off. */
export function hostnameOf(hostHeader: string): string | undefined {
  try {
    return stripBrackets(new URL(`http://${hostHeader}`).hostname);
  } catch {
    return undefined;
  }
}

function stripBrackets(h: string): string {
  return h.toLowerCase().replace(/^\[(.*)\]$/, '$1');
}

const COMPATIBLE_SCHEMES: Readonly<Record<string, readonly string[]>> = {
  'http:': ['http:', 'ws:'],
  'https:': ['https:', 'wss:'],
  'ws:': ['http:', 'ws:'],
  'wss:': ['https:', 'wss:'],
};

export function checkOrigin(input: OriginCheckInput): OriginVerdict {
  if (input.origin === undefined) return { ok: true };
  let origin: URL;
  try {
    origin = new URL(input.origin);
  } catch {
    return { ok: false, reason: 'Origin header not valid' };
  }
  const originHost = stripBrackets(origin.hostname);
  if (originHost === '' || origin.protocol === '') return { ok: false, reason: 'Origin header not valid' };
  const expected = input.host === undefined ? undefined : hostnameOf(input.host);
  if (originHost !== expected && !input.allowedOrigins.some((a) => originMatches(origin, a))) {
    return { ok: false, reason: 'Origin header does not match this host' };
  }
  if (input.expectedScheme !== undefined && !(COMPATIBLE_SCHEMES[input.expectedScheme] ?? []).includes(origin.protocol)) {
    return { ok: false, reason: 'Origin header protocol does not match this host' };
  }
  return { ok: true };
}
