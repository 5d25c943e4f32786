/**
 * Where a console URL's WebSocket is, for native clients (`porthole tunnel`). Accepts what the API
 * and Nova return: the WebSocket URL itself (`ws[s]://…?token=`, serial and SPICE), a console page
 * (`http[s]://…/vnc_lite.html?token=`), and noVNC's `?path=websockify%3Ftoken%3D…` form. Pure.
 */

export interface ConsoleSocket {
  /** `ws[s]://host:port/path?token=…` */
  readonly wsUrl: string;
  readonly token: string;
}

/** @returns undefined when `text` is not a console URL with a token. */
export function consoleSocketOf(text: string): ConsoleSocket | undefined {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return undefined;
  }
  if (url.protocol === 'ws:' || url.protocol === 'wss:') {
    const token = url.searchParams.get('token');
    return token ? { wsUrl: url.toString(), token } : undefined;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
  const path = url.searchParams.get('path');
  // noVNC's `path` is relative to the server's root (`ws://host:port/<path>`); without it, the
  // page's own WebSocket is `websockify` beside the page.
  const resolved = path === null ? new URL('websockify', url) : new URL(`/${path.replace(/^\/+/, '')}`, url);
  const token = url.searchParams.get('token') ?? resolved.searchParams.get('token');
  if (!token) return undefined;
  const ws = new URL(`${url.protocol === 'https:' ? 'wss:' : 'ws:'}//${url.host}${resolved.pathname}`);
  ws.searchParams.set('token', token);
  return { wsUrl: ws.toString(), token };
}
